"""Tables and the selection protocol of ``studies/ood_benchmark.py``, from long-format metric records.

A record is one method on one OOD set of one (model, seed, split)::

    {"model": "conv-k32", "seed": 0, "family": "near", "set": "rotated 90", "split": "test",
     "group": "flowcore" | "pyod" | "paper", "method": "features",
     "auroc": ..., "fpr95_id_positive": ..., "fpr95_ood_positive": ...}        # fractions

Family values: far / near are the mean over the family's sets per seed, then mean ± std over
seeds; novelty is mean ± std over held-out classes (× seeds). Best per column in bold (highest
AUROC, lowest FPR95), among flowcore's and PyOD's methods.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

__all__ = ["FAMILIES", "METRIC_NAMES", "family_samples", "family_table", "set_table", "paper_table",
           "select", "selection_markdown", "default_rule", "default_rule_markdown", "target_check", "target_markdown"]

FAMILIES = ("far", "near", "novelty")
METRIC_NAMES = {"auroc": "AUROC", "fpr95_id_positive": "FPR95 ID+", "fpr95_ood_positive": "FPR95 OOD+"}


def _ordered(values) -> list:
    return list(dict.fromkeys(values))


def family_samples(records: list[dict], *, split: str = "test", groups=("flowcore", "pyod")) -> dict:
    """(family, model, method, metric) -> list of samples (fractions), as the module docstring says."""
    per = defaultdict(list)  # (family, model, method, seed) -> rows
    for r in records:
        if r["split"] == split and r["group"] in groups:
            per[(r["family"], r["model"], r["method"], r["seed"])].append(r)
    out = defaultdict(list)
    for (fam, model, method, _seed), rows in per.items():
        for m in METRIC_NAMES:
            vals = [r[m] for r in rows]
            out[(fam, model, method, m)].extend(vals if fam == "novelty" else [float(np.mean(vals))])
    return out


def _cell(vals: list[float], bold: bool) -> str:
    text = f"{100 * np.mean(vals):.1f} ± {100 * np.std(vals):.1f}" if len(vals) > 1 else f"{100 * vals[0]:.1f}"
    return f"**{text}**" if bold else text


def _bold_sets(table: dict, rows: list, cols: list) -> set:
    """Cells (row, col) that are best in their column: col = (…, metric)."""
    best = set()
    for c in cols:
        metric = c[-1]
        vals = {r: np.mean(table[(r, c)]) for r in rows if (r, c) in table}
        if not vals:
            continue
        target = max(vals.values()) if metric == "auroc" else min(vals.values())
        best.update((r, c) for r, v in vals.items() if round(100 * v, 1) == round(100 * target, 1))
    return best


def family_table(records: list[dict], family: str, methods: list[str]) -> str:
    """Markdown: rows = methods, columns = model × (AUROC, FPR95 ID+, FPR95 OOD+), mean ± std in %."""
    samples = family_samples(records)
    models = _ordered(r["model"] for r in records if r["family"] == family)
    cols = [(mo, m) for mo in models for m in METRIC_NAMES]
    table = {(me, c): samples[(family, c[0], me, c[1])] for me in methods for c in cols
             if samples.get((family, c[0], me, c[1]))}
    bold = _bold_sets(table, methods, cols)
    head = "| method | " + " | ".join(f"{mo} {METRIC_NAMES[m]}" for mo, m in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for me in methods:
        cells = [_cell(table[(me, c)], (me, c) in bold) if (me, c) in table else "–" for c in cols]
        lines.append(f"| {me} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def set_table(records: list[dict], family: str, model: str, methods: list[str]) -> str:
    """Markdown: AUROC per set (mean ± std over seeds) for one family and model."""
    rows = [r for r in records if r["split"] == "test" and r["family"] == family and r["model"] == model]
    sets = _ordered(r["set"] for r in rows)
    vals = defaultdict(list)
    for r in rows:
        vals[(r["method"], (r["set"], "auroc"))].append(r["auroc"])
    cols = [(s, "auroc") for s in sets]
    bold = _bold_sets(vals, [m for m in methods], cols)
    lines = ["| method | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|"]
    for me in methods:
        cells = [_cell(vals[(me, c)], (me, c) in bold) if vals.get((me, c)) else "–" for c in cols]
        lines.append(f"| {me} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paper_table(records: list[dict], variants: list[str]) -> str:
    """Markdown: the paper-score variants, AUROC mean over the far / near sets, mean ± std over seeds."""
    samples = family_samples(records, groups=("paper",))
    models = _ordered(r["model"] for r in records if r["group"] == "paper")
    cols = [(mo, fam) for mo in models for fam in ("far", "near")]
    head = "| variant | " + " | ".join(f"{mo} {fam} AUROC" for mo, fam in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for v in variants:
        cells = [_cell(samples[(fam, mo, v, "auroc")], False) if samples.get((fam, mo, v, "auroc")) else "–"
                 for mo, fam in cols]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fam_means(records: list[dict], split: str, candidates, groups=("flowcore",)) -> dict:
    """(model, seed) -> method -> family -> mean AUROC over the family's sets (classes for novelty)."""
    acc = defaultdict(list)
    for r in records:
        if r["split"] == split and r["group"] in groups and r["method"] in candidates:
            acc[((r["model"], r["seed"]), r["method"], r["family"])].append(r["auroc"])
    out: dict = defaultdict(lambda: defaultdict(dict))
    for (ms, m, fam), v in acc.items():
        out[ms][m][fam] = float(np.mean(v))
    return out


