"""Same command, same numbers: two ``--quick`` runs of examples/reproduce_digits.py write the same tables.

The two runs go into two folders, at the same time (two processes), and every table they write is
compared byte for byte: each CSV, ``results.json`` and ``README_section.md``. The only wall time
the tables hold is the runtime the README section states ("total runtime X min"); it is masked in
that one file. The other wall times live in ``timings.json``, which is not compared.
Marked slow (over 60 s): ``make test`` leaves it out; run it with ``pytest -m slow tests/test_reproduce_determinism.py``.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "reproduce_digits.py"
RUNTIME = re.compile(r"total runtime \d+(\.\d+)? min")
TABLES = ("memorization_vs_k.csv", "checkpoints.csv", "field_k2.csv", "memorization_vs_size.csv",
          "contraction_init.csv", "probe.csv", "probe_rank.csv", "mse_curves.csv")


def _tables(folder: Path) -> dict[str, bytes]:
    files = sorted(folder.glob("*.csv")) + [folder / "results.json", folder / "README_section.md"]
    out = {p.name: p.read_bytes() for p in files}
    text = out["README_section.md"].decode("utf-8")
    assert len(RUNTIME.findall(text)) == 1, "the README section states its runtime once"
    out["README_section.md"] = RUNTIME.sub("total runtime <masked> min", text).encode("utf-8")
    return out


@pytest.mark.slow  # two --quick runs: ~40-60 s each on 2 cores, ~2 min together (run: pytest -m slow)
def test_quick_runs_write_identical_tables(tmp_path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    procs = [subprocess.Popen([sys.executable, str(SCRIPT), "--quick", "--out", str(d)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for d in dirs]
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr.decode()[-3000:]
    a, b = (_tables(d) for d in dirs)
    assert sorted(a) == sorted(b)
    for name in TABLES:
        assert name in a, f"the quick run did not write {name}"
    for name in a:
        assert a[name] == b[name], f"{name} differs between two runs of the same command"

    results = json.loads(a["results.json"])
    assert results["failures"] == []
    assert "runtime_seconds" not in results and "created" not in results
    assert results["seeds"] == [0, 1] and results["settings"]["torch_deterministic"] is True
    timings = json.loads((dirs[0] / "timings.json").read_text(encoding="utf-8"))
    assert timings["runtime_seconds"] > 0 and timings["models_trained"] == 10 and timings["models_cached"] == 0
    # every table names its seeds
    for name in TABLES:
        header = a[name].decode().splitlines()[0].split(",")
        assert header[-1] == "seeds", name
