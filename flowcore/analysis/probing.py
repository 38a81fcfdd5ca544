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

The noise dictionary holds **one atom per distinct attractor** (endpoints grouped by the rule of
:func:`flowcore.dynamics.attractors.find_attractors`, cosine > 0.99 by default), largest basin
first, and refuses an atom lying within ``MIN_SINE`` of the span of the atoms kept before it
(once those span the latent space: within ``MIN_SINE`` of one of them).
Many noise starts reaching a few attractors would otherwise give near-duplicate columns, and OMP
would fit the float32 rounding noise between them with huge coefficients: a latent error that
"improves" past the dictionary's rank, then rises. With a fixed dictionary OMP's residual is
non-increasing in the atom count; an atom count above the dictionary's size is capped (the
report marks those rows) and :class:`~flowcore.errors.ProbeDictionaryWarning` is issued.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flowcore.errors import BackendError, DataError, ParameterError, ProbeDictionaryWarning
from flowcore.results import Array, Result
from flowcore.analysis._similarity import _providers
from flowcore.dynamics.attractors import find_attractors
from flowcore.dynamics.grouping_rules import grouping_from_settings
from flowcore.dynamics.starts import noise_starts
from flowcore.dynamics.iterate_options import IterateOptions
from flowcore.dynamics.trajectories import iterate

__all__ = ["noise_dictionary", "omp_reconstruct", "orthobasis", "pca_basis", "probe", "ProbeReport", "BASES",
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
        s after clamping to the dictionary size and k; rows where it is below ``atoms`` are
        :attr:`capped` (they repeat the error at the capped count, they do not improve on it).
    reference_mse_input : float
        Plain reconstruction ``mean((D(E(x)) − x)²)``: the floor any basis can reach with all atoms.
    dictionary_sizes : dict of str to int
        Atoms (columns) of each dictionary.
    dictionary_ranks : dict of str to int
        :func:`dictionary_rank` of each dictionary: the most independent directions it offers.
    distinct_atoms : dict of str to int
        Distinct atoms before the conditioning screen: distinct noise attractors; the column
        count of ``"orthobasis"`` and ``"pca"``.
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
    dictionary_ranks: dict[str, int]
    distinct_atoms: dict[str, int]
    settings: dict[str, Any]

    kind: ClassVar[str] = "probe"
    version: ClassVar[int] = 2  # 2: dictionary rank, distinct atoms, capped rows

    @property
    def capped(self) -> dict[str, np.ndarray]:
        """Per basis, ndarray of shape (n_s,), bool: the atom count asked exceeds the dictionary's atoms or k."""
        return {b: self.effective_atoms[b] < self.atoms for b in self.effective_atoms}

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form: per basis, lists aligned with ``atoms``."""
        return {
            "atoms": self.atoms.tolist(),
            "bases": {b: {"mse_latent": self.mse_latent[b].tolist(), "mse_input": self.mse_input[b].tolist(),
                          "effective_atoms": self.effective_atoms[b].tolist(),
                          "capped": self.capped[b].tolist(), "dictionary_size": self.dictionary_sizes[b],
                          "dictionary_rank": self.dictionary_ranks[b], "distinct_atoms": self.distinct_atoms[b]}
                      for b in self.mse_latent},
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
                   dictionary_ranks={b: int(meta["bases"][b]["dictionary_rank"]) for b in bases},
                   distinct_atoms={b: int(meta["bases"][b]["distinct_atoms"]) for b in bases},
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
    dedupe: bool = True,
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
        MSE (lower = better) per basis and s, in latent and input space; each dictionary's size,
        rank and distinct atoms. For a fixed dictionary the latent MSE is non-increasing in s.

    Warns
    -----
    ProbeDictionaryWarning
        When a dictionary has fewer atoms than an atom count asked (e.g. 16 noise starts that
        reach 2 attractors give 2 atoms): those rows are capped (``ProbeReport.capped``).
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

    mse_l, mse_x, eff, sizes, ranks, distinct = {}, {}, {}, {}, {}, {}
    for name in bases:
        d, mean = dicts[name]
        centre = np.zeros(k) if mean is None else mean
        n_cols = int(np.sum(np.linalg.norm(d, axis=0) > 0))
        sizes[name] = int(d.shape[1])
        ranks[name] = dictionary_rank(d)
        distinct[name] = int(noise_info["n_distinct"]) if name == "noise" else int(d.shape[1])
        mse_l[name], mse_x[name] = np.empty(len(atoms_arr)), np.empty(len(atoms_arr))
        eff[name] = np.minimum(np.minimum(atoms_arr, n_cols), k)
        short = atoms_arr[(atoms_arr > n_cols) & (n_cols < k)]  # capped by the dictionary, not by k
        if len(short):
            warnings.warn(f"the {name} dictionary has {_n(n_cols, 'atom')} (rank {ranks[name]}"
                          + (f", {_n(distinct[name], 'distinct attractor')} from {noise_info['n_starts']} noise "
                             "starts" if name == "noise" else "") + "), fewer than the atom count"
                          f"{'s' if len(short) > 1 else ''} {', '.join(map(str, short.tolist()))} asked: "
                          f"{'those rows are' if len(short) > 1 else 'that row is'} capped at {_n(n_cols, 'atom')} "
                          "(ProbeReport.capped)", ProbeDictionaryWarning, stacklevel=2)
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
                       reference_mse_input=reference, dictionary_sizes=sizes, dictionary_ranks=ranks,
                       distinct_atoms=distinct, settings=settings)
