"""Each Numba kernel against its NumPy ``*_ref`` on random and edge inputs.

``make test`` runs this file a second time with ``NUMBA_DISABLE_JIT=1`` (kernels as plain Python).
"""

import numpy as np
import pytest

from flowcore.dynamics import _features_kernel as fk
from flowcore.dynamics import _grouping_kernel as gk
from flowcore.dynamics import _step_kernel as sk
from flowcore.dynamics.grouping import _prepare, _projection, group_points_ref

F32 = np.float32


def _same(a, b):
    """Arrays equal in dtype, shape and value (NaN equal to NaN)."""
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- step kernels


def _check_inputs(step_sq, norm_sq, steps):
    n = len(step_sq)
    return (np.asarray(step_sq, F32), np.asarray(norm_sq, F32), np.asarray(steps, np.int32),
            np.zeros(n, np.bool_), np.full(n, 7, np.int8))


def _run_check(fn, step_sq, norm_sq, steps, tol=1e-3, limit_sq=100.0, max_steps=10):
    sq, nrm, st_, done, status = (a.copy() for a in _check_inputs(step_sq, norm_sq, steps))
    n_done = fn(sq, nrm, st_, F32(tol), F32(limit_sq), max_steps, done, status)
    return n_done, st_, done, status


def _both_check(*args, **kw):
    out_k = _run_check(sk.check_rows, *args, **kw)
    out_r = _run_check(sk.check_rows_ref, *args, **kw)
    assert int(out_k[0]) == out_r[0]
    for a, b in zip(out_k[1:], out_r[1:]):
        _same(a, b)
    return out_r


@pytest.mark.parametrize("n", [0, 1, 2, 257])
def test_check_rows_random(n):
    rng = np.random.default_rng(n)
    step_sq = rng.exponential(1e-3, n)
    step_sq[rng.random(n) < 0.1] = np.nan
    step_sq[rng.random(n) < 0.05] = np.inf
    norm_sq = rng.exponential(60.0, n)
    norm_sq[rng.random(n) < 0.05] = np.nan
    steps = rng.integers(0, 12, n)
    n_done, _, done, status = _both_check(step_sq, norm_sq, steps)
    assert n_done == int(done.sum())
    assert np.all(status[~done] == 7)  # untouched where the row goes on


def test_check_rows_edges():
    # max_steps reached on the first step: every finite, unconverged row stops with status 1
    n_done, steps, done, status = _both_check([1.0, 2.0], [1.0, 1.0], [0, 0], max_steps=1)
    assert n_done == 2 and list(steps) == [1, 1] and list(status) == [1, 1]
    # all rows done, one of each kind; divergence wins over convergence and max_steps
    n_done, _, done, status = _both_check([0.0, 1.0, 0.0, np.nan], [1.0, 1.0, 1e9, 1.0], [0, 9, 9, 0])
    assert n_done == 4 and done.all() and list(status) == [0, 1, 2, 2]
    # norm limit: exactly at the limit is fine, just above it diverges; NaN norm diverges
    lim = F32(100.0)
    _, _, done, status = _both_check([1.0] * 3, [lim, np.nextafter(lim, F32(np.inf)), np.nan], [0] * 3)
    assert list(done) == [False, True, True] and list(status[1:]) == [2, 2]
    # tie with tol: step_sq == tol is not converged (strict <)
    _, _, done, _ = _both_check([1e-3, np.nextafter(F32(1e-3), F32(0))], [1.0, 1.0], [0, 0])
    assert list(done) == [False, True]
    # +Inf step diverges
    _, _, _, status = _both_check([np.inf], [1.0], [0])
    assert status[0] == 2


def _retire_inputs(rng, n, big_n, k, p_done):
    z_new = rng.standard_normal((n, k)).astype(F32)
    act_idx = rng.permutation(big_n)[:n].astype(np.int64)
    act_steps = rng.integers(1, 50, n).astype(np.int32)
    step_sq = rng.random(n).astype(F32)
    done = rng.random(n) < p_done
    st = rng.integers(0, 3, n).astype(np.int8)
    final = np.full((big_n, k), -9, F32)
    steps = np.full(big_n, -1, np.int32)
    last_sq = np.full(big_n, -1, F32)
    status = np.full(big_n, -1, np.int8)
    return [z_new, act_idx, act_steps, step_sq, done, st, final, steps, last_sq, status]


