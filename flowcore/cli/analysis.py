"""``flowcore memorization | dynamics | probe | field | contraction`` — the paper's analyses on the command line.

Each writes JSON + CSV (and PNG figures, with the ``analysis`` extra) into ``--out``; the
summary goes to stdout (``--json`` for machine-readable). Needs scikit-learn for probing.
``contraction`` measures σ_out / σ_in of one application of f to N(0, I) latents
(:func:`~flowcore.analysis.contraction.contraction_ratio`, PAPER Fig. 6) over seeds 0 … S-1,
e.g. of an untrained model exported to a bundle: ``contraction_seeds.json`` (per seed, mean and sample
std over seeds) and ``contraction_seeds.csv`` (one row per seed); NumPy and ONNX Runtime only.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from flowcore.errors import BundleError, DataError, ParameterError
from flowcore.io import atomic_write_json, atomic_write_text, load_array
from flowcore.cli._out import out_folder
from flowcore.runtime.latent_map import LatentMap
from flowcore.analysis.memorization import MemorizationReport, memorization_report
from flowcore.analysis.checkpoints import CheckpointMetrics, checkpoint_metrics
from flowcore.analysis.probing import ProbeReport, probe
from flowcore.analysis.contraction import contraction_ratio
from flowcore.dynamics.field import FieldGrid, field_grid
from flowcore.dynamics.starts import data_starts
from flowcore.dynamics.attractors import find_attractors
from flowcore.dynamics.grouping_rules import GroupByDistance
from flowcore.dynamics.trajectories import iterate
from flowcore.plots import basin_map, curves, decoded_grid, field_plot, save_figure, steps_heatmap
from flowcore.cli._args import add_engine, add_force, add_stop_rule, number

__all__ = ["add_parsers", "COMMANDS"]


def _traj(p) -> None:
    add_stop_rule(p)
    number(p, "--seed", default=0, help="seed for subsamples and noise starts (default 0)")


def add_parsers(sub, common) -> None:
    """Add the analysis commands to the subparsers ``sub``."""
    p = sub.add_parser("memorization", help="memorization coefficient of the decoded attractors, with null levels")
    p.add_argument("bundle")
    p.add_argument("--train", required=True, help="training inputs (N, *input_shape)")
    p.add_argument("--test", required=True, help="test inputs")
    p.add_argument("--starts", default="train", choices=["train", "test", "noise"], help="start set (default train)")
    number(p, "--n-starts", default=None, help="subsample the start set")
    p.add_argument("--metric", default="cosine", choices=["cosine", "euclidean"])
    number(p, "--threshold", default=0.99, help="cosine: in [-1, 1) (default 0.99); euclidean: >= 0")
    p.add_argument("--reduce", default="max", choices=["max", "min"], help="max: nearest train image (default); min: the paper's literal formula")
    p.add_argument("--uncentred", action="store_true", help="rank at 90 %% without centring")
    p.add_argument("--out", required=True)
    p.add_argument("--no-figures", action="store_true", help="JSON + CSV only (no matplotlib needed)")
    add_force(p)
    _traj(p)
    common(p)

    p = sub.add_parser("dynamics", help="metrics per training checkpoint (bundles in order)")
    p.add_argument("checkpoints", nargs="+", help="bundle folders, oldest first")
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    number(p, "--n-starts", default=1000, help="starts per set: train, test, N(0, I) (default 1000)")
    p.add_argument("--out", required=True)
    p.add_argument("--no-figures", action="store_true", help="JSON + CSV only (no matplotlib needed)")
    add_force(p)
    _traj(p)
    common(p)

    p = sub.add_parser("probe", help="data-free probing: OMP on noise attractors vs orthobasis vs PCA")
    p.add_argument("bundle")
    p.add_argument("--heldout", required=True, help="held-out inputs to reconstruct")
    p.add_argument("--train", required=True, help="training inputs (for the PCA baseline)")
    p.add_argument("--atoms", default=None, help="comma-separated atom counts (default 1, 2, 4, … up to k)")
    number(p, "--n-noise", default=None, help="noise starts (default: the latent dimension)")
    p.add_argument("--out", required=True)
    p.add_argument("--no-figures", action="store_true", help="JSON + CSV only (no matplotlib needed)")
    add_force(p)
    _traj(p)
    common(p)

    p = sub.add_parser("field", help="the latent vector field V(z) = f(z) - z on a 2-D grid, with basins and steps")
    p.add_argument("bundle")
    p.add_argument("--data", default=None, help="inputs whose latents define the plane (top-2 PCA) when k > 2")
    number(p, "--lim", default=8.0, help="grid half-width in plane coordinates (default 8)")
    number(p, "--n", default=48, help="grid points per axis (default 48)")
    p.add_argument("--out", required=True)
    p.add_argument("--no-figures", action="store_true", help="JSON + CSV only (no matplotlib needed)")
    add_engine(p)
    add_force(p)
    common(p)

    p = sub.add_parser("contraction", help="σ_out / σ_in of one application of f to N(0, I) latents, over seeds")
    p.add_argument("bundle")
    number(p, "--n", default=1000, help="N(0, I) latents per seed (default 1000, as the paper)")
    number(p, "--seeds", default=10, help="run seeds 0 .. S-1 (default 10, as the paper)")
    p.add_argument("--out", required=True)
    add_force(p)
    common(p)


def _map(args, bundle=None):
    return LatentMap(bundle or args.bundle, providers=args.device, intra_op_num_threads=args.threads)


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _cmd_memorization(args, out, emit) -> int:
    dest = out_folder(args, "memorization", writes=(*MemorizationReport.files(), "memorization.csv"))
    lmap = _map(args)
    rep = memorization_report(lmap, load_array(args.train), load_array(args.test), starts=args.starts,
                              n_starts=args.n_starts, tol=args.tol, max_steps=args.max_steps, metric=args.metric,
                              threshold=args.threshold, reduce=args.reduce, center=not args.uncentred, seed=args.seed,
                              engine=args.engine)
    rows = [{"attractor": i, "basin": int(rep.counts[i]), "mem": float(rep.mem[i]),
             "nearest_train_index": int(rep.nearest_index[i])} for i in range(rep.n_attractors)]
    with dest.staged() as tmp:
        rep.write(tmp)
        atomic_write_text(tmp / "memorization.csv", _csv(rows))
        if not args.no_figures and rep.n_attractors:
            x_train = load_array(args.train)
            shape = lmap.input_shape
            top = np.argsort(-rep.counts)[:16]
            png, text = decoded_grid(rep.decoded[top].reshape(len(top), *shape),
                                     x_train[rep.nearest_index[top]].reshape(len(top), *shape), rep.mem[top],
                                     title="decoded attractors (largest basins) beside their nearest training image")
            save_figure(png, text, tmp, "decoded_attractors")
    s = rep.to_json()
    nt, nn = s["null_test"], s["null_noise"]
    emit(out, s, args.json,
         f"memorization ({args.reduce} cosine to the nearest training image) {s['mem_mean']:.3f} ± {s['mem_std']:.3f} "
         f"over {s['n_attractors']} attractors from {s['n_starts']} {args.starts} starts; null levels: test "
         f"{nt['mean']:.3f} ± {nt['std']:.3f}, noise {nn['mean']:.3f} ± {nn['std']:.3f}\n"
         f"rank at 90 % variance {s['rank']}; test reconstruction MSE {s['test_mse']:.5g}; median steps "
         f"{s['median_steps']}\nwritten {args.out}")
    return 0


def _flatten(row: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict) and k != "settings":
            for kk, vv in v.items():
                if not isinstance(vv, (dict, list)):
                    flat[f"{k}_{kk}"] = vv
        elif not isinstance(v, (dict, list)):
            flat[k] = v
    return flat


def _cmd_dynamics(args, out, emit) -> int:
    for c in args.checkpoints:
        if not Path(c).is_dir():
            raise BundleError(f"no bundle folder at {c}")
    dest = out_folder(args, "dynamics", writes=(*CheckpointMetrics.files(), "dynamics.json", "dynamics.csv"))
    metrics = checkpoint_metrics(list(args.checkpoints), load_array(args.train), load_array(args.test),
                                 n_starts=args.n_starts, seed=args.seed, tol=args.tol, max_steps=args.max_steps,
                                 providers=args.device, names=list(args.checkpoints), engine=args.engine)
    rows = metrics.rows()
    flat = [_flatten(r) for r in rows]
    with dest.staged() as tmp:
        metrics.write(tmp)
        atomic_write_json(tmp / "dynamics.json", rows)
        atomic_write_text(tmp / "dynamics.csv", _csv(flat))
        if not args.no_figures:
            idx = np.arange(1, len(flat) + 1, dtype=np.float64)
            get = lambda key: np.array([float(r.get(key, np.nan)) for r in flat])  # noqa: E731
            png, text = curves(idx, {"memorization": get("mem_mean"), "chamfer noise-train": get("chamfer_noise_train"),
                                     "FPR95 ID+": get("fpr95_id_positive")},
                               second={"test MSE": get("test_mse")}, second_ylabel="test MSE",
                               xlabel="checkpoint", ylabel="value", title="metrics per checkpoint")
            save_figure(png, text, tmp, "dynamics_metrics")
            png, text = curves(idx, {s: get(f"distinct_fraction_{s}") for s in ("train", "test", "noise")},
                               xlabel="checkpoint", ylabel="distinct attractors / starts",
                               title="distinct-attractor fraction")
            save_figure(png, text, tmp, "distinct_fraction")
    lines = [f"{len(rows)} checkpoints; per checkpoint: mem, test MSE, distinct fractions (train/test/noise), "
             "Chamfer(noise, train), FPR95 ID+/OOD+ (noise vs train trajectories)"]
    for r in flat:
        lines.append("  " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()
                                      if k in ("checkpoint", "mem_mean", "test_mse", "distinct_fraction_train",
                                               "distinct_fraction_test", "distinct_fraction_noise",
                                               "chamfer_noise_train", "fpr95_id_positive", "fpr95_ood_positive")))
    emit(out, {"checkpoints": rows}, args.json, "\n".join(lines) + f"\nwritten {args.out}")
    return 0


def _cmd_probe(args, out, emit) -> int:
    dest = out_folder(args, "probe", writes=(*ProbeReport.files(), "probe.csv"))
    atoms = None
    if args.atoms:
        try:
            atoms = tuple(int(a) for a in args.atoms.split(","))
        except ValueError:
            raise ParameterError(f"--atoms {args.atoms!r}: expected comma-separated integers") from None
    rep = probe(_map(args), load_array(args.heldout), load_array(args.train), atoms=atoms, seed=args.seed,
                n_noise=args.n_noise, tol=args.tol, max_steps=args.max_steps, engine=args.engine)
    rows = [{"basis": b, "atoms": int(a), "effective_atoms": int(rep.effective_atoms[b][i]),
             "mse_latent": float(rep.mse_latent[b][i]), "mse_input": float(rep.mse_input[b][i])}
            for b in rep.mse_latent for i, a in enumerate(rep.atoms)]
    with dest.staged() as tmp:
        rep.write(tmp)
        atomic_write_text(tmp / "probe.csv", _csv(rows))
        if not args.no_figures:
            png, text = curves(rep.atoms.astype(np.float64), {b: rep.mse_input[b] for b in rep.mse_input}, logx=True,
                               xlabel="OMP atoms", ylabel="input-space MSE", title="probing: reconstruction vs atoms")
            save_figure(png, text, tmp, "probe_mse")
    lines = [f"OMP probing of {rep.settings.get('n_heldout')} held-out inputs; input-space MSE per atom count "
             f"(reference D(E(x)): {rep.reference_mse_input:.5g})"]
    for b in rep.mse_input:
        lines.append(f"  {b:10s} " + "  ".join(f"{int(a)}:{m:.4g}" for a, m in zip(rep.atoms, rep.mse_input[b])))
    emit(out, rep.to_json(), args.json, "\n".join(lines) + f"\nwritten {args.out}")
    return 0


def _cmd_field(args, out, emit) -> int:
    dest = out_folder(args, "field", writes=(*FieldGrid.files(), "field.csv", "field.json"),
                      nbytes=120 * args.n * args.n if isinstance(args.n, int) and args.n > 0 else 0)
    lmap = _map(args)
    k = lmap.latent_dim
    origin = basis = None
    if k > 2:
        if args.data is None:
            raise ParameterError(f"the latent dimension is {k}: pass --data so the plane is the top-2 PCA plane of its latents")
        z = data_starts(lmap, load_array(args.data), what=f"data in {args.data}").reshape(-1, k).astype(np.float64)
        if len(z) < 2:
            raise DataError(f"--data {args.data} holds {len(z)} rows; the PCA plane needs at least 2")
        origin = z.mean(0)
        _, _, vt = np.linalg.svd(z - origin, full_matrices=False)
        basis = vt[:2]
    grid = field_grid(lmap, xlim=(-args.lim, args.lim), ylim=(-args.lim, args.lim), n=args.n, origin=origin, basis=basis)
    gx, gy = np.meshgrid(grid.xs, grid.ys)
    rows = [{"x": float(a), "y": float(b), "u": float(u), "v": float(v), "speed": float(sp)}
            for a, b, u, v, sp in zip(gx.ravel(), gy.ravel(), grid.u.ravel(), grid.v.ravel(), grid.speed.ravel())]
    summary = {"latent_dim": k, "plane": "latent plane" if k == 2 else "top-2 PCA plane of the data latents",
               "n": args.n, "lim": args.lim, "speed_min": float(grid.speed.min()), "speed_max": float(grid.speed.max()),
               "origin": grid.origin.tolist(), "basis": grid.basis.tolist()}
    # basins of the grid points themselves: iterate every grid start, group the endpoints
    gx, gy = np.meshgrid(grid.xs, grid.ys)
    starts = grid.origin + gx.reshape(-1, 1) * grid.basis[0] + gy.reshape(-1, 1) * grid.basis[1]
    traj = iterate(lmap, starts.astype(np.float32), progress=False if args.quiet else None, engine=args.engine)
    att = find_attractors(traj, grouping=GroupByDistance(1e-3, relative=True))
    labels = att.labels.reshape(args.n, args.n)
    steps = np.where(traj.status == 0, traj.steps, -1).reshape(args.n, args.n)
    centres = (att.centres.reshape(att.n_attractors, -1).astype(np.float64) - grid.origin) @ grid.basis.T.astype(np.float64)
    summary.update(n_attractors=att.n_attractors, basin_fractions=att.fractions.tolist(),
                   attractors_in_plane=centres.tolist(), status_counts=att.status_counts,
                   grouping="euclidean <= 1e-3 x RMS norm of the endpoints")
    with dest.staged() as tmp:
        grid.write(tmp)
        atomic_write_text(tmp / "field.csv", _csv(rows))
        atomic_write_json(tmp / "field.json", summary)
        if not args.no_figures:
            png, text = field_plot(grid, attractors=centres, title=f"V(z) = f(z) - z on the {summary['plane']}")
            save_figure(png, text, tmp, "field_plot")
            png, text = basin_map(grid.xs, grid.ys, labels, title="attractor reached from each grid start")
            save_figure(png, text, tmp, "basin_map")
            png, text = steps_heatmap(grid.xs, grid.ys, steps, title="steps to converge")
            save_figure(png, text, tmp, "steps_heatmap")
    emit(out, summary, args.json,
         f"field on a {args.n}×{args.n} grid of the {summary['plane']}, |V| from {summary['speed_min']:.3g} to "
         f"{summary['speed_max']:.3g}; {att.n_attractors} attractors reached from the grid starts "
         f"(converged {att.status_counts['converged']}, max_steps {att.status_counts['max_steps']}, diverged "
         f"{att.status_counts['diverged']})\nwritten {args.out}")
    return 0


_RATIOS = ("ratio", "median_coordinate_ratio", "norm_ratio")


def _spread(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample std (ddof=1; None for one value) of ``values``."""
    a = np.asarray(values, dtype=np.float64)
    return float(np.mean(a)), (float(np.std(a, ddof=1)) if len(a) > 1 else None)


