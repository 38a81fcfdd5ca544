"""OOD detection from latent trajectories (paper §4.2), with PyOD's detector conventions.

``OODDetector(bundle, methods=...)`` fits several scorers on the same in-distribution data,
sharing the expensive parts: encoding, the ID attractor bank (ID starts iterated to
attractors, deduplicated) and one trajectory pass per dataset with streaming features.

- ``decision_function(X)`` — raw score of the default method, **higher = more OOD**;
- ``predict(X)`` — 1 = OOD, 0 = ID against ``threshold_``, the (1 − contamination) quantile of
  **held-out** ID scores (``calibration_`` says which: a held-out file ``fit(X, X_calib=…)``, a
  seeded split of ``X`` not used for the bank or the scorers, or — only when asked or when ``X`` is
  too small to split — the fit data themselves, which new ID data score above more often);
- ``decision_scores_`` — the fitted ID data's scores, ``labels_`` their 0/1 labels,
  ``predict_proba(X)`` — [P(ID), P(OOD)] by PyOD's rule; ``features(X)`` — all trajectory features;
- ``X`` is (N, *input_shape) or flat (N, prod(input_shape)), reshaped by the bundle's input shape;
- ``get_params`` / ``set_params`` as in scikit-learn, so ``sklearn.base.clone`` works;
- ``save(dir)`` / ``load(dir)`` — NPZ + JSON with checksums, a copy of the bundle, no pickle;
  a detector refuses a bundle whose hash differs from the one it was fitted on.

Scoring needs only the core (NumPy + ONNX Runtime + Numba): no torch, tensorflow or sklearn.

Methods (``METHODS``, defined and described in :mod:`flowcore.analysis.ood.scorers`): the paper's
``trajectory`` score, the trajectory-feature detectors ``features`` / ``features_knn``, the baselines
and their ``combined`` / ``combined_max`` z-score combinations.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from flowcore.dynamics.attractors import find_attractors
from flowcore.dynamics.grouping_rules import GroupByDistance
from flowcore.dynamics.starts import NoiseStarts, noise_starts
from flowcore.dynamics.checkpointing import RunCheckpoint, chunk_rows
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.errors import BadInputError, DataError, FlowcoreWarning, NotFittedError, ParameterError
from flowcore.runtime.latent_map import LatentMap
from flowcore.dynamics.iterate_options import IterateOptions
from flowcore.dynamics.trajectories import CONVERGED, iterate
from flowcore.analysis.ood._persist import FORMAT, FORMAT_VERSION, read_detector, restore_state, save_detector  # noqa: F401
from flowcore.analysis.ood._calibration import (AUTO_CALIBRATION_SPLIT, IN_SAMPLE, calibration_text,
                                                plan_calibration, split_rows, take_rows)
from flowcore.analysis.ood._estimator import ParamsMixin, PyODMixin
from flowcore.analysis.ood.baselines import Scorer
from flowcore.analysis.ood.scorers import DEFAULT_FEATURES, DEFAULT_METHOD, METHODS, Evidence, FeatureScore, TrajectoryScore, make_scorer

__all__ = ["Evidence", "OODDetector", "TrajectoryScore", "FeatureScore", "METHODS", "DEFAULT_METHOD", "DEFAULT_FEATURES", "make_scorer",
           "AUTO_CALIBRATION_SPLIT", "IN_SAMPLE"]  # scorers re-exported from .scorers, calibration from ._calibration


class OODDetector(PyODMixin, ParamsMixin):
    """Several OOD scorers over one bundle, fitted on the same ID data.

    Every method taking ``X`` accepts (N, *input_shape) or flat (N, prod(input_shape)) arrays
    (PyOD's ``(n_samples, n_features)``); both give identical scores.

    Parameters
    ----------
    bundle : FlowBundle or path-like
    methods : sequence of str, default ``METHODS``
    default : str, default ``DEFAULT_METHOD`` ("features_knn")
        Method used by ``decision_function``/``predict`` when none is named. ``features_knn`` was
        chosen by ``studies/ood_benchmark.py``'s default rule on validation rows only (smallest
        worst-case regret over far / near / novelty × six models × three seeds; docs/ood-benchmark.md).
    contamination : float, default 0.05
        ``threshold_`` is the (1 − contamination) quantile of the calibration scores, so about this
        fraction of new ID data is flagged (PyOD's convention, on held-out rows).
    calibration_split : float or "auto", default "auto"
        Where ``threshold_`` comes from when ``fit`` gets no ``X_calib``. A fraction in (0, 1): a
        random split of ``X`` (seeded by ``seed``) is held back — not used for the attractor bank
        or the scorers — and the thresholds are the quantiles of its scores. ``0``: the fit data's
        own scores (in-sample; the bank and scorers were built on those rows, so new ID data score
        higher: a 5 % threshold flags more than 5 % of new ID data). ``"auto"``: a split of
        ``AUTO_CALIBRATION_SPLIT`` (0.2) when it holds at least ``5 / contamination`` rows (100 at
        5 %: about five rows above the threshold) and leaves the methods enough rows to fit, else
        in-sample with a :class:`~flowcore.errors.FlowcoreWarning`. A split holds rows out of the
        detector, not out of the autoencoder's training: when ``X`` is the model's training data,
        only ``X_calib`` rows the model never saw give the nominal rate on new data.
    bank_source : {"id", "noise"}, default "id"
        Attractor bank from ID starts (paper) or from latent N(0, I) starts (reviewers' question).
    n_noise : int, optional
        Noise starts for ``bank_source="noise"`` (default: as many as ID samples).
    bank : {"attractors", "endpoints"}, default "attractors"
        Deduplicated attractors (representatives) or all converged endpoints.
    merge_threshold : float, default 1e-3
        Euclidean dedup tolerance relative to the RMS norm of the endpoints (distances are
        Euclidean, so the bank is deduplicated finer than the cosine rule would).
    tol, max_steps, batch_size : trajectory settings (defaults 1e-6, 3000, 4096)
    providers, intra_op_num_threads : ONNX Runtime settings
    engine : trajectory engine of the bank run (:mod:`flowcore.dynamics.engines`; default auto);
        runs with features use ``auto``. Not saved: like ``providers``, a choice of the machine.
    seed : int — for noise starts
    """

    def __init__(self, bundle, *, methods: Sequence[str] = METHODS, default: str = DEFAULT_METHOD,
                 contamination: float = 0.05, bank_source: str = "id", n_noise: int | None = None,
                 bank: str = "attractors", merge_threshold: float = 1e-3, tol: float = 1e-6,
                 max_steps: int = 3000, batch_size: int = 4096, providers: str | Sequence[str] = "auto",
                 intra_op_num_threads: int | None = None, seed: int = 0, progress: bool | None = False,
                 engine: str = "auto", calibration_split: float | str = "auto"):
        self.bundle = bundle
        self.methods = tuple(methods)
        self.default = default
        self.contamination = contamination
        self.bank_source = bank_source
        self.n_noise = n_noise
        self.bank = bank
        self.merge_threshold = merge_threshold
        self.tol = tol
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.providers = providers
        self.intra_op_num_threads = intra_op_num_threads
        self.seed = seed
        self.progress = progress
        self.engine = engine
        self.calibration_split = calibration_split

    # ------------------------------------------------------------------ helpers
    def _check_params(self) -> None:
        for m in self.methods:
            make_scorer(m)
        if not self.methods:
            raise ParameterError("no OOD methods given")
        if self.default not in self.methods:
            raise ParameterError(f"default method {self.default!r} is not among the methods {list(self.methods)}")
        if not 0 < self.contamination < 1:
            raise ParameterError(f"contamination must be in (0, 1), got {self.contamination}")
        if self.bank_source not in ("id", "noise"):
            raise ParameterError(f"bank_source must be 'id' or 'noise', got {self.bank_source!r}")
        if self.bank not in ("attractors", "endpoints"):
            raise ParameterError(f"bank must be 'attractors' or 'endpoints', got {self.bank!r}")
        c = self.calibration_split
        if not (c == "auto" or (isinstance(c, (int, float, np.floating, np.integer)) and not isinstance(c, bool)
                                and 0 <= c < 1)):
            raise ParameterError(f"calibration_split must be 'auto' or a fraction in [0, 1), got {c!r}")

    def min_fit_rows(self) -> int:
        """Fewest ID rows the methods can be fitted on (51 with the 50-NN baselines, 11 for ``features_knn``)."""
        self._check_params()
        return max(make_scorer(m).min_fit_rows for m in self.methods)

    def calibration_plan(self, n_id: int, n_calib: int | None = None, *,
                         what: tuple[str, str] = ("the ID data", "the calibration data")) -> dict[str, Any]:
        """How ``fit`` would calibrate on ``n_id`` ID rows (and ``n_calib`` held-out rows); checks the counts.

        Cheap (no data read): ``flowcore ood fit`` calls it before it creates anything. Returns
        ``source`` ("file", "split" or "fit"), ``n`` (calibration rows), ``fraction``, ``seed``,
        ``n_fit`` and ``reason`` (why ``"auto"`` chose in-sample, else None); ``what`` names
        ``X`` and ``X_calib`` in messages. Raises :class:`DataError` for too few rows (for the
        methods, or under ``1 / contamination`` calibration rows) and :class:`ParameterError`
        for ``n_calib`` with a numeric ``calibration_split``
        (:func:`~flowcore.analysis.ood._calibration.plan_calibration`).
        """
        self._check_params()
        seed = None if isinstance(self.seed, np.random.Generator) else int(self.seed)
        return plan_calibration(n_id, n_calib, calibration_split=self.calibration_split,
                                contamination=self.contamination, seed=seed, methods=self.methods,
                                min_rows=[make_scorer(m).min_fit_rows for m in self.methods], what=what)

    def _lmap(self) -> LatentMap:
        lmap = getattr(self, "_lmap_cache", None)
        if lmap is None:
            lmap = LatentMap(self.bundle, providers=self.providers, intra_op_num_threads=self.intra_op_num_threads)
            self._lmap_cache = lmap
        return lmap

    def _needs(self) -> set[str]:
        return set().union(*(s.needs for s in self.scorers_.values()))

    def _iterate(self, z0, reference=None, checkpoint: RunCheckpoint | None = None, stage: str = ""):
        """One trajectory pass; with a checkpoint, in chunks of starts kept in its stage ``stage``."""
        size = chunk_rows(self.batch_size) if checkpoint is not None else None
        return iterate(self._lmap(), z0, tol=self.tol, max_steps=self.max_steps, batch_size=self.batch_size,
                       reference=reference, progress=self.progress,
                       options=IterateOptions(engine=self.engine if reference is None else "auto", chunk_size=size,
                                              checkpoint=checkpoint.stage(stage, size) if checkpoint is not None else None))

    def evidence(self, X: Any) -> Evidence:
        """Encode ``X`` (N, *input_shape) and compute what the fitted methods need."""
        self._check_fitted()
        return self._evidence(X, self._needs())

    def _evidence(self, X: Any, needs: set[str], checkpoint: RunCheckpoint | None = None) -> Evidence:
        lmap = self._lmap()
        x = lmap.check_inputs(X, "data")
        if not np.all(np.isfinite(x)):
            raise DataError("data contain NaN or Inf")
        z = lmap.encode(x, batch_size=self.batch_size)
        recon = None
        if "recon" in needs or "trajectory" in needs:
            xr = lmap.decode(z, batch_size=self.batch_size)
            recon = ((x - xr).reshape(len(x), -1).astype(np.float64) ** 2).mean(1)
        feats = status = None
        if "trajectory" in needs:
            tr = self._iterate(z, reference=self.bank_, checkpoint=checkpoint, stage="evidence")
            feats, status = tr.features, tr.status
        return Evidence(latents=z, recon_error=recon, features=feats, status=status)

    def _fit_bank(self, z_id: np.ndarray, checkpoint: RunCheckpoint | None = None) -> None:
        lmap = self._lmap()
        if self.bank_source == "noise":
            n = self.n_noise or len(z_id)
            if isinstance(self.seed, np.random.Generator):
                z0 = noise_starts(lmap.latent_shape, n, seed=self.seed)
            else:  # drawn chunk by chunk, the same values as the one-shot draw
                z0 = NoiseStarts(lmap.latent_shape, n, seed=self.seed)
        else:
            z0 = z_id
        tr = self._iterate(z0, checkpoint=checkpoint, stage="bank")
        ok = tr.status == CONVERGED
        if not ok.any():
            raise DataError(f"no {self.bank_source} start converged (tol {self.tol:g}, max_steps {self.max_steps}); "
                            "raise max_steps or tol")
        if self.bank == "endpoints":
            bank = tr.flat_final[ok]
            n_att = None
        else:
            att = find_attractors(tr, grouping=GroupByDistance(self.merge_threshold, relative=True))
            bank = att.representatives.reshape(att.n_attractors, -1)
            n_att = att.n_attractors
        self.bank_ = np.ascontiguousarray(bank, np.float32)
        self.bank_info_ = {"source": self.bank_source, "kind": self.bank, "size": int(len(bank)),
                           "n_attractors": n_att, "starts": int(len(z0)), **tr.counts(),
                           "median_steps": float(np.median(tr.steps[ok]))}

    # ---------------------------------------------------------------------- API
    def fit(self, X: Any, y: Any = None, *, X_calib: Any = None,
            checkpoint: RunCheckpoint | None = None) -> "OODDetector":
        """Fit every method on ID samples ``X`` and set the thresholds on held-out ID rows; returns self.

        Parameters
        ----------
        X : array-like of shape (N, *input_shape) or (N, prod(input_shape)), float32
            In-distribution samples.
        y : ignored
            PyOD / scikit-learn signature.
        X_calib : array-like of shape (M, *input_shape), optional
            Held-out ID samples for the thresholds (best: rows the autoencoder was not trained
            on). Without it, ``calibration_split`` decides (default: a seeded 0.2 split of ``X``).
        checkpoint : RunCheckpoint, optional
            Iterate the bank and evidence passes in chunks of ``16 × batch_size`` starts, keep
            each completed chunk there and read back the chunks an interrupted fit completed
            (``ood fit --resume``).

        Raises
        ------
        DataError
            Too few rows for the methods or for the threshold (see :meth:`calibration_plan`),
            NaN/Inf, or no bank start converged.
        """
        self._check_params()
        lmap = self._lmap()
        needs = set().union(*(make_scorer(m).needs for m in self.methods))
        x = lmap.check_inputs(X, "ID data")
        if len(x) == 0:
            raise DataError("ID data hold 0 samples: there are no ID samples to fit the detector on")
        xc = None if X_calib is None else lmap.check_inputs(X_calib, "calibration data")
        plan = self.calibration_plan(len(x), None if xc is None else len(xc))
        if plan["reason"]:
            warnings.warn(f"threshold set on the fit data (in-sample: new ID data are flagged more often than "
                          f"{self.contamination:g}): {plan['reason']}; pass held-out ID rows (X_calib, "
                          "ood fit --calibrate FILE)", FlowcoreWarning, stacklevel=2)
        fit_rows = cal_rows = None
        if plan["source"] == "split":
            fit_rows, cal_rows = split_rows(len(x), plan["n"], self.seed)
        elif plan["source"] == "file":
            fit_rows, cal_rows = np.arange(len(x)), np.arange(len(x), len(x) + len(xc))
            x = np.concatenate([x, xc])
        x_fit = x if fit_rows is None else x[fit_rows]
        self.bundle_sha256_ = lmap.bundle.sha256
        if "trajectory" in needs:
            self._fit_bank(lmap.encode(x_fit, batch_size=self.batch_size), checkpoint)
        else:
            self.bank_, self.bank_info_ = None, None
        ev = self._evidence(x, needs, checkpoint)  # one pass over the fit and the calibration rows
        ev_fit = ev if fit_rows is None else take_rows(ev, fit_rows)
        ev_cal = None if cal_rows is None else take_rows(ev, cal_rows)
        self.scorers_: dict[str, Scorer] = {}
        self.fit_scores_: dict[str, np.ndarray] = {}
        self.calibration_scores_: dict[str, np.ndarray] = {}
        self.thresholds_: dict[str, float] = {}
        for m in self.methods:
            scorer = make_scorer(m).fit(ev_fit)
            s = scorer.fit_scores(ev_fit)
            self.scorers_[m] = scorer
            self.fit_scores_[m] = s
            if ev_cal is not None:
                self.calibration_scores_[m] = s = scorer.score(ev_cal)
            self.thresholds_[m] = float(np.quantile(s, 1.0 - self.contamination))
        self.calibration_info_ = {k: plan[k] for k in ("source", "n", "fraction", "seed")}
        self.n_fit_ = len(x_fit)
        self.providers_ = lmap.providers
        return self

    @property
    def calibration_(self) -> str:
        """Which ID rows ``thresholds_`` are quantiles of, in words.

        ``"N held-out ID rows (X_calib / --calibrate)"``, ``"split 0.2 of the ID data (N rows, seed S)"``
        or :data:`IN_SAMPLE` (the fit data: a threshold that flags more than ``contamination``
        of new ID data).
        """
        self._check_fitted()
        return calibration_text(self.calibration_info_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "scorers_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted; call fit(X_id) first")

    def _method(self, method: str | None) -> str:
        m = method or self.default
        if m not in self.scorers_:
            raise ParameterError(f"method {m!r} was not fitted; fitted: {', '.join(self.scorers_)}")
        return m

    @property
    def threshold_(self) -> float:
        """Threshold of the default method: scores above it are predicted OOD (see ``calibration_``)."""
        self._check_fitted()
        return self.thresholds_[self.default]

    @property
    def decision_scores_(self) -> np.ndarray:
        """ndarray of shape (n_fit,), float64: the default method's scores on the ID fit data."""
        self._check_fitted()
        return self.fit_scores_[self.default]

    def decision_function(self, X: Any, *, method: str | None = None) -> np.ndarray:
        """OOD score per sample, ndarray of shape (N,), float64: higher = more OOD."""
        self._check_fitted()
        m = self._method(method)
        return self.scorers_[m].score(self._evidence(X, set(self.scorers_[m].needs)))

    def score_all(self, X: Any) -> dict[str, np.ndarray]:
        """Every fitted method's scores on ``X``, sharing one encoding and one trajectory pass."""
        ev = self.evidence(X)
        return {m: self.scorers_[m].score(ev) for m in self.methods}

    def predict(self, X: Any, *, method: str | None = None) -> np.ndarray:
        """1 = OOD, 0 = ID: ndarray of shape (N,), int64 (score > threshold)."""
        self._check_fitted()
        m = self._method(method)
        return (self.decision_function(X, method=m) > self.thresholds_[m]).astype(np.int64)

    def features(self, X: Any) -> dict[str, np.ndarray]:
        """All trajectory features of ``X`` against the ID bank, plus ``recon_error``: dict of (N,) arrays."""
        self._check_fitted()
        if self.bank_ is None:
            raise BadInputError("this detector has no attractor bank (no trajectory-based method was fitted)")
        ev = self._evidence(X, {"trajectory", "recon"})
        return {**ev.features, "recon_error": ev.recon_error}

    # ------------------------------------------------------------------ persist
    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("methods", "default", "contamination", "bank_source", "n_noise", "bank",
                                              "merge_threshold", "tol", "max_steps", "batch_size", "seed",
                                              "calibration_split")}

    def save(self, path: str | os.PathLike, *, copy_bundle: bool = True) -> Path:
        """Write the detector folder: ``detector.json``, ``arrays.npz``, ``bundle/``, ``checksums.json``.

        The folder is staged beside ``path`` and moved into place (complete or absent); an
        existing detector folder gets the new files, any other existing path is refused.
        """
        self._check_fitted()
        return save_detector(self, path, copy_bundle=copy_bundle)

    @classmethod
    def load(cls, path: str | os.PathLike, *, bundle=None, providers: str | Sequence[str] = "auto",
             intra_op_num_threads: int | None = None) -> "OODDetector":
        """Load a detector folder, verifying checksums, schema and the bundle hash (no code executed)."""
        path = Path(path)
        meta, arrays, own_bundle = read_detector(path)
        bundle = own_bundle if bundle is None else bundle
        fb = bundle if isinstance(bundle, FlowBundle) else FlowBundle.load(bundle)
        if fb.sha256 != meta["bundle_sha256"]:
            raise BadInputError(f"bundle {fb.path} (sha256 {fb.sha256[:12]}…) is not the one this detector was fitted on "
                                f"({meta['bundle_sha256'][:12]}…)")
        p = meta["params"]
        obj = cls.__new__(cls)
        OODDetector.__init__(obj, fb, providers=providers, intra_op_num_threads=intra_op_num_threads,
                             **{k: (tuple(v) if k == "methods" else v) for k, v in p.items()})
        restore_state(obj, path, meta, arrays)
        obj.providers_ = obj._lmap().providers
        return obj

