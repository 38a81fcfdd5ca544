"""The analyses of ``studies/reproduce_digits.py`` over seeds, and the files they write.

:func:`run_analyses` turns the cache entries of the trained models into records
``(key, seed, metrics)`` and aggregates them (:mod:`_repro_tables`); :func:`write_outputs`
writes one CSV per table (per-seed columns and mean / std / n), the figures and ``results.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from flowcore.io import atomic_write_json

from _repro_analyses import checkpoint_rows, contraction_row, field_row, memorization_row, probe_rows
from _repro_tables import aggregate, band_figure, errorbar_figure, write_table

__all__ = ["run_analyses", "write_outputs", "TABLES"]

MEM = ["mem", "null_test", "null_noise", "rank90", "test_mse", "n_attractors", "frac_converged", "n_max_steps",
       "median_steps", "epochs_trained", "plateaued"]
CKPT = ["epoch", "mem", "test_mse", "distinct_train", "distinct_test", "distinct_noise", "n_attr_train", "n_attr_noise",
        "chamfer_noise_train", "fpr95_id_positive", "median_steps_noise"]
FIELD = ["epoch", "n_attractors", "in_view", "max_speed", "median_speed", "mem", "median_steps"]
SIZE = ["mem", "null_test", "test_mse", "n_attractors", "frac_converged", "median_steps", "epochs_trained"]
CONTRACTION = ["ratio", "median_coordinate_ratio", "norm_ratio", "contracts"]
PROBE = ["noise", "orthobasis", "pca"]
# table name -> (key column names, metrics)
TABLES = {"memorization_vs_k": (["model", "k"], MEM), "checkpoints": (["k", "epoch"], CKPT),
          "field_k2": (["epoch"], FIELD), "memorization_vs_size": (["n_train"], SIZE),
          "contraction_init": (["model", "k"], CONTRACTION), "probe": (["k", "atoms"], PROBE),
          "probe_rank": (["k"], ["noise_rank", "reference_mse"])}


def _history(entry: dict) -> list[dict]:
    return json.loads((Path(entry["folder"]) / "history.json").read_text(encoding="utf-8"))["history"]


def _checkpoints_kept(entry: dict, common: int) -> tuple[list[int], int]:
    """The checkpoints of one run that the tables show: powers of two every seed reached, and its last."""
    last = int(entry["final_epoch"])
    eps = sorted(int(k) for k in entry["bundles"])
    return [ep for ep in eps if ep == last or (ep & (ep - 1) == 0 and ep <= common)], last


def _checkpoint_keys(ep: int, last: int, common: int) -> list:
    """Table keys of one checkpoint: its epoch (a power of two every seed reached) and/or "final"."""
    keys = [ep] if ep & (ep - 1) == 0 and ep <= common else []
    return keys + (["final"] if ep == last else [])


def _bundle(entry: dict, epoch: int | None = None) -> str:
    return str(Path(entry["folder"]) / entry["bundles"][str(entry["final_epoch"] if epoch is None else epoch)])


def run_analyses(c: dict, sweep: list[dict], size: list[dict], subsets: dict, x_train: np.ndarray,
                 x_test: np.ndarray, out: Path, *, log) -> dict:
    """Every table's aggregate (``aggs``), the MSE curves and the failures; see the module docstring."""
    t0 = time.perf_counter()
    rec = {name: [] for name in TABLES}
    failures: list[str] = []
    ms = c["max_steps"]

    def attempt(what, fn):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001  (one failed analysis is reported, the rest still run)
            failures.append(f"{what}: {exc!r}")
            log(failures[-1])
            return None

    curves: dict[str, list] = {}
    common: dict[tuple, int] = {}  # (kind, k) -> the last epoch every seed trained
    for e in sweep:
        key = (e["job"]["kind"], e["job"]["k"])
        common[key] = min(common.get(key, e["final_epoch"]), e["final_epoch"])
    for e in sweep:
        j = e["job"]
        h = _history(e)
        curves.setdefault(f"{j['kind']} k={j['k']}", []).append([r["test_mse"] for r in h])
        row = attempt(f"memorization {e['name']}", lambda: memorization_row(
            _bundle(e), x_train, x_test, n_starts=c["n_starts"], seed=j["seed"], max_steps=ms))
        if row is not None:
            row.update(epochs_trained=float(e["epochs_trained"]), plateaued=float(e["plateaued"]))
            rec["memorization_vs_k"].append(((j["kind"], j["k"]), j["seed"], row))
            log(f"  {e['name']}: mem {row['mem']:.3f}, test MSE {row['test_mse']:.5f}, "
                f"{row['n_attractors']:.0f} attractors, {e['epochs_trained']} epochs")
        if j.get("checkpoints"):
            eps, last = _checkpoints_kept(e, common[(j["kind"], j["k"])])
            rows = attempt(f"checkpoints {e['name']}", lambda: checkpoint_rows(
                [_bundle(e, ep) for ep in eps], eps, x_train, x_test, n_starts=c["n_ckpt_starts"], seed=j["seed"],
                max_steps=ms))
            for ep, r in (rows or {}).items():
                for key in _checkpoint_keys(ep, last, common[(j["kind"], j["k"])]):
                    rec["checkpoints"].append(((j["k"], key), j["seed"], {**r, "epoch": float(ep)}))
            if j["k"] == 2:
                for ep in eps:
                    got = attempt(f"field {e['name']} epoch {ep}", lambda: field_row(
                        _bundle(e, ep), x_train, x_test, n_starts=min(c["n_starts"], 500), seed=j["seed"],
                        max_steps=ms, n_grid=c["field_grid"]))
                    if got is not None:
                        for key in _checkpoint_keys(ep, last, common[(j["kind"], j["k"])]):
                            rec["field_k2"].append(((key,), j["seed"], {**got[0], "epoch": float(ep)}))
                        if j["seed"] == c["seeds"][0] and ep == last:
                            _field_figure(out / "fig_field_k2_final.png", got[1], got[2], ep, j["seed"])
        if j["kind"] == "mlp" and j["k"] in c["probe_ks"]:
            got = attempt(f"probe {e['name']}", lambda: probe_rows(
                _bundle(e), x_test[: c["n_probe"]], x_train, k=j["k"], seed=j["seed"], max_steps=ms))
            if got is not None:
                for a, r in got[0].items():
                    rec["probe"].append(((j["k"], a), j["seed"], r))
                rec["probe_rank"].append(((j["k"],), j["seed"], got[1]))
    log("sweep analyses done")
    for e in size:
        j = e["job"]
        xt = x_train[subsets[e["name"]]]
        row = attempt(f"memorization {e['name']}", lambda: memorization_row(
            _bundle(e), xt, x_test, n_starts=min(c["n_starts"], len(xt)), seed=j["seed"], max_steps=ms))
        if row is not None:
            row["epochs_trained"] = float(e["epochs_trained"])
            rec["memorization_vs_size"].append(((j["n_train"],), j["seed"], row))
    log("size study done")
    from flowcore_torch.recipes import seeded_autoencoder  # noqa: PLC0415  (torch: the studies' extra)

    for kind in ("mlp", "conv"):
        for k in c["contraction_ks"]:
            for s in c["contraction_seeds"]:
                enc, dec = seeded_autoencoder(kind, k, seed=s, width=c["width"][kind])
                row = attempt(f"contraction {kind} k={k} seed {s}", lambda: contraction_row(enc, dec, k, seed=s))
                if row is not None:
                    rec["contraction_init"].append(((kind, k), s, row))
    from _repro_backbones import backbone_autoencoder  # noqa: PLC0415  (torch: the studies' extra)

    kb = c["backbone_k"]
    for name in c["backbones"]:
        for s in c["contraction_seeds"]:
            enc, dec = backbone_autoencoder(name, kb, seed=s)
            row = attempt(f"contraction {name} k={kb} seed {s}", lambda: contraction_row(enc, dec, kb, seed=s))
            if row is not None:
                rec["contraction_init"].append(((name, kb), s, row))
    log("contraction done")
    aggs = {}
    for name, (_, metrics) in TABLES.items():
        seeds = c["contraction_seeds"] if name == "contraction_init" else c["seeds"]
        aggs[name] = aggregate(rec[name], metrics, seeds)
    return {"aggs": aggs, "curves": curves, "failures": failures,
            "analysis_seconds": round(time.perf_counter() - t0, 1)}


