"""The probing dictionaries and the OMP solve (private; public names re-exported by :mod:`flowcore.analysis.probing`).

- :func:`noise_dictionary` — one atom per distinct noise attractor, near-dependent atoms refused
  (``MIN_SINE``), with :func:`dictionary_rank`;
- :func:`orthobasis`, :func:`pca_basis` — the baselines;
- :func:`omp_reconstruct` — scikit-learn's ``orthogonal_mp`` in float64.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from flowcore.errors import BackendError, DataError, ParameterError
from flowcore.dynamics.attractors import find_attractors
from flowcore.dynamics.grouping_rules import grouping_from_settings
from flowcore.dynamics.starts import noise_starts
from flowcore.dynamics.iterate_options import IterateOptions
from flowcore.dynamics.trajectories import iterate

__all__ = ["noise_dictionary", "omp_reconstruct", "orthobasis", "pca_basis", "BASES",
           "dictionary_rank", "MIN_SINE", "RANK_RTOL"]

BASES = ("noise", "orthobasis", "pca")
MIN_SINE = 1e-3
"""An atom whose unit vector lies closer than this to the span of the atoms kept before it (the
sine of the angle between them) is refused from the noise dictionary: its OMP coefficients
would blow up (≈ 1 / sine) to fit rounding noise."""
RANK_RTOL = 1e-6
"""Singular values of the unit-norm atoms below ``RANK_RTOL × the largest`` do not count towards
the rank (float32 endpoints carry about 1e-7 relative rounding)."""


def _n(count: int, noun: str) -> str:
    """``"1 atom"``, ``"2 atoms"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _sklearn_linear_model():
    try:
        from sklearn import linear_model  # lazy: optional extra scikit-learn (flowcore[analysis])
    except ImportError:
        raise BackendError("OMP probing needs scikit-learn: pip install 'flowcore[analysis]'") from None
    return linear_model


def dictionary_rank(dictionary: Any, *, rtol: float = RANK_RTOL) -> int:
    """Numerical rank of a dictionary's unit-normalised columns.

    Parameters
    ----------
    dictionary : array-like of shape (k, n_cols)
        Atoms as columns; all-zero columns are ignored.
    rtol : float, default RANK_RTOL
        Singular values below ``rtol × the largest`` do not count.

    Returns
    -------
    int
        In [0, min(k, n_cols)]: the most atoms OMP can combine into independent directions.

    Examples
    --------
    >>> import numpy as np
    >>> dictionary_rank(np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 1.0]]))  # two parallel atoms
    2
    """
    a = np.asarray(dictionary, np.float64)
    if a.ndim != 2:
        raise DataError(f"dictionary must be (k, n_cols), got shape {a.shape}")
    norms = np.linalg.norm(a, axis=0)
    unit = a[:, norms > 0] / norms[norms > 0]
    if unit.shape[1] == 0:
        return 0
    sv = np.linalg.svd(unit, compute_uv=False)
    return int(np.sum(sv > float(rtol) * sv[0]))


def _independent_atoms(atoms: np.ndarray, min_sine: float) -> np.ndarray:
    """Indices of the rows of ``atoms`` (n, k) kept in order: each kept row lies at least
    ``min_sine`` (unit-normalised) from the span of the rows kept before it, until those span R^k;
    an overcomplete dictionary then keeps a row unless it lies within ``min_sine`` of one kept
    row (a near-duplicate), and OMP picks among them greedily."""
    k = atoms.shape[1]
    basis = np.zeros((0, k))
    kept_units = np.zeros((0, k))
    keep = []
    for i, row in enumerate(atoms.astype(np.float64)):
        nrm = np.linalg.norm(row)
        if not nrm > 0:
            continue
        u = row / nrm
        if len(basis) == k:
            cos = np.abs(kept_units @ u).max()
            if np.sqrt(max(0.0, 1.0 - cos * cos)) >= min_sine:
                keep.append(i)
                kept_units = np.vstack([kept_units, u])
            continue
        r = u - basis.T @ (basis @ u)
        r -= basis.T @ (basis @ r)  # second Gram-Schmidt pass: orthogonal to working precision
        sine = float(np.linalg.norm(r))
        if sine >= min_sine:
            keep.append(i)
            basis = np.vstack([basis, r / sine])
            kept_units = np.vstack([kept_units, u])
    return np.asarray(keep, np.int64)


