"""The sim's event-driven propagation kernels against numpy references written here: the events of a
chunk (`check_input`, `fill_events`, `row_ops`) and the dense gather (`gather_dense` over the narrow
int8/int16 weights plus residual lists that `_Link.event_weights` makes), including sums that wrap
at the int32 boundary, int16 partial sums of hundreds of int8 rows at their bound, every send mode
and weight_exp shift, and skipped samples."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.backends.sim import kernels as K
from snnc.backends.sim.plan import RESIDUAL_SHARE, _Link

SETTINGS = settings(max_examples=60, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
INT32 = 2**32


def wrap32(x):
    return ((np.asarray(x, np.int64) + 2**31) % INT32) - 2**31


def _messages(rng, rows: int, n: int, density: float, dtype, graded: bool) -> np.ndarray:
    x = np.zeros((rows, n))
    on = rng.random((rows, n)) < density
    if graded:
        limit = 2**24 - 1 if dtype != np.float64 else 2**31 - 1
        x[on] = rng.integers(-limit, limit + 1, on.sum())
    else:
        x[on] = 1
    return np.ascontiguousarray(x.astype(dtype))


@SETTINGS
@given(
    seed=st.integers(0, 2**31),
    rows=st.integers(1, 70),
    n=st.sampled_from([1, 7, 8, 9, 63, 64, 65, 203]),  # row_events reads 64 sources at a time, then the rest
    density=st.sampled_from([0.0, 0.01, 0.08, 0.09, 0.3, 0.74, 0.76, 1.0]),  # sparse/dense rows: 3/4, ops: 1/12
    dtype=st.sampled_from([np.uint8, np.float32, np.float64]),
    n_proj=st.integers(0, 3),
)
def test_events_and_ops_equal_numpy(seed, rows, n, density, dtype, n_proj):
    rng = np.random.default_rng(seed)
    graded = dtype != np.uint8 and bool(rng.integers(2))
    x = _messages(rng, rows, n, density, dtype, graded)
    nnz = np.zeros(rows, np.int64)
    bad, peak = K.check_input(x, graded, float(2**31), nnz)
    assert bad == 0 and peak == (np.abs(x).max() if x.size else 0)
    assert np.array_equal(nnz, np.count_nonzero(x, axis=1))
    ptr = np.concatenate(([0], np.cumsum(nnz))).astype(np.int64)
    idx, val = np.full(ptr[-1], -1, np.int32), np.zeros(ptr[-1], np.int32)
    fanout = rng.integers(0, 50, (n_proj, n)).astype(np.int64)
    ops = np.full((rows, n_proj), -1, np.int64)
    K.fill_events(x, ptr, idx, val, fanout, ops)
    r_want, i_want = np.nonzero(x)  # row-major: sources in increasing order within a row
    assert np.array_equal(idx, i_want)
    assert np.array_equal(val, x[r_want, i_want].astype(np.int64))
    want_ops = (x != 0).astype(np.int64) @ fanout.T
    assert np.array_equal(ops, want_ops)
    idx[:] = -1  # without values (what a binary link reads): the same sources
    K.fill_events(x, ptr, idx, np.zeros(0, np.int32), fanout, ops)
    assert np.array_equal(idx, i_want) and np.array_equal(ops, want_ops)
    dense_ops = np.full((rows, n_proj), -1, np.int64)
    K.row_ops(x, fanout, dense_ops)
    assert np.array_equal(dense_ops, want_ops)


def test_fill_events_never_writes_past_a_row_share():
    """Counts that undercount a row (a caller's bug) must not let it overwrite the next row's events."""
    x = np.ones((2, 130), np.uint8)  # two blocks of 64 sources and a tail
    for ptr in (np.array([0, 3, 133]), np.array([0, 129, 259])):  # sparse and dense branch of row 0
        idx, val = np.full(ptr[-1], -1, np.int32), np.zeros(ptr[-1], np.int32)
        K.fill_events(x, ptr.astype(np.int64), idx, val, np.zeros((0, 130), np.int64), np.zeros((2, 0), np.int64))
        assert np.array_equal(idx[ptr[1]:], np.arange(130))


def _weights(rng, n_dst: int, n_src: int, kind: str) -> np.ndarray:
    """int8-range weights, int8 with outliers, mostly wide (int16), or beyond int16."""
    w = rng.integers(-128, 128, (n_dst, n_src))
    if kind == "int8_extreme":  # the int16 partial sums of many rows at their bound
        w = rng.choice([-128, 127], (n_dst, n_src), p=[0.99, 0.01])
    elif kind == "outliers":
        w[rng.random(w.shape) < 0.05] = rng.choice([-300, -129, 128, 255])
    elif kind == "wide":
        w = rng.integers(-256, 256, (n_dst, n_src))
    elif kind == "huge":
        w[rng.random(w.shape) < 0.05] = rng.choice([-(2**20), 40000, 2**22])
    w[rng.random(w.shape) < 0.2] = 0
    return w.astype(np.int64)


def _narrow(w: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """w.T clipped to `dtype` and, per source, the list of (column, w - clipped) where they differ."""
    info = np.iinfo(dtype)
    w_t = w.T
    narrow = np.clip(w_t, info.min, info.max)
    src, col = np.nonzero(w_t != narrow)
    ptr = np.searchsorted(src, np.arange(w_t.shape[0] + 1)).astype(np.int64)
    return np.ascontiguousarray(narrow.astype(dtype)), ptr, col.astype(np.int64), (w_t - narrow)[src, col].astype(np.int64)


@SETTINGS
@given(seed=st.integers(0, 2**31), n_dst=st.integers(1, 300), n_src=st.integers(1, 40),
       outliers=st.sampled_from([0, 1, 2, 3, 10]), big=st.sampled_from([128, -129, 255, 40000, -(2**21)]))
def test_event_weights_are_int8_plus_residuals_when_few_fall_outside(seed, n_dst, n_src, outliers, big):
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (n_dst, n_src))
    w.flat[rng.choice(w.size, min(outliers, w.size), replace=False)] = big
    link = _Link(proj="p", src="x", kind="dense", delay=0, latency=1, n_off=0, n_dst=n_dst, shift=0, mode=K.MODE_PLAIN,
                 graded=False, abs_msg=False, l1=0, dense=w)
    wt, res_ptr, res_col, res_val = link.event_weights()
    outside8 = min(outliers, w.size)
    assert wt.dtype == (np.int8 if outside8 * RESIDUAL_SHARE <= w.size else np.int16)
    whole = wt.astype(np.int64)
    for i in range(n_src):  # narrow weights + residuals are the matrix
        whole[i, res_col[res_ptr[i] : res_ptr[i + 1]]] += res_val[res_ptr[i] : res_ptr[i + 1]]
    assert np.array_equal(whole, w.T)
    assert res_col.size == np.count_nonzero(wt.astype(np.int64) != w.T)


def _reference(acc, w, x, graded, skip, steps, t_off, n_off, shift, mode):
    """acc after adding what the projection sends for each row, computed from the int64 matrix."""
    out = acc.astype(np.int64)
    msgs = x.astype(np.int64) if graded else (x != 0).astype(np.int64)
    y = msgs @ w.T  # exact: |sum| < 2**62 for these sizes
    if mode == K.MODE_WRAP32:
        y = wrap32(y)
    y = y << shift if shift >= 0 else y >> -shift
    for r in range(x.shape[0]):
        b, t = divmod(r, steps)
        if not skip[b]:
            out[b, t_off + t, n_off : n_off + w.shape[0]] += wrap32(y[r])
    return wrap32(out).astype(np.int32)


@SETTINGS
@given(
    seed=st.integers(0, 2**31),
    batch=st.integers(1, 3),
    steps=st.integers(1, 40),
    n_src=st.one_of(st.integers(1, 40), st.just(600)),  # 600 binary events in a row: int16 sums flushed twice
    n_dst=st.sampled_from([1, 13, 512, 513, 1100]),
    kind=st.sampled_from(["int8", "int8_extreme", "outliers", "wide", "huge"]),
    density=st.sampled_from([0.02, 0.3, 1.0]),
    graded=st.booleans(),
    shift=st.integers(-3, 3),
    mode=st.sampled_from([K.MODE_PLAIN, K.MODE_WRAP32]),
)
def test_gather_dense_equals_the_int64_matrix(seed, batch, steps, n_src, n_dst, kind, density, graded, shift, mode):
    rng = np.random.default_rng(seed)
    w = _weights(rng, n_dst, n_src, kind)
    wt, res_ptr, res_col, res_val = _narrow(w, np.int8 if kind in ("int8", "int8_extreme", "outliers") else np.int16)
    rows = batch * steps
    x = _messages(rng, rows, n_src, density, np.float64, graded)
    if graded:  # payloads up to the int32 range: sums wrap at the boundary
        x = np.where(x != 0, rng.integers(-(2**31), 2**31, x.shape), 0).astype(np.float64)
    n_off = int(rng.integers(0, 3))
    acc = rng.integers(-(2**31), 2**31, (batch, steps + 3, n_dst + n_off + 2)).astype(np.int32)
    skip = (rng.random(batch) < 0.3).astype(np.uint8)
    nnz = np.count_nonzero(x, axis=1)
    ptr = np.concatenate(([0], np.cumsum(nnz))).astype(np.int64)
    idx, val = np.empty(ptr[-1], np.int32), np.empty(ptr[-1], np.int32)
    K.fill_events(x, ptr, idx, val, np.zeros((0, n_src), np.int64), np.zeros((rows, 0), np.int64))
    want = _reference(acc, w, x, graded, skip, steps, 1, n_off, shift, mode)
    K.gather_dense(ptr, idx, val, graded, skip, wt, res_ptr, res_col, res_val, steps, acc, 1, n_off, shift, mode)
    assert np.array_equal(acc, want)


def test_gather_dense_int16_partial_sums_at_their_bound():
    """Hundreds of binary events on int8 rows of -128 (and 127): the int16 partial sums are widened
    before they could leave int16, whatever the number of events in a row."""
    rng = np.random.default_rng(3)
    for value in (-128, 127):
        n_src, n_dst, steps = 997, 600, 4
        w = np.full((n_dst, n_src), value, np.int64)
        wt, res_ptr, res_col, res_val = _narrow(w, np.int8)
        x = np.ones((steps, n_src))
        x[1, rng.choice(n_src, 500, replace=False)] = 0  # rows of 997, 497, 997, 0 events
        x[3] = 0
        acc = np.zeros((1, steps + 1, n_dst), np.int32)
        nnz = np.count_nonzero(x, axis=1)
        ptr = np.concatenate(([0], np.cumsum(nnz))).astype(np.int64)
        idx, val = np.empty(ptr[-1], np.int32), np.empty(ptr[-1], np.int32)
        K.fill_events(x, ptr, idx, val, np.zeros((0, n_src), np.int64), np.zeros((steps, 0), np.int64))
        want = _reference(acc, w, x, False, np.zeros(1, np.uint8), steps, 1, 0, 0, K.MODE_PLAIN)
        K.gather_dense(ptr, idx, val, False, np.zeros(1, np.uint8), wt, res_ptr, res_col, res_val, steps, acc, 1, 0, 0,
                       K.MODE_PLAIN)
        assert np.array_equal(acc, want)
        assert acc[0, 1, 0] == 997 * value
