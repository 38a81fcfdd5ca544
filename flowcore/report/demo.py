"""The demo model's report (``make demo`` ends with it): ``python -m flowcore.report.demo [OUT]``.

The demo ships only its test digits (360 × (1, 8, 8)); the report splits them seeded into 240
``--data`` rows and 120 ``--test`` rows, and adds two OOD sets made from the test rows: ``noise``
(uniform noise in the digits' range) and ``flipped`` (digits upside down, a near-OOD set).
Writes ``OUT/report.html`` (default ``demo_out/report``) under the output-folder policy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from flowcore._version import __version__
from flowcore.data import demo_paths
from flowcore.io import atomic_write_text, load_array
from flowcore.outputs import OutputFolder
from flowcore.report.build import build_report
from flowcore.report.html import render_html

__all__ = ["demo_sets", "write_demo_report"]


def demo_sets(seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(data (240, 1, 8, 8), test (120, 1, 8, 8), {"noise", "flipped"}: (120, 1, 8, 8)), float32."""
    x = np.asarray(load_array(demo_paths()[1]), dtype=np.float32)
    idx = np.random.default_rng(seed).permutation(len(x))
    data, test = x[idx[:240]], x[idx[240:]]
    rng = np.random.default_rng(seed + 1)
    noise = rng.uniform(float(x.min()), float(x.max()), test.shape).astype(np.float32)
    return data, test, {"noise": noise, "flipped": np.ascontiguousarray(test[..., ::-1, :])}


def write_demo_report(out_dir: str | Path = "demo_out/report", *, force: bool = False, **kw) -> Path:
    """Build and write the demo model's report; returns the path of ``report.html``."""
    dest = OutputFolder(out_dir, command="report", force=force, version=__version__).check(writes=("report.html",))
    data, test, ood = demo_sets()
    rep = build_report(demo_paths()[0], data, x_test=test, ood=ood,
                       command=f"python -m flowcore.report.demo {out_dir}", **kw)
    rep.section("memorization")["text"].append(
        "note: the demo ships only its test digits, so --data here is NOT the model's training set: "
        "these numbers show the layout of the page, not whether the demo model memorizes")
    with dest.staged() as tmp:
        atomic_write_text(tmp / "report.html", render_html(rep))
    return Path(out_dir) / "report.html"


if __name__ == "__main__":  # pragma: no cover
    from flowcore.errors import FlowcoreError

    try:
        print(f"report written: {write_demo_report(sys.argv[1] if len(sys.argv) > 1 else 'demo_out/report', force='--force' in sys.argv)}")
    except FlowcoreError as exc:  # one line; an output folder that may not be written is bad input (3)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(3)
