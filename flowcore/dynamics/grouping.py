"""Group points that lie within a tolerance of each other (single linkage at that tolerance).

The partition equals sklearn ``DBSCAN(eps, min_samples=1)``: connected components of the graph
"a and b are linked when d(a, b) is within the tolerance". Computed without any N×N matrix:

1. leader pass: each point joins the first leader within the tolerance, else becomes a leader
   (blocked: a block of points is compared with all leaders at once);
2. exact merge: two points within the tolerance have leaders within 3× the tolerance (triangle
   inequality), so only such leader pairs are examined, member block against member block, and
   merged with union-find when any cross pair is linked.

Memory is O(N·k + L²) for L leaders (L ≪ N for converged endpoints).

Metrics
-------
``cosine``      linked when cos(a, b) > threshold (paper rule, threshold 0.99). Rows are
                L2-normalised; zero rows (no direction) form a group of their own.
``euclidean``   linked when ‖a − b‖ ≤ threshold; with ``relative=True`` the tolerance is
                ``threshold × RMS‖z‖`` of the points (scale-free; stays sensible with one group).
"""

from __future__ import annotations

import numpy as np

from flowcore.errors import DataError, ParameterError
from flowcore.dynamics._grouping_kernel import leader_pass, merge_leaders, relabel

__all__ = ["group_points", "group_points_ref", "link_radius_sq", "METRICS"]

METRICS = ("cosine", "euclidean")
_BLOCK = 2048
_PROJ_ROWS = 8192


def link_radius_sq(points: np.ndarray, metric: str, threshold: float, relative: bool = False) -> tuple[np.ndarray, float, bool]:
    """Return (working points, squared radius, strict) for a metric.

    For ``cosine`` the working points are unit rows and cos > t ⇔ ‖u − v‖² < 2(1 − t) (strict).
    """
    if metric == "cosine":
        if not (-1.0 <= threshold < 1.0):
            raise ParameterError(f"cosine threshold must be in [-1, 1), got {threshold}")
        # scale rows by their largest |entry| first: no overflow/underflow of the squared norm
        big = np.abs(points).max(axis=1, initial=0.0)[:, None].astype(np.float64)
        scaled = np.divide(points, big, out=np.zeros(points.shape), where=big > 0)
        norms = np.sqrt(np.einsum("ij,ij->i", scaled, scaled))[:, None]
        unit = np.divide(scaled, norms, out=np.zeros_like(scaled), where=norms > 0).astype(points.dtype)
        return unit, 2.0 * (1.0 - float(threshold)), True
    if metric == "euclidean":
        if not (threshold >= 0):
            raise ParameterError(f"euclidean threshold must be >= 0, got {threshold}")
        eps = float(threshold)
        if relative:
            scale = float(np.sqrt(np.mean(np.einsum("ij,ij->i", points, points, dtype=np.float64)))) if len(points) else 0.0
            eps *= scale
        return points, eps * eps, False
    raise ParameterError(f"unknown metric {metric!r}; expected one of {METRICS}")


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)) in float64, clipped at 0."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def _linked(d: np.ndarray, r2: float, strict: bool) -> np.ndarray:
    return d < r2 if strict else d <= r2


def _find(parent: np.ndarray, i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        parent[i], i = root, parent[i]
    return root


def _prepare(points, metric: str, threshold: float, relative: bool, keep_float32: bool = False):
    x = np.asarray(points)
    if not (keep_float32 and x.dtype == np.float32):
        x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(f"points must have shape (N, k); got {x.shape}")
    if len(x) and not np.all(np.isfinite(x)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(x), axis=1))[0])
        raise DataError(f"points contain NaN or Inf (first at row {bad}); drop diverged rows before grouping")
    w, r2, strict = link_radius_sq(x, metric, threshold, relative)
    zero = ~np.any(w != 0, axis=1) if metric == "cosine" else np.zeros(len(x), bool)
    return np.ascontiguousarray(w, dtype=x.dtype), r2, strict, zero


def _first_appearance(raw: np.ndarray) -> np.ndarray:
    _, first, inv = np.unique(raw, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inv].astype(np.int64)


