"""The demo job behind ``flowcore demo`` / ``make demo``.

The embedded default is a small MLP autoencoder (8×8 digits → k = 8) trained on scikit-learn's
digits and exported with ``flowcore_torch`` by ``tools/make_demo_bundle.py``; its test split
ships beside it. The demo encodes the test digits, iterates f = E∘D from them and from latent
N(0, I) noise, groups the endpoints into attractors (cosine > 0.99, and Euclidean relative 1e-3)
and writes ``demo_summary.json``. It needs only the core: no torch, no scikit-learn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowcore.dynamics.attractors import find_attractors
from flowcore.dynamics.grouping_rules import GroupByCosine, GroupByDistance
from flowcore.dynamics.starts import data_starts, noise_starts
from flowcore.data import demo_paths
from flowcore.errors import ParameterError
from flowcore.io import atomic_write_json, load_array
from flowcore.outputs import OutputFolder
from flowcore.runtime.latent_map import LatentMap
from flowcore.dynamics.trajectories import iterate

__all__ = ["run_demo", "demo_paths"]

SUMMARY = "demo_summary.json"
GROUPINGS = {"cosine>0.99": GroupByCosine(0.99), "euclidean<=1e-3*rms": GroupByDistance(1e-3, relative=True)}


def run_demo(
    *,
    out_dir: str | Path | None = "demo_out",
    n_noise: int | None = None,
    seed: int = 0,
    providers: str = "auto",
    threads: int | None = None,
    bundle: str | Path | None = None,
    data: str | Path | None = None,
    tol: float = 1e-6,
    max_steps: int = 3000,
    progress: bool | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Run the demo and return its summary (also written to ``out_dir/demo_summary.json``).

    ``out_dir`` follows the output-folder policy of :mod:`flowcore.outputs` (checked before the
    demo runs; ``force`` is the command's ``--force``); None writes nothing.
    """
    dest = None
    if out_dir is not None:
        dest = OutputFolder(out_dir, command="demo", force=force).check(writes=(SUMMARY,))
    if bundle is None:
        bundle, default_data = demo_paths()
        data = data or default_data
        model = "embedded MLP autoencoder on scikit-learn digits (8x8 -> k=8)"
    else:
        model = f"bundle {bundle}"
        if data is None:
            raise ParameterError("--bundle needs --data with test inputs")
    lmap = LatentMap(bundle, providers=providers, intra_op_num_threads=threads)
    x = load_array(data)
    z_test = data_starts(lmap, x, what=f"data in {data}")
    n_noise = len(x) if n_noise is None else int(n_noise)
    z_noise = noise_starts(lmap.latent_shape, n_noise, seed=seed)
    runs: dict[str, Any] = {}
    for name, z0 in (("test digits", z_test), ("latent noise N(0,I)", z_noise)):
        traj = iterate(lmap, z0, tol=tol, max_steps=max_steps, progress=progress)
        atts = {label: find_attractors(traj, grouping=rule).summary() for label, rule in GROUPINGS.items()}
        for a in atts.values():  # keep the printed summary short: basin sizes, not per-start labels
            a["counts"] = a["counts"][:20]
            a["fractions"] = [round(f, 4) for f in a["fractions"][:20]]
        runs[name] = {"trajectories": traj.summary(), "attractors": atts}
    summary = {
        "model": model,
        "bundle": str(bundle),
        "data": str(data),
        "providers": lmap.providers,
        "seed": seed,
        "runs": runs,
        "written": None,
    }
    if dest is not None:
        summary["written"] = str(Path(out_dir) / SUMMARY)
        with dest.staged() as tmp:
            atomic_write_json(tmp / SUMMARY, summary)
    return summary
