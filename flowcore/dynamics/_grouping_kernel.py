"""Numba kernel: exact single-linkage grouping at a tolerance, O(N·k) memory.

``leader_pass`` assigns each point to the first leader within the radius (else it becomes a
leader); distances abort as soon as the partial sum passes the radius, so far-apart clusters
cost a few coordinates each. ``merge_leaders`` then unions two leader groups when any cross
pair of members is linked; only leader pairs within 3× the radius can hold such a pair
(triangle inequality). The result is the partition of ``DBSCAN(eps, min_samples=1)``.

All arrays are C-contiguous; the wrapper (:mod:`flowcore.dynamics.grouping`) validates and allocates.
``leader_pass_ref``, ``merge_leaders_ref`` and ``relabel_ref`` are NumPy references with the same
arguments; see each docstring for what they fill exactly (``merge_leaders_ref`` leaves a flat
forest with the kernel's roots).
"""

from __future__ import annotations

import numpy as np

from flowcore.dynamics._numba import njit

__all__ = [
    "leader_pass",
    "leader_pass_ref",
    "merge_leaders",
    "merge_leaders_ref",
    "relabel",
    "relabel_ref",
]


@njit
def _within(x, i, j, r2, strict):
    """True when the squared distance of rows i and j is < r2 (strict) or ≤ r2; aborts early."""
    acc = 0.0
    k = x.shape[1]
    for d in range(k):
        t = np.float64(x[i, d]) - np.float64(x[j, d])
        acc += t * t
        if acc > r2:
            return False
    if strict:
        return acc < r2
    return True


@njit
def leader_pass(x, proj, r, r2, strict, skip, leader_of, leaders, lead_proj, lead_ids):
    """Fill ``leader_of`` (N,) with a leader number per row and ``leaders`` with leader rows.

    ``proj`` (N,) is each row's coordinate along a unit direction; since
    |proj_i − proj_j| ≤ ‖x_i − x_j‖, only leaders whose projection lies within ``r`` can cover
    a row. Leaders are kept sorted by projection (``lead_proj``/``lead_ids``, capacity N) and a
    row scans just that window; the most recently matched leader is tried first. Rows with
    ``skip[i]`` get −1. Returns the number of leaders.
    """
    n = x.shape[0]
    n_lead = 0
    last = -1
    for i in range(n):
        if skip[i]:
            leader_of[i] = -1
            continue
        hit = -1
        if last >= 0 and _within(x, i, leaders[last], r2, strict):
            hit = last
        else:
            p = proj[i]
            lo = np.searchsorted(lead_proj[:n_lead], p - r)
            for s in range(lo, n_lead):
                if lead_proj[s] > p + r:
                    break
                j = lead_ids[s]
                if j != last and _within(x, i, leaders[j], r2, strict):
                    hit = j
                    break
        if hit < 0:
            hit = n_lead
            leaders[hit] = i
            pos = np.searchsorted(lead_proj[:n_lead], proj[i])
            for s in range(n_lead, pos, -1):
                lead_proj[s] = lead_proj[s - 1]
                lead_ids[s] = lead_ids[s - 1]
            lead_proj[pos] = proj[i]
            lead_ids[pos] = hit
            n_lead += 1
        leader_of[i] = hit
        last = hit
    return n_lead


def _sq_dist_ref(x, i, rows):
    """Squared distances (float64) of row ``i`` to ``rows``, summed coordinate by coordinate."""
    acc = np.zeros(len(rows))
    for d in range(x.shape[1]):  # the kernel's summation order, so ties decide the same way
        t = x[rows, d].astype(np.float64) - np.float64(x[i, d])
        acc += t * t
    return acc


def _linked_ref(acc, r2, strict):
    return acc < r2 if strict else acc <= r2


def leader_pass_ref(x, proj, r, r2, strict, skip, leader_of, leaders, lead_proj, lead_ids):
    """NumPy reference of :func:`leader_pass` (same arguments, same in-place results).

    Parameters
    ----------
    x : ndarray of shape (N, k), float32 or float64
    proj : ndarray of shape (N,), float64
        Each row's coordinate along a unit direction.
    r, r2 : float
        Window half-width along ``proj``; squared link radius.
    strict : bool
        Link when the squared distance is ``< r2`` (else ``≤ r2``).
    skip : ndarray of shape (N,), bool
        Rows that get −1.
    leader_of : ndarray of shape (N,), int64
        Filled: each row's leader number.
    leaders, lead_proj, lead_ids : ndarray of shape (N,), int64 / float64 / int64
        Filled in their first ``n_lead`` entries: leader rows; leaders' projections sorted, and
        their numbers in that order.

    Returns
    -------
    int
        ``n_lead``. Rows are taken in order (a row can only join leaders made before it); each
        row's search over the current leaders is vectorised: the last matched leader first, else
        the first leader in projection order within the window ``|proj − p| ≤ r`` that is linked.
    """
    n_lead = 0
    last = -1
    for i in range(x.shape[0]):
        if skip[i]:
            leader_of[i] = -1
            continue
        hit = -1
        if last >= 0 and _linked_ref(_sq_dist_ref(x, i, leaders[last : last + 1]), r2, strict)[0]:
            hit = last
        else:
            p = proj[i]
            lo = np.searchsorted(lead_proj[:n_lead], p - r, side="left")
            hi = np.searchsorted(lead_proj[:n_lead], p + r, side="right")
            ids = lead_ids[lo:hi]
            ids = ids[ids != last]
            ok = np.flatnonzero(_linked_ref(_sq_dist_ref(x, i, leaders[ids]), r2, strict))
            if len(ok):
                hit = int(ids[ok[0]])
        if hit < 0:
            hit = n_lead
            leaders[hit] = i
            pos = np.searchsorted(lead_proj[:n_lead], proj[i], side="left")
            lead_proj[pos + 1 : n_lead + 1] = lead_proj[pos:n_lead].copy()
            lead_ids[pos + 1 : n_lead + 1] = lead_ids[pos:n_lead].copy()
            lead_proj[pos] = proj[i]
            lead_ids[pos] = hit
            n_lead += 1
        leader_of[i] = hit
        last = hit
    return n_lead


