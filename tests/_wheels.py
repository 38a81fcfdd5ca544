"""Built wheels of the core and both adapters, once per test session (the ``wheels`` fixture).

Each distribution is built from a clean staging copy of its sources (``pyproject.toml``, the
README, the package folders, without ``__pycache__``): setuptools reuses a ``build/`` folder
left in the checkout, and a module deleted from the tree would ship from there. The build runs
``pip wheel --no-deps --no-build-isolation`` with this interpreter's setuptools (the ``dev``
extra requires it), so it needs no index. Test modules import the fixture
(``from _wheels import wheels``); the builds are cached in this module, so they happen once per
session whichever modules ask.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# distribution -> (project folder, import package)
DISTRIBUTIONS = {
    "flowcore": (ROOT, "flowcore"),
    "flowcore-torch": (ROOT / "adapters" / "torch", "flowcore_torch"),
    "flowcore-tensorflow": (ROOT / "adapters" / "tensorflow", "flowcore_tensorflow"),
}
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
_BUILT: dict[str, Path] = {}


def source_version(dist: str) -> str:
    """``__version__`` of a distribution's package, read (not imported) from ``_version.py`` or ``__init__.py``."""
    folder, package = DISTRIBUTIONS[dist]
    for name in ("_version.py", "__init__.py"):
        path = folder / package / name
        if not path.is_file():
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
                return ast.literal_eval(node.value)
    raise AssertionError(f"{package} sets no __version__ in _version.py or __init__.py")


def build_wheel(dist: str, work: Path) -> Path:
    """Build ``dist``'s wheel from a staging copy under ``work``; returns the ``.whl`` path."""
    folder, package = DISTRIBUTIONS[dist]
    stage = work / "src"
    stage.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        if (folder / name).is_file():
            shutil.copy2(folder / name, stage / name)
    shutil.copytree(folder / package, stage / package, ignore=_IGNORE)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
                           "--no-build-isolation", "--wheel-dir", str(work / "dist"), str(stage)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"building the {dist} wheel failed:\n{proc.stdout}\n{proc.stderr}"
    (wheel,) = (work / "dist").glob("*.whl")
    return wheel


def wheel_names(wheel: Path) -> set[str]:
    """Every file name inside a wheel."""
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


@pytest.fixture(scope="session")
def wheels(tmp_path_factory) -> dict[str, Path]:
    """distribution name -> its built wheel (the core and both adapters), built once per session."""
    for dist in DISTRIBUTIONS:
        if dist not in _BUILT:
            _BUILT[dist] = build_wheel(dist, tmp_path_factory.mktemp(f"wheel-{dist}"))
    return dict(_BUILT)
