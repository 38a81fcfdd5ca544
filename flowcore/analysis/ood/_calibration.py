"""Where an OOD detector's thresholds come from: held-out ID rows, or (flagged as such) the fit rows.

A threshold at contamination c is the (1 − c) quantile of ID scores. On the rows the attractor
bank and the scorers were fitted on — and, when ``X`` is the autoencoder's training data, the
rows the model itself learned — scores are lower than on new ID data, so such an in-sample
threshold flags more than c of new ID data (a digits AE trained on 200 digits: 14 % at
c = 5 %, ``tests/test_ood_calibration.py``). :func:`plan_calibration` decides, from row counts
alone, which rows set the threshold: a held-out file, a seeded split of ``X`` kept out of the
fit, or the fit rows; :func:`split_rows` draws the split.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from flowcore.errors import DataError, ParameterError

__all__ = ["AUTO_CALIBRATION_SPLIT", "IN_SAMPLE", "calibration_text", "plan_calibration", "split_rows", "take_rows"]

#: the fraction of ``X`` that ``calibration_split="auto"`` holds back for the threshold
AUTO_CALIBRATION_SPLIT = 0.2
#: ``calibration_`` of a threshold set on the fit data (``calibration_split=0``, a small ``X``, an old folder)
IN_SAMPLE = "fit data (in-sample: new ID data are flagged more often than the nominal rate)"


def calibration_text(info: dict[str, Any] | None) -> str:
    """``calibration_`` in words, from the saved ``calibration`` record (None: a folder from before it)."""
    if not info or info.get("source") == "fit":
        return IN_SAMPLE
    if info["source"] == "file":
        return f"{info['n']} held-out ID rows (X_calib / --calibrate)"
    return f"split {info['fraction']:g} of the ID data ({info['n']} rows, seed {info.get('seed')})"


def take_rows(ev: Any, rows: np.ndarray) -> Any:
    """The :class:`~flowcore.analysis.ood.Evidence` of ``rows`` (ndarray of int indices) only."""
    return type(ev)(latents=ev.latents[rows], recon_error=None if ev.recon_error is None else ev.recon_error[rows],
                    features=None if ev.features is None else {k: v[rows] for k, v in ev.features.items()},
                    status=None if ev.status is None else ev.status[rows])


def split_rows(n: int, n_cal: int, seed: int | np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, calibration rows): ndarrays of sorted int64 indices into ``n`` rows, ``n_cal`` drawn with ``seed``."""
    cal = np.sort(np.random.default_rng(seed).permutation(n)[:n_cal])
    keep = np.ones(n, bool)
    keep[cal] = False
    return np.flatnonzero(keep), cal


def plan_calibration(n_id: int, n_calib: int | None, *, calibration_split: float | str, contamination: float,
                     seed: int | None, methods: Sequence[str], min_rows: Sequence[int],
                     what: tuple[str, str] = ("the ID data", "the calibration data")) -> dict[str, Any]:
    """How a fit calibrates on ``n_id`` ID rows (and ``n_calib`` held-out rows); checks the counts.

    Parameters
    ----------
    n_id : int
        Rows of ``X``.
    n_calib : int or None
        Rows of ``X_calib`` when one is given.
    calibration_split, contamination, seed
        The detector's parameters (see :class:`~flowcore.analysis.ood.OODDetector`).
    methods, min_rows : sequences of str and int
        The methods and the fewest rows each can be fitted on.
    what : (str, str)
        How error messages name ``X`` and ``X_calib`` (the CLI names its files).

    Returns
    -------
    dict
        ``source`` ("file", "split" or "fit"), ``n`` (calibration rows), ``fraction`` (the
        split, else None), ``seed`` (the split's, else None), ``n_fit`` (rows the bank and the
        scorers are fitted on) and ``reason`` (why ``"auto"`` chose in-sample, else None).

    Raises
    ------
    DataError
        Too few rows for the methods or for the threshold (fewer than ``1 / contamination``
        calibration rows: none would be expected above it).
    ParameterError
        ``n_calib`` together with a numeric ``calibration_split`` (two calibrations asked for).
    """
    need = max(min_rows)
    n_id = int(n_id)
    least = math.ceil(1 / contamination - 1e-9)
    if n_calib is not None and calibration_split != "auto":
        raise ParameterError(f"X_calib given with calibration_split={calibration_split!r}: give one "
                             "calibration, a held-out set or a split of the ID data")
    if n_id < need:
        worst = methods[int(np.argmax(min_rows))]
        raise DataError(f"{what[0]}: {n_id} row{'s' * (n_id != 1)}; method {worst} needs at least {need} "
                        "to fit (more ID rows, or methods that need fewer)")
    plan = {"source": "fit", "n": n_id, "fraction": None, "seed": None, "n_fit": n_id, "reason": None}
    if n_calib is not None:
        if n_calib < least:
            raise DataError(f"{what[1]}: {n_calib} row{'s' * (n_calib != 1)}; a threshold at contamination "
                            f"{contamination:g} needs at least {least} (1 / contamination)")
        return {**plan, "source": "file", "n": int(n_calib)}
    frac = AUTO_CALIBRATION_SPLIT if calibration_split == "auto" else float(calibration_split)
    if frac == 0:
        return plan
    n_cal = int(round(frac * n_id))
    split = {**plan, "source": "split", "n": n_cal, "fraction": frac, "seed": seed, "n_fit": n_id - n_cal}
    if calibration_split == "auto":
        enough = math.ceil(5 / contamination - 1e-9)
        if n_cal >= enough and n_id - n_cal >= need:
            return split
        return {**plan, "reason": f"a split of {frac:g} would hold {n_cal} of {n_id} rows, under the "
                                  f"{enough} (5 / contamination) a held-out threshold needs"
                                  if n_cal < enough else f"a split of {frac:g} would leave {n_id - n_cal} "
                                  f"rows, under the {need} the methods need"}
    if n_cal < least:
        raise DataError(f"calibration_split {frac:g} of {n_id} rows holds {n_cal}; a threshold at contamination "
                        f"{contamination:g} needs at least {least} (1 / contamination): use a larger "
                        "split, a held-out calibration set, or 0 (in-sample)")
    if n_id - n_cal < need:
        raise DataError(f"calibration_split {frac:g} of {n_id} rows leaves {n_id - n_cal} to fit; the methods "
                        f"need at least {need}: use a smaller split or a held-out calibration set")
    return split
