"""``flowcore residuals BUNDLE (--data X | --noise N | --latents Z) --steps T --out DIR``.

Writes residuals.npz/.json (:class:`flowcore.ResidualReport`), residuals.png (median and
interquartile band of ‖z_{t+1} − z_t‖ and ‖z_t‖ per step, log y) and residuals.csv (the figure's
numbers); prints the medians at a few steps.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from flowcore.analysis.residuals import ResidualReport, residual_norms
from flowcore.cli._args import add_force, number
from flowcore.cli._out import out_folder
from flowcore.dynamics.starts import starts_from_sources
from flowcore.runtime.latent_map import LatentMap

__all__ = ["add_residuals", "run_residuals"]


def add_residuals(p: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """``flowcore residuals BUNDLE (--data | --latents | --noise) --steps T --out DIR``."""
    p.add_argument("bundle", help="FlowBundle folder")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="inputs to encode into the starts: file.npy, file.npz or file.npz:KEY, "
                                    "shape (N, *input_shape)")
    src.add_argument("--latents", help="latent starts: file.npy/.npz[:KEY], shape (N, *latent_shape)")
    number(src, "--noise", metavar="N", help="N latent starts drawn from N(0, I) (seeded by --seed)")
    number(p, "--seed", default=0, help="seed for the noise starts (default 0)")
    number(p, "--steps", default=100, help="applications of f per start (default 100)")
    number(p, "--batch-size", default=1024, help="starts iterated together (default 1024 rows)")
    p.add_argument("--out", required=True, help="folder for residuals.npz/.json/.png/.csv")
    add_force(p)
    common(p)


def run_residuals(args, out, emit) -> int:
    from flowcore.plots import save_figure  # noqa: PLC0415
    from flowcore.plots.residuals import residual_plot  # lazy: matplotlib is the analysis extra

    dest = out_folder(args, "residuals", writes=(*ResidualReport.files(), "residuals.png", "residuals.csv"))
    lmap = LatentMap(args.bundle, providers=args.device, intra_op_num_threads=args.threads)
    z0, desc = starts_from_sources(lmap, data=args.data, latents=args.latents, noise=args.noise, seed=args.seed)
    rep = residual_norms(lmap, z0, args.steps, batch_size=args.batch_size, settings={"starts": desc})
    png, csv = residual_plot({desc.get("kind", "starts"): rep}, title=Path(args.bundle).name)
    bundle = str(Path(args.bundle).resolve())
    with dest.staged() as tmp:
        rep.write(tmp, extra_json={"bundle": bundle})
        save_figure(png, csv, tmp, "residuals")
    lines = [f"residual norms of {rep.n} start{'s' if rep.n != 1 else ''} over {rep.steps} steps "
             f"(median [25 %, 75 %] over starts):"]
    for r in rep.summary():
        lines.append(f"  t = {r['step']:>5}: ‖z_t+1 − z_t‖ {r['step_norm_median']:.3g} "
                     f"[{r['step_norm_q25']:.3g}, {r['step_norm_q75']:.3g}]   ‖z_t‖ {r['state_norm_median']:.3g} "
                     f"[{r['state_norm_q25']:.3g}, {r['state_norm_q75']:.3g}]")
    lines.append(f"written {args.out}")
    emit(out, {"bundle": bundle, **rep.to_json()}, args.json, "\n".join(lines))
    return 0
