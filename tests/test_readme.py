"""The README's code runs as written.

Every ```python block runs: the blocks of one section together, in order, in a fresh process
in a temporary folder. Every ``flowcore …`` line of every ```sh block runs too (in README order,
in a temporary folder, the shipped demo files standing in for the checkout's
``flowcore/data/demo/`` paths), except the few listed in ``ILLUSTRATIVE`` with the reason they
cannot run here. The sections run side by side (each is one or more child processes), so the
whole check takes about as long as its longest section.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import flowcore

README = Path(__file__).resolve().parents[1] / "README.md"
DEMO = Path(flowcore.demo_paths()[0]).parent  # flowcore/data/demo of the installed package

#: ``flowcore …`` lines of the README that are not run, and why (keep this short).
ILLUSTRATIVE = {
    "flowcore export --autoencoder ae.pt2 ": "needs the user's saved torch ExportedProgram ae.pt2",
    "flowcore export --autoencoder ae.pt ": "needs the user's TorchScript file ae.pt",
    "flowcore export --encoder enc.keras ": "needs the user's saved Keras models",
    "flowcore export --encoder enc_savedmodel/ ": "needs the user's TensorFlow SavedModels",
    "flowcore export --autoencoder flat.keras ": "needs the user's saved flat Keras Sequential",
}


def _sections() -> list[tuple[str, str]]:
    """(title, body) of every ``## `` section of the README, in order."""
    text = README.read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return [(parts[i].strip(), parts[i + 1]) for i in range(1, len(parts), 2)]


def _blocks(body: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", body, flags=re.S)


def _flowcore_lines() -> list[str]:
    """Every line of a ```sh block that runs ``flowcore``, comments stripped, in README order."""
    lines = []
    for _, body in _sections():
        for block in _blocks(body, "sh"):
            for line in block.splitlines():
                cmd = line.split(" #", 1)[0].strip()
                if cmd.startswith("flowcore "):
                    lines.append(cmd)
    return lines


def _env() -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=_env())


def _run_sh_lines(lines: list[str], cwd: Path) -> list[tuple[str, subprocess.CompletedProcess]]:
    cwd.mkdir(parents=True, exist_ok=True)
    done = []
    for line in lines:
        args = [a.replace("flowcore/data/demo/", f"{DEMO}/") for a in shlex.split(line)[1:]]
        proc = subprocess.run([sys.executable, "-m", "flowcore", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=300, env=_env())
        done.append((line, proc))
        if proc.returncode != 0:
            break
    return done


def test_illustrative_list_is_short_and_current():
    lines = _flowcore_lines()
    assert len(ILLUSTRATIVE) <= 6, "prefer README commands that run on the shipped demo bundle"
    for prefix in ILLUSTRATIVE:
        assert any(line.startswith(prefix) for line in lines), f"ILLUSTRATIVE lists a line the README lost: {prefix!r}"


def test_every_readme_code_block_runs(tmp_path):
    sections = _sections()
    python = [(title, "\n".join(_blocks(body, "python"))) for title, body in sections if _blocks(body, "python")]
    titles = [t for t, _ in python]
    assert "Python API tour" in titles and "Export your model" in titles, titles
    assert len(_blocks(dict(sections)["Export your model"], "python")) == 2, "a torch and a Keras export example"
    shell = [line for line in _flowcore_lines() if not any(line.startswith(p) for p in ILLUSTRATIVE)]
    assert len(shell) >= 10, shell  # the CLI tour runs

    # the export section's two blocks are independent (torch, Keras): run them as two jobs
    jobs = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs["sh"] = pool.submit(_run_sh_lines, shell, tmp_path / "sh")
        for i, (title, code) in enumerate(python):
            if title == "Export your model":
                for j, block in enumerate(_blocks(dict(sections)[title], "python")):
                    jobs[f"{title} [{j}]"] = pool.submit(_run_python, block, tmp_path / f"export{j}")
            else:
                jobs[title] = pool.submit(_run_python, code, tmp_path / f"py{i}")
        results = {name: job.result() for name, job in jobs.items()}

    for line, proc in results.pop("sh"):
        assert proc.returncode == 0, f"README line failed: {line}\n{proc.stderr[-2000:]}"
    assert len(results) == len(python) + 1
    for name, proc in results.items():
        assert proc.returncode == 0, f"README section {name!r} failed:\n{proc.stderr[-3000:]}"

    # what the blocks say they do, they did
    tour = results["Python API tour"].stdout
    assert "360 of 360 converged" in tour and "attractors; basin fractions" in tour and "flagged: digits" in tour
    assert (tmp_path / f"py{titles.index('Python API tour')}" / "detector").is_dir()
    assert (tmp_path / "export0" / "torch_bundle" / "flow.json").is_file()
    assert (tmp_path / "export1" / "keras_bundle" / "flow.json").is_file()
    sh = tmp_path / "sh"
    for folder in ("runs", "noise_runs", "att", "con", "field", "det", "demo_out"):
        assert (sh / folder / ".flowcore-output.json").is_file(), folder
    assert (sh / "scores.csv").is_file()


def _anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_of_the_readme_and_docs_resolve():
    """Every relative link of README.md and docs/*.md names a file that exists, and its #anchor a heading there."""
    root = README.parent
    pages = [README, *sorted((root / "docs").glob("*.md"))]
    checked = 0
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.name}: broken link {target}"
            if anchor and dest.suffix == ".md":
                heads = re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), flags=re.M)
                assert anchor in {_anchor(h) for h in heads}, f"{page.name}: no heading for #{anchor} in {dest.name}"
            checked += 1
    assert checked >= 15, checked
