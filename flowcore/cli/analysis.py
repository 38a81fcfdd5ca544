"""``flowcore memorization | dynamics | probe | field | contraction`` — the paper's analyses on the command line.

Each writes JSON + CSV (and PNG figures, with the ``analysis`` extra) into ``--out``; the
summary goes to stdout (``--json`` for machine-readable). Needs scikit-learn for probing.
``contraction`` measures σ_out / σ_in of one application of f to N(0, I) latents
(:func:`~flowcore.analysis.contraction.contraction_seeds`, PAPER Fig. 6) over seeds 0 … S-1,
e.g. of an untrained model exported to a bundle: ``contraction_seeds.json`` (per seed, mean and sample
std over seeds) and ``contraction_seeds.csv`` (one row per seed); NumPy and ONNX Runtime only.
"""

from __future__ import annotations

import csv
import io
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from flowcore.errors import BundleError, DataError, ParameterError, ProbeDictionaryWarning
from flowcore.io import atomic_write_json, atomic_write_text, load_array
from flowcore.cli._out import out_folder
from flowcore.runtime.latent_map import LatentMap
from flowcore.analysis.memorization import MemorizationReport, memorization_report
from flowcore.analysis.checkpoints import CheckpointMetrics, checkpoint_metrics
from flowcore.analysis.probing import ProbeReport, probe
from flowcore.analysis.contraction import contraction_seeds
from flowcore.dynamics.field import FieldGrid
from flowcore.dynamics.field_map import FieldMap, field_map
from flowcore.plots import basin_map, curves, decoded_grid, field_plot, save_figure, steps_heatmap
from flowcore.cli._args import add_engine, add_force, add_progress, add_stop_rule, atoms_of, number, progress_of

__all__ = ["add_memorization", "add_dynamics", "add_probe", "add_field", "add_contraction", "run_memorization",
           "run_dynamics", "run_probe", "run_field", "run_contraction"]

_BUNDLE = "FlowBundle folder (flow.json + encoder.onnx + decoder.onnx, e.g. written by `flowcore export`)"
_NO_FIGURES = "JSON + CSV only, no PNG figures (no matplotlib needed) (default: figures too)"


def _traj(p) -> None:
    add_stop_rule(p)
    number(p, "--seed", default=0, help="seed for subsamples and noise starts (default 0)")


# the analysis commands' entries in flowcore.cli.app.COMMANDS: add_<name>(p, common) declares the flags
def add_memorization(p, common) -> None:
    """``flowcore memorization BUNDLE --train --test --out``."""
    p.add_argument("bundle", help=_BUNDLE)
    p.add_argument("--train", required=True, help="training inputs: file.npy/.npz[:KEY], shape (N, *input_shape)")
    p.add_argument("--test", required=True, help="test inputs: file.npy/.npz[:KEY], shape (N, *input_shape)")
    p.add_argument("--starts", default="train", choices=["train", "test", "noise"], help="start set (default train)")
    number(p, "--n-starts", default=None, help="subsample the start set to this many rows (default: all)")
    p.add_argument("--metric", default="cosine", choices=["cosine", "euclidean"],
                   help="rule that merges endpoints into one attractor (default cosine)")
    number(p, "--threshold", default=0.99, help="cosine: in [-1, 1) (default 0.99); euclidean: >= 0, latent units")
    p.add_argument("--reduce", default="max", choices=["max", "min"], help="max: nearest train image (default); min: the paper's literal formula")
    p.add_argument("--uncentred", action="store_true", help="rank at 90 %% without centring (default: centred)")
    p.add_argument("--out", required=True, help="folder for memorization.json/.npz/.csv and figures")
    p.add_argument("--no-figures", action="store_true", help=_NO_FIGURES)
    add_force(p)
    _traj(p)
    common(p)


def add_dynamics(p, common) -> None:
    """``flowcore dynamics CHECKPOINT … --train --test --out``."""
    p.add_argument("checkpoints", nargs="+", help="bundle folders, one per training checkpoint, oldest first")
    p.add_argument("--train", required=True, help="training inputs: file.npy/.npz[:KEY], shape (N, *input_shape)")
    p.add_argument("--test", required=True, help="test inputs: file.npy/.npz[:KEY], shape (N, *input_shape)")
    number(p, "--n-starts", default=1000, help="starts per set: train, test, N(0, I) (default 1000)")
    p.add_argument("--out", required=True, help="folder for dynamics.json/.csv, the metrics arrays and figures")
    p.add_argument("--no-figures", action="store_true", help=_NO_FIGURES)
    add_force(p)
    _traj(p)
    common(p)


