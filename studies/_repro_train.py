"""Training and the checkpoint cache of ``studies/reproduce_digits.py``.

A *job* is a plain dict that fixes one model: recipe (kind, k, width, lr, weight decay, batch),
seed, data (n_train, split seed), the epoch budget and the stopping rule. :func:`run_jobs` trains
the jobs that are not cached (in ``jobs`` worker processes, one torch thread each; a job's result
does not depend on which worker ran it) and returns one cache entry per job.

Cache layout, one folder per job under ``<out>/cache/<name>/``: ``epNNNN.pt`` (``state_dict`` of
encoder and decoder via ``torch.save``, read back with ``torch.load(weights_only=True)``), the
exported bundles ``bundle_epNNNN/``, ``history.json`` (train / test MSE per epoch) and
``entry.json``, written last, which names the job (recipe + seed + epochs), the files and their
sha256. A folder is reused only when ``entry.json`` names the same job and every file hash
matches; a mismatch retrains (after removing the files that entry lists, which this script
wrote); a folder without an ``entry.json`` of this script is never touched (error).

Stopping rule (``plateau``): after each epoch e ≥ ``min_epochs`` + ``window``, stop when the best
test MSE of the last ``window`` epochs is not at least ``rel`` below the best before them (with
window 5 and rel 0.01: less than 1 % relative improvement over the last 5 epochs), else stop at
``max_epochs``. Jobs with ``steps`` (the training-set-size study) run a fixed number of optimizer
steps instead: ``ceil(steps / ceil(n_train / batch))`` epochs.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np

from flowcore.io import atomic_write_json

__all__ = ["WRITER", "job_name", "plateau_reached", "checkpoint_epochs", "run_jobs", "cached_entry", "train_job", "load_state"]

WRITER = "studies/reproduce_digits.py"


def job_name(job: dict) -> str:
    """Folder name of a job: kind, k, train size, seed (and the step budget when fixed)."""
    s = f"{job['kind']}_k{job['k']}_n{job['n_train']}_s{job['seed']}"
    return s + (f"_steps{job['steps']}" if job.get("steps") else "")


def plateau_reached(test_mse: list[float], *, window: int, rel: float, min_epochs: int) -> bool:
    """True when the best of the last ``window`` test MSEs is not ``rel`` below the best before them.

    Parameters
    ----------
    test_mse : list of float
        Test MSE per epoch so far (epoch 1 first).
    window, rel, min_epochs : int, float, int
        The rule of the module docstring; never true before ``min_epochs + window`` epochs.
    """
    if len(test_mse) < max(min_epochs, 1) + window:
        return False
    before, recent = min(test_mse[:-window]), min(test_mse[-window:])
    return bool(recent > (1.0 - rel) * before)


def checkpoint_epochs(last: int) -> list[int]:
    """1, 2, 4, 8, … up to ``last``, and ``last``."""
    return sorted({2 ** i for i in range(0, 12) if 2 ** i <= last} | {last})


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_entry(folder: Path) -> dict | None:
    p = folder / "entry.json"
    if not p.exists():
        if folder.exists() and any(folder.iterdir()):
            raise RuntimeError(f"{folder} exists but has no entry.json of {WRITER}; it was not written by this "
                               "script and is left alone: choose another --out or remove the folder")
        return None
    entry = json.loads(p.read_text(encoding="utf-8"))
    if entry.get("written_by") != WRITER:
        raise RuntimeError(f"{p} was not written by {WRITER}; left alone (choose another --out)")
    return entry


def cached_entry(job: dict, cache: Path) -> dict | None:
    """The entry of ``job`` when its cache folder holds exactly this job with intact files, else None.

    A stale entry of this script (another job, or a file whose hash changed) is removed with the
    files it lists, so the job retrains there.
    """
    folder = cache / job_name(job)
    entry = _read_entry(folder)
    if entry is None:
        return None
    ok = entry.get("job") == job and all((folder / f).exists() and _sha(folder / f) == h
                                         for f, h in entry.get("files", {}).items())
    ok = ok and all((folder / b / "flow.json").exists() for b in entry.get("bundles", {}).values())
    if ok:
        return entry
    for f in entry.get("files", {}):
        (folder / f).unlink(missing_ok=True)
    for b in entry.get("bundles", {}).values():
        if (folder / b).is_dir():
            shutil.rmtree(folder / b)
    (folder / "entry.json").unlink()
    return None


def _export(enc, dec, x_sample: np.ndarray, path: Path, note: str) -> None:
    import flowcore_torch  # noqa: PLC0415  (torch: the studies' extra)

    flowcore_torch.export(enc, dec, x_sample, path, overwrite=True, real_inputs=x_sample,
                          preprocessing="MNIST / 255, float32 in [0, 1], shape (N, 1, 28, 28)", notes=note)


def train_job(job: dict, x_train: np.ndarray, x_test: np.ndarray, cache: str) -> dict:
    """Train one job, save its checkpoints and bundles into its cache folder; returns its entry.

    Parameters
    ----------
    job : dict
        See the module docstring.
    x_train : ndarray of shape (n_train, 1, 28, 28), float32
    x_test : ndarray of shape (n_test, 1, 28, 28), float32
        The held-out split: test MSE per epoch (the plateau rule).
    cache : str
        The cache root (``<out>/cache``).
    """
    import time  # noqa: PLC0415

    import torch  # noqa: PLC0415  (torch: the studies' extra)
    from flowcore_torch.recipes import seeded_autoencoder, train_autoencoder  # noqa: PLC0415

    folder = Path(cache) / job_name(job)
    folder.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    enc, dec = seeded_autoencoder(job["kind"], job["k"], seed=job["seed"], width=job["width"])
    if job.get("steps"):
        per_epoch = math.ceil(job["n_train"] / job["batch_size"])
        max_epochs = math.ceil(job["steps"] / per_epoch)
    else:
        max_epochs = job["max_epochs"]
    history: list[dict] = []
    states: dict[int, dict] = {}
    wanted = set(checkpoint_epochs(max_epochs)) if job.get("checkpoints") else set()
    rule = job.get("plateau")

    def on_epoch(ep, e, d, train_mse, test_mse):
        history.append({"epoch": ep, "train_mse": train_mse, "test_mse": test_mse})
        stop = bool(rule) and plateau_reached([h["test_mse"] for h in history], **rule)
        if ep in wanted or stop or ep == max_epochs:
            states[ep] = {"encoder": {n: v.clone() for n, v in e.state_dict().items()},
                          "decoder": {n: v.clone() for n, v in d.state_dict().items()}}
        return stop

    t0 = time.perf_counter()
    train_autoencoder(enc, dec, x_train, epochs=max_epochs, batch_size=job["batch_size"], lr=job["lr"],
                      weight_decay=job["weight_decay"], seed=job["seed"], threads=1, x_test=x_test,
                      on_epoch=on_epoch, deterministic=True)
    seconds = time.perf_counter() - t0
    last = history[-1]["epoch"]
    keep = sorted(e for e in states if e in checkpoint_epochs(last) or e == last) if job.get("checkpoints") else [last]
    files, bundles = {}, {}
    for ep in keep:
        name = f"ep{ep:04d}.pt"
        torch.save(states[ep], folder / name)
        files[name] = _sha(folder / name)
        enc.load_state_dict(states[ep]["encoder"])
        dec.load_state_dict(states[ep]["decoder"])
        enc.train(False)  # inference mode (torch's Module.eval)
        dec.train(False)
        bundles[str(ep)] = f"bundle_ep{ep:04d}"
        _export(enc, dec, x_train[:8], folder / bundles[str(ep)], f"{WRITER} {job_name(job)} epoch {ep}")
    atomic_write_json(folder / "history.json", {"job": job, "history": history})
    files["history.json"] = _sha(folder / "history.json")
    plateaued = bool(rule) and plateau_reached([h["test_mse"] for h in history], **rule)
    entry = {"written_by": WRITER, "job": job, "name": job_name(job), "epochs_trained": last,
             "plateaued": plateaued, "final_epoch": last, "files": files, "bundles": bundles,
             "train_seconds": round(seconds, 1)}
    atomic_write_json(folder / "entry.json", entry)
    return entry


def load_state(folder: Path, epoch: int) -> dict:
    """The cached ``state_dict`` pair of one epoch (``torch.load(weights_only=True)``: tensors only)."""
    import torch  # noqa: PLC0415  (torch: the studies' extra)

    return torch.load(folder / f"ep{epoch:04d}.pt", weights_only=True)


def _state_matches(folder: Path, entry: dict, x_test: np.ndarray) -> bool:
    """Rebuild the final model from its cached ``state_dict`` and check it gives the recorded test MSE."""
    import torch  # noqa: PLC0415  (torch: the studies' extra)
    from flowcore_torch.recipes import reconstruction_mse, seeded_autoencoder  # noqa: PLC0415

    job, last = entry["job"], entry["final_epoch"]
    recorded = json.loads((folder / "history.json").read_text(encoding="utf-8"))["history"][-1]["test_mse"]
    enc, dec = seeded_autoencoder(job["kind"], job["k"], seed=job["seed"], width=job["width"])
    state = load_state(folder, last)
    enc.load_state_dict(state["encoder"])
    dec.load_state_dict(state["decoder"])
    enc.train(False)  # inference mode (torch's Module.eval)
    dec.train(False)
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return reconstruction_mse(enc, dec, x_test) == recorded
    finally:
        torch.set_num_threads(prev)


def run_jobs(jobs: list[dict], x_train: np.ndarray, x_test: np.ndarray, cache: Path, *, workers: int,
             subsets: dict | None = None, log=None) -> list[dict]:
    """Entries for every job, training the uncached ones in ``workers`` processes.

    ``subsets`` maps a job name to the index array of its training rows (the size study);
    other jobs train on all of ``x_train``. Returns entries in the order of ``jobs``, each with
    ``cached`` (bool) and ``folder`` added (not part of the stored entry).
    """
    cache.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict] = {}
    todo = []
    for job in jobs:
        e = cached_entry(job, cache)
        if e is not None and not _state_matches(cache / job_name(job), e, x_test):
            e = None  # the stored weights do not give the recorded test MSE: retrain
        if e is not None:
            entries[job_name(job)] = {**e, "cached": True}
        else:
            todo.append(job)
    if log:
        log(f"training {len(todo)} of {len(jobs)} models ({len(jobs) - len(todo)} cached) in {workers} process(es)")
    args = [(j, x_train[subsets[job_name(j)]] if subsets and job_name(j) in subsets else x_train, x_test, str(cache))
            for j in todo]
    if workers > 1 and len(args) > 1:
        import multiprocessing as mp  # noqa: PLC0415

        with mp.get_context("spawn").Pool(min(workers, len(args))) as pool:
            done = pool.starmap(train_job, args, chunksize=1)
    else:
        done = [train_job(*a) for a in args]
    for e in done:
        entries[e["name"]] = {**e, "cached": False}
        if log:
            log(f"  trained {e['name']}: {e['epochs_trained']} epochs ({e['train_seconds']} s)")
    return [{**entries[job_name(j)], "folder": str(cache / job_name(j))} for j in jobs]