@pytest.mark.parametrize(("n", "p_done"), [(0, 0.5), (1, 1.0), (1, 0.0), (40, 0.3), (40, 1.0), (40, 0.0)])
def test_retire_rows(n, p_done):
    rng = np.random.default_rng(n + int(10 * p_done))
    args = _retire_inputs(rng, n, max(2 * n, 1), 3, p_done)
    a_k = [a.copy() for a in args]
    a_r = [a.copy() for a in args]
    w_k = sk.retire_rows(*a_k)
    w_r = sk.retire_rows_ref(*a_r)
    assert int(w_k) == w_r == int((~args[4]).sum())
    for a, b in zip(a_k, a_r):
        _same(a, b)
    keep = ~args[4]
    _same(a_r[0][:w_r], args[0][keep])  # active rows compacted, order kept
    _same(a_r[1][:w_r], args[1][keep])
    done_rows = args[1][args[4]]
    _same(a_r[6][done_rows], args[0][args[4]])


# ---------------------------------------------------------------- feature kernels


@pytest.mark.parametrize(("b", "m", "k"), [(0, 3, 4), (1, 1, 1), (1, 5, 3), (64, 7, 5)])
def test_nearest_distance_random(b, m, k):
    rng = np.random.default_rng(b * 100 + m)
    z = rng.standard_normal((b, k)).astype(F32)
    refs = rng.standard_normal((m, k)).astype(F32)
    out_k, out_r = np.full(b, -1.0), np.full(b, -1.0)
    fk.nearest_distance(z, refs, out_k)
    fk.nearest_distance_ref(z, refs, out_r)
    np.testing.assert_allclose(out_k, out_r, rtol=1e-13, atol=0)
    if b:
        brute = np.sqrt(((z[:, None].astype(float) - refs[None].astype(float)) ** 2).sum(-1)).min(1)
        np.testing.assert_allclose(out_r, brute, rtol=1e-12)


def test_nearest_distance_edges():
    refs = np.array([[0.0, 0.0], [2.0, 0.0]], F32)
    z = np.array([
        [1.0, 0.0],        # tie: equally far from both references
        [np.nan, 0.0],     # NaN row: no distance wins -> +inf
        [np.inf, 0.0],     # Inf row -> +inf
        [0.0, 0.0],        # on a reference -> 0
        [-np.inf, np.nan],
    ], F32)
    out_k, out_r = np.empty(len(z)), np.empty(len(z))
    fk.nearest_distance(z, refs, out_k)
    fk.nearest_distance_ref(z, refs, out_r)
    _same(out_k, out_r)
    _same(out_r, np.array([1.0, np.inf, np.inf, 0.0, np.inf]))


def _acc_state(rng, n):
    return [rng.random(n) * 3, np.full(n, np.inf), np.full(n, -np.inf), np.full(n, np.nan),
            rng.integers(0, 5, n).astype(np.int64)]


@pytest.mark.parametrize("b", [0, 1, 30])
def test_accumulate_distance(b):
    rng = np.random.default_rng(b)
    n = 50
    state = _acc_state(rng, n)
    s_k, s_r = [a.copy() for a in state], [a.copy() for a in state]
    for step in range(4):  # several steps so min/max/last really fold
        rows = rng.permutation(n)[:b].astype(np.int64)
        dist = rng.random(b) * 5
        dist[rng.random(b) < 0.2] = np.nan
        if b:
            dist[0] = np.inf if step == 1 else dist[0]
            dist[-1] = 1.0  # ties with a previous min/max are kept as they are
        fk.accumulate_distance(rows, dist, *s_k)
        fk.accumulate_distance_ref(rows, dist, *s_r)
    for a, b_ in zip(s_k, s_r):
        _same(a, b_)


@pytest.mark.parametrize("b", [0, 1, 30])
def test_accumulate_steps(b):
    rng = np.random.default_rng(b + 7)
    n = 40
    path_k, v0_k = np.zeros(n), np.full(n, np.nan)
    path_r, v0_r = path_k.copy(), v0_k.copy()
    for step in (1, 2, 3):
        rows = rng.permutation(n)[:b].astype(np.int64)
        step_sq = rng.random(b).astype(F32)
        step_sq[rng.random(b) < 0.2] = np.nan
        if b:
            step_sq[0] = np.inf
        steps_now = np.where(rng.random(b) < 0.5, 1, step).astype(np.int32)
        fk.accumulate_steps(rows, step_sq, steps_now, path_k, v0_k)
        fk.accumulate_steps_ref(rows, step_sq, steps_now, path_r, v0_r)
    _same(path_k, path_r)
    _same(v0_k, v0_r)


# ---------------------------------------------------------------- grouping kernels


def _group_inputs(points, metric, threshold):
    w, r2, strict, zero = _prepare(points, metric, threshold, False, keep_float32=True)
    proj, err = _projection(w, zero)
    r = float(np.sqrt(r2)) * (1 + 1e-12) + 2.0 * err
    return w, proj, r, r2, strict, zero


