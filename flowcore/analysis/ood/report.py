"""The OOD evaluation report as data: one row per method × OOD set, the scores and the settings.

:class:`OODReport` (made by :func:`flowcore.analysis.ood.evaluation.evaluate`) prints as a table
(``table()``: AUROC and both FPR95s in %, best AUROC per set marked) and is saved as a
:class:`flowcore.results.Result`::

    metrics.csv        one row per method × set, then the mean rows; fractions in [0, 1]
    report.json        rows, settings, conventions, best method per set, file list
    scores.npz         id/<method> and ood/<set>/<method> score arrays (no pickle)

The figures (``hist_<set>.png``, ``roc.png`` with their CSVs) are drawn by the face:
:func:`flowcore.plots.ood.write_report` writes the whole folder, figures included.
Scores are **higher = more OOD** everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flowcore.analysis.ood.metrics import METRICS
from flowcore.errors import DataError, ParameterError
from flowcore.io import csv_cell
from flowcore.results import Array, Result

__all__ = ["OODRow", "OODReport", "CONVENTIONS", "MEAN"]

KIND = "ood-report"
FORMAT = "flowcore." + KIND
FORMAT_VERSION = 1
MEAN = "mean"  #: ``ood_set`` of the per-method mean rows
CONVENTIONS = {
    "score_direction": "higher score = more OOD",
    "auroc": "area under the ROC curve with OOD as the positive class; 0.5 = chance, below 0.5 = inverted",
    "aupr": "AUPR via OpenOOD v1.5's trapezoid recipe (precision_recall_curve then auc(recall, precision), "
            "not average_precision_score); aupr_in: ID positive with score -s; aupr_out: OOD positive with score s",
    "fpr95_id_positive": "share of OOD accepted at the threshold keeping 95% of ID (paper, KNN-OOD)",
    "fpr95_ood_positive": "share of ID flagged at the threshold catching 95% of OOD (OpenOOD v1.5, pytorch-ood)",
    "units": "fractions in [0, 1] in metrics.csv and report.json; percent (one decimal) in the printed table",
    "mean": "mean rows: unweighted mean of each metric over the OOD sets (OpenOOD's near/far means); "
            "n_ood is the total",
}
_COLUMNS = ("method", "ood_set", "n_id", "n_ood") + METRICS
_LABELS = {"auroc": "AUROC", "fpr95_id_positive": "FPR95 ID+", "fpr95_ood_positive": "FPR95 OOD+"}
_SHOWN = ("auroc", "fpr95_id_positive", "fpr95_ood_positive")


@dataclass(frozen=True)
class OODRow:
    """Metrics of one method on one OOD set (``ood_set == "mean"``: mean over the sets).

    Metric values are fractions in [0, 1]; AUROC and AUPRs higher-is-better, FPR95s lower.
    """

    method: str
    ood_set: str
    n_id: int
    n_ood: int
    auroc: float
    aupr_in: float
    aupr_out: float
    fpr95_id_positive: float
    fpr95_ood_positive: float

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _frozen(a: Any) -> np.ndarray:
    a = np.array(a, np.float64).ravel()
    a.flags.writeable = False
    return a


def _stem(name: str) -> str:
    """File-name-safe form of an OOD set name ("natural patches" -> "natural_patches")."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "set"


