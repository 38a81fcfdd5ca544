"""The layer contract (pyproject.toml ``[tool.importlinter]``) holds, and the linter does fail.

``lint-imports`` runs on the repository (as ``make test`` does before pytest), then on temporary
copies of the core with one bad import injected: a framework or adapter imported lazily inside
a function, and a layer importing a layer above it. Each copy must break the matching contract,
naming the injected import. The linter runs in a subprocess with the copy first on
``PYTHONPATH``, so it analyses the copy, not the installed package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
FRAMEWORKS_CONTRACT = "The core never imports a framework or an adapter (not even lazily)"


def _lint(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache", "--no-logo"], cwd=repo, capture_output=True, text=True,
                          timeout=300, env={**ENV, "PYTHONPATH": str(repo), "COLUMNS": "200"})


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """pyproject.toml and flowcore/ copied to a temporary folder."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", repo / "pyproject.toml")
    shutil.copytree(ROOT / "flowcore", repo / "flowcore", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return repo


def _inject(repo: Path, module: str, code: str) -> None:
    path = repo / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + "\n\n" + code + "\n")


def test_contracts_hold():
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BROKEN" not in proc.stdout and f"{FRAMEWORKS_CONTRACT} KEPT" in proc.stdout


@pytest.mark.parametrize("module, name", [
    ("flowcore.dynamics.field", "torch"),
    ("flowcore.runtime.latent_map", "tensorflow"),
    ("flowcore.cli.export", "keras"),
    ("flowcore.cli.export", "flowcore_torch"),
    ("flowcore.bundle.export", "flowcore_tensorflow"),
])
def test_lazy_framework_import_breaks_the_contract(repo_copy, module, name):
    _inject(repo_copy, module, f"def _injected():\n    import {name}  # injected by tests/test_contracts.py\n"
                               f"    return {name}")
    proc = _lint(repo_copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{FRAMEWORKS_CONTRACT} BROKEN" in proc.stdout
    assert f"{module} -> {name}" in proc.stdout, proc.stdout


@pytest.mark.parametrize("module, imported, low, high", [
    ("flowcore.bundle.flowbundle", "flowcore.analysis.ood.metrics", "flowcore.bundle", "flowcore.analysis"),
    ("flowcore.dynamics.field", "flowcore.plots", "flowcore.dynamics", "flowcore.plots"),
    ("flowcore.io", "flowcore.runtime.fusion", "flowcore.io", "flowcore.runtime"),
])
def test_upward_import_breaks_the_layers(repo_copy, module, imported, low, high):
    _inject(repo_copy, module, f"def _injected():\n    import {imported}  # injected by tests/test_contracts.py\n"
                               f"    return {imported}")
    proc = _lint(repo_copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{low} is not allowed to import {high}" in proc.stdout, proc.stdout
    assert f"{module} -> {imported}" in proc.stdout, proc.stdout


def _top_level_imports(path: Path) -> list[str]:
    """Names a module takes from the package ``flowcore`` itself (``from flowcore import X`` where X is no submodule)."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "flowcore" and node.level == 0:
            found += [a.name for a in node.names
                      if not (ROOT / "flowcore" / a.name).is_dir() and not (ROOT / "flowcore" / f"{a.name}.py").is_file()]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "flowcore"]
    return found


def test_no_layer_imports_the_public_api():
    """``flowcore/__init__.py`` is the public surface above every layer: no module under flowcore/ imports it."""
    offenders = {str(p.relative_to(ROOT)): names for p in sorted((ROOT / "flowcore").rglob("*.py"))
                 if p.name != "__init__.py" or p.parent != ROOT / "flowcore"
                 if (names := _top_level_imports(p))}
    assert offenders == {}


def test_the_public_api_check_does_fail(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("from flowcore import LatentMap, dynamics\nimport flowcore\n")
    assert _top_level_imports(bad) == ["LatentMap", "flowcore"]