def _pass(fn, w, proj, r, r2, strict, zero):
    n = len(w)
    bufs = [np.full(n, -5, np.int64), np.full(n, -5, np.int64), np.full(n, np.nan), np.full(n, -5, np.int64)]
    n_lead = fn(w, proj, r, r2, strict, zero, *bufs)
    return int(n_lead), bufs


def _roots(parent):
    parent = parent.copy()
    out = np.empty(len(parent), np.int64)
    for j in range(len(parent)):
        root = j
        while parent[root] != root:
            root = parent[root]
        out[j] = root
    return out


def _group_all(points, metric, threshold):
    """Run the three kernels and the three references side by side; compare every output."""
    w, proj, r, r2, strict, zero = _group_inputs(points, metric, threshold)
    n_k, (lo_k, ld_k, lp_k, li_k) = _pass(gk.leader_pass, w, proj, r, r2, strict, zero)
    n_r, (lo_r, ld_r, lp_r, li_r) = _pass(gk.leader_pass_ref, w, proj, r, r2, strict, zero)
    assert n_k == n_r
    _same(lo_k, lo_r)
    _same(ld_k[:n_k], ld_r[:n_r])
    _same(lp_k[:n_k], lp_r[:n_r])
    _same(li_k[:n_k], li_r[:n_r])
    par_k, par_r = np.full(n_k, -5, np.int64), np.full(n_k, -5, np.int64)
    gk.merge_leaders(w, r, r2, strict, ld_k, n_k, lo_k, par_k, lp_k, li_k)
    gk.merge_leaders_ref(w, r, r2, strict, ld_r, n_r, lo_r, par_r, lp_r, li_r)
    _same(_roots(par_k), _roots(par_r))
    out_k, out_r = np.full(len(w), -5, np.int64), np.full(len(w), -5, np.int64)
    g_k = gk.relabel(lo_k, par_k, out_k)
    g_r = gk.relabel_ref(lo_r, par_r, out_r)
    assert int(g_k) == g_r
    _same(par_k, par_r)  # both flattened to the same roots
    _same(out_k, out_r)
    return out_r, zero


@pytest.mark.parametrize("n", [0, 1, 2, 300])
@pytest.mark.parametrize("metric,threshold", [("euclidean", 0.6), ("cosine", 0.99)])
def test_grouping_kernels_random(n, metric, threshold):
    rng = np.random.default_rng(n)
    centres = rng.standard_normal((6, 4)) * 3
    pts = (centres[rng.integers(0, 6, n)] + rng.standard_normal((n, 4)) * 0.3).astype(F32)
    labels, zero = _group_all(pts, metric, threshold)
    if not zero.any():  # the end-to-end reference agrees with the kernels' labels
        _same(labels, group_points_ref(pts, metric=metric, threshold=threshold))


def test_grouping_kernels_ties_and_chains():
    # points on a line exactly 1 apart, shuffled: at threshold 1 (<=) all link into one chain
    x = np.array([[0.0], [3.0], [1.0], [2.0], [5.0], [7.0], [6.0]], F32)
    labels, _ = _group_all(x, "euclidean", 1.0)
    assert list(labels) == [0, 0, 0, 0, 1, 1, 1]
    # just below the spacing nothing links
    labels, _ = _group_all(x, "euclidean", float(np.nextafter(1.0, 0.0)))
    assert list(labels) == list(range(7))
    # duplicates (distance 0 ties) and N = 1
    labels, _ = _group_all(np.zeros((5, 3), F32), "euclidean", 0.0)
    assert list(labels) == [0] * 5
    labels, _ = _group_all(np.ones((1, 3), F32), "cosine", 0.99)
    assert list(labels) == [0]


def test_grouping_kernels_skip_rows():
    # cosine skips zero rows: they get -1 from the kernels (the wrapper groups them later)
    x = np.array([[1, 0], [0, 0], [1, 0.001], [0, 1], [0, 0]], F32)
    labels, zero = _group_all(x, "cosine", 0.99)
    assert list(zero) == [False, True, False, False, True]
    assert list(labels) == [0, -1, 0, 1, -1]
    labels, zero = _group_all(np.zeros((3, 2), F32), "cosine", 0.99)
    assert list(labels) == [-1, -1, -1]


def test_relabel_numbers_by_first_appearance():
    leader_of = np.array([2, -1, 0, 1, 2, 3], np.int64)
    parent = np.array([0, 0, 2, 1], np.int64)  # 3 -> 1 -> 0: a chain to flatten
    p_k, p_r = parent.copy(), parent.copy()
    out_k, out_r = np.empty(6, np.int64), np.empty(6, np.int64)
    assert gk.relabel(leader_of, p_k, out_k) == gk.relabel_ref(leader_of, p_r, out_r) == 2
    _same(out_k, out_r)
    _same(p_k, p_r)
    assert list(out_r) == [0, -1, 1, 1, 0, 1]
