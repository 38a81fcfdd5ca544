"""Data-free probing with noise attractors (PAPER §4.1) and its baselines.

A held-out input is encoded, ``z = E(x)``, approximated by a sparse combination of dictionary
atoms with Orthogonal Matching Pursuit (``min ‖z − A c‖₂`` s.t. ``‖c‖₀ ≤ s``), and decoded,
``x̂ = D(A c)``. Dictionaries (all with unit-norm columns):

- ``"noise"`` — :func:`noise_dictionary`: endpoints of the flow started from N(0, I) latents
  (the paper's data-free dictionary);
- ``"orthobasis"`` — :func:`orthobasis`: a random orthonormal basis (QR of a Gaussian);
- ``"pca"`` — :func:`pca_basis`: principal axes of training latents (reviewers' baseline); the
  target is centred on the training mean first and the mean added back.

Reported errors are MSEs, lower = better, in latent space and in input space. PAPER §6.8: on
small AEs the noise dictionary did not beat the baselines; always read it beside ``"pca"``.
Needs scikit-learn (``orthogonal_mp``; the ``analysis`` extra).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flowcore.errors import BackendError, DataError, ParameterError
from flowcore.results import Array, Result
from flowcore.analysis._similarity import _providers
from flowcore.dynamics.attractors import find_attractors
from flowcore.dynamics.grouping_rules import grouping_from_settings
from flowcore.dynamics.starts import noise_starts
from flowcore.dynamics.trajectories import iterate

__all__ = ["noise_dictionary", "omp_reconstruct", "orthobasis", "pca_basis", "probe", "ProbeReport", "BASES"]

BASES = ("noise", "orthobasis", "pca")


def _sklearn_linear_model():
    try:
        from sklearn import linear_model  # lazy: optional extra scikit-learn (flowcore[analysis])
    except ImportError:
        raise BackendError("OMP probing needs scikit-learn: pip install 'flowcore[analysis]'") from None
    return linear_model


def noise_dictionary(lmap, n: int | None = None, *, seed: int | np.random.Generator = 0, tol: float = 1e-6,
                     max_steps: int = 3000, dedupe: bool = False, metric: str = "cosine",
                     threshold: float = 0.99, batch_size: int = 4096,
                     engine: str = "auto") -> tuple[np.ndarray, dict[str, Any]]:
    """Dictionary of noise attractors: iterate f from N(0, I) latents, keep the converged endpoints.

    Parameters
    ----------
    lmap : LatentMap
    n : int, optional
        Noise starts; default the latent dimension k (a square dictionary, as in the paper's
        "span the space" argument).
    seed : int or numpy.random.Generator, default 0
    tol, max_steps :
        Stopping rule of :func:`flowcore.dynamics.trajectories.iterate`.
    dedupe : bool, default False
        Keep one representative per deduplicated attractor (``metric``/``threshold``) instead of
        every converged endpoint (which may repeat one attractor many times).
    batch_size : int, default 4096
    engine : str, default "auto"
        Trajectory engine (:mod:`flowcore.dynamics.engines`); every engine gives the same results.

    Returns
    -------
    dictionary : ndarray of shape (k, n_atoms), float64
        One atom per column (not normalised; :func:`omp_reconstruct` normalises).
        ``n_atoms ≤ n``: rows that hit max_steps or diverged are dropped.
    info : dict
        n_starts, n_atoms, status counts, median steps (PAPER §6.1), seed, tol, max_steps, dedupe.

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
    traj = iterate(lmap, z0, tol=tol, max_steps=max_steps, batch_size=batch_size, progress=False, engine=engine)
    if dedupe:
        att = find_attractors(traj, grouping=grouping_from_settings(metric, threshold),
                              starts={"kind": "noise", "size": n, "seed": seed if isinstance(seed, int) else None})
        atoms = att.representatives.reshape(att.n_attractors, -1)
    else:
        atoms = traj.flat_final[traj.converged]
    if len(atoms) == 0:
        raise DataError(f"no noise start converged ({traj.counts()}, tol={tol}, max_steps={max_steps}); "
                        "raise max_steps or tol")
    conv = traj.steps[traj.converged]
    info = {"n_starts": n, "n_atoms": int(len(atoms)), "status_counts": traj.counts(),
            "median_steps": float(np.median(conv)), "seed": seed if isinstance(seed, int) else None,
            "tol": float(tol), "max_steps": int(max_steps), "dedupe": bool(dedupe),
            "metric": metric if dedupe else None, "threshold": float(threshold) if dedupe else None}
    return np.ascontiguousarray(atoms.astype(np.float64).T), info


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
        ``A_unit @ c`` for each target.
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


