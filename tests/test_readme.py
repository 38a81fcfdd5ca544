"""The README's Python API tour runs as written."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_blocks(title: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else None]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_api_tour_runs(tmp_path):
    blocks = _section_blocks("Python API tour")
    assert blocks, "README lost its Python API tour"
    proc = subprocess.run([sys.executable, "-c", "\n".join(blocks)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "converged" in proc.stdout and "attractors; basin fractions" in proc.stdout
    assert (tmp_path / "digits_bundle" / "flow.json").is_file()


def test_export_examples_run(tmp_path):
    blocks = _section_blocks("Export your model")
    assert len(blocks) == 2, "README should show a torch and a Keras export example"
    for block, name in zip(blocks, ("torch_bundle", "keras_bundle")):
        env = dict(__import__("os").environ, TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (tmp_path / name / "flow.json").is_file()
