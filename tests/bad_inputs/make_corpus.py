"""Generate the bad-input corpus: every case as files in a folder, plus ``cases.json`` describing it.

Usage::

    python tests/bad_inputs/make_corpus.py OUT_DIR      # writes OUT_DIR/shared, OUT_DIR/cases/<id>/, OUT_DIR/cases.json

Nothing here is a committed binary: the bundles are small hand-built ONNX autoencoders, the
data are seeded NumPy arrays, and each case is made from those by a builder function
(``bi_cases_*.py``). ``tests/test_bad_inputs.py`` runs every case (one parametrized test each)
and checks the exit code, the single ``error:`` line, no traceback, the output path unchanged
and every user file untouched.

Case modules: ``bi_cases_bundle`` (manifests, graphs, external data, symlinks), ``bi_cases_data``
(data files, pickle payloads, arrays, the Python API), ``bi_cases_detector`` (detector folders),
``bi_cases_output`` (output folders, --force, unwritable paths, disk full), ``bi_cases_cli``
(typos, abbreviations, ranges, sizes).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bi_assets  # noqa: E402
import bi_cases_bundle  # noqa: E402, F401  (registers cases)
import bi_cases_cli  # noqa: E402, F401
import bi_cases_data  # noqa: E402, F401
import bi_cases_detector  # noqa: E402, F401
import bi_cases_output  # noqa: E402, F401
from bi_assets import CASES, Case, Env, build_env  # noqa: E402

__all__ = ["CASE_IDS", "build_env", "materialize", "main"]

CASE_IDS = sorted(CASES)


def materialize(name: str, env: Env, root: Path) -> tuple[Case, Path]:
    """Write case ``name``'s files into ``root/<name>/`` and return (case, folder)."""
    folder = root / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return CASES[name](env, folder), folder


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: make_corpus.py OUT_DIR\n")
        return 2
    out = Path(argv[0]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = build_env(out)
    index = {}
    for name in CASE_IDS:
        case, _ = materialize(name, env, out / "cases")
        index[name] = case.describe()
        if case.cleanup is not None:
            case.cleanup()
    (out / "cases.json").write_text(json.dumps(index, indent=2) + "\n")
    sys.stdout.write(f"{len(index)} bad inputs written to {out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