@dataclass(frozen=True, eq=False)
class OODReport(Result):
    """OOD metrics of several methods on several OOD sets, with the scores and settings.

    Attributes
    ----------
    rows : tuple of OODRow
        Per-set rows (sets in the given order, methods in detector order), then one mean row
        per method (``ood_set == MEAN``): ``len(methods) * (len(ood_sets) + 1)`` rows.
    id_scores : dict of str to ndarray of shape (n_id,), float64
        Score of each method on the ID evaluation data; higher = more OOD.
    ood_scores : dict of str to dict of str to ndarray of shape (n_ood,), float64
        ``ood_scores[set][method]``.
    descriptions : dict of str to str
        One line per method.
    settings : dict
        ``methods``, ``ood_sets``, ``n_id``, ``n_ood``, ``detector`` (class name), ``params``,
        ``bank``, ``thresholds``, ``providers``, ``conventions``, ``score_seconds``.
    """

    rows: tuple[OODRow, ...]
    id_scores: dict[str, np.ndarray]
    ood_scores: dict[str, dict[str, np.ndarray]]
    descriptions: dict[str, str]
    settings: dict[str, Any]

    kind: ClassVar[str] = KIND
    version: ClassVar[int] = FORMAT_VERSION
    title: ClassVar[str] = "an OOD report"
    json_name: ClassVar[str] = "report.json"
    npz_name: ClassVar[str] = "scores.npz"

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.settings["methods"])

    @property
    def ood_sets(self) -> tuple[str, ...]:
        return tuple(self.settings["ood_sets"])

    @property
    def stems(self) -> dict[str, str]:
        """File-name-safe stem of each OOD set (``hist_<stem>.png``, ``ood/<stem>/<method>``)."""
        return {s: _stem(s) for s in self.ood_sets}

    def row(self, method: str, ood_set: str) -> OODRow:
        """The row of ``method`` on ``ood_set`` (or ``MEAN``)."""
        for r in self.rows:
            if r.method == method and r.ood_set == ood_set:
                return r
        raise ParameterError(f"no row for method {method!r} and OOD set {ood_set!r}; "
                            f"methods: {list(self.methods)}, sets: {list(self.ood_sets) + [MEAN]}")

    def best(self, ood_set: str, metric: str = "auroc") -> tuple[str, ...]:
        """Methods with the best ``metric`` on ``ood_set`` (ties all returned; FPRs: lowest)."""
        if metric not in METRICS:
            raise ParameterError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
        vals = {m: getattr(self.row(m, ood_set), metric) for m in self.methods}
        pick = min(vals.values()) if metric.startswith("fpr") else max(vals.values())
        return tuple(m for m, v in vals.items() if abs(v - pick) <= 1e-12)

    def to_json(self) -> dict[str, Any]:
        """Plain-typed summary (everything but the score arrays)."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "score_direction": CONVENTIONS["score_direction"],
                "rows": [r.as_dict() for r in self.rows], "descriptions": dict(self.descriptions),
                "best_auroc": {s: list(self.best(s)) for s in self.ood_sets + (MEAN,)},
                "settings": self.settings}

    # --------------------------------------------------------------------- table
    def table(self, fmt: str = "text", *, layout: str = "long") -> str:
        """The metrics as a text or Markdown table, in percent with one decimal.

        Parameters
        ----------
        fmt : {"text", "markdown"}
        layout : {"long", "wide"}
            ``long``: one line per OOD set × method with AUROC, FPR95 ID+ and FPR95 OOD+.
            ``wide``: one line per method, one column per OOD set holding
            ``AUROC / FPR95 ID+ / FPR95 OOD+``. The best AUROC per set is marked ``*`` (text)
            or bold (Markdown), with every method equal to it at the shown precision
            (:meth:`best` gives the exact winners). AUPR-In/Out are in ``metrics.csv`` only.
        """
        if fmt not in ("text", "markdown"):
            raise ParameterError(f"fmt must be 'text' or 'markdown', got {fmt!r}")
        if layout not in ("long", "wide"):
            raise ParameterError(f"layout must be 'long' or 'wide', got {layout!r}")
        md = fmt == "markdown"
        sets = self.ood_sets + (MEAN,)

        def pct(v: float) -> str:
            return f"{100 * v:.1f}"

        # ties at the shown precision are all marked (``best()`` gives the exact winners)
        best = {s: {m for m in self.methods if pct(self.row(m, s).auroc) == pct(self.row(self.best(s)[0], s).auroc)}
                for s in sets}

        def mark(text: str, on: bool) -> str:
            return (f"**{text}**" if md else f"{text}*") if on else (text if md else text + " ")

        if layout == "long":
            head = ["OOD set", "method"] + [_LABELS[k] for k in _SHOWN]
            body = [[s if i == 0 else "", m, mark(pct(self.row(m, s).auroc), m in best[s])]
                    + [pct(getattr(self.row(m, s), k)) for k in _SHOWN[1:]]
                    for s in sets for i, m in enumerate(self.methods)]
        else:
            head = ["method"] + [f"{s} (AUROC / FPR95 ID+ / FPR95 OOD+)" if md else s for s in sets]
            body = [[m] + [mark(" / ".join(pct(getattr(self.row(m, s), k)) for k in _SHOWN), m in best[s])
                           for s in sets] for m in self.methods]
        n_ood = ", ".join(f"{s} {self.settings['n_ood'][s]}" for s in self.ood_sets)
        notes = [f"ID n = {self.settings['n_id']}; OOD n: {n_ood}. Scores: higher = more OOD. Values in %.",
                 f"Best AUROC per set marked {'in bold' if md else 'with *'} (ties at the shown precision included); "
                 "'mean' = unweighted mean over the sets.",
                 f"FPR95 ID+ = {CONVENTIONS['fpr95_id_positive']}.",
                 f"FPR95 OOD+ = {CONVENTIONS['fpr95_ood_positive']}."]
        if md:
            lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
            lines += ["| " + " | ".join(r) + " |" for r in body]
            return "\n".join(lines + [""] + notes) + "\n"
        widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
        left = 2 if layout == "long" else 1

        def fmt_row(r: list[str]) -> str:
            return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

        lines = [fmt_row(head), "  ".join("-" * w for w in widths)] + [fmt_row(r) for r in body]
        return "\n".join(notes + [""] + [ln.rstrip() for ln in lines]) + "\n"

    # ---------------------------------------------------------------------- save
    def write(self, folder: str | Path, *, extra_json: dict[str, Any] | None = None) -> Path:
        """Write ``metrics.csv``, ``scores.npz`` and ``report.json`` into an existing folder.

        ``extra_json["files"]`` (e.g. the figures :func:`flowcore.plots.ood.write_report_figures`
        drew) is merged into the file list of ``report.json``.
        """
        extra = dict(extra_json or {})
        files = {"metrics": "metrics.csv", "scores": "scores.npz", "set_stems": self.stems, **extra.pop("files", {})}
        return super().write(folder, extra_json={**extra, "files": files})

    def _extra_files(self) -> dict[str, str]:
        lines = [",".join(_COLUMNS)]
        for r in self.rows:
            d = r.as_dict()
            lines.append(",".join(csv_cell(d[c]) for c in _COLUMNS))
        return {"metrics.csv": "\n".join(lines) + "\n"}

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"id/{m}": a for m, a in self.id_scores.items()}
        arrays.update({f"ood/{self.stems[s]}/{m}": a for s in self.ood_sets for m, a in self.ood_scores[s].items()})
        return arrays

    @classmethod
    def _schema(cls, meta: dict[str, Any]) -> dict[str, Array]:
        methods, sets = list(meta["settings"]["methods"]), list(meta["settings"]["ood_sets"])
        out = {f"id/{m}": Array("f", 1, dims=("n_id",)) for m in methods}
        out.update({f"ood/{_stem(s)}/{m}": Array("f", 1, dims=(f"n_ood {s}",)) for s in sets for m in methods})
        return out

    @classmethod
    def _from_files(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any], folder: Path) -> "OODReport":
        settings = meta["settings"]
        methods, sets = settings["methods"], settings["ood_sets"]
        rows = tuple(OODRow(**{c: r[c] for c in _COLUMNS}) for r in meta["rows"])
        where = folder / cls.json_name
        if any(r.method not in methods or r.ood_set not in (*sets, MEAN) for r in rows):
            raise DataError(f"{where}: field 'rows' has rows for methods or sets it does not list")
        id_scores = {m: _frozen(arrays[f"id/{m}"]) for m in methods}
        ood_scores = {s: {m: _frozen(arrays[f"ood/{_stem(s)}/{m}"]) for m in methods} for s in sets}
        for r in rows:
            if r.ood_set != MEAN and (len(id_scores[r.method]) != r.n_id or len(ood_scores[r.ood_set][r.method]) != r.n_ood):
                raise DataError(f"{folder / cls.npz_name}: scores of {r.method} on {r.ood_set} do not match the "
                                "row's sample counts")
        return cls(rows=rows, id_scores=id_scores, ood_scores=ood_scores, descriptions=meta["descriptions"],
                   settings=settings)

