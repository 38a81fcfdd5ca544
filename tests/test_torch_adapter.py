"""flowcore_torch specifics: eval modes, exporter failures, opsets, the demo's single recipe.

The checks both adapters share (parity, dynamic batch, output selection, non-flat latents,
failure modes, load_model) are in ``tests/test_adapter_contract.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import flowcore_torch  # noqa: E402
from flowcore.bundle.flowbundle import FlowBundle  # noqa: E402
from flowcore.errors import ExportError  # noqa: E402

from _models import DataDependent  # noqa: E402


def _x6(n=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 6)).astype(np.float32)


# --------------------------------------------------------------------- modes
def test_modes_restored_and_eval_used(tmp_path):
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(6, 3), nn.Dropout(0.5))  # train-mode dropout would break parity
    dec = nn.Sequential(nn.Linear(3, 6))
    enc.train()
    dec.eval()
    enc[0].eval()  # mixed modes inside one module come back as they were
    flowcore_torch.export(enc, dec, _x6(), tmp_path / "b")
    assert enc.training and not enc[0].training and enc[1].training and not dec.training


# ------------------------------------------------------------------ failures
def test_exporter_failure_is_one_line_export_error(tmp_path):
    with pytest.raises(ExportError, match="failed for the encoder") as ei:
        flowcore_torch.export(DataDependent(), nn.Identity(), _x6(), tmp_path / "b")
    assert "\n" not in str(ei.value)
    assert ei.value.__cause__ is not None
    assert list(tmp_path.iterdir()) == []


def test_opset_below_18_is_exact_or_refused(tmp_path):
    """Below 18 the exporter down-converts with onnx's converter and, when that fails (onnx 1.23:
    no adapter for Shape-15 -> 13), silently keeps opset 18. Either the bundle really is opset
    13 or export refuses: the manifest never mislabels."""
    enc = nn.Sequential(nn.Flatten(), nn.Linear(6, 3))
    dec = nn.Sequential(nn.Linear(3, 6), nn.Unflatten(1, (1, 2, 3)))
    try:
        b = flowcore_torch.export(enc, dec, _x6().reshape(8, 1, 2, 3), tmp_path / "b", opset=13)
    except ExportError as exc:
        assert "opset 18, not the requested 13" in str(exc)
        assert list(tmp_path.iterdir()) == []
    else:
        assert b.manifest["encoder"]["opset"] == b.manifest["decoder"]["opset"] == 13


# ------------------------------------------------------------------ demo data
def test_recipe_reproduces_the_shipped_demo_weights(torch_digits_ae, digits):
    """The fixture's AE is ``flowcore_torch.recipes`` (the one recipe tools/make_demo_bundle.py uses):
    it computes what the shipped demo bundle computes. Bit-identical weights on the development
    machine; the tolerance leaves room for another CPU's BLAS summation order over 150 epochs."""
    from flowcore.cli.demo import demo_paths  # noqa: PLC0415

    enc, dec = torch_digits_ae
    res = flowcore_torch.parity(demo_paths()[0], enc, dec, digits["x_test"])
    assert res["encoder"] <= 1e-3 and res["decoder"] <= 1e-3


def test_shipped_demo_matches_fixture_split(digits):
    """tools/make_demo_bundle.py and the ``digits`` fixture use one split; the demo bundle loads."""
    from flowcore.cli.demo import demo_paths  # noqa: PLC0415
    from flowcore.io import load_npz  # noqa: PLC0415

    bundle_dir, data_file = demo_paths()
    assert data_file.is_file(), "the shipped demo is missing: run tools/make_demo_bundle.py"
    arrays = load_npz(data_file)
    assert arrays["x"].dtype == np.float32 and arrays["y"].dtype == np.int64
    np.testing.assert_array_equal(arrays["x"], digits["x_test"])
    np.testing.assert_array_equal(arrays["y"], digits["y_test"])
    b = FlowBundle.load(bundle_dir)
    assert b.input_shape == (1, 8, 8) and b.latent_shape == (8,)
    assert sum(p.stat().st_size for p in data_file.parent.rglob("*") if p.is_file()) < 200 * 1024
