"""One self-contained HTML page from a :class:`~flowcore.report.build.Report`.

CSS inline, figures as ``data:image/png;base64`` URIs, the content as data in
``<script type="application/json" id="flowcore-data">``; no external URL, no script that runs.
Every section is a ``<section id="…">`` (ids: :data:`flowcore.report.build.SECTIONS`).
"""

from __future__ import annotations

import base64
import html
import json
from typing import Any

from flowcore.io import to_jsonable

__all__ = ["render_html"]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;max-width:1040px;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:12.5px}td,th{border:1px solid #ddd;padding:2px 7px;text-align:left}td.n{text-align:right}
th{background:#f3f3f3}caption{text-align:left;color:#555;font-style:italic}
.note{color:#8a5a00;background:#fff6e0;padding:.4em .7em;border-left:3px solid #e0a000}
.verdict{font-weight:600;background:#eef5ff;padding:.4em .7em;border-left:3px solid #3070d0}
figure{margin:.6em 0}figcaption{color:#555;font-size:12px}img{max-width:100%}
nav a{margin-right:.8em}
"""


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return '<td class="n">' + ("—" if v != v else f"{v:.4g}") + "</td>"
    if isinstance(v, int) and not isinstance(v, bool):
        return f'<td class="n">{v}</td>'
    return f"<td>{html.escape(str(v))}</td>"


def _table(t: dict[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in t["columns"])
    body = "".join("<tr>" + "".join(_cell(v) for v in r) + "</tr>" for r in t["rows"])
    return f"<table><caption>{html.escape(t['caption'])}</caption><tr>{head}</tr>{body}</table>"


def _section(s: dict[str, Any]) -> str:
    parts = [f'<section id="{s["id"]}"><h2>{html.escape(s["title"])}</h2>']
    if s["note"]:
        parts.append(f'<p class="note">{html.escape(s["note"])}</p>')
    for line in s["text"]:
        cls = ' class="verdict"' if line.startswith("verdict:") else ""
        parts.append(f"<p{cls}>{html.escape(line)}</p>")
    parts += [_table(t) for t in s["tables"]]
    for f in s["figures"]:
        src = "data:image/png;base64," + base64.b64encode(f["png"]).decode("ascii")
        parts.append(f'<figure><img alt="{html.escape(f["name"])}" src="{src}">'
                     f'<figcaption>{html.escape(f["caption"])}</figcaption></figure>')
    return "\n".join(parts) + "</section>"


def render_html(report) -> str:
    """The page as one string (UTF-8 text)."""
    data = json.dumps(to_jsonable(report.to_json())).replace("</", "<\\/")
    nav = " ".join(f'<a href="#{s["id"]}">{html.escape(s["title"])}</a>' for s in report.sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(report.title)}</h1><nav>{nav}</nav>\n"
            + "\n".join(_section(s) for s in report.sections)
            + f'\n<script type="application/json" id="flowcore-data">{data}</script>\n</body></html>\n')