@njit
def _find(parent, i):
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        nxt = parent[i]
        parent[i] = root
        i = nxt
    return root


@njit
def merge_leaders(x, r, r2, strict, leaders, n_lead, leader_of, parent, lead_proj, lead_ids):
    """Union leader groups that contain a linked cross pair; fills ``parent`` (n_lead,).

    Members are gathered per leader (CSR by counting sort). Candidate leader pairs lie within
    3r along the projection (sorted ``lead_proj``) and within 3r in full space; each is
    checked member against member with early exit on the first linked pair.
    """
    n = leader_of.shape[0]
    counts = np.zeros(n_lead + 1, np.int64)
    for i in range(n):
        if leader_of[i] >= 0:
            counts[leader_of[i] + 1] += 1
    for j in range(n_lead):
        counts[j + 1] += counts[j]
    fill = counts[:-1].copy()
    members = np.empty(counts[n_lead], np.int64)
    for i in range(n):
        g = leader_of[i]
        if g >= 0:
            members[fill[g]] = i
            fill[g] += 1
    for j in range(n_lead):
        parent[j] = j
    cand = 9.0 * r2
    for sa in range(n_lead):
        a0 = lead_ids[sa]
        for sb in range(sa + 1, n_lead):
            if lead_proj[sb] - lead_proj[sa] > 3.0 * r:
                break
            b0 = lead_ids[sb]
            if not _within(x, leaders[a0], leaders[b0], cand, False):
                continue
            ra = _find(parent, a0)
            rb = _find(parent, b0)
            if ra == rb:
                continue
            linked = False
            for p in range(counts[a0], counts[a0 + 1]):
                for q in range(counts[b0], counts[b0 + 1]):
                    if _within(x, members[p], members[q], r2, strict):
                        linked = True
                        break
                if linked:
                    break
            if linked:
                if ra < rb:
                    parent[rb] = ra
                else:
                    parent[ra] = rb


def merge_leaders_ref(x, r, r2, strict, leaders, n_lead, leader_of, parent, lead_proj, lead_ids):
    """NumPy reference of :func:`merge_leaders`: the same groups, as a flat forest.

    Two leader groups are joined when any member of one is linked to any member of the other
    (all pairs, O(N²) memory: no projection window, no 3r pre-check); the components follow by
    min-label propagation. ``parent`` (n_lead,) is filled with each leader's root, the smallest
    leader number of its component, which is the root the kernel's union-by-smaller-root reaches
    too (the kernel leaves a deeper forest; :func:`relabel` flattens both alike). ``x``,
    ``leaders``, ``lead_proj`` and ``lead_ids`` are read only, ``r`` is unused.
    """
    rows = np.flatnonzero(leader_of >= 0)
    member = np.zeros((len(rows), n_lead))
    member[np.arange(len(rows)), leader_of[rows]] = 1.0
    link = np.zeros((len(rows), len(rows)))
    for a, i in enumerate(rows):
        link[a] = _linked_ref(_sq_dist_ref(x, i, rows), r2, strict)
    adjacent = (member.T @ link @ member) > 0
    label = np.arange(n_lead, dtype=np.int64)
    while n_lead:
        new = np.where(adjacent, label[None, :], n_lead).min(axis=1)
        new = np.minimum(new, label)
        if np.array_equal(new, label):
            break
        label = new
    parent[:n_lead] = label


@njit
def relabel(leader_of, parent, out):
    """out[i] = group of row i numbered 0.. by first appearance; −1 stays −1. Returns #groups."""
    n_lead = parent.shape[0]
    for j in range(n_lead):
        parent[j] = _find(parent, j)
    code = np.full(n_lead, -1, np.int64)
    n_groups = 0
    for i in range(leader_of.shape[0]):
        g = leader_of[i]
        if g < 0:
            out[i] = -1
            continue
        r = parent[g]
        if code[r] < 0:
            code[r] = n_groups
            n_groups += 1
        out[i] = code[r]
    return n_groups


def relabel_ref(leader_of, parent, out):
    """NumPy reference of :func:`relabel` (same in-place contract).

    Parameters
    ----------
    leader_of : ndarray of shape (N,), int64
        Leader number per row, −1 for none.
    parent : ndarray of shape (n_lead,), int64
        Union-find forest; flattened in place to each leader's root.
    out : ndarray of shape (N,), int64
        Filled: group per row numbered 0.. by first appearance; −1 stays −1.

    Returns
    -------
    int
        Number of groups.
    """
    while True:  # pointer jumping: every leader ends pointing at its root
        up = parent[parent]
        if np.array_equal(up, parent):
            break
        parent[:] = up
    valid = leader_of >= 0
    roots = parent[leader_of[valid]]
    uniq, first = np.unique(roots, return_index=True)
    code = np.full(len(parent), -1, np.int64)
    code[uniq[np.argsort(first)]] = np.arange(len(uniq))
    out[~valid] = -1
    out[valid] = code[roots]
    return len(uniq)