def noise_dictionary(lmap, n: int | None = None, *, seed: int | np.random.Generator = 0, tol: float = 1e-6,
                     max_steps: int = 3000, dedupe: bool = True, metric: str = "cosine",
                     threshold: float = 0.99, batch_size: int = 4096,
                     engine: str = "auto") -> tuple[np.ndarray, dict[str, Any]]:
    """Dictionary of noise attractors: iterate f from N(0, I) latents, one atom per distinct attractor.

    Parameters
    ----------
    lmap : LatentMap
    n : int, optional
        Noise starts; default the latent dimension k (a square dictionary, as in the paper's
        "span the space" argument).
    seed : int or numpy.random.Generator, default 0
    tol, max_steps :
        Stopping rule of :func:`flowcore.dynamics.trajectories.iterate`.
    dedupe : bool, default True
        One atom per distinct attractor (the representative of each group of converged
        endpoints, grouped by ``metric``/``threshold``), largest basin first. ``False`` keeps
        every converged endpoint, in start order: many repeat one attractor, and all but the
        first of those are then refused as ill-conditioned (``MIN_SINE``).
    metric, threshold :
        Grouping rule of the endpoints (:func:`flowcore.dynamics.grouping_rules.grouping_from_settings`;
        default cosine > 0.99, as for the attractors).
    batch_size : int, default 4096
    engine : str, default "auto"
        Trajectory engine (:mod:`flowcore.dynamics.engines`); every engine gives the same results.

    Returns
    -------
    dictionary : ndarray of shape (k, n_atoms), float64
        One atom per column (not normalised; :func:`omp_reconstruct` normalises). ``n_atoms ≤
        n_distinct``: rows that hit max_steps or diverged are dropped, and so is an atom lying
        within ``MIN_SINE`` of the span of the atoms before it (once they span R^k: of one of them).
    info : dict
        n_starts, n_endpoints (converged), n_distinct (distinct attractors), n_atoms, n_refused
        (ill-conditioned atoms dropped), rank (:func:`dictionary_rank`), basin_counts (starts per
        atom), status counts, median steps (PAPER §6.1), seed, tol, max_steps, dedupe, metric,
        threshold, min_sine, rank_rtol.

    Raises
    ------
    DataError
        When no start converged.
    """
    k = int(lmap.latent_dim)
    n = k if n is None else int(n)
    if n < 1:
        raise ParameterError(f"n must be >= 1, got {n}")
    z0 = noise_starts(lmap.latent_shape, n, seed=seed)
    traj = iterate(lmap, z0, tol=tol, max_steps=max_steps, batch_size=batch_size, progress=False,
                   options=IterateOptions(engine=engine))
    if not traj.converged.any():
        raise DataError(f"no noise start converged ({traj.counts()}, tol={tol}, max_steps={max_steps}); "
                        "raise max_steps or tol")
    att = find_attractors(traj, grouping=grouping_from_settings(metric, threshold),
                          starts={"kind": "noise", "size": n, "seed": seed if isinstance(seed, int) else None})
    if dedupe:
        order = np.argsort(-att.counts, kind="stable")  # largest basin first
        atoms = att.representatives.reshape(att.n_attractors, -1)[order]
        counts = att.counts[order]
    else:
        atoms = traj.flat_final[traj.converged]
        counts = np.ones(len(atoms), np.int64)
    keep = _independent_atoms(atoms, MIN_SINE)
    atoms, counts = atoms[keep], counts[keep]
    dictionary = np.ascontiguousarray(atoms.astype(np.float64).T)
    conv = traj.steps[traj.converged]
    info = {"n_starts": n, "n_endpoints": int(traj.converged.sum()), "n_distinct": int(att.n_attractors),
            "n_atoms": int(len(keep)), "n_refused": int((att.n_attractors if dedupe else int(traj.converged.sum()))
                                                        - len(keep)),
            "rank": dictionary_rank(dictionary), "basin_counts": counts.astype(int).tolist(),
            "status_counts": traj.counts(), "median_steps": float(np.median(conv)),
            "seed": seed if isinstance(seed, int) else None, "tol": float(tol), "max_steps": int(max_steps),
            "dedupe": bool(dedupe), "metric": metric, "threshold": float(threshold), "min_sine": MIN_SINE,
            "rank_rtol": RANK_RTOL}
    return dictionary, info


