"""studies/reproduce_digits.py (marked ``slow``: ``make bench`` runs it, ``make test`` deselects it): same command, same numbers, and the structure of its outputs.

Two ``--quick`` runs go into two folders at the same time (~60-90 s together on 2 cores), the
second with ``--jobs 2`` (its training and analyses in two worker processes). Every table they write is compared byte for byte: each CSV, ``results.json`` and
``docs_section.md`` (the section of docs/reproduction.md); the only wall time the tables hold is the runtime that section
states ("total runtime X min"), masked in that one file (the other wall times live in
``timings.json``, which is not compared). The first run's folder is then checked for structure:
every table is a CSV with, per metric, mean / std / n and one column per seed, and a ``seeds``
column; the means and stds are those of the per-seed values; every cell of the docs section's
tables is ``mean ± std (per-seed values)``. The checkpoint cache reuses only what it wrote.
"""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "studies"
SCRIPT = STUDIES / "reproduce_digits.py"
CELL = re.compile(r"^(–|-?[0-9.]+) ± (–|[0-9.]+) \((.+)\)$")
RUNTIME = re.compile(r"total runtime \d+(\.\d+)? min")

pytest.importorskip("torch")
pytest.importorskip("mlxtend")
pytest.importorskip("matplotlib")
sys.path.insert(0, str(STUDIES))
from _repro_study import TABLES  # noqa: E402
from _repro_train import cached_entry, checkpoint_epochs, job_name, plateau_reached  # noqa: E402

