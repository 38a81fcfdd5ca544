"""Figure plumbing shared by every flowcore figure: matplotlib's Figure, PNG bytes, CSV, saving.

Every figure function returns ``(png_bytes, csv_text)``: the PNG image and the CSV of exactly
the data drawn (floats written with ``repr``, so they parse back bit-exact). :func:`save_figure`
writes both next to each other, atomically.

matplotlib is imported inside the functions, never at import time, and only matplotlib's
``Figure`` with an Agg canvas is used (no pyplot), so the caller's backend is never switched.
A missing matplotlib raises :class:`~flowcore.errors.BackendError` with one line naming
``pip install 'flowcore[analysis]'``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from flowcore.errors import BackendError, DataError, ParameterError
from flowcore.io import atomic_write_bytes, atomic_write_text

__all__ = ["figure_class", "png_bytes", "csv_cell", "save_figure"]


def figure_class():
    """matplotlib's ``Figure`` (Agg canvas, no pyplot), or one-line BackendError."""
    try:
        from matplotlib.figure import Figure  # lazy: optional extra matplotlib (flowcore[analysis])
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401  # lazy: optional extra matplotlib (flowcore[analysis])
    except ImportError:
        raise BackendError("flowcore figures need matplotlib, which is not installed: "
                           "pip install 'flowcore[analysis]'") from None
    return Figure


def png_bytes(fig) -> bytes:
    """PNG of a Figure drawn on an Agg canvas (dpi 100)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: optional extra matplotlib (flowcore[analysis])

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def csv_cell(v: Any) -> str:
    """One CSV cell: floats as ``repr`` (exact round trip), strings quoted when needed."""
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (np.integer,)):
        return str(int(v))
    v = str(v)
    return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n\r') else v


def _csv(header: list[str], rows) -> str:
    lines = [",".join(csv_cell(h) for h in header)]
    lines += [",".join(csv_cell(c) for c in row) for row in rows]
    return "\n".join(lines) + "\n"


def save_figure(png: bytes, csv: str, out_dir: str | os.PathLike, stem: str) -> tuple[Path, Path]:
    """Write ``<out_dir>/<stem>.png`` and ``<out_dir>/<stem>.csv`` atomically.

    Parameters
    ----------
    png : bytes
        PNG image (as returned by the figure functions).
    csv : str
        The CSV text of the data drawn.
    out_dir : path-like
        Directory, created when missing.
    stem : str
        File name without extension; no path separators.

    Returns
    -------
    (Path, Path)
        The PNG and CSV paths written.

    Raises
    ------
    DataError
        A stem that is empty or contains a path separator, or a ``png`` that is not PNG bytes.
    """
    if not stem or any(s in stem for s in ("/", "\\", os.sep)) or stem in (".", ".."):
        raise ParameterError(f"stem must be a plain file name without separators; got {stem!r}")
    if not isinstance(png, (bytes, bytearray)) or not bytes(png[:8]) == b"\x89PNG\r\n\x1a\n":
        raise DataError("png must be the PNG bytes a flowcore.plots figure returns")
    out = Path(out_dir)
    p = atomic_write_bytes(out / f"{stem}.png", bytes(png))
    c = atomic_write_text(out / f"{stem}.csv", csv)
    return p, c
