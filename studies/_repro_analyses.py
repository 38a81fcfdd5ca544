"""The analyses of ``studies/reproduce_digits.py``, one trained (or freshly initialised) model at a time.

Each function returns a flat dict of plain numbers (one table row for one seed); the tables
module aggregates them over seeds. All of them go through the functions the ``flowcore`` CLI
calls (:func:`~flowcore.analysis.memorization.memorization_report`,
:func:`~flowcore.analysis.checkpoints.checkpoint_metrics`,
:func:`~flowcore.dynamics.field.field_grid`, :func:`~flowcore.analysis.probing.probe`,
:func:`~flowcore.analysis.contraction.contraction_ratio`) with explicit seeds.
"""

from __future__ import annotations

import numpy as np

from flowcore import (LatentMap, checkpoint_metrics, contraction_ratio, field_grid, memorization_report,
                      noise_dictionary, probe)

__all__ = ["memorization_row", "checkpoint_rows", "field_row", "probe_rows", "contraction_row", "TorchMap"]


def _f(v) -> float:
    return float("nan") if v is None else float(v)


def memorization_row(bundle: str, x_train: np.ndarray, x_test: np.ndarray, *, n_starts: int, seed: int,
                     max_steps: int) -> dict:
    """Memorization from ``n_starts`` train starts (seeded by ``seed``) of one bundle.

    Returns
    -------
    dict
        ``mem``, ``null_test``, ``null_noise``, ``rank90``, ``test_mse``, ``n_attractors``,
        ``frac_converged``, ``n_max_steps``, ``median_steps`` (floats; NaN when undefined).
    """
    r = memorization_report(LatentMap(bundle, providers="cpu"), x_train, x_test, starts="train",
                            n_starts=n_starts, seed=seed, max_steps=max_steps)
    sc = r.status_counts
    return {"mem": _f(r.mem_mean), "null_test": _f(r.null["test"]["mean"]), "null_noise": _f(r.null["noise"]["mean"]),
            "rank90": float(r.rank), "test_mse": float(r.test_mse), "n_attractors": float(r.n_attractors),
            "frac_converged": sc.get("converged", 0) / max(r.n_starts, 1), "n_max_steps": float(sc.get("max_steps", 0)),
            "median_steps": _f(r.median_steps)}


def checkpoint_rows(bundles: list[str], epochs: list[int], x_train: np.ndarray, x_test: np.ndarray, *,
                    n_starts: int, seed: int, max_steps: int) -> dict[int, dict]:
    """Fig. 3 metrics per checkpoint (same seeded start sets for every checkpoint of one run).

    Returns
    -------
    dict of int to dict
        epoch -> ``mem``, ``test_mse``, ``distinct_train``, ``distinct_test``, ``distinct_noise``,
        ``n_attr_train``, ``n_attr_noise``, ``chamfer_noise_train``, ``fpr95_id_positive``,
        ``median_steps_noise``.
    """
    rows = checkpoint_metrics(bundles, x_train, x_test, n_starts=n_starts, seed=seed, max_steps=max_steps,
                              names=[f"epoch {e}" for e in epochs]).rows()
    out = {}
    for e, r in zip(epochs, rows):
        df, na = r["distinct_fraction"], r["n_attractors"]
        out[e] = {"mem": _f(r["mem_mean"]), "test_mse": _f(r["test_mse"]), "distinct_train": _f(df["train"]),
                  "distinct_test": _f(df["test"]), "distinct_noise": _f(df["noise"]),
                  "n_attr_train": float(na["train"]), "n_attr_noise": float(na["noise"]),
                  "chamfer_noise_train": _f(r["chamfer_noise_train"]), "fpr95_id_positive": _f(r["fpr95_id_positive"]),
                  "median_steps_noise": _f(r["median_steps"]["noise"])}
    return out