def add_probe(p, common) -> None:
    """``flowcore probe BUNDLE --heldout --train --out``."""
    p.add_argument("bundle", help=_BUNDLE)
    p.add_argument("--heldout", required=True, help="held-out inputs to reconstruct: file.npy/.npz[:KEY]")
    p.add_argument("--train", required=True, help="training inputs (for the PCA baseline): file.npy/.npz[:KEY]")
    p.add_argument("--atoms", default=None, help="comma-separated atom counts (default 1, 2, 4, … up to k)")
    number(p, "--n-noise", default=None, help="noise starts (default: the latent dimension)")
    p.add_argument("--out", required=True, help="folder for probe.json/.npz/.csv and figures")
    p.add_argument("--no-figures", action="store_true", help=_NO_FIGURES)
    add_force(p)
    _traj(p)
    common(p)


def add_field(p, common) -> None:
    """``flowcore field BUNDLE --out``."""
    p.add_argument("bundle", help=_BUNDLE)
    p.add_argument("--data", default=None, help="inputs: their latents are the starts, fit the window and, when "
                                                "k > 2, define the plane (top-2 PCA) (default: none, N(0, I) "
                                                "starts; required when k > 2)")
    number(p, "--lim", default=None, help="grid half-width around the plane origin, latent units (default: the "
                                          "window of the data latents and their attractors, 10 %% margin)")
    number(p, "--n", default=48, help="grid points per axis (default 48)")
    number(p, "--n-noise", default=1000, help="N(0, I) starts when there is no --data (default 1000)")
    number(p, "--seed", default=0, help="seed of the N(0, I) starts (default 0)")
    p.add_argument("--out", required=True, help="folder for field.json/.csv/.npz and figures")
    p.add_argument("--no-figures", action="store_true", help=_NO_FIGURES)
    add_engine(p)
    add_force(p)
    add_progress(p)
    common(p)


def add_contraction(p, common) -> None:
    """``flowcore contraction BUNDLE --out``."""
    p.add_argument("bundle", help=_BUNDLE)
    number(p, "--n", default=1000, help="N(0, I) latents per seed (default 1000, as the paper)")
    number(p, "--seeds", default=10, help="run seeds 0 .. S-1 (default 10, as the paper)")
    p.add_argument("--out", required=True, help="folder for contraction_seeds.json/.csv")
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


