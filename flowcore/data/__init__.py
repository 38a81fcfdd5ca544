"""Files shipped with flowcore: the demo model's bundle and its test digits.

:func:`demo_paths` gives their locations (public as ``flowcore.demo_paths``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["demo_paths"]


def demo_paths() -> tuple[Path, Path]:
    """(bundle folder, test-data file) of the embedded demo model.

    The bundle is a small MLP autoencoder (8×8 scikit-learn digits → k = 8, ``tools/make_demo_bundle.py``);
    the ``.npz`` holds its 360 test digits as ``x`` (360, 1, 8, 8) float32 in [0, 1] and labels ``y`` (360,).
    """
    root = Path(str(resources.files("flowcore.data"))) / "demo"
    return root / "bundle", root / "digits_test.npz"
