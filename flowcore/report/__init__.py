"""One self-contained HTML page per model: ``flowcore report`` (issue 21).

:func:`build_report` runs the public analyses and returns a :class:`Report` (sections of text,
tables and PNG figures; ``to_json()`` gives the content as data); :func:`render_html` makes the
page (inline CSS, base64 PNGs, a JSON data block, no network).
"""

from flowcore.report.build import SECTIONS, Report, build_report
from flowcore.report.html import render_html

__all__ = ["build_report", "render_html", "Report", "SECTIONS"]
