"""Numba kernel: exact single-linkage grouping at a tolerance, O(N·k) memory.

``leader_pass`` assigns each point to the first leader within the radius (else it becomes a
leader); distances abort as soon as the partial sum passes the radius, so far-apart clusters
cost a few coordinates each. ``merge_leaders`` then unions two leader groups when any cross
pair of members is linked; only leader pairs within 3× the radius can hold such a pair
(triangle inequality). The result is the partition of ``DBSCAN(eps, min_samples=1)``.

All arrays are C-contiguous; the wrapper (:mod:`flowcore.dynamics.grouping`) validates and allocates.
"""

from __future__ import annotations

import numpy as np

from flowcore.dynamics._numba import njit

__all__ = ["leader_pass", "merge_leaders", "relabel"]


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
