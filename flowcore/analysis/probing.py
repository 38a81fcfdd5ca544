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

from flowcore.errors import ParameterError, ProbeDictionaryWarning
from flowcore.results import Array, Result
from flowcore.analysis._similarity import _providers
from flowcore.analysis._dictionaries import (  # noqa: F401  (public names of this module)
    BASES, MIN_SINE, RANK_RTOL, _n, _sklearn_linear_model, dictionary_rank, noise_dictionary, omp_reconstruct, orthobasis, pca_basis,
)


__all__ = ["noise_dictionary", "omp_reconstruct", "orthobasis", "pca_basis", "probe", "ProbeReport", "BASES",
           "dictionary_rank", "MIN_SINE", "RANK_RTOL"]

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