def select(records: list[dict], candidates: list[str]) -> dict:
    """Leave-one-OOD-family-out selection among ``candidates`` (flowcore's methods).

    For each (model, seed) and each family F: the candidate with the best mean validation AUROC
    over the *other* families (ties: first in ``candidates``) is reported with its *test* AUROC
    on F. ``overall``: the candidate with the best mean validation AUROC over all families.
    Validation rows only ever choose; test rows only ever report.
    """
    val, test = _fam_means(records, "val", candidates), _fam_means(records, "test", candidates)
    rows, counts, overall = [], defaultdict(int), {}
    for ms in val:
        fams = [f for f in FAMILIES if all(f in val[ms][m] for m in candidates)]
        for held in fams:
            others = [f for f in fams if f != held]
            if not others:
                continue
            score = {m: float(np.mean([val[ms][m][f] for f in others])) for m in candidates}
            chosen = max(candidates, key=lambda m: (score[m], -candidates.index(m)))
            oracle = max(candidates, key=lambda m: test[ms][m][held])
            rows.append({"model": ms[0], "seed": ms[1], "held_out_family": held, "chosen": chosen,
                         "val_auroc_other_families": score[chosen], "test_auroc_chosen": test[ms][chosen][held],
                         "test_auroc_features": test[ms].get("features", {}).get(held),
                         "test_auroc_combined": test[ms].get("combined", {}).get(held),
                         "test_best_method": oracle, "test_auroc_best": test[ms][oracle][held]})
            counts[chosen] += 1
        if fams:
            allv = {m: float(np.mean([val[ms][m][f] for f in fams])) for m in candidates}
            overall[f"{ms[0]} seed {ms[1]}"] = max(candidates, key=lambda m: (allv[m], -candidates.index(m)))
    return {"candidates": list(candidates), "rows": rows, "counts": dict(counts), "overall": overall}


def selection_markdown(sel: dict) -> str:
    lines = ["| model | seed | held-out family | chosen (on the other families' validation) | its val AUROC | "
             "its test AUROC | features test | combined test | best flowcore method on test (oracle) |",
             "|---|---|---|---|---|---|---|---|---|"]
    f = lambda v: "–" if v is None else f"{100 * v:.1f}"  # noqa: E731
    for r in sel["rows"]:
        lines.append(f"| {r['model']} | {r['seed']} | {r['held_out_family']} | {r['chosen']} | "
                     f"{f(r['val_auroc_other_families'])} | {f(r['test_auroc_chosen'])} | {f(r['test_auroc_features'])} | "
                     f"{f(r['test_auroc_combined'])} | {r['test_best_method']} ({f(r['test_auroc_best'])}) |")
    n = max(1, len(sel["rows"]))
    lines += ["", "Times chosen (leave-one-family-out): "
              + (", ".join(f"`{m}` {c}/{n}" for m, c in sorted(sel["counts"].items(), key=lambda t: -t[1])) or "none"),
              "", "Chosen on all families' validation splits: "
              + (", ".join(f"{k}: `{v}`" for k, v in sel["overall"].items()) or "none")]
    return "\n".join(lines)


def _regrets(samples: dict, split_models: list, candidates: list[str], methods: list[str], fams) -> dict:
    """candidate -> [regret on (model, family)] in points: the best of ``methods`` minus the candidate."""
    out = {c: [] for c in candidates}
    for mo in split_models:
        for fam in fams:
            means = {m: float(np.mean(samples[(fam, mo, m, "auroc")])) for m in methods
                     if samples.get((fam, mo, m, "auroc"))}
            if not means or any(c not in means for c in candidates):
                continue
            best = max(means.values())
            for c in candidates:
                out[c].append(100 * (best - means[c]))
    return out


def _pick(regret: dict, candidates: list[str]) -> str:
    """Smallest worst-case regret; ties: smaller mean regret, then the order of ``candidates``."""
    return min(candidates, key=lambda c: (round(max(regret[c]), 6), round(float(np.mean(regret[c])), 6),
                                          candidates.index(c)))