def run_memorization(args, out, emit) -> int:
    dest = out_folder(args, "memorization", writes=(*MemorizationReport.files(), "memorization.csv"))
    lmap = _map(args)
    rep = memorization_report(lmap, load_array(args.train), load_array(args.test), starts=args.starts,
                              n_starts=args.n_starts, tol=args.tol, max_steps=args.max_steps, metric=args.metric,
                              threshold=args.threshold, reduce=args.reduce, center=not args.uncentred, seed=args.seed,
                              engine=args.engine)
    rows = [{"attractor": i, "basin": int(rep.counts[i]), "mem": float(rep.mem[i]),
             "nearest_train_index": int(rep.nearest_index[i]), "blank": bool(rep.blank[i]),
             "mean_image": bool(rep.mean_image[i]), "mean_cosine": float(rep.mean_cosine[i])}
            for i in range(rep.n_attractors)]
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
    conv = int(rep.counts.sum())
    emit(out, s, args.json,
         f"memorization ({args.reduce} cosine to the nearest training image): basin-weighted mean "
         f"{s['mem_weighted_mean']:.3f} over {conv} converged of {s['n_starts']} {args.starts} starts; unweighted "
         f"mean {s['mem_mean']:.3f} ± {s['mem_std']:.3f} over {s['n_attractors']} attractors; null levels: test "
         f"{nt['mean']:.3f} ± {nt['std']:.3f}, noise {nn['mean']:.3f} ± {nn['std']:.3f}\n"
         f"flagged attractors: {s['flagged_attractors']} of {s['n_attractors']} ({s['blank_attractors']} blank, "
         f"{s['mean_image_attractors']} mean-image) take {100 * s['flagged_fraction']:.1f} % of the converged "
         f"starts; the largest basin takes {100 * s['largest_basin_fraction']:.1f} %\n"
         f"verdict: {s['verdict']}\n"
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


def run_dynamics(args, out, emit) -> int:
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


def run_probe(args, out, emit) -> int:
    dest = out_folder(args, "probe", writes=(*ProbeReport.files(), "probe.csv"))
    atoms = atoms_of(args)
    with warnings.catch_warnings(record=True) as caught:  # capped rows: a "warning:" line in the summary
        warnings.simplefilter("always", ProbeDictionaryWarning)
        rep = probe(_map(args), load_array(args.heldout), load_array(args.train), atoms=atoms, seed=args.seed,
                    n_noise=args.n_noise, tol=args.tol, max_steps=args.max_steps, engine=args.engine)
    warned = [f"warning: {w.message}" for w in caught if issubclass(w.category, ProbeDictionaryWarning)]
    for w in caught:  # any other warning goes on as it came
        if not issubclass(w.category, ProbeDictionaryWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    rows = [{"basis": b, "atoms": int(a), "effective_atoms": int(rep.effective_atoms[b][i]),
             "capped": bool(rep.capped[b][i]), "mse_latent": float(rep.mse_latent[b][i]),
             "mse_input": float(rep.mse_input[b][i])}
            for b in rep.mse_latent for i, a in enumerate(rep.atoms)]
    with dest.staged() as tmp:
        rep.write(tmp)
        atomic_write_text(tmp / "probe.csv", _csv(rows))
        if not args.no_figures:
            png, text = curves(rep.atoms.astype(np.float64), {b: rep.mse_input[b] for b in rep.mse_input}, logx=True,
                               xlabel="OMP atoms", ylabel="input-space MSE", title="probing: reconstruction vs atoms")
            save_figure(png, text, tmp, "probe_mse")
    lines = [f"OMP probing of {rep.settings.get('n_heldout')} held-out inputs (reference D(E(x)) input-space MSE "
             f"{rep.reference_mse_input:.5g})"]
    nd = rep.settings.get("noise_dictionary")
    if nd:
        rule = f"{nd['metric']} {'>' if nd['metric'] == 'cosine' else '<='} {nd['threshold']:g}"
        lines.append(f"noise dictionary: {nd['n_starts']} noise starts, {nd['n_endpoints']} converged, "
                     f"{nd['n_distinct']} distinct attractor{'s' * (nd['n_distinct'] != 1)} ({rule}) -> "
                     f"{rep.dictionary_sizes['noise']} atom{'s' * (rep.dictionary_sizes['noise'] != 1)}, rank "
                     f"{rep.dictionary_ranks['noise']}")
    for space, curve in (("latent", rep.mse_latent), ("input", rep.mse_input)):
        lines.append(f"{space}-space MSE per atom count (* = capped at the dictionary's size or at k):")
        for b in curve:
            lines.append(f"  {b:10s} " + "  ".join(f"{int(a)}{'*' if c else ''}:{m:.4g}" for a, c, m in
                                                   zip(rep.atoms, rep.capped[b], curve[b])))
    if args.json:
        for line in warned:
            print(line, file=sys.stderr)
    lines += warned
    emit(out, rep.to_json(), args.json, "\n".join(lines) + f"\nwritten {args.out}")
    return 0


def run_field(args, out, emit) -> int:
    dest = out_folder(args, "field", writes=(*FieldGrid.files(), *FieldMap.files(), "field.csv", "field.json"),
                      nbytes=200 * args.n * args.n if isinstance(args.n, int) and args.n > 0 else 0)
    lmap = _map(args)
    data = None
    if args.data is not None:  # shape, NaN/Inf and row count checked here, so errors name the file
        data = lmap.check_inputs(load_array(args.data), f"data in {args.data}")
        if not np.all(np.isfinite(data)):
            raise DataError(f"data in {args.data} contain NaN or Inf")
        if lmap.latent_dim > 2 and len(data) < 2:
            raise DataError(f"--data {args.data} holds {len(data)} rows; the PCA plane needs at least 2")
    window = None if args.lim is None else ((-args.lim, args.lim), (-args.lim, args.lim))
    with warnings.catch_warnings(record=True) as caught:  # library warnings: one `warning: …` line each
        warnings.simplefilter("always")
        fm = field_map(lmap, data=data, n=args.n, window=window, n_noise=args.n_noise, seed=args.seed,
                       engine=args.engine, progress=progress_of(args))
    for w in caught:
        sys.stderr.write(f"warning: {w.message}\n")
    grid, st = fm.grid, fm.settings
    gx, gy = np.meshgrid(grid.xs, grid.ys)
    rows = [{"x": float(a), "y": float(b), "u": float(u), "v": float(v), "speed": float(sp)}
            for a, b, u, v, sp in zip(gx.ravel(), gy.ravel(), grid.u.ravel(), grid.v.ravel(), grid.speed.ravel())]
    what = "data latents" if args.data is not None else "N(0, I) starts"
    grid_counts = st["status_counts"]["grid"]
    summary = {"latent_dim": lmap.latent_dim, "plane": st["plane"], "n": args.n, "lim": args.lim,
               "xlim": st["xlim"], "ylim": st["ylim"], "window": st["window"],
               "attractors_inside": fm.attractors_inside, "n_points": len(fm.points_plane),
               "points_inside": fm.points_inside, "points": st["starts"],
               "speed_min": float(grid.speed.min()), "speed_max": float(grid.speed.max()),
               "origin": grid.origin.tolist(), "basis": grid.basis.tolist(),
               "n_attractors": fm.n_attractors, "basin_fractions": fm.basin_fractions.tolist(),
               "attractors_in_plane": fm.attractors_plane.tolist(), "status_counts": grid_counts,
               "grouping": st["grouping"]}
    with dest.staged() as tmp:
        grid.write(tmp)
        fm.write(tmp)
        atomic_write_text(tmp / "field.csv", _csv(rows))
        atomic_write_json(tmp / "field.json", summary)
        if not args.no_figures:
            png, text = field_plot(grid, attractors=fm.attractors_plane, points=fm.points_plane,
                                   title=f"V(z) = f(z) - z on the {st['plane']}")
            save_figure(png, text, tmp, "field_plot")
            png, text = basin_map(grid.xs, grid.ys, fm.labels, title="attractor reached from each grid start")
            save_figure(png, text, tmp, "basin_map")
            png, text = steps_heatmap(grid.xs, grid.ys, fm.steps, title="steps to converge")
            save_figure(png, text, tmp, "steps_heatmap")
    (x0, x1), (y0, y1) = st["xlim"], st["ylim"]
    out_a, out_p = fm.n_attractors - fm.attractors_inside, len(fm.points_plane) - fm.points_inside
    emit(out, summary, args.json,
         f"field on a {args.n}×{args.n} grid of the {st['plane']}, window x [{x0:.3g}, {x1:.3g}] × y [{y0:.3g}, "
         f"{y1:.3g}] ({st['window']}): {fm.attractors_inside} of {fm.n_attractors} attractors and "
         f"{fm.points_inside} of {len(fm.points_plane)} {what} inside"
         + (f" ({out_a} attractors and {out_p} {what} outside)" if out_a or out_p else "") +
         f"\n|V| from {summary['speed_min']:.3g} to {summary['speed_max']:.3g}; {fm.n_attractors} attractors reached "
         f"from the {what} and the grid starts (grid: converged {grid_counts['converged']}, max_steps "
         f"{grid_counts['max_steps']}, diverged {grid_counts['diverged']})\nwritten {args.out}")
    return 0


def _pm(mean: float, std: float | None) -> str:
    return f"{mean:.4g}" + (f" ± {std:.2g}" if std is not None else "")


def run_contraction(args, out, emit) -> int:
    dest = out_folder(args, "contraction",
                      writes=("contraction_seeds.json", "contraction_seeds.npz", "contraction_seeds.csv"))
    rep = contraction_seeds(_map(args), seeds=args.seeds, n=args.n)
    summary = {"bundle": str(Path(args.bundle).resolve()), **rep.to_json()}
    with dest.staged() as tmp:  # the result's own files (ContractionSeeds.load reads them) + the per-seed CSV
        rep.write(tmp, extra_json={"bundle": summary["bundle"]})
        atomic_write_text(tmp / "contraction_seeds.csv", _csv(summary["per_seed"]))
    s, mean, std = args.seeds, rep.mean, rep.std
    emit(out, summary, args.json,
         f"σ_out / σ_in {_pm(mean['ratio'], std['ratio'])} over {s} seed{'s' if s > 1 else ''} (n = {args.n} N(0, I) "
         f"latents each); contracts (ratio < 1) on {rep.contracting_seeds} of {s} seed{'s' if s > 1 else ''}; median "
         f"coordinate ratio {_pm(mean['median_coordinate_ratio'], std['median_coordinate_ratio'])}; norm ratio "
         f"{_pm(mean['norm_ratio'], std['norm_ratio'])}\nwritten {args.out}")
    return 0

