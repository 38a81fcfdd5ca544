"""PyOD's detectors as peers for ``studies/ood_benchmark.py``, on raw pixels (flattened to 784).

Every peer is fitted on the same ID train rows as flowcore's detector and scores every split
in the same fixed batches of ``SCORE_BATCH`` rows (ECOD refits its statistics on the train data
plus the batch it scores, so its scores depend on the batch; the others do not). The deep
models run with PyOD's default preprocessing (per-feature standardisation ``1/(std + 1e-8)``)
**and** with it off (``/raw``): the default turns ink on pixels that are always 0 in the
training digits into values near 1e8 (see ANCHORS.md, PyOD pitfalls).

Settings (PyOD 3.6.7 defaults unless named): ``AutoEncoder(hidden_neuron_list=[64, 32],
epoch_num=E)``; ``VAE(encoder [128, 64, 32], decoder [32, 64, 128], latent_dim=2, capacity=0,
epoch_num=E)`` (capacity 0 is PyOD's default: the KL term is clamped at 0); ``DeepSVDD(hidden
[64, 32], epochs=E, learning_rate 1e-4)``; ``KNN(n_neighbors=5, method="largest")``;
``IForest(n_estimators=100)``; ``LOF(n_neighbors=20, novelty=True)``; ``ECOD()``; ``E`` =
``--pyod-epochs``; ``device="cpu"``, ``random_state=seed`` where taken; torch on one thread.
Scores: PyOD's ``decision_function``, higher = more abnormal (flowcore's direction).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

__all__ = ["PEERS", "SCORE_BATCH", "make_peer", "score_peers"]

PEERS = ("pyod AutoEncoder", "pyod AutoEncoder/raw", "pyod VAE", "pyod VAE/raw", "pyod DeepSVDD",
         "pyod DeepSVDD/raw", "pyod KNN", "pyod IForest", "pyod LOF", "pyod ECOD")
SCORE_BATCH = 250


def make_peer(name: str, *, epochs: int, seed: int):
    """A fresh, unfitted PyOD detector for the peer ``name`` (one of ``PEERS``)."""
    prep = not name.endswith("/raw")
    base = name.removeprefix("pyod ").removesuffix("/raw")
    if base == "AutoEncoder":
        from pyod.models.auto_encoder import AutoEncoder  # noqa: PLC0415

        return AutoEncoder(preprocessing=prep, epoch_num=epochs, hidden_neuron_list=[64, 32], device="cpu",
                           random_state=seed, verbose=0)
    if base == "VAE":
        from pyod.models.vae import VAE  # noqa: PLC0415

        return VAE(preprocessing=prep, epoch_num=epochs, device="cpu", random_state=seed, verbose=0)
    if base == "DeepSVDD":
        from pyod.models.deep_svdd import DeepSVDD  # noqa: PLC0415

        return DeepSVDD(n_features=784, hidden_neurons=[64, 32], preprocessing=prep, epochs=epochs,
                        random_state=seed, verbose=0)
    if base == "KNN":
        from pyod.models.knn import KNN  # noqa: PLC0415

        return KNN(n_neighbors=5, method="largest")
    if base == "IForest":
        from pyod.models.iforest import IForest  # noqa: PLC0415

        return IForest(n_estimators=100, random_state=seed)
    if base == "LOF":
        from pyod.models.lof import LOF  # noqa: PLC0415

        return LOF(n_neighbors=20, novelty=True)
    if base == "ECOD":
        from pyod.models.ecod import ECOD  # noqa: PLC0415

        return ECOD()
    raise ValueError(f"unknown peer {name!r}; choose from {', '.join(PEERS)}")


def _batched(det, x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(det.decision_function(x[s:s + SCORE_BATCH]), np.float64).ravel()
                           for s in range(0, len(x), SCORE_BATCH)])


def score_peers(x_train: np.ndarray, x_eval: np.ndarray, *, names=PEERS, epochs: int, seed: int,
                log=None) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Fit each peer on ``x_train`` (N, 1, 28, 28) and score ``x_eval`` (M, 1, 28, 28) in fixed batches.

    Returns
    -------
    scores : dict of str to ndarray of shape (M,), float64 — higher = more OOD
    seconds : dict of str to float — fit + score time per peer
    """
    import torch  # noqa: PLC0415

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    xt = np.ascontiguousarray(x_train.reshape(len(x_train), -1), np.float32)
    xe = np.ascontiguousarray(x_eval.reshape(len(x_eval), -1), np.float32)
    scores, seconds = {}, {}
    try:
        for name in names:
            t0 = time.perf_counter()
            det = make_peer(name, epochs=epochs, seed=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                det.fit(xt)
                s = _batched(det, xe)
            # a peer may return inf/nan (e.g. overflow): keep the ranking, make it finite for the metrics
            s = np.nan_to_num(s, nan=np.nanmax(s[np.isfinite(s)]) if np.isfinite(s).any() else 0.0,
                              posinf=np.finfo(np.float64).max / 4, neginf=-np.finfo(np.float64).max / 4)
            scores[name], seconds[name] = s, time.perf_counter() - t0
            if log:
                log(f"    {name}: {seconds[name]:.1f} s")
    finally:
        torch.set_num_threads(prev)
    return scores, seconds