def _pm(mean: float, std: float | None) -> str:
    return f"{mean:.4g}" + (f" ± {std:.2g}" if std is not None else "")


def _cmd_contraction(args, out, emit) -> int:
    dest = out_folder(args, "contraction", writes=("contraction_seeds.json", "contraction_seeds.csv"))
    lmap = _map(args)
    per_seed = []
    for seed in range(args.seeds):
        rep = contraction_ratio(lmap, n=args.n, seed=seed)
        per_seed.append({"seed": seed, **{k: float(getattr(rep, k)) for k in (*_RATIOS, "sigma_in", "sigma_out")},
                         "contracts": rep.contracts})
    spread = {k: _spread([r[k] for r in per_seed]) for k in _RATIOS}
    n_contract = sum(r["contracts"] for r in per_seed)
    summary = {"bundle": str(Path(args.bundle).resolve()), "n": args.n, "seeds": args.seeds,
               "latent_dim": lmap.latent_dim, "latent_shape": list(lmap.latent_shape),
               "mean": {k: m for k, (m, _) in spread.items()}, "std": {k: sd for k, (_, sd) in spread.items()},
               "contracting_seeds": n_contract, "contracting_fraction": n_contract / args.seeds,
               "per_seed": per_seed,
               "settings": {"inputs": "N(0, I), numpy default_rng(seed).standard_normal, float32, seeds 0 .. S-1",
                            "sigma": "sqrt(mean over coordinates of the per-coordinate variance over samples, ddof=0)",
                            "std": "sample std over seeds (ddof=1); null for one seed",
                            "contracts": "ratio < 1", "providers": lmap.providers}}
    with dest.staged() as tmp:
        atomic_write_json(tmp / "contraction_seeds.json", summary)
        atomic_write_text(tmp / "contraction_seeds.csv", _csv(per_seed))
    s = args.seeds
    emit(out, summary, args.json,
         f"σ_out / σ_in {_pm(*spread['ratio'])} over {s} seed{'s' if s > 1 else ''} (n = {args.n} N(0, I) latents "
         f"each); contracts (ratio < 1) on {n_contract} of {s} seed{'s' if s > 1 else ''}; median coordinate ratio "
         f"{_pm(*spread['median_coordinate_ratio'])}; norm ratio {_pm(*spread['norm_ratio'])}\nwritten {args.out}")
    return 0


COMMANDS = {"memorization": _cmd_memorization, "dynamics": _cmd_dynamics, "probe": _cmd_probe, "field": _cmd_field,
            "contraction": _cmd_contraction}