@dataclass(frozen=True)
class ProbeReport(Result):
    """OMP probing errors per basis and atom count.

    Attributes
    ----------
    atoms : ndarray of shape (n_s,), int64
        Requested sparsities s.
    mse_latent : dict of str to ndarray of shape (n_s,), float64
        ``mean ‖z − ẑ‖² / k`` per basis (lower = better).
    mse_input : dict of str to ndarray of shape (n_s,), float64
        ``mean ‖x − D(ẑ)‖² / m`` per basis (lower = better).
    effective_atoms : dict of str to ndarray of shape (n_s,), int64
        s after clamping to the dictionary size and k.
    reference_mse_input : float
        Plain reconstruction ``mean((D(E(x)) − x)²)``: the floor any basis can reach with all atoms.
    dictionary_sizes : dict of str to int
    settings : dict
        seed, tol, max_steps, n_noise, noise dictionary info, n_heldout, providers.

    Saved as ``probe.npz`` (``atoms`` and ``<basis>_<curve>``) + ``probe.json``
    (:class:`flowcore.results.Result`).
    """

    atoms: np.ndarray
    mse_latent: dict[str, np.ndarray]
    mse_input: dict[str, np.ndarray]
    effective_atoms: dict[str, np.ndarray]
    reference_mse_input: float
    dictionary_sizes: dict[str, int]
    settings: dict[str, Any]

    kind: ClassVar[str] = "probe"

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form: per basis, lists aligned with ``atoms``."""
        return {
            "atoms": self.atoms.tolist(),
            "bases": {b: {"mse_latent": self.mse_latent[b].tolist(), "mse_input": self.mse_input[b].tolist(),
                          "effective_atoms": self.effective_atoms[b].tolist(),
                          "dictionary_size": self.dictionary_sizes[b]} for b in self.mse_latent},
            "reference_mse_input": self.reference_mse_input,
            "mse": "mean squared error per coordinate, lower = better",
            "settings": dict(self.settings),
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"atoms": self.atoms}
        for b in self.mse_latent:
            arrays.update({f"{b}_mse_latent": self.mse_latent[b], f"{b}_mse_input": self.mse_input[b],
                           f"{b}_effective_atoms": self.effective_atoms[b]})
        return arrays

    @classmethod
    def _schema(cls, meta: dict[str, Any]) -> dict[str, Array]:
        out = {"atoms": Array("iu", 1, dims=("s",))}
        for b in dict(meta["bases"]):
            out.update({f"{b}_mse_latent": Array("f", 1, dims=("s",)), f"{b}_mse_input": Array("f", 1, dims=("s",)),
                        f"{b}_effective_atoms": Array("iu", 1, dims=("s",))})
        return out

    @classmethod
    def _from_files(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any], folder: Path) -> "ProbeReport":
        bases = list(meta["bases"])
        out = {key: {b: arrays[f"{b}_{key}"] for b in bases} for key in ("mse_latent", "mse_input", "effective_atoms")}
        return cls(atoms=arrays["atoms"], **out, reference_mse_input=float(meta.get("reference_mse_input", "nan")),
                   dictionary_sizes={b: int(meta["bases"][b]["dictionary_size"]) for b in bases},
                   settings=meta.get("settings", {}))


def probe(
    lmap,
    x_heldout: Any,
    x_train: Any,
    *,
    atoms: tuple[int, ...] | None = None,
    seed: int = 0,
    n_noise: int | None = None,
    tol: float = 1e-6,
    max_steps: int = 3000,
    dedupe: bool = False,
    bases: tuple[str, ...] = BASES,
    batch_size: int = 4096,
    engine: str = "auto",
) -> ProbeReport:
    """OMP probing of held-out inputs with the noise dictionary and the two baselines.

    Parameters
    ----------
    lmap : LatentMap
    x_heldout : array-like of shape (n, *input_shape)
        Inputs to reconstruct (test set).
    x_train : array-like of shape (N, *input_shape)
        Used only to fit the PCA baseline (on ``E(x_train)``).
    atoms : tuple of int, optional
        Sparsities s (paper: 32 … 4096 for large latents). Default 1, 2, 4, … up to k, plus k.
    seed : int, default 0
        Noise starts ``seed``, random orthobasis ``seed + 1``.
    n_noise : int, optional
        Noise starts for the dictionary (default k).
    tol, max_steps, dedupe :
        See :func:`noise_dictionary`.
    bases : tuple of {"noise", "orthobasis", "pca"}, default all three
    batch_size : int, default 4096
    engine : str, default "auto"
        Trajectory engine (:mod:`flowcore.dynamics.engines`); every engine gives the same results.

    Returns
    -------
    ProbeReport
        MSE (lower = better) per basis and s, in latent and input space.
    """
    _sklearn_linear_model()
    unknown = set(bases) - set(BASES)
    if unknown or not bases:
        raise ParameterError(f"bases must be a non-empty subset of {BASES}, got {tuple(bases)}")
    k = int(lmap.latent_dim)
    if atoms is None:
        atoms = tuple(sorted({2 ** i for i in range(int(np.log2(k)) + 1)} | {k}))
    atoms_arr = np.asarray(atoms, np.int64).ravel()
    if len(atoms_arr) == 0 or atoms_arr.min() < 1:
        raise ParameterError(f"atoms must be positive integers, got {atoms}")
    x = lmap.check_inputs(x_heldout, "x_heldout")
    z = lmap.encode(x, batch_size=batch_size).reshape(len(x), -1).astype(np.float64)
    x64 = x.reshape(len(x), -1).astype(np.float64)
    ref = lmap.decode(z.astype(np.float32).reshape(len(z), *lmap.latent_shape), batch_size=batch_size)
    reference = float(np.mean((ref.reshape(len(x), -1) - x64) ** 2)) if len(x) else float("nan")

    dicts: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    noise_info = None
    if "noise" in bases:
        d, noise_info = noise_dictionary(lmap, n_noise, seed=seed, tol=tol, max_steps=max_steps, dedupe=dedupe,
                                         batch_size=batch_size, engine=engine)
        dicts["noise"] = (d, None)
    if "orthobasis" in bases:
        dicts["orthobasis"] = (orthobasis(k, seed=seed + 1), None)
    if "pca" in bases:
        comps, mean = pca_basis(lmap.encode(x_train, batch_size=batch_size))
        dicts["pca"] = (comps, mean)

    mse_l, mse_x, eff, sizes = {}, {}, {}, {}
    for name in bases:
        d, mean = dicts[name]
        centre = np.zeros(k) if mean is None else mean
        n_cols = int(np.sum(np.linalg.norm(d, axis=0) > 0))
        sizes[name] = int(d.shape[1])
        mse_l[name], mse_x[name] = np.empty(len(atoms_arr)), np.empty(len(atoms_arr))
        eff[name] = np.minimum(np.minimum(atoms_arr, n_cols), k)
        for i, s in enumerate(atoms_arr):
            zh = omp_reconstruct(d, z - centre, int(s))[0] + centre
            xh = lmap.decode(zh.astype(np.float32).reshape(len(zh), *lmap.latent_shape), batch_size=batch_size)
            mse_l[name][i] = float(np.mean((zh - z) ** 2)) if len(z) else float("nan")
            mse_x[name][i] = float(np.mean((xh.reshape(len(x), -1) - x64) ** 2)) if len(x) else float("nan")
    settings = {"seed": int(seed), "tol": float(tol), "max_steps": int(max_steps),
                "n_noise": k if n_noise is None else int(n_noise), "noise_dictionary": noise_info,
                "orthobasis_seed": int(seed) + 1, "pca": "centred on the E(x_train) mean, all components",
                "atom_normalisation": "unit L2 columns", "n_heldout": int(len(x)), "n_train": int(len(x_train)),
                "latent_dim": k, "providers": _providers(lmap)}
    return ProbeReport(atoms=atoms_arr, mse_latent=mse_l, mse_input=mse_x, effective_atoms=eff,
                       reference_mse_input=reference, dictionary_sizes=sizes, settings=settings)