CSVS = tuple(f"{name}.csv" for name in TABLES) + ("mse_curves.csv",)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two ``--quick`` runs at the same time: one in one process, one with ``--jobs 2`` (training and
    analyses in two worker processes), which must not change a number."""
    root = tmp_path_factory.mktemp("repro")
    dirs = [root / "out", root / "again"]
    procs = [subprocess.Popen([sys.executable, str(SCRIPT), "--quick", "--out", str(d), *extra], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for d, extra in zip(dirs, ([], ["--jobs", "2"]))]
    for p in procs:
        _, stderr = p.communicate(timeout=900)
        assert p.returncode == 0, stderr.decode()[-3000:]
    return dirs


@pytest.fixture(scope="module")
def quick(runs):
    return runs[0]


def _tables(folder: Path) -> dict[str, bytes]:
    files = sorted(folder.glob("*.csv")) + [folder / "results.json", folder / "docs_section.md"]
    out = {p.name: p.read_bytes() for p in files}
    text = out["docs_section.md"].decode("utf-8")
    assert len(RUNTIME.findall(text)) == 1, "the docs section states its runtime once"
    out["docs_section.md"] = RUNTIME.sub("total runtime <masked> min", text).encode("utf-8")
    return out


@pytest.mark.slow
def test_two_runs_write_identical_tables(runs):
    a, b = (_tables(d) for d in runs)
    assert sorted(a) == sorted(b)
    for name in CSVS:
        assert name in a, f"the quick run did not write {name}"
    for name in a:
        assert a[name] == b[name], f"{name} differs between two runs of the same command"
    results = json.loads(a["results.json"])
    assert "runtime_seconds" not in results and "created" not in results
    assert results["seeds"] == [0, 1] and results["settings"]["torch_deterministic"] is True
    for d in runs:
        timings = json.loads((d / "timings.json").read_text(encoding="utf-8"))
        assert timings["runtime_seconds"] > 0 and timings["models_trained"] == 10 and timings["models_cached"] == 0
    for name in CSVS:  # every table names its seeds
        assert a[name].decode().splitlines()[0].split(",")[-1] == "seeds", name


@pytest.mark.slow
def test_every_table_has_per_seed_columns_and_their_mean_and_std(quick):
    results = json.loads((quick / "results.json").read_text(encoding="utf-8"))
    assert results["failures"] == []
    seeds = results["seeds"]
    assert seeds == [0, 1]
    for name, (keys, metrics) in TABLES.items():
        tseeds = results["settings"]["contraction_seeds"] if name == "contraction_init" else seeds
        with open(quick / f"{name}.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert rows, f"{name}.csv has no rows"
        header = list(rows[0])
        assert header[: len(keys)] == keys and header[-1] == "seeds", name
        for m in metrics:
            for col in [f"{m}_mean", f"{m}_std", f"{m}_n"] + [f"{m}_s{s}" for s in tseeds]:
                assert col in header, f"{name}.csv lacks {col}"
        for r in rows:
            assert r["seeds"] == ";".join(str(s) for s in tseeds)
            for m in metrics:
                vals = np.array([float(r[f"{m}_s{s}"]) for s in tseeds if r[f"{m}_s{s}"] != ""])
                assert int(r[f"{m}_n"]) == len(vals), (name, m)
                tol = 2e-5 * float(np.abs(vals).max()) if len(vals) else 0.0  # the CSV's 6 significant digits
                if len(vals):
                    assert float(r[f"{m}_mean"]) == pytest.approx(vals.mean(), abs=tol), (name, m)
                if len(vals) > 1:
                    assert float(r[f"{m}_std"]) == pytest.approx(vals.std(ddof=1), abs=tol), (name, m)
    header = (quick / "mse_curves.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == ["model", "epoch", "test_mse_s0", "test_mse_s1", "seeds"]


@pytest.mark.slow
def test_readme_tables_show_mean_std_and_per_seed_values(quick):
    text = (quick / "docs_section.md").read_text(encoding="utf-8")
    assert "model seeds **0, 1**" in text and "What reproduces, what does not" in text
    n_tables = 0
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not re.match(r"^\|(-*-:?\|)+", line):
            continue
        n_tables += 1
        n_keys = line.count("---:|")
        for row in lines[i + 1:]:
            if not row.startswith("|"):
                break
            cells = [c.strip() for c in row.strip("|").split("|")][n_keys:]
            assert cells, row
            for c in cells:
                m = CELL.match(c)
                assert m, f"not 'mean ± std (per seed)': {c!r}"
                assert len(m.group(3).split(" / ")) == 2, c  # one value per seed
    assert n_tables == len(TABLES)
    for fig in ("fig_memorization_vs_k.png", "fig_mse_curves_mlp.png", "fig_checkpoints.png",
                "fig_memorization_vs_size.png", "fig_probe.png"):
        assert (quick / fig).stat().st_size > 1000, fig


@pytest.mark.slow
def test_cache_reuses_only_what_it_wrote(quick, tmp_path):
    results = json.loads((quick / "results.json").read_text(encoding="utf-8"))
    folders = sorted((quick / "cache").iterdir())
    assert len(folders) == 10
    entry = json.loads((folders[0] / "entry.json").read_text(encoding="utf-8"))
    job = entry["job"]
    assert job_name(job) == folders[0].name and entry["written_by"] == "studies/reproduce_digits.py"
    assert cached_entry(job, quick / "cache")["files"] == entry["files"]
    # another recipe under the same name (a mismatch): a miss, and this script's files there are dropped
    other = json.loads((folders[1] / "entry.json").read_text(encoding="utf-8"))
    assert cached_entry({**other["job"], "lr": 0.5}, quick / "cache") is None
    assert not (folders[1] / "entry.json").exists() and not any(folders[1].glob("*.pt"))
    # a file whose hash changed: the entry and the files it lists are dropped (the job retrains)
    pt = next(f for f in entry["files"] if f.endswith(".pt"))
    (folders[0] / pt).write_bytes(b"changed")
    assert cached_entry(job, quick / "cache") is None
    assert not (folders[0] / "entry.json").exists() and not (folders[0] / pt).exists()
    # a folder this script did not write is never touched
    foreign = tmp_path / job_name(job)
    foreign.mkdir()
    (foreign / "mine.txt").write_text("not the script's")
    with pytest.raises(RuntimeError, match="not written by this script"):
        cached_entry(job, tmp_path)
    assert (foreign / "mine.txt").read_text() == "not the script's"
    assert results["settings"]["seeds"] == [0, 1]


def test_plateau_rule_and_checkpoint_epochs():
    flat = [1.0, 0.5, 0.3, 0.2, 0.15, 0.149, 0.1489, 0.1488, 0.1487, 0.1486]
    assert plateau_reached(flat, window=5, rel=0.01, min_epochs=1)
    assert not plateau_reached(flat[:7], window=5, rel=0.01, min_epochs=1)
    assert not plateau_reached(flat, window=5, rel=0.01, min_epochs=10)  # too early
    falling = [1.0 * 0.9 ** i for i in range(20)]
    assert not plateau_reached(falling, window=5, rel=0.01, min_epochs=1)
    assert checkpoint_epochs(1) == [1] and checkpoint_epochs(12) == [1, 2, 4, 8, 12]


@pytest.mark.slow
def test_never_overwrites_an_output_folder_it_did_not_write(tmp_path, quick):
    import reproduce_digits  # noqa: PLC0415

    (tmp_path / "memorization_vs_k.csv").write_text("someone else's table\n")
    assert reproduce_digits.foreign_outputs(tmp_path) == ["memorization_vs_k.csv"]
    assert reproduce_digits.main(["--quick", "--out", str(tmp_path)]) == 2
    assert (tmp_path / "memorization_vs_k.csv").read_text() == "someone else's table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memorization_vs_k.csv"]
    assert reproduce_digits.foreign_outputs(quick) == []  # the script's own folder: rerun in place