def default_rule(records: list[dict], candidates: list[str], methods: list[str]) -> dict:
    """The one default for every model, chosen on validation rows pooled over every model and seed.

    A candidate's regret on (model, family) is the best seed-mean *validation* AUROC among
    ``methods`` (flowcore's and PyOD's) minus its own, in points. The default is the candidate
    with the smallest worst-case regret over model × family (ties: smaller mean regret, then the
    order of ``candidates``): the issue's target, "best or within 1 point of the best on every
    family × model", read on validation rows. ``lofo``: the same rule on two families' validation
    rows, with the chosen candidate's *test* regret on the third (per model). Test rows never choose.
    """
    val, test = family_samples(records, split="val"), family_samples(records, split="test")
    models = _ordered(r["model"] for r in records if r["group"] == "flowcore")
    fams = [f for f in FAMILIES if any(k[0] == f for k in val)]
    if not models or not fams:
        return {"candidates": list(candidates), "chosen": None, "table": [], "lofo": []}
    vr, tr = _regrets(val, models, candidates, methods, fams), _regrets(test, models, candidates, methods, fams)
    chosen = _pick(vr, candidates)
    table = [{"method": c, "val_max_regret": max(vr[c]), "val_mean_regret": float(np.mean(vr[c])),
              "test_max_regret": max(tr[c]), "test_mean_regret": float(np.mean(tr[c]))} for c in candidates]
    table.sort(key=lambda row: (round(row["val_max_regret"], 6), round(row["val_mean_regret"], 6)))
    lofo = []
    for held in fams:
        others = [f for f in fams if f != held]
        if not others:
            continue
        c = _pick(_regrets(val, models, candidates, methods, others), candidates)
        per = _regrets(test, models, [c], methods, [held])[c]
        lofo.append({"held_out_family": held, "chosen": c, "test_regret": dict(zip(models, per))})
    return {"candidates": list(candidates), "chosen": chosen, "table": table, "lofo": lofo}


def default_rule_markdown(rule: dict) -> str:
    """Markdown of :func:`default_rule`: the candidates by worst-case validation regret, then the LOFO check."""
    if rule["chosen"] is None:
        return "No validation rows."
    lines = ["| candidate | worst val regret | mean val regret | worst test regret | mean test regret |",
             "|---|---|---|---|---|"]
    for row in rule["table"]:
        name = f"**{row['method']}**" if row["method"] == rule["chosen"] else row["method"]
        lines.append(f"| {name} | {row['val_max_regret']:.1f} | {row['val_mean_regret']:.1f} | "
                     f"{row['test_max_regret']:.1f} | {row['test_mean_regret']:.1f} |")
    lines += ["", f"Chosen on validation rows: `{rule['chosen']}`. The test columns are shown, never used.", ""]
    models = list(rule["lofo"][0]["test_regret"]) if rule["lofo"] else []
    lines += ["Leave one family out: the rule on the other families' validation rows, test regret (points) on the "
              "held-out family:", "", "| held-out family | chosen | " + " | ".join(models) + " |",
              "|---" * (2 + len(models)) + "|"]
    for row in rule["lofo"]:
        lines.append(f"| {row['held_out_family']} | {row['chosen']} | "
                     + " | ".join(f"{row['test_regret'][m]:.1f}" for m in models) + " |")
    return "\n".join(lines)


def target_check(records: list[dict], defaults: list[str], methods: list[str]) -> list[dict]:
    """Per family × model: the best method (flowcore or PyOD, seed-mean test AUROC) and each default's gap."""
    samples = family_samples(records)
    out = []
    models = _ordered(r["model"] for r in records)
    for fam in FAMILIES:
        for mo in models:
            means = {m: float(np.mean(samples[(fam, mo, m, "auroc")])) for m in methods
                     if samples.get((fam, mo, m, "auroc"))}
            if not means:
                continue
            best = max(means, key=means.get)
            out.append({"family": fam, "model": mo, "best": best, "best_auroc": means[best],
                        **{f"gap_{d}": 100 * (means[d] - means[best]) for d in defaults if d in means}})
    return out


def target_markdown(check: list[dict], defaults: list[str], records: list[dict]) -> str:
    lines = ["| family | model | best method | its AUROC | " + " | ".join(f"{d} − best (points)" for d in defaults)
             + " |", "|---" * (4 + len(defaults)) + "|"]
    for c in check:
        gaps = [f"{c[f'gap_{d}']:+.1f}" + ("" if c[f"gap_{d}"] >= -1.0 else " (miss)") if f"gap_{d}" in c else "–"
                for d in defaults]
        lines.append(f"| {c['family']} | {c['model']} | {c['best']} | {100 * c['best_auroc']:.1f} | "
                     + " | ".join(gaps) + " |")
    models = _ordered(r["model"] for r in records)
    peers = ("pyod AutoEncoder", "pyod AutoEncoder/raw", "pyod VAE", "pyod VAE/raw")
    shown = list(defaults) + list(peers)
    fm = _fam_means(records, "test", shown, groups=("flowcore", "pyod"))  # (model, seed) -> method -> family -> mean
    lines += ["", "Mean test AUROC over the three families (each family weighted equally; ± over seeds):", "",
              "| model | " + " | ".join(shown) + " |", "|---" * (1 + len(shown)) + "|"]
    for mo in models:
        cells = []
        for m in shown:
            vals = [float(np.mean(list(fm[ms][m].values()))) for ms in fm if ms[0] == mo and fm[ms].get(m)]
            cells.append(_cell(vals, False) if vals else "–")
        lines.append(f"| {mo} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