def field_row(bundle: str, x_train: np.ndarray, x_test: np.ndarray, *, n_starts: int, seed: int, max_steps: int,
              n_grid: int) -> tuple[dict, object, np.ndarray]:
    """k = 2 field statistics on U[−8, 8]² (the paper's Fig. 1 window) and the attractors.

    Returns
    -------
    row : dict
        ``n_attractors``, ``in_view`` (attractors inside the window), ``max_speed`` and
        ``median_speed`` of ‖V‖ on the grid, ``mem``, ``median_steps``.
    grid : FieldGrid
        For the figure.
    attractors : ndarray of shape (n_attractors, 2), float32
    """
    lm = LatentMap(bundle, providers="cpu")
    r = memorization_report(lm, x_train, x_test, starts="train", n_starts=n_starts, seed=seed, max_steps=max_steps)
    att = np.asarray(r.attractors).reshape(-1, 2)
    g = field_grid(lm, xlim=(-8, 8), ylim=(-8, 8), n=n_grid)
    inside = att[(np.abs(att) <= 8).all(1)]
    row = {"n_attractors": float(r.n_attractors), "in_view": float(len(inside)), "max_speed": float(np.max(g.speed)),
           "median_speed": float(np.median(g.speed)), "mem": _f(r.mem_mean), "median_steps": _f(r.median_steps)}
    return row, g, att


def probe_rows(bundle: str, x_heldout: np.ndarray, x_train: np.ndarray, *, k: int, seed: int,
               max_steps: int) -> tuple[dict[int, dict], dict]:
    """OMP probing with the noise dictionary, the random orthobasis and PCA, and the dictionary's rank.

    Returns
    -------
    per_atoms : dict of int to dict
        s -> ``noise``, ``orthobasis``, ``pca`` (input-space MSE, lower = better).
    summary : dict
        ``noise_rank`` (numerical rank of the k noise attractors: singular values > 1e-3 × the
        largest), ``reference_mse`` (plain AE reconstruction).
    """
    lm = LatentMap(bundle, providers="cpu")
    atoms = tuple(sorted({a for a in (1, 2, 4, 8, 16, 32, 64, 128) if a <= k} | {k}))
    pr = probe(lm, x_heldout, x_train, atoms=atoms, seed=seed, max_steps=max_steps)
    D, _ = noise_dictionary(lm, seed=seed, max_steps=max_steps)
    sv = np.linalg.svd(np.asarray(D, np.float64).reshape(len(D), -1), compute_uv=False)
    rank = int(np.sum(sv > 1e-3 * sv[0])) if len(sv) and sv[0] > 0 else 0
    per = {int(a): {b: float(pr.mse_input[b][i]) for b in pr.mse_input} for i, a in enumerate(pr.atoms)}
    return per, {"noise_rank": float(rank), "reference_mse": float(pr.reference_mse_input)}


class TorchMap:
    """f(z) = E(D(z)) of a torch (encoder, decoder) pair, as the callable :func:`contraction_ratio` takes.

    Parameters
    ----------
    encoder, decoder : nn.Module
        Put in eval mode; called without gradients on (n, k) float32 latents.
    k : int
        Latent size (``latent_shape`` = (k,)).
    """

    def __init__(self, encoder, decoder, k: int):
        encoder.train(False)  # inference mode (torch's Module.eval)
        decoder.train(False)
        self.encoder, self.decoder, self.latent_shape = encoder, decoder, (int(k),)

    def __call__(self, z: np.ndarray, *, batch_size: int = 4096) -> np.ndarray:
        import torch  # noqa: PLC0415  (torch: the studies' extra)

        out = []
        with torch.no_grad():
            for i in range(0, len(z), batch_size):
                zb = torch.from_numpy(np.ascontiguousarray(z[i: i + batch_size], dtype=np.float32))
                out.append(self.encoder(self.decoder(zb)).numpy())
        return np.concatenate(out).astype(np.float32)


def contraction_row(encoder, decoder, k: int, *, seed: int, n: int = 1000) -> dict:
    """σ_out / σ_in (and the two other views) of a model at random init, n N(0, I) latents seeded by ``seed``."""
    import torch  # noqa: PLC0415  (torch: the studies' extra)

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = contraction_ratio(TorchMap(encoder, decoder, k), n=n, seed=seed)
    finally:
        torch.set_num_threads(prev)
    return {"ratio": float(r.ratio), "median_coordinate_ratio": float(r.median_coordinate_ratio),
            "norm_ratio": float(r.norm_ratio), "contracts": float(r.contracts)}