def _projection(w: np.ndarray, skip: np.ndarray) -> tuple[np.ndarray, float]:
    """Coordinates (N,) float64 along a unit direction of large spread, and an error bound.

    Any unit direction keeps the grouping exact (|u·a − u·b| ≤ ‖a − b‖); a direction of large
    spread (3 power iterations on a sample) makes the windows the kernel scans narrow. The
    projection is taken in float64 about the sample mean; the returned bound covers its rounding.
    """
    n, k = w.shape
    pts = w[~skip] if skip.any() else w
    if len(pts) == 0 or k == 0:
        return np.zeros(n), 0.0
    sample = pts[:: max(1, len(pts) // 4096)].astype(np.float64)
    mean = sample.mean(axis=0)
    sample -= mean
    u = sample.var(axis=0)
    u = np.where(u == u.max(), 1.0, 0.0) if u.max() > 0 else np.ones_like(u)
    for _ in range(3):
        u = sample.T @ (sample @ u)
        nrm = np.linalg.norm(u)
        if nrm == 0:
            u = np.ones(k)
            nrm = np.linalg.norm(u)
        u = u / nrm
    proj = np.empty(n)
    radius = 0.0
    for s in range(0, n, _PROJ_ROWS):  # float64 blocks of 8192 rows (8 MiB at k = 128): bounded extra memory
        c = w[s : s + _PROJ_ROWS].astype(np.float64)
        c -= mean
        proj[s : s + _PROJ_ROWS] = c @ u
        radius = max(radius, float(np.sqrt(np.einsum("ij,ij->i", c, c).max())))
    return proj, 8.0 * (k + 2) * np.finfo(np.float64).eps * (radius + float(np.abs(mean).max()))


def group_points(points, *, metric: str = "cosine", threshold: float = 0.99, relative: bool = False) -> np.ndarray:
    """Label points by single linkage at a tolerance (Numba kernel).

    Parameters
    ----------
    points : array-like of shape (N, k)
        Finite values (NaN/Inf rows are refused).
    metric : {"cosine", "euclidean"}
    threshold : float
        cosine: link when cos > threshold; euclidean: link when distance ≤ threshold.
    relative : bool
        euclidean only: multiply the threshold by the RMS norm of the points.

    Returns
    -------
    labels : ndarray of shape (N,), int64
        Groups numbered 0.. in order of first appearance; the same partition as
        ``sklearn.cluster.DBSCAN(eps, min_samples=1)`` and as :func:`group_points_ref`.
    """
    w, r2, strict, zero = _prepare(points, metric, threshold, relative, keep_float32=True)
    n = len(w)
    if n == 0:
        return np.empty(0, np.int64)
    leader_of = np.empty(n, np.int64)
    leaders = np.empty(n, np.int64)
    lead_proj = np.empty(n, np.float64)
    lead_ids = np.empty(n, np.int64)
    proj, err = _projection(w, zero)
    # window half-width along the projection, with slack for the projections' float64 rounding
    r = float(np.sqrt(r2)) * (1 + 1e-12) + 2.0 * err
    n_lead = leader_pass(w, proj, r, r2, strict, zero, leader_of, leaders, lead_proj, lead_ids)
    parent = np.empty(n_lead, np.int64)
    merge_leaders(w, r, r2, strict, leaders, n_lead, leader_of, parent, lead_proj, lead_ids)
    out = np.empty(n, np.int64)
    n_groups = relabel(leader_of, parent, out)
    if zero.any():
        out[zero] = n_groups
        return _first_appearance(out)
    return out


def group_points_ref(points, *, metric: str = "cosine", threshold: float = 0.99, relative: bool = False) -> np.ndarray:
    """NumPy reference of :func:`group_points` (blocked matrix products; same partition and labels).

    Takes the same arguments and returns the same ``ndarray of shape (N,), int64`` labels
    (groups numbered 0.. in order of first appearance); tests compare the two.
    """
    w, r2, strict, zero = _prepare(points, metric, threshold, relative)
    n = len(w)
    if n == 0:
        return np.empty(0, np.int64)

    # 1. leader pass
    leader_of = np.full(n, -1, np.int64)
    leaders: list[int] = []
    lead_mat = np.empty((0, w.shape[1]))
    for s in range(0, n, _BLOCK):
        blk = np.arange(s, min(s + _BLOCK, n))
        blk = blk[~zero[blk]]
        if len(blk) and len(leaders):
            d = _sqdist(w[blk], lead_mat)
            j = np.argmin(d, axis=1)
            hit = _linked(d[np.arange(len(blk)), j], r2, strict)
            leader_of[blk[hit]] = j[hit]
            blk = blk[~hit]
        new: list[int] = []
        for i in blk:  # points no existing leader covers: sequential within the block
            if new:
                d = _sqdist(w[i : i + 1], w[new])[0]
                j = int(np.argmin(d))
                if _linked(d[j], r2, strict):
                    leader_of[i] = len(leaders) + j
                    continue
            leader_of[i] = len(leaders) + len(new)
            new.append(int(i))
        if new:
            leaders.extend(new)
            lead_mat = np.vstack([lead_mat, w[new]])

    # 2. exact merge of leader groups with a linked cross pair
    n_lead = len(leaders)
    parent = np.arange(n_lead)
    if n_lead > 1:
        members = [[] for _ in range(n_lead)]
        for i in np.flatnonzero(~zero):
            members[leader_of[i]].append(i)
        members = [np.asarray(m, np.int64) for m in members]
        cand_r2 = 9.0 * r2
        for a0 in range(0, n_lead, _BLOCK):
            d = _sqdist(lead_mat[a0 : a0 + _BLOCK], lead_mat)
            for ia, b in zip(*np.nonzero(d <= cand_r2)):
                a = a0 + int(ia)
                b = int(b)
                if b <= a:
                    continue
                ra, rb = _find(parent, a), _find(parent, b)
                if ra == rb:
                    continue
                if _any_linked(w, members[a], members[b], r2, strict):
                    parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([_find(parent, i) for i in range(n_lead)], np.int64)

    raw = np.full(n, -1, np.int64)
    nz = ~zero
    raw[nz] = roots[leader_of[nz]]
    if zero.any():
        raw[zero] = n_lead  # the origin: one group of its own
    return _first_appearance(raw)


def _any_linked(w: np.ndarray, ia: np.ndarray, ib: np.ndarray, r2: float, strict: bool) -> bool:
    for s in range(0, len(ia), _BLOCK):
        a = w[ia[s : s + _BLOCK]]
        for t in range(0, len(ib), _BLOCK):
            if _linked(_sqdist(a, w[ib[t : t + _BLOCK]]), r2, strict).any():
                return True
    return False
