"""Output folders: foreign non-empty folders, --force, regular files, unwritable paths, disk full.

Tests run as root here, and root ignores permission bits, so "unwritable" is made three ways
that stop root too: a path under a regular file (``file/sub``, everywhere), an immutable folder
(``chattr +i``, where the filesystem allows it) and a 64 KiB tmpfs for disk-full (where
``mount`` is permitted); ENOSPC is also simulated in-process for the CLI and the API.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

from bi_assets import BAD, RUNTIME, Case, case

NOTE = "my own notes, not flowcore's\n"


def _foreign(d: Path, *names: str) -> tuple[Path, tuple[Path, ...]]:
    out = d / "out"
    out.mkdir()
    files = []
    for n in names or ("my_notes.txt",):
        (out / n).write_text(NOTE + n + "\n")
        files.append(out / n)
    return out, tuple(files)


def _commands(env, out: Path) -> dict[str, list[str]]:
    b, x = str(env.bundle), str(env.data)
    return {
        "trajectories": ["trajectories", b, "--data", x, "--out", str(out)],
        "attractors": ["attractors", b, "--noise", "16", "--out", str(out)],
        "field": ["field", b, "--n", "4", "--no-figures", "--out", str(out)],
        "memorization": ["memorization", b, "--train", x, "--test", x, "--n-starts", "8", "--no-figures",
                         "--out", str(out)],
        "dynamics": ["dynamics", b, b, "--train", x, "--test", x, "--n-starts", "8", "--no-figures", "--out", str(out)],
        "probe": ["probe", b, "--heldout", x, "--train", x, "--no-figures", "--out", str(out)],
        "stability": ["stability", str(env.attractors), "--out", str(out)],
        "ood_fit": ["ood", "fit", b, "--id", x, "--methods", "recon_error,latent_norm", "--default", "recon_error",
                    "--out", str(out)],
        "ood_eval": ["ood", "eval", str(env.detector), "--id", x, "--ood", f"same={x}", "--out", str(out)],
        "demo": ["demo", "--noise", "8", "--out", str(out)],
    }


# user files whose names flowcore itself writes, per command (the reports)
_CLASHES = {"trajectories": ("summary.json",), "attractors": ("summary.json",), "ood_eval": ("report.json", "metrics.csv"),
            "field": ("field.csv", "field.json"), "demo": ("demo_summary.json",)}


def _register(cmd: str) -> None:
    @case(f"out_foreign_nonempty_{cmd}")
    def _(env, d):
        out, _ = _foreign(d, "my_notes.txt", *_CLASHES.get(cmd, ()))
        return Case(argv=_commands(env, out)[cmd], out=out, names=("out",))

    @case(f"out_foreign_force_keeps_user_file_{cmd}")
    def _(env, d):
        out, keep = _foreign(d, "my_notes.txt")
        return Case(argv=_commands(env, out)[cmd] + ["--force"], code=0, out=out, keep=keep,
                    note="--force writes flowcore's files and leaves the user's")


for _cmd in ("trajectories", "attractors", "field", "memorization", "dynamics", "probe", "stability", "ood_fit",
             "ood_eval", "demo"):
    _register(_cmd)


@case("out_force_never_replaces_user_summary")
def _(env, d):
    out, keep = _foreign(d, "summary.json")
    return Case(argv=_commands(env, out)["trajectories"] + ["--force"], out=out, names=("summary.json",),
                note="--force replaces only flowcore's own files; a user's summary.json is refused, not overwritten")


@case("out_earlier_detector_with_user_note")
def _(env, d):
    out = d / "det"
    shutil.copytree(env.detector, out)
    (out / "my_notes.txt").write_text(NOTE)
    return Case(argv=_commands(env, out)["ood_fit"], code=0, out=out, keep=(out / "my_notes.txt",),
                note="re-fitting into flowcore's own detector folder keeps the user's note")


@case("out_is_regular_file_trajectories")
def _(env, d):
    (d / "out").write_text(NOTE)
    return Case(argv=_commands(env, d / "out")["trajectories"], out=d / "out", names=("out",))


@case("out_is_regular_file_field")
def _(env, d):
    (d / "out").write_text(NOTE)
    return Case(argv=_commands(env, d / "out")["field"], out=d / "out", names=("out",))


@case("out_is_regular_file_ood_eval")
def _(env, d):
    (d / "out").write_text(NOTE)
    return Case(argv=_commands(env, d / "out")["ood_eval"], out=d / "out", names=("out",))


@case("ood_score_out_is_folder")
def _(env, d):
    (d / "out").mkdir()
    return Case(argv=["ood", "score", str(env.detector), "--data", str(env.data), "--out", str(d / "out")],
                out=d / "out", names=("out",))


@case("ood_score_out_existing_user_csv")
def _(env, d):
    (d / "scores.csv").write_text("my,own,table\n")
    return Case(argv=["ood", "score", str(env.detector), "--data", str(env.data), "--out", str(d / "scores.csv")],
                out=d / "scores.csv", names=("scores.csv",))


@case("out_under_regular_file")
def _(env, d):
    (d / "file").write_text(NOTE)
    return Case(argv=_commands(env, d / "file" / "sub")["attractors"], out=d / "file", names=("file",),
                note="unwritable even for root: the parent is a regular file")


@case("export_out_under_regular_file")
def _(env, d):
    (d / "file").write_text(NOTE)
    (d / "enc.pt2").write_bytes(os.urandom(256))
    return Case(argv=["export", "--encoder", str(d / "enc.pt2"), "--decoder", str(d / "enc.pt2"), "--example",
                      str(env.data), "--out", str(d / "file" / "b")], names=("file",))


@case("out_immutable_folder")
def _(env, d):
    out = d / "out"
    out.mkdir()
    ok = subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode == 0 if shutil.which("chattr") else False
    cleanup = (lambda: subprocess.run(["chattr", "-i", str(out)], capture_output=True)) if ok else None
    return Case(argv=_commands(env, out / "sub")["trajectories"], out=out, names=("out",), cleanup=cleanup,
                skip=None if ok else "chattr +i is not available here")


@case("out_disk_full_tmpfs")
def _(env, d):
    mnt = d / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    ok = r.returncode == 0
    cleanup = (lambda: subprocess.run(["umount", str(mnt)], capture_output=True)) if ok else None
    return Case(argv=["trajectories", str(env.bundle), "--noise", "20000", "--out", str(mnt / "out")],
                code=RUNTIME, out=mnt / "out", names=("out",), cleanup=cleanup,
                skip=None if ok else "cannot mount a tmpfs here (not root)")


def _enospc(monkeypatch) -> None:
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)


@case("out_disk_full_simulated_cli")
def _(env, d):
    return Case(argv=_commands(env, d / "out")["attractors"], code=RUNTIME, out=d / "out", names=("out",),
                patch=_enospc, note="ENOSPC from os.fsync during the write")


@case("out_disk_full_simulated_api")
def _(env, d):
    from flowcore.dynamics.trajectories import Trajectories  # noqa: PLC0415

    traj = Trajectories.load(env.attractors)
    return Case(call=lambda: traj.save(d / "out"), error="FlowcoreError", code=RUNTIME, names=("out",),
                out=d / "out", patch=_enospc)