def omp_reconstruct(dictionary: Any, targets: Any, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse approximation of each target with at most ``n_atoms`` unit-normalised atoms (OMP).

    Parameters
    ----------
    dictionary : array-like of shape (k, n_cols)
        Atoms as columns. Each is scaled to unit L2 norm; all-zero columns are dropped.
    targets : array-like of shape (n, k)
        Vectors to approximate (e.g. latents ``E(x)``).
    n_atoms : int
        Sparsity s ≥ 1, clamped to ``min(s, n_nonzero_cols, k)`` (OMP cannot use more).

    Returns
    -------
    recon : ndarray of shape (n, k), float64
        ``A_unit @ c`` for each target (solved in float64, whatever the input dtypes).
    coef : ndarray of shape (n, n_cols), float64
        Coefficients on the unit-normalised atoms (zero for dropped columns), ≤ s nonzero per row.

    Raises
    ------
    DataError
        Shape mismatch, NaN/Inf, s < 1, or no nonzero column.
    """
    lm = _sklearn_linear_model()
    a = np.asarray(dictionary, np.float64)
    t = np.asarray(targets, np.float64)
    if a.ndim != 2:
        raise DataError(f"dictionary must be (k, n_cols), got shape {a.shape}")
    t = t.reshape(len(t), -1)
    if t.shape[1] != a.shape[0]:
        raise DataError(f"targets have {t.shape[1]} features but dictionary atoms have {a.shape[0]} "
                        "(atoms are columns: pass dictionary of shape (k, n_cols))")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(t))):
        raise DataError("dictionary or targets contain NaN or Inf")
    if int(n_atoms) < 1:
        raise ParameterError(f"n_atoms must be >= 1, got {n_atoms}")
    norms = np.linalg.norm(a, axis=0)
    keep = norms > 0
    if not keep.any():
        raise DataError("dictionary has no nonzero column")
    unit = a[:, keep] / norms[keep]
    s = min(int(n_atoms), unit.shape[1], unit.shape[0])
    coef = np.zeros((len(t), a.shape[1]))
    if len(t) == 0:
        return np.empty((0, a.shape[0])), coef
    with warnings.catch_warnings():
        # OMP stops early when the residual vanishes (exact fit) or atoms are dependent: benign here
        warnings.filterwarnings("ignore", message=".*ended prematurely.*")
        c = lm.orthogonal_mp(unit, t.T, n_nonzero_coefs=s)
    c = np.asarray(c).reshape(unit.shape[1], len(t)).T
    coef[:, keep] = c
    return c @ unit.T, coef


def orthobasis(k: int, *, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Random orthonormal basis of R^k: QR of a standard Gaussian matrix (Haar, signs fixed).

    Parameters
    ----------
    k : int
    seed : int or numpy.random.Generator, default 0

    Returns
    -------
    ndarray of shape (k, k), float64
        Orthonormal columns (``Q.T @ Q = I``).
    """
    if int(k) < 1:
        raise ParameterError(f"k must be >= 1, got {k}")
    g = np.random.default_rng(seed).standard_normal((int(k), int(k)))
    q, r = np.linalg.qr(g)
    d = np.sign(np.diag(r))
    return q * np.where(d == 0, 1.0, d)


def pca_basis(latents_train: Any, *, n_components: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Principal axes of training latents (SVD of the centred matrix).

    Parameters
    ----------
    latents_train : array-like of shape (N, ...)
        Training latents ``E(x_train)``, flattened to (N, k).
    n_components : int, optional
        Default ``min(N, k)``: all axes, so the basis spans the data's affine hull.

    Returns
    -------
    components : ndarray of shape (k, c), float64
        Orthonormal axes as columns, by decreasing variance.
    mean : ndarray of shape (k,), float64
        Training mean (subtract before projecting).
    """
    z = np.asarray(latents_train, np.float64)
    z = z.reshape(len(z), -1)
    if len(z) < 1 or not np.all(np.isfinite(z)):
        raise DataError("latents_train must be non-empty and finite")
    c = min(z.shape) if n_components is None else int(n_components)
    if not 1 <= c <= min(z.shape):
        raise ParameterError(f"n_components must be in [1, {min(z.shape)}], got {n_components}")
    mean = z.mean(0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    return np.ascontiguousarray(vt[:c].T), mean