def _field_figure(path: Path, grid, att: np.ndarray, epoch: int, seed: int) -> None:
    from _repro_tables import new_figure, save_png  # noqa: PLC0415

    fig = new_figure((4.6, 4.2))
    ax = fig.subplots()
    ax.streamplot(grid.xs, grid.ys, grid.u, grid.v, color=grid.speed, cmap="viridis", density=1.1)
    inside = att[(np.abs(att) <= 8).all(1)] if len(att) else att
    if len(inside):
        ax.plot(inside[:, 0], inside[:, 1], "rx")
    ax.set_title(f"MLP k = 2, seed {seed}, epoch {epoch}: field on U[-8, 8]², {len(att)} attractors", fontsize=8)
    save_png(fig, path)


def _series(agg: dict, metric: str, select) -> tuple:
    """(x = the key's last part, mean, std) of the keys ``select`` takes whose last part is a number."""
    keys = [k for k in agg if select(k) and not isinstance(k[-1], str)]
    return (np.array([k[-1] for k in keys], float), np.array([agg[k][metric]["mean"] for k in keys]),
            np.array([agg[k][metric]["std"] for k in keys]))


def write_outputs(c: dict, res: dict, out: Path) -> None:
    """One CSV per table, ``mse_curves.csv``, the figures and ``results.json``."""
    aggs = res["aggs"]
    for name, (keys, metrics) in TABLES.items():
        seeds = c["contraction_seeds"] if name == "contraction_init" else c["seeds"]
        write_table(out / f"{name}.csv", aggs[name], keys, metrics, seeds)
    lines = ["model,epoch," + ",".join(f"test_mse_s{s}" for s in c["seeds"]) + ",seeds"]
    for name, per_seed in res["curves"].items():
        for ep in range(max(len(y) for y in per_seed)):
            vals = [f"{y[ep]:.6g}" if ep < len(y) else "" for y in per_seed]
            lines.append(f"{name},{ep + 1}," + ",".join(vals) + "," + ";".join(str(s) for s in c["seeds"]))
    from flowcore.io import atomic_write_text  # noqa: PLC0415

    atomic_write_text(out / "mse_curves.csv", "\n".join(lines) + "\n")
    for kind in ("mlp", "conv"):
        cur = {n: v for n, v in res["curves"].items() if n.startswith(kind + " ")}
        if cur:
            band_figure(out / f"fig_mse_curves_{kind}.png", cur, xlabel="epoch", ylabel="test MSE",
                        title=f"{kind} AE: test MSE per epoch (thin: seeds {c['seeds']}; band: mean ± std)")
    mk = aggs["memorization_vs_k"]
    from _repro_readme import REPLICATION_MEM  # noqa: PLC0415

    ref = {"replication (PAPER §4.4)": (np.array(sorted(REPLICATION_MEM), float),
                                        np.array([REPLICATION_MEM[k] for k in sorted(REPLICATION_MEM)]))}
    errorbar_figure(out / "fig_memorization_vs_k.png",
                    {f"{kind} mem": _series(mk, "mem", lambda k, kind=kind: k[0] == kind) for kind in ("mlp", "conv")}
                    | {"null: test (mlp)": _series(mk, "null_test", lambda k: k[0] == "mlp")},
                    xlabel="bottleneck k", ylabel="memorization", logx=True, ref=ref,
                    title=f"Memorization vs k, mean ± std over seeds {c['seeds']}")
    ck = aggs["checkpoints"]
    errorbar_figure(out / "fig_checkpoints.png",
                    {f"{m} k={k}": _series(ck, m, lambda key, k=k: key[0] == k)
                     for k in c["checkpoint_ks"] for m in ("mem", "distinct_train", "chamfer_noise_train")},
                    xlabel="epoch", ylabel="value", logx=True,
                    title=f"MLP over training, mean ± std over seeds {c['seeds']}")
    sz = aggs["memorization_vs_size"]
    errorbar_figure(out / "fig_memorization_vs_size.png",
                    {"mem": _series(sz, "mem", lambda k: True), "null: test": _series(sz, "null_test", lambda k: True)},
                    xlabel="training digits", ylabel="memorization", logx=True,
                    title=f"MLP k = {c['size_k']}, {c['size_steps']} steps, seeds {c['seeds']}")
    pr = aggs["probe"]
    errorbar_figure(out / "fig_probe.png",
                    {f"{b} k={k}": _series(pr, b, lambda key, k=k: key[0] == k) for k in c["probe_ks"] for b in PROBE},
                    xlabel="OMP atoms s", ylabel="input-space MSE", logx=True,
                    title=f"OMP probing, mean ± std over seeds {c['seeds']}")

    def plain(agg):
        return [{"key": list(k), **{m: v for m, v in row.items()}} for k, row in agg.items()]

    atomic_write_json(out / "results.json", {
        "written_by": "studies/reproduce_digits.py", "settings": c, "seeds": c["seeds"], "failures": res["failures"], "timings": "timings.json",
        "std": "sample standard deviation over seeds (ddof = 1)",
        "tables": {name: {"keys": TABLES[name][0], "rows": plain(aggs[name])} for name in TABLES}})
