"""Helpers of tools/gpu_check.sh (run with the machine's own python3, standard library only).

    python3 tools/_gpu_venv.py link SITE NAME...      link NAME and what it needs (not onnxruntime*) into SITE
    python3 tools/_gpu_venv.py wheel-name WHEEL       the file name pip accepts for WHEEL (from its dist-info)
    python3 tools/_gpu_venv.py summary OUTDIR TSV GPU write OUTDIR/results.json (stage table TSV, nvidia-smi file GPU)

``link`` gives a fresh virtual environment (made WITHOUT the system site packages, which hold the
CPU build of onnxruntime) the packages the machine already has: each distribution's top-level
files (package folders, ``.libs`` folders, ``.dist-info``) are symbolic links into the
interpreter's own site-packages, so pip in the environment sees them as installed and nothing
is downloaded. The dependency closure follows ``Requires-Dist`` without extras. A distribution
already installed in SITE (a carried wheel) is not linked again: pip never upgrades or removes a
linked one, since that would delete the machine's own files through the links.
"""

from __future__ import annotations

import json
import os
import re
import sys
import zipfile
from importlib import metadata
from pathlib import Path

_SKIP = {"onnxruntime", "onnxruntime-gpu"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(dist: metadata.Distribution) -> list[str]:
    out = []
    for req in dist.requires or []:
        name, _, marker = req.partition(";")
        if "extra" in marker:  # extras are not followed
            continue
        if marker.strip():
            try:
                from packaging.markers import Marker  # the machine's packaging, when there
                if not Marker(marker.strip()).evaluate({"extra": ""}):
                    continue
            except Exception:
                pass
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", name)
        if match:
            out.append(match.group(1))
    return out


def _top_level(dist: metadata.Distribution) -> set[str]:
    tops = set()
    for f in dist.files or []:
        parts = Path(str(f)).parts
        if not parts or parts[0] in ("..", "__pycache__") or str(f).endswith(".pth"):
            continue
        tops.add(parts[0])
    if not tops:  # no RECORD: top_level.txt and the metadata folder itself
        tops.update((dist.read_text("top_level.txt") or "").split())
        meta = getattr(dist, "_path", None)
        if meta is not None:
            tops.add(Path(str(meta)).name)
    return tops


def link(site: str, names: list[str]) -> int:
    """Symlink each distribution in ``names`` and its dependency closure into ``site``."""
    target = Path(site)
    target.mkdir(parents=True, exist_ok=True)
    present = {_norm(p.name.rsplit("-", 1)[0]) for p in target.glob("*.dist-info")}
    seen: set[str] = set()
    todo = list(names)
    linked, missing = [], []
    while todo:
        name = todo.pop()
        key = _norm(name)
        if key in seen or key in _SKIP:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        todo.extend(_requirements(dist))
        if key in present:
            continue
        root = Path(str(dist.locate_file("")))
        for top in sorted(_top_level(dist)):
            src, dst = root / top, target / top
            if src.exists() and not os.path.lexists(dst):
                os.symlink(src, dst)
        linked.append(f"{dist.metadata['Name']}=={dist.version}")
    print(f"linked {len(linked)}: {' '.join(sorted(linked))}")
    if missing:
        print(f"not on this machine (skipped): {' '.join(sorted(missing))}")
    return 0


def wheel_name(path: str) -> int:
    """Print ``name-version-tags.whl`` read from the wheel's ``.dist-info`` (METADATA and WHEEL)."""
    with zipfile.ZipFile(path) as zf:
        info = next(n.split("/")[0] for n in zf.namelist() if n.split("/")[0].endswith(".dist-info"))
        meta = zf.read(f"{info}/METADATA").decode("utf-8", "replace")
        wheel = zf.read(f"{info}/WHEEL").decode("utf-8", "replace")
    field = dict(line.split(": ", 1) for line in meta.splitlines() if ": " in line and not line.startswith(" "))
    tags = [line.split(": ", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag: ")]
    py, abi, plat = (sorted({t.split("-")[i] for t in tags}) for i in range(3))
    name = re.sub(r"[-_.]+", "_", field["Name"])
    print(f"{name}-{field['Version']}-{'.'.join(py)}-{'.'.join(abi)}-{'.'.join(plat)}.whl")
    return 0


def summary(outdir: str, tsv: str, gpu_file: str) -> int:
    """results.json: the GPU, each stage's exit code, seconds and log, doctor's JSON, pytest's last line."""
    out = Path(outdir)
    stages = []
    for line in Path(tsv).read_text().splitlines():
        name, rc, secs, log = (line.split("\t") + ["", "", ""])[:4]
        skipped = rc == "skipped"
        stages.append({"stage": name, "rc": None if skipped else int(rc), "skipped": skipped,
                       "seconds": int(secs), "log": log, "timed_out": rc in ("124", "137")})
    result: dict = {"stages": stages, "ok": all(s["rc"] == 0 for s in stages if not s["skipped"])}
    gpu = Path(gpu_file)
    result["gpu"] = gpu.read_text().strip().splitlines() if gpu.exists() else None
    doctor = out / "doctor.json"
    try:
        result["doctor"] = json.loads(doctor.read_text())
    except (OSError, ValueError):
        result["doctor"] = None
    log = out / "pytest_cuda.log"
    if log.exists():
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        result["pytest_cuda"] = lines[-1] if lines else ""
    bench = out / "bench"
    result["bench_files"] = sorted(p.name for p in bench.iterdir()) if bench.is_dir() else []
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("ok", "gpu", "pytest_cuda", "bench_files") if k in result}))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "link":
        return link(argv[1], argv[2:])
    if len(argv) == 2 and argv[0] == "wheel-name":
        return wheel_name(argv[1])
    if len(argv) == 4 and argv[0] == "summary":
        return summary(argv[1], argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
