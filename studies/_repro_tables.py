"""Tables over seeds and their figures for ``studies/reproduce_digits.py``.

A *record* is ``(key, seed, metrics)``: ``key`` a tuple naming the row (e.g. ``("mlp", 32)``),
``metrics`` a dict of floats for one seed. :func:`aggregate` turns records into rows with, per
metric, the mean, the sample standard deviation over seeds (ddof = 1; "–" with one seed), the
number of seeds and every per-seed value. Every CSV names its seeds (one ``<metric>_s<seed>``
column per seed and a ``seeds`` column); the figures draw mean ± std as error bars or a band.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowcore.io import atomic_write_bytes, atomic_write_text

__all__ = ["aggregate", "write_table", "cell", "md_table", "errorbar_figure", "band_figure", "fmt", "new_figure", "save_png"]


def fmt(v, nd: int = 3) -> str:
    """A number for the docs tables: ``nd`` decimals, or 3 significant digits without an exponent when
    ``nd`` < 0 (0.0000472); "–" for None / NaN."""
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if nd >= 0:
        return f"{v:.{nd}f}"
    return np.format_float_positional(float(v), precision=3, unique=False, fractional=False, trim="-")


def aggregate(records: list[tuple], metrics: list[str], seeds: list[int]) -> dict[tuple, dict]:
    """Mean, std (ddof = 1), n and per-seed values of each metric, per key, in first-seen key order.

    Returns
    -------
    dict of tuple to dict
        key -> metric -> ``{"mean", "std", "n", "per_seed": {seed: value or None}}``.
    """
    by_key: dict[tuple, dict[int, dict]] = {}
    for key, seed, m in records:
        by_key.setdefault(tuple(key), {})[int(seed)] = m
    out = {}
    for key, per in by_key.items():
        out[key] = {}
        for name in metrics:
            vals = {s: (per[s].get(name) if s in per else None) for s in seeds}
            got = np.array([v for v in vals.values() if v is not None and np.isfinite(v)], np.float64)
            out[key][name] = {"mean": float(got.mean()) if len(got) else float("nan"),
                              "std": float(got.std(ddof=1)) if len(got) > 1 else float("nan"),
                              "n": int(len(got)), "per_seed": vals}
    return out


def _csv_cell(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def write_table(path: Path, agg: dict, key_names: list[str], metrics: list[str], seeds: list[int]) -> None:
    """CSV: key columns, then per metric ``_mean``, ``_std``, ``_n`` and ``_s<seed>`` columns, then ``seeds``."""
    header = list(key_names)
    for m in metrics:
        header += [f"{m}_mean", f"{m}_std", f"{m}_n"] + [f"{m}_s{s}" for s in seeds]
    header.append("seeds")
    lines = [",".join(header)]
    for key, row in agg.items():
        cells = [_csv_cell(k) for k in key]
        for m in metrics:
            a = row[m]
            cells += [_csv_cell(a["mean"]), _csv_cell(a["std"]), str(a["n"])]
            cells += [_csv_cell(a["per_seed"][s]) for s in seeds]
        cells.append(";".join(str(s) for s in seeds))
        lines.append(",".join(cells))
    atomic_write_text(path, "\n".join(lines) + "\n")


def cell(a: dict, nd: int = 3) -> str:
    """``mean ± std (v0 / v1 / …)`` for the docs tables (the per-seed values in seed order)."""
    per = " / ".join(fmt(v, nd) for v in a["per_seed"].values())
    return f"{fmt(a['mean'], nd)} ± {fmt(a['std'], nd)} ({per})"


def md_table(agg: dict, key_names: list[str], metrics: list[tuple[str, str, int]]) -> list[str]:
    """Markdown lines: one column per key name, one ``mean ± std (per seed)`` column per metric.

    ``metrics`` holds (name, column title, decimals) triples.
    """
    lines = ["| " + " | ".join(key_names + [t for _, t, _ in metrics]) + " |",
             "|" + "---:|" * len(key_names) + "---|" * len(metrics)]
    for key, row in agg.items():
        lines.append("| " + " | ".join([str(k) for k in key] + [cell(row[m], nd) for m, _, nd in metrics]) + " |")
    return lines


def new_figure(size=(5.6, 3.8)):
    """A matplotlib Figure (Agg, no pyplot) of ``size`` inches at 100 dpi (:func:`flowcore.plots.figure_class`)."""
    from flowcore.plots import figure_class  # noqa: PLC0415  (matplotlib: the studies' extra)

    return figure_class()(figsize=size, dpi=100)


def save_png(fig, path: Path) -> None:
    """Write ``fig`` as PNG to ``path`` atomically (:func:`flowcore.plots.png_bytes`)."""
    from flowcore.plots import png_bytes  # noqa: PLC0415

    atomic_write_bytes(path, png_bytes(fig))


def errorbar_figure(path: Path, series: dict[str, tuple], *, xlabel: str, ylabel: str, title: str,
                    logx: bool = False, ref: dict | None = None) -> None:
    """Mean ± std error bars per series; ``series`` maps a name to (x, mean, std) arrays.

    ``ref`` maps a name to (x, y) drawn as a dashed line without bars (published numbers).
    """
    fig = new_figure()
    ax = fig.subplots()
    for name, (xs, m, s) in series.items():
        ax.errorbar(xs, m, yerr=np.nan_to_num(np.asarray(s, float)), marker="o", capsize=3, label=name)
    for name, (xs, y) in (ref or {}).items():
        ax.plot(xs, y, "k--", marker="x", label=name)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    save_png(fig, path)


def band_figure(path: Path, curves: dict[str, list[np.ndarray]], *, xlabel: str, ylabel: str, title: str,
                logy: bool = True) -> None:
    """Per-seed curves (thin) and mean ± std (line and shaded band over the epochs all seeds reached)."""
    fig = new_figure((6.2, 4.0))
    ax = fig.subplots()
    for i, (name, per_seed) in enumerate(curves.items()):
        color = f"C{i % 10}"
        for y in per_seed:
            ax.plot(np.arange(1, len(y) + 1), y, color=color, lw=0.6, alpha=0.5)
        n = min(len(y) for y in per_seed)
        Y = np.stack([np.asarray(y[:n], float) for y in per_seed])
        m, s = Y.mean(0), (Y.std(0, ddof=1) if len(Y) > 1 else np.zeros(n))
        ep = np.arange(1, n + 1)
        ax.plot(ep, m, color=color, lw=1.6, label=name)
        ax.fill_between(ep, m - s, m + s, color=color, alpha=0.2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    save_png(fig, path)
