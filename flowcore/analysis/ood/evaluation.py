"""OOD evaluation report: every method × every OOD set, with the metric conventions named.

``evaluate(detector, x_id, {"noise": x_noise, ...})`` scores the ID data once and each OOD set
once with ``detector.score_all`` (one encoding and one trajectory pass per dataset, all methods
together), computes :func:`flowcore.analysis.ood.metrics.ood_metrics` for every method × set and
returns an :class:`OODReport`: one row per method × set plus a per-method mean row, the raw
scores, the method descriptions and the settings (detector parameters, attractor bank, the
metric conventions in words).

``OODReport.table()`` prints it (AUROC and both FPR95s in %, best AUROC per set marked) and
``OODReport.save(dir)`` writes::

    metrics.csv        one row per method × set, then the mean rows; fractions in [0, 1]
    report.json        rows, settings, conventions, best method per set, file list
    scores.npz         id/<method> and ood/<set>/<method> score arrays (no pickle)
    hist_<set>.png     ID vs OOD score histograms, one panel per method; data: hist_<set>.csv
    roc.png            ROC curves, one panel per OOD set, one curve per method; data: roc.csv

Scores are **higher = more OOD** everywhere. Needs scikit-learn (metrics) and, for the figures,
matplotlib: the ``analysis`` extra.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from flowcore.errors import BackendError, BadInputError, DataError
from flowcore.io import atomic_write_bytes, atomic_write_json, atomic_write_text, load_npz, save_npz, to_jsonable
from flowcore.plots.ood import csv_cell, figure_class, hist_figure, roc_figure
from flowcore.analysis.ood.metrics import METRICS, ood_metrics

__all__ = ["OODRow", "OODReport", "evaluate", "CONVENTIONS", "MEAN"]

FORMAT = "flowcore.ood-report"
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
class OODReport:
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

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.settings["methods"])

    @property
    def ood_sets(self) -> tuple[str, ...]:
        return tuple(self.settings["ood_sets"])

    def row(self, method: str, ood_set: str) -> OODRow:
        """The row of ``method`` on ``ood_set`` (or ``MEAN``)."""
        for r in self.rows:
            if r.method == method and r.ood_set == ood_set:
                return r
        raise BadInputError(f"no row for method {method!r} and OOD set {ood_set!r}; "
                            f"methods: {list(self.methods)}, sets: {list(self.ood_sets) + [MEAN]}")

    def best(self, ood_set: str, metric: str = "auroc") -> tuple[str, ...]:
        """Methods with the best ``metric`` on ``ood_set`` (ties all returned; FPRs: lowest)."""
        if metric not in METRICS:
            raise BadInputError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
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
            raise BadInputError(f"fmt must be 'text' or 'markdown', got {fmt!r}")
        if layout not in ("long", "wide"):
            raise BadInputError(f"layout must be 'long' or 'wide', got {layout!r}")
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
    def save(self, out_dir: str | os.PathLike, *, figures: bool = True) -> Path:
        """Write the report folder (see the module docstring); each file atomically.

        Parameters
        ----------
        out_dir : path-like
            Created if missing; files of an earlier report there are replaced.
        figures : bool, default True
            Also draw ``hist_<set>.png`` and ``roc.png`` (with their CSVs); needs matplotlib.

        Raises
        ------
        BackendError
            ``figures`` is True and matplotlib (or scikit-learn) is not installed; nothing is
            written then.
        """
        if figures:
            Figure = figure_class()
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stems = {s: _stem(s) for s in self.ood_sets}
        lines = [",".join(_COLUMNS)]
        for r in self.rows:
            d = r.as_dict()
            lines.append(",".join(csv_cell(d[c]) for c in _COLUMNS))
        atomic_write_text(out / "metrics.csv", "\n".join(lines) + "\n")
        arrays = {f"id/{m}": a for m, a in self.id_scores.items()}
        arrays.update({f"ood/{stems[s]}/{m}": a for s in self.ood_sets for m, a in self.ood_scores[s].items()})
        save_npz(out / "scores.npz", **arrays)
        files: dict[str, Any] = {"metrics": "metrics.csv", "scores": "scores.npz", "set_stems": stems}
        if figures:
            files["hist"] = {}
            for s in self.ood_sets:
                png, csv = hist_figure(Figure, self, s)
                atomic_write_bytes(out / f"hist_{stems[s]}.png", png)
                atomic_write_text(out / f"hist_{stems[s]}.csv", csv)
                files["hist"][s] = {"png": f"hist_{stems[s]}.png", "data": f"hist_{stems[s]}.csv"}
            png, csv = roc_figure(Figure, self)
            atomic_write_bytes(out / "roc.png", png)
            atomic_write_text(out / "roc.csv", csv)
            files["roc"] = {"png": "roc.png", "data": "roc.csv"}
        atomic_write_json(out / "report.json", {**self.to_json(), "files": files})
        return out

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> "OODReport":
        """Read a folder written by :meth:`save` (``report.json`` + ``scores.npz``), validated."""
        out = Path(out_dir)
        try:
            meta = json.loads((out / "report.json").read_text())
        except (OSError, ValueError):
            raise BadInputError(f"{out}/report.json is missing or unreadable; not an OOD report folder") from None
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise BadInputError(f"{out}/report.json is not a version-{FORMAT_VERSION} flowcore OOD report")
        arrays = load_npz(out / "scores.npz")
        try:
            settings, stems = meta["settings"], meta["files"]["set_stems"]
            methods, sets = settings["methods"], settings["ood_sets"]
            rows = tuple(OODRow(**{c: r[c] for c in _COLUMNS}) for r in meta["rows"])
            keys = {f"id/{m}" for m in methods} | {f"ood/{stems[s]}/{m}" for s in sets for m in methods}
        except (KeyError, TypeError) as exc:
            raise BadInputError(f"{out}/report.json is incomplete ({type(exc).__name__}: {exc})") from None
        if keys - set(arrays):
            raise DataError(f"{out}/scores.npz lacks the scores {sorted(keys - set(arrays))} that report.json lists")
        if any(r.method not in methods or r.ood_set not in (*sets, MEAN) for r in rows):
            raise BadInputError(f"{out}/report.json has rows for methods or sets it does not list")
        id_scores = {m: _frozen(arrays[f"id/{m}"]) for m in methods}
        ood_scores = {s: {m: _frozen(arrays[f"ood/{stems[s]}/{m}"]) for m in methods} for s in sets}
        for r in rows:
            if r.ood_set == MEAN:
                continue
            if len(id_scores[r.method]) != r.n_id or len(ood_scores[r.ood_set][r.method]) != r.n_ood:
                raise DataError(f"{out}: scores of {r.method} on {r.ood_set} do not match the row's sample counts")
        return cls(rows=rows, id_scores=id_scores, ood_scores=ood_scores, descriptions=meta["descriptions"],
                   settings=settings)


# ------------------------------------------------------------------------ evaluate
def evaluate(detector: Any, x_id: Any, ood_sets: Mapping[str, Any], *,
             methods: Sequence[str] | None = None) -> OODReport:
    """Score ID data and every OOD set once, and compute all metrics for every method × set.

    Parameters
    ----------
    detector : fitted OODDetector, or any object with ``score_all``
        Required: ``score_all(X) -> dict[str, ndarray of shape (N,)]``, higher = more OOD.
        Read when present (else left out of the settings): ``methods`` (order of the rows;
        default: ``score_all``'s key order), ``params()``, ``bank_info_``, ``thresholds_``,
        ``scorers_[m].describe()`` (default description: the method name).
    x_id : array-like of shape (n_id, *input_shape)
        ID evaluation data (held out from the detector's fit data).
    ood_sets : dict of str to array-like of shape (n_ood, *input_shape)
        OOD data sets by name, in report order. ``"mean"`` is reserved.
    methods : sequence of str, optional
        Report these methods only (each must be among the detector's); default all.

    Returns
    -------
    OODReport
        ``len(methods) * (len(ood_sets) + 1)`` rows (the last ``len(methods)`` are the means).

    Raises
    ------
    BadInputError
        No OOD sets, a bad set name, an unknown method, or ``detector`` without ``score_all``.
    DataError
        A method returned scores of the wrong length or with NaN/Inf.

    Examples
    --------
    >>> det = OODDetector(bundle).fit(x_train)                       # doctest: +SKIP
    >>> rep = evaluate(det, x_test, {"noise": x_noise})              # doctest: +SKIP
    >>> print(rep.table()); rep.save("ood_report/")                  # doctest: +SKIP
    """
    if not callable(getattr(detector, "score_all", None)):
        raise BadInputError(f"{type(detector).__name__} has no score_all(X); pass a fitted OODDetector")
    try:
        import sklearn  # noqa: F401, PLC0415
    except ImportError:
        raise BackendError("OOD metrics need scikit-learn: pip install 'flowcore[analysis]'") from None
    if not isinstance(ood_sets, Mapping) or not ood_sets:
        raise BadInputError("ood_sets must be a non-empty dict of name -> array")
    stems: dict[str, str] = {}
    for name in ood_sets:
        if not isinstance(name, str) or not name.strip():
            raise BadInputError(f"OOD set names must be non-empty strings, got {name!r}")
        if name == MEAN:
            raise BadInputError(f"the OOD set name {MEAN!r} is reserved for the mean rows; rename that set")
        if _stem(name) in stems.values():
            raise BadInputError(f"OOD set names {name!r} and {next(k for k, v in stems.items() if v == _stem(name))!r} "
                                "give the same file name; rename one")
        stems[name] = _stem(name)

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    id_all = detector.score_all(x_id)
    seconds["id"] = time.perf_counter() - t0
    available = tuple(getattr(detector, "methods", None) or tuple(id_all))
    chosen = available if methods is None else tuple(methods)
    unknown = [m for m in chosen if m not in id_all]
    if unknown or not chosen or len(set(chosen)) != len(chosen):
        raise BadInputError(f"methods {list(chosen)} must be distinct and among the detector's: {list(id_all)}")

    def checked(scores: dict, m: str, what: str, n: int | None) -> np.ndarray:
        a = np.asarray(scores[m], np.float64)
        if a.ndim != 1 or (n is not None and len(a) != n):
            raise DataError(f"method {m!r} returned scores of shape {a.shape} on {what}; expected ({n},)")
        if not np.all(np.isfinite(a)):
            raise DataError(f"method {m!r} returned NaN or Inf scores on {what}")
        return _frozen(a)

    n_id_in = len(x_id) if hasattr(x_id, "__len__") else None
    id_scores = {m: checked(id_all, m, "the ID data", n_id_in) for m in chosen}
    ood_scores: dict[str, dict[str, np.ndarray]] = {}
    for name, x in ood_sets.items():
        t0 = time.perf_counter()
        got = detector.score_all(x)
        seconds[name] = time.perf_counter() - t0
        missing = [m for m in chosen if m not in got]
        if missing:
            raise DataError(f"score_all returned no scores for {missing} on OOD set {name!r}")
        ood_scores[name] = {m: checked(got, m, f"OOD set {name!r}", len(x) if hasattr(x, "__len__") else None)
                            for m in chosen}

    n_id = len(next(iter(id_scores.values())))
    rows = [OODRow(m, s, n_id, len(ood_scores[s][m]), **ood_metrics(id_scores[m], ood_scores[s][m]))
            for s in ood_sets for m in chosen]
    for m in chosen:
        mine = [r for r in rows if r.method == m]
        means = {k: float(np.mean([getattr(r, k) for r in mine])) for k in METRICS}
        rows.append(OODRow(m, MEAN, n_id, int(sum(r.n_ood for r in mine)), **means))

    scorers = getattr(detector, "scorers_", None) or {}
    descriptions = {m: (scorers[m].describe() if m in scorers and hasattr(scorers[m], "describe") else m)
                    for m in chosen}
    params = detector.params() if callable(getattr(detector, "params", None)) else None
    thresholds = getattr(detector, "thresholds_", None)
    settings = {
        "methods": list(chosen), "ood_sets": list(ood_sets), "n_id": n_id,
        "n_ood": {s: len(next(iter(v.values()))) for s, v in ood_scores.items()},
        "detector": type(detector).__name__, "params": params, "bank": getattr(detector, "bank_info_", None),
        "thresholds": {m: float(thresholds[m]) for m in chosen if m in thresholds} if thresholds else None,
        "providers": _providers(detector), "conventions": dict(CONVENTIONS),
        "score_seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    settings = json.loads(json.dumps(to_jsonable(settings), default=str))
    return OODReport(rows=tuple(rows), id_scores=id_scores, ood_scores=ood_scores, descriptions=descriptions,
                     settings=settings)


def _providers(detector: Any) -> list[str] | None:
    """ONNX Runtime providers in use, when the detector exposes them (``providers_`` or its LatentMap)."""
    got = getattr(detector, "providers_", None)
    if got is None:
        lmap = getattr(detector, "_lmap_cache", None)
        try:
            got = lmap.providers if lmap is not None else None
        except Exception:  # a closed or failed session: leave it out
            got = None
    return list(got) if got is not None else None
