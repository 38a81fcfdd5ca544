"""Real images the real-model studies use: Fashion-MNIST from Debian's package, photo crops.

``.ci/run`` installs ``dataset-fashion-mnist`` before ``make test`` and sets
``FLOWCORE_REQUIRE_FASHION_MNIST=1``, under which a missing package fails the test; elsewhere
it is skipped with the reason and the install command.
"""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

import numpy as np
import pytest

STUDIES = Path(__file__).resolve().parents[1] / "studies"
if str(STUDIES) not in sys.path:
    sys.path.insert(0, str(STUDIES))

from _real_images import FASHION_DIR, load_fashion_mnist, photo_crops, read_idx  # noqa: E402


@pytest.fixture(scope="module")
def fashion_dir() -> Path:
    if not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        if os.environ.get("FLOWCORE_REQUIRE_FASHION_MNIST") == "1":
            pytest.fail(f"Fashion-MNIST missing at {FASHION_DIR}; .ci/run installs dataset-fashion-mnist")
        pytest.skip(f"Fashion-MNIST not installed at {FASHION_DIR} (apt-get install dataset-fashion-mnist)")
    return FASHION_DIR


def test_fashion_mnist_loads_from_the_debian_package(fashion_dir):
    x, y = load_fashion_mnist("test", folder=fashion_dir)
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == np.float32 and y.shape == (10_000,)
    assert 0.0 <= x.min() and x.max() == 1.0
    assert np.bincount(y).tolist() == [1000] * 10  # the test split is balanced
    assert 0.25 < x.mean() < 0.35  # clothing covers far more of the frame than MNIST's ink (~0.13)
    xt, yt = load_fashion_mnist("train", folder=fashion_dir)
    assert xt.shape == (60_000, 1, 28, 28) and np.bincount(yt).tolist() == [6000] * 10


def test_idx_reader_refuses_bad_headers(tmp_path):
    good = tmp_path / "ok.gz"
    with gzip.open(good, "wb") as fh:
        fh.write(bytes([0, 0, 8, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(6)))
    assert read_idx(good).tolist() == [[0, 1, 2], [3, 4, 5]]
    bad = tmp_path / "bad"
    bad.write_bytes(bytes([0, 0, 13, 1]) + (4).to_bytes(4, "big") + bytes(16))
    with pytest.raises(ValueError, match="not an unsigned-byte IDX"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + (9).to_bytes(4, "big") + bytes(3))
    with pytest.raises(ValueError, match="file holds 3"):
        read_idx(short)


def test_photo_crops_are_seeded_rgb_crops():
    a, b = photo_crops(12, 32, seed=3), photo_crops(12, 32, seed=3)
    assert a.shape == (12, 3, 32, 32) and a.dtype == np.float32 and np.array_equal(a, b)
    assert 0.0 <= a.min() and a.max() <= 1.0 and not np.array_equal(a, photo_crops(12, 32, seed=4))
