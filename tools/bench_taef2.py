"""TAEF2 (a real pretrained image autoencoder) at a given crop size: flowcore vs a bare ``session.run``.

    python tools/bench_taef2.py [--sizes 32,64] [--starts 64] [--steps 10] [--device cpu|cuda]
                                [--threads 2] [--foundation] [--out bench_out]

Per size: exports TAEF2 (``flowcore_torch.zoo.load_taef2``; weights in ``../shared/models/taef2`` or
``$FLOWCORE_TAEF2``) to a FlowBundle, cached under ``--out`` as ``taef2_{side}/`` (a cached bundle needs
neither the weights nor torch: ``tools/gpu_check.sh`` uses one exported here and carried); then, on the same N(0, I) batch of
``--starts`` latents (N, 32, s/8, s/8), times ``--steps`` applications of f

- **flowcore**: ``flowcore.iterate(lmap, z0, tol=1e-30, max_steps=steps)`` (no row stops early: every row
  runs every step, so the per-row-step time is comparable), and
- **bare ORT**: a loop of ``session.run`` on the fused graph of the same bundle (``flowcore.fuse``,
  the one graph flowcore itself runs), output fed back as input,

interleaved (bare, flowcore, bare, flowcore, …; ``--repeats`` each) so that load on the machine hits both
alike, and prints the median per-row-step milliseconds and their ratio, with the CPU model and threads.
``--foundation`` adds one run under the paper's foundation-model rule (``flowcore.STOP_RULES["foundation"]``:
tol 1e-5, 500 steps) from the encoded scikit-image photos, and reports converged / max_steps / diverged,
the median step count and the last residual medians (the paper-scale run of ``tools/gpu_check.sh``).
The batch is the library's own rows in flight (``LatentMap.rows_in_flight``: the fused graph's activation
memory per row within its activation budget), so both loops run the same rows per ``session.run``.
Results: ``OUT/bench_taef2.json`` and a markdown table on stdout (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from _machine import cpu_model  # noqa: E402

WEIGHTS = Path(os.environ.get("FLOWCORE_TAEF2", ROOT.parent / "shared" / "models" / "taef2"))


def _photos(side: int) -> tuple[np.ndarray, str]:
    """(3, 3, side, side) float32 RGB in [0, 1] and where they come from: astronaut, coffee, chelsea
    (scikit-image), resized; without scikit-image (the GPU check's venv), three smooth colour ramps."""
    try:
        from skimage import data
        from skimage.transform import resize
    except ImportError:
        u = np.linspace(0.0, 1.0, side, dtype=np.float32)
        yy, xx = np.meshgrid(u, u, indexing="ij")
        ramps = [np.stack([xx, yy, 1 - xx]), np.stack([yy, 1 - yy, xx * yy]), np.stack([0.5 + 0.5 * np.sin(6 * xx)] * 3)]
        return np.stack(ramps).astype(np.float32), "synthetic colour ramps (no scikit-image)"
    imgs = [resize(getattr(data, n)(), (side, side), anti_aliasing=True) for n in ("astronaut", "coffee", "chelsea")]
    return np.stack(imgs).astype(np.float32).transpose(0, 3, 1, 2), "scikit-image photos"


def _bundle(side: int, out: Path):
    """The TAEF2 bundle for ``side``² images, exported once into ``out/taef2_{side}``."""
    import flowcore

    path = out / f"taef2_{side}"
    if (path / "flow.json").is_file():
        return flowcore.FlowBundle.load(path)
    import flowcore_torch
    from flowcore_torch.zoo import load_taef2

    if not (WEIGHTS / "taef2_encoder.npz").is_file():
        raise SystemExit(f"error: TAEF2 weights not found at {WEIGHTS} (set FLOWCORE_TAEF2 to the folder), "
                         f"and no exported bundle at {path}")
    enc, dec = load_taef2(WEIGHTS)
    x, _ = _photos(side)
    t = time.perf_counter()
    bundle = flowcore_torch.export(enc, dec, x, path, real_inputs=x)
    print(f"exported TAEF2 at {side}² in {time.perf_counter() - t:.1f} s -> {path}", file=sys.stderr)
    return bundle


def _bare_loop(sess, z: np.ndarray, steps: int, batch: int) -> float:
    """Seconds for ``steps`` session.run calls per batch of the fused graph, output fed back as input."""
    t = time.perf_counter()
    for i in range(0, len(z), batch):
        cur = z[i:i + batch]
        for _ in range(steps):
            cur = sess.run(["z_next"], {"z": cur})[0]
    return time.perf_counter() - t


def _one_size(side: int, args, out: Path) -> dict:
    import onnxruntime as ort

    import flowcore

    bundle = _bundle(side, out)
    providers = ["CUDAExecutionProvider"] if args.device == "cuda" else ["CPUExecutionProvider"]
    lmap = flowcore.LatentMap(bundle, providers=args.device, intra_op_num_threads=args.threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(flowcore.fuse(bundle).SerializeToString(), opts, providers=providers)
    z0 = np.random.default_rng(0).normal(size=(args.starts, *lmap.latent_shape)).astype(np.float32)
    batch = lmap.rows_in_flight(args.starts)  # what iterate runs at once: the activation cap (LatentMap.max_rows)
    _bare_loop(sess, z0[:batch], 1, batch)  # warm both up
    flowcore.iterate(lmap, z0[:batch], tol=1e-30, max_steps=1, batch_size=batch)
    bare, ours = [], []
    for _ in range(args.repeats):
        bare.append(_bare_loop(sess, z0, args.steps, batch))
        t = time.perf_counter()
        traj = flowcore.iterate(lmap, z0, tol=1e-30, max_steps=args.steps, batch_size=batch)
        ours.append(time.perf_counter() - t)
        assert int(traj.steps.min()) == args.steps, "tol=1e-30 must run every row for every step"
    row_steps = args.starts * args.steps
    res = {"side": side, "latent_shape": list(lmap.latent_shape), "k": int(np.prod(lmap.latent_shape)),
           "starts": args.starts, "steps": args.steps, "batch": batch, "flowcore_batch": traj.settings["batch_size"],
           "repeats": args.repeats,
           "bare_ms_per_row_step": 1e3 * float(np.median(bare)) / row_steps,
           "flowcore_ms_per_row_step": 1e3 * float(np.median(ours)) / row_steps,
           "providers": list(lmap.providers)}
    res["ratio"] = res["flowcore_ms_per_row_step"] / res["bare_ms_per_row_step"]
    if args.foundation:
        res["foundation"] = _foundation(lmap, side, batch)
    return res


def _foundation(lmap, side: int, batch: int) -> dict:
    """The foundation-model rule from the encoded photos: what converges, in how many steps, how fast."""
    import flowcore

    rule = flowcore.STOP_RULES["foundation"]
    x, source = _photos(side)
    z0 = lmap.encode(x)
    t = time.perf_counter()
    traj = flowcore.iterate(lmap, z0, tol=rule["tol"], max_steps=rule["max_steps"], batch_size=batch)
    wall = time.perf_counter() - t
    s = traj.summary()
    res = flowcore.residual_norms(lmap, z0, min(rule["max_steps"], 100), batch_size=batch)
    q = res.quartiles("step_norm")
    return {"rule": dict(rule), "starts": f"{len(z0)} encoded {source}", "converged": s["converged"], "max_steps": s["max_steps"],
            "diverged": s["diverged"], "median_steps": float(np.median(traj.steps)), "wall_s": wall,
            "ms_per_row_step": 1e3 * wall / max(1, int(traj.steps.sum())),
            "step_norm_median_at": {str(t): float(q[1, t]) for t in (0, 9, q.shape[1] - 1)}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="32,64", help="crop sides, comma-separated (multiples of 8)")
    p.add_argument("--starts", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--foundation", action="store_true", help="also run the foundation rule from 3 photos")
    p.add_argument("--out", type=Path, default=Path("bench_out"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [_one_size(int(s), args, args.out) for s in args.sizes.split(",")]
    result = {"cpu": cpu_model(), "threads": args.threads, "device": args.device, "rows": rows}
    (args.out / "bench_taef2.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"TAEF2, {result['cpu']}, {args.threads} threads, device {args.device}")
    print("| crop | latent (k) | starts × steps | batch | bare session.run ms/row-step | flowcore.iterate ms/row-step | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['side']}² | {'×'.join(map(str, r['latent_shape']))} ({r['k']:,}) | {r['starts']} × {r['steps']} | "
              f"{r['batch']} | {r['bare_ms_per_row_step']:.2f} | {r['flowcore_ms_per_row_step']:.2f} | {r['ratio']:.2f}× |")
    for r in rows:
        if "foundation" in r:
            print(f"foundation rule at {r['side']}²: {json.dumps(r['foundation'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
