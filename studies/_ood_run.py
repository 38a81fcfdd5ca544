"""One (model, seed) experiment of ``studies/ood_benchmark.py``: train, fit, score, metric records."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from flowcore import METHODS, OODDetector, ood_metrics

from _ood_models import train_and_export
from _ood_paper import failure_figure, paper_study
from _ood_peers import PEERS, score_peers
from _ood_sets import FAR, far_sets, near_ood_sets, novelty_split, style_digits

__all__ = ["run_one", "PAPER_EXACT"]

PAPER_EXACT = "trajectory (detector: exact, every step)"
_KEEP = ("auroc", "fpr95_id_positive", "fpr95_ood_positive")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _records(base: dict, group: str, id_scores: dict, ood: dict[str, dict], family_of: dict) -> list[dict]:
    """Metric records of every method in ``id_scores`` on every set of ``ood`` (set -> method -> scores)."""
    out = []
    for s, per in ood.items():
        for m, sc in per.items():
            met = ood_metrics(id_scores[m], sc)
            out.append({**base, "family": family_of[s], "set": s, "group": group, "method": m,
                        **{k: met[k] for k in _KEEP}})
    return out


_PEER_SCORES: dict[str, dict[str, np.ndarray]] = {}
"""PyOD peer scores already computed in this process, by :func:`_peer_key`: the peers see raw
pixels only, so every model and k of one seed shares one fit per training set (run a seed's models
and ks in one process to fit each peer once)."""


def _peer_key(x_train: np.ndarray, x: np.ndarray, peers_cfg: dict, seed: int) -> str:
    h = hashlib.sha256()
    for a in (x_train, x):
        h.update(repr((a.shape, str(a.dtype))).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(repr((list(peers_cfg["names"]), peers_cfg["epochs"], seed)).encode())
    return h.hexdigest()


def _score(det, peers_cfg, x_train, blocks: dict[str, np.ndarray], seed: int, timings: dict, tag: str):
    """flowcore's methods and PyOD's peers on every block (one concatenated pass each; the peers'
    scores are reused when this process already scored the same rows after the same fit)."""
    names = list(blocks)
    cuts = np.cumsum([0] + [len(blocks[b]) for b in names])
    x = np.concatenate([blocks[b] for b in names])
    t = time.perf_counter()
    allsc = det.score_all(x)
    timings[f"{tag} flowcore score"] = time.perf_counter() - t
    fc = {b: {m: allsc[m][cuts[i]:cuts[i + 1]] for m in det.methods} for i, b in enumerate(names)}
    pyod = {b: {} for b in names}
    if peers_cfg["names"]:
        key = _peer_key(x_train, x, peers_cfg, seed)
        if key in _PEER_SCORES:
            ps = _PEER_SCORES[key]
            timings[f"{tag} pyod reused"] = 0.0
        else:
            t = time.perf_counter()
            ps, _ = score_peers(x_train, x, names=peers_cfg["names"], epochs=peers_cfg["epochs"], seed=seed)
            timings[f"{tag} pyod fit+score"] = time.perf_counter() - t
            _PEER_SCORES[key] = ps
        pyod = {b: {m: ps[m][cuts[i]:cuts[i + 1]] for m in ps} for i, b in enumerate(names)}
    return fc, pyod


def _split_records(base, fc, pyod, family_of, val_sets, test_sets) -> list[dict]:
    out = []
    for split, id_key, sets in (("val", "ID val", val_sets), ("test", "ID test", test_sets)):
        b = {**base, "split": split}
        out += _records(b, "flowcore", fc[id_key], {s: fc[f"{split}:{s}"] for s in sets}, family_of)
        if pyod[id_key]:
            out += _records(b, "pyod", pyod[id_key], {s: pyod[f"{split}:{s}"] for s in sets}, family_of)
    return out


def run_one(kind: str, k: int, seed: int, data: dict, cfg: dict, out: Path) -> tuple[list[dict], dict]:
    """Far / near / novelty records (and the paper study) of one model kind, latent size and seed."""
    x, y, idx = data["x"], data["y"], data["idx"]
    model = f"{kind}-k{k}"
    timings: dict[str, float] = {}
    peers_cfg = {"names": [p for p in PEERS if p in cfg["peers"]], "epochs": cfg["pyod_epochs"]}
    det_kw = {"methods": METHODS, "providers": "cpu", "max_steps": cfg["max_steps"]}
    x_tr, x_va, x_te = x[idx["train"]], x[idx["val"]], x[idx["test"]]
    y_va, y_te = y[idx["val"]], y[idx["test"]]
    base = {"model": model, "seed": seed}
    info: dict = {"model": model, "seed": seed}

    # ---- far + near: one AE on all ten classes
    t = time.perf_counter()
    bundle, minfo = train_and_export(kind, k, seed, cfg["epochs"], x_tr, x_va, out / "bundles" / f"{model}-s{seed}")
    timings["train+export"] = time.perf_counter() - t
    info["train"] = minfo
    log(f"  {model} seed {seed}: trained ({minfo['train_seconds']:.0f} s, train MSE {minfo['train_mse']:.4f})")
    style = style_digits(x_tr, seed)
    n = cfg["n_ood"]
    test_sets, desc = far_sets(x_te, x_tr, n, seed)
    val_sets, _ = far_sets(x_va, x_tr, n, seed + 10_000)
    test_sets.update(near_ood_sets(x_te, y_te, style["test"], n, seed))
    val_sets.update(near_ood_sets(x_va, y_va, style["val"], n, seed + 10_000))
    family_of = {s: ("far" if s in FAR else "near") for s in test_sets}
    info["n_ood"] = {s: [len(val_sets[s]), len(test_sets[s])] for s in test_sets}
    info["far_descriptions"] = desc
    t = time.perf_counter()
    det = OODDetector(bundle, **det_kw).fit(x_tr)
    timings["detector fit"] = time.perf_counter() - t
    info["bank"] = det.bank_info_
    blocks = {"ID val": x_va, "ID test": x_te, **{f"val:{s}": v for s, v in val_sets.items()},
              **{f"test:{s}": v for s, v in test_sets.items()}}
    fc, pyod = _score(det, peers_cfg, x_tr, blocks, seed, timings, "far+near")
    records = _split_records(base, fc, pyod, family_of, list(val_sets), list(test_sets))
    log(f"  {model} seed {seed}: far+near scored ({sum(timings.values()):.0f} s so far)")

    # ---- the paper's score, studied (test subsample; exact detector score on the same rows beside it)
    if cfg["paper_n"] > 0:
        t = time.perf_counter()
        pn = cfg["paper_n"]
        sub = {"ID test": x_te[:pn], **{s: v[:pn] for s, v in test_sets.items()}}
        scores, pinfo = paper_study(det, x_tr, x_va, sub, n_bank=cfg["paper_bank"], seed=seed)
        scores[PAPER_EXACT] = {"ID test": fc["ID test"]["trajectory"][:pn],
                               **{s: fc[f"test:{s}"]["trajectory"][:pn] for s in test_sets}}
        b = {**base, "split": "test"}
        for v, per in scores.items():
            records += _records(b, "paper", {v: per["ID test"]}, {s: {v: per[s]} for s in test_sets}, family_of)
        if cfg.get("figure_for") in (None, (model, seed)):
            failure_figure(pinfo, out / "paper_failure.png",
                           f"Why the paper's score fails ({model}, seed {seed}): where inputs encode relative "
                           "to the train attractors")
            cfg["figure_for"] = (model, seed)
            info["figure"] = {"latent_norm_median": {s: float(np.median(v)) for s, v in pinfo["latent_norm"].items()},
                              "dist_start_median": {s: float(np.median(v)) for s, v in pinfo["dist_start"].items()},
                              "steps_median": {s: float(np.median(v)) for s, v in pinfo["steps"].items()},
                              "attractor_norm_range": [float(pinfo["attractor_norms"].min()),
                                                       float(pinfo["attractor_norms"].max())]}
        info["paper_banks"] = pinfo["bank_sizes"]
        timings["paper study"] = time.perf_counter() - t

    # ---- novelty: one AE per held-out class, trained on the other nine
    t = time.perf_counter()
    for c in cfg["novelty_classes"]:
        nv = novelty_split(y, idx, c)
        xb = {key: x[v] for key, v in nv.items()}
        bundle_c, _ = train_and_export(kind, k, seed, cfg["novelty_epochs"], xb["train"], xb["id_val"],
                                       out / "bundles" / f"{model}-s{seed}-novelty{c}")
        det_c = OODDetector(bundle_c, **det_kw).fit(xb["train"])
        name = f"held-out {c}"
        blocks = {"ID val": xb["id_val"], "ID test": xb["id_test"], f"val:{name}": xb["ood_val"],
                  f"test:{name}": xb["ood_test"]}
        fc, pyod = _score(det_c, peers_cfg, xb["train"], blocks, seed, timings, f"novelty {c}")
        records += _split_records(base, fc, pyod, {name: "novelty"}, [name], [name])
        log(f"  {model} seed {seed}: novelty class {c} done ({time.perf_counter() - t:.0f} s)")
    timings["novelty total"] = time.perf_counter() - t
    info["timings_s"] = {k_: round(v, 1) for k_, v in timings.items()}
    return records, info
