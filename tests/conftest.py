"""Shared, session-scoped fixtures: the digits data, a trained torch digits AE, its bundle.

torch, scikit-learn and flowcore_torch are imported inside the fixtures (never at module
level), so modules that need no framework still collect anywhere; a test that asks for a torch
fixture fails loudly where torch is missing (it is never skipped).
"""

from __future__ import annotations

import numpy as np
import pytest

N_TEST = 360  # the last 360 of a permutation seeded with 0 (tools/make_demo_bundle.py uses the same split)


@pytest.fixture(scope="session")
def digits():
    """scikit-learn digits, images / 16 as (N, 1, 8, 8) float32 in [0, 1], fixed seeded split.

    The test split equals the ``x``/``y`` of the shipped ``flowcore/data/demo/digits_test.npz``.

    Returns
    -------
    dict
        ``x_train`` (1437, 1, 8, 8) float32, ``x_test`` (360, 1, 8, 8) float32,
        ``y_train`` (1437,) int64, ``y_test`` (360,) int64.
    """
    import sklearn  # noqa: F401, PLC0415  (fail loudly when missing)
    from sklearn.datasets import load_digits  # noqa: PLC0415

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(x))
    train, test = perm[:-N_TEST], perm[-N_TEST:]
    return {"x_train": x[train], "x_test": x[test], "y_train": y[train], "y_test": y[test]}


@pytest.fixture(scope="session")
def torch_digits_ae(digits):
    """(encoder, decoder): the MLP digits AE (64 -> 64 -> k=8 -> 64 -> 64), trained ~2 s, eval mode.

    Recipe in ``tests/_models.py::train_digits_ae`` (Adam lr 2e-3, weight decay 1e-4, 150
    epochs, batch 64, seed 0, one torch thread). Its f = E∘D converges from every test latent
    (median ~90 steps at tol 1e-6). Do not modify the modules: copy them
    (``copy.deepcopy``) if a test needs to.
    """
    import torch  # noqa: F401, PLC0415  (fail loudly when missing)
    from _models import train_digits_ae  # noqa: PLC0415

    return train_digits_ae(digits["x_train"], k=8, seed=0)


@pytest.fixture(scope="session")
def digits_bundle(torch_digits_ae, digits, tmp_path_factory):
    """FlowBundle of ``torch_digits_ae`` exported with ``flowcore_torch.export`` (parity checked)."""
    import flowcore_torch  # noqa: PLC0415  (torch is present: torch_digits_ae did not skip)

    enc, dec = torch_digits_ae
    path = tmp_path_factory.mktemp("digits_bundle") / "bundle"
    return flowcore_torch.export(
        enc,
        dec,
        digits["x_train"][:64],
        path,
        real_inputs=digits["x_test"],
        preprocessing="8x8 scikit-learn digits / 16, float32 in [0, 1], shape (N, 1, 8, 8)",
        notes="tests/conftest.py digits MLP autoencoder, k=8",
    )


# ----------------------------------------------------------------------------- hypothesis profiles
# tests/test_fuzz.py: "ci" (default, bounded and derandomized so `make test` is stable) and
# "long" (`make fuzz`: HYPOTHESIS_PROFILE=long). hypothesis is in the dev extra.
try:
    import os as _os

    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", max_examples=60, derandomize=True, deadline=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    settings.register_profile("long", max_examples=1500, deadline=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    settings.load_profile(_os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # tests/test_fuzz.py then fails loudly on its own import
    pass


def pytest_deselected(items):
    """Count the deselected ``slow`` study tests (pyproject's addopts ``-m "not slow"``), for the summary line."""
    if items:
        config = items[0].config
        config._flowcore_slow_deselected = getattr(config, "_flowcore_slow_deselected", 0) + sum(
            1 for item in items if item.get_closest_marker("slow") is not None)


def pytest_terminal_summary(terminalreporter):
    """Print ``N bad inputs`` (tests/test_bad_inputs.py cases run) and ``slow studies: N tests deselected``."""
    slow = getattr(terminalreporter.config, "_flowcore_slow_deselected", 0)
    if slow:
        terminalreporter.write_line(f"slow studies: {slow} tests deselected, run by make bench (pytest -m slow)")
    counts = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        counts[outcome] = sum(1 for r in terminalreporter.stats.get(outcome, [])
                              if getattr(r, "when", "call") in ("call", "setup")
                              and "test_bad_inputs.py::test_bad_input[" in getattr(r, "nodeid", "")
                              and (outcome != "passed" or r.when == "call"))
    total = sum(counts.values())
    if total:
        detail = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        terminalreporter.write_line(f"{total} bad inputs ({detail})")
