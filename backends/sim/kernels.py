"""numba kernels of the sim backend: Lava 0.10.0 fixed_pt arithmetic, bit for bit.

The neuron arithmetic is not written here: `decay`, `wrap_u`, `saturate_v` and `wrap32` are the
functions of `snnc.ir.fixed_point.arith` compiled inline, and both neuron scans follow the numpy
step `snnc.ir.fixed_point.neuron.neuron_step` (the tests compare them). What is specific to the
simulator is the data movement: every synapse value a neuron receives is an int32 (channels are
int32; sums wrap mod 2**32), and the kernels below batch it over samples, steps and neurons.

Arrays are laid out [batch, time, neuron]. All kernels are compiled with ``cache=True``.
"""
from __future__ import annotations

import hashlib
import inspect
import sys
import types

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from snnc.ir.fixed_point import arith, units
from snnc.ir.fixed_point.units import DECAY_ONE, STATE_SHIFT, U_HALF, U_WRAP

from . import arg_types as A

wrap32 = nb.njit(inline="always")(arith.wrap32)
decay = nb.njit(inline="always")(arith.decay)
wrap_u = nb.njit(inline="always")(arith.wrap_u)
saturate_v = nb.njit(inline="always")(arith.saturate_v)

ROW_BLOCK = 64  # rows (sample, step) per parallel work item in the event kernels
TILE = 512  # target neurons per work item of `gather_dense` (a 1000 x 512 int8 weight tile: 0.5 MB, fits L2)
INT16_ROWS = 248  # int8 weight rows summed in int16 before widening (a multiple of 8; 248 * 128 < 2**15)

MODEL_LIF = 0
MODEL_RESET = 1
MODEL_TERNARY = 2
MODEL_RELAY = 3

RESET_ZERO = 0
RESET_SUBTRACT = 1
RESET_NONE = 2

MODE_PLAIN = 0  # int64 accumulation, then weight_exp shift (Dense binary, DelayDense, DelaySparse binary)
MODE_WRAP32 = 1  # int32 dot product (wraps) before the shift (Dense/Sparse graded with int32 messages)
MODE_WRAP24 = 2  # Conv: no shift, int32 cast of the float result, then wrapped to signed 24 bits


@nb.njit(inline="always")
def wrap24(x):
    return ((x + U_HALF) & (U_WRAP - 1)) - U_HALF


@nb.njit(inline="always")
def shift_exp(x, shift):
    """`x << shift` for shift > 0, else arithmetic (floor) `x >> -shift`, as Lava's Dense does."""
    if shift > 0:
        return x << shift
    if shift < 0:
        return x >> (-shift)
    return x


@nb.njit(inline="always")
def synapse_value(y, mode, shift):
    """What one projection sends for an exact accumulated integer `y` (int64)."""
    if mode == MODE_WRAP24:
        # Lava's Conv casts its float64 result to int32 first; on x86 an out-of-range value
        # becomes INT32_MIN ("integer indefinite"), which then wraps to 0 in 24 bits.
        if y >= 2147483648 or y < -2147483648:
            y = -2147483648
        return wrap24(y)
    if mode == MODE_WRAP32:
        y = wrap32(y)
    return wrap32(shift_exp(y, shift))


@nb.njit(inline="always")
def add_row(dst, src, mode, shift):
    """dst (int32) += what a projection sends for the exact sums in src, element-wise.

    The common case (no shift, plain sum) gets its own loop so that it vectorizes."""
    n = src.shape[0]
    if mode == MODE_PLAIN and shift == 0:
        for j in range(n):
            dst[j] = wrap32(np.int64(dst[j]) + wrap32(np.int64(src[j])))
    else:
        for j in range(n):
            dst[j] = wrap32(np.int64(dst[j]) + synapse_value(np.int64(src[j]), mode, shift))


@nb.njit(inline="always")
def row_events(xr, k, end, idx, val):
    """Write the nonzero messages of row xr as events idx[k:end] (source, int32) and, when `val` is
    not empty, val (the int32 value; a binary source's events need none); returns the position
    after the last one written (never past `end`, whatever the count said). A sparse row is read 64
    sources at a time into a bit mask of its nonzero ones (compares the compiler vectorizes), whose
    set bits are then written; a denser one (more than three sources in four sent: where writing every
    source costs less, measured) writes every source and keeps the nonzero ones, without a branch each."""
    n = xr.shape[0]
    values = val.shape[0] > 0
    if (end - k) * 4 > 3 * n:
        for i in range(n):
            v = xr[i]
            if k < end:
                idx[k] = i
                if values:
                    val[k] = np.int32(v)
                k += v != 0
        return k
    n64 = n - n % 64
    for i0 in range(0, n64, 64):
        bits = np.uint64(0)
        for i in range(64):
            bits |= np.uint64(xr[i0 + i] != 0) << np.uint64(i)
        while bits != 0 and k < end:
            i = i0 + np.int64(trailing_zeros(bits))
            idx[k] = i
            if values:
                val[k] = np.int32(xr[i])
            k += 1
            bits &= bits - np.uint64(1)
    for i in range(n64, n):
        v = xr[i]
        if v != 0 and k < end:
            idx[k] = i
            if values:
                val[k] = np.int32(v)
            k += 1
    return k


@nb.njit(inline="always")
def add_weight_rows(out, wt, idx, k0, k1, lo, t16):
    """out (int32) += the weight rows wt[idx[k0:k1], lo:lo + len(out)] (binary events, no shift):
    eight rows per pass over `out`, summed first (an eighth of its loads and stores). int8 rows, 16
    or more of them, are summed into the int16 buffer `t16` (twice the lanes of int32 per
    instruction), widened into `out` every INT16_ROWS rows, before |sum| <= INT16_ROWS * 128 could
    leave int16. Everything is modulo 2**32, as Lava's int32 channels."""
    m = out.shape[0]
    q = k0
    while wt.itemsize == 1 and q + 16 <= k1:
        end = min(q + INT16_ROWS, k1 - (k1 - q) % 8)
        for j in range(m):
            t16[j] = 0
        while q < end:
            w0, w1, w2, w3 = wt[idx[q], lo : lo + m], wt[idx[q + 1], lo : lo + m], wt[idx[q + 2], lo : lo + m], wt[idx[q + 3], lo : lo + m]
            w4, w5, w6, w7 = wt[idx[q + 4], lo : lo + m], wt[idx[q + 5], lo : lo + m], wt[idx[q + 6], lo : lo + m], wt[idx[q + 7], lo : lo + m]
            for j in range(m):
                t16[j] += ((w0[j] + w1[j]) + (w2[j] + w3[j])) + ((w4[j] + w5[j]) + (w6[j] + w7[j]))
            q += 8
        for j in range(m):
            out[j] += t16[j]
    while q + 8 <= k1:
        w0, w1, w2, w3 = wt[idx[q], lo : lo + m], wt[idx[q + 1], lo : lo + m], wt[idx[q + 2], lo : lo + m], wt[idx[q + 3], lo : lo + m]
        w4, w5, w6, w7 = wt[idx[q + 4], lo : lo + m], wt[idx[q + 5], lo : lo + m], wt[idx[q + 6], lo : lo + m], wt[idx[q + 7], lo : lo + m]
        for j in range(m):
            out[j] += ((np.int32(w0[j]) + np.int32(w1[j])) + (np.int32(w2[j]) + np.int32(w3[j]))) + (
                (np.int32(w4[j]) + np.int32(w5[j])) + (np.int32(w6[j]) + np.int32(w7[j])))
        q += 8
    if q + 4 <= k1:
        w0, w1, w2, w3 = wt[idx[q], lo : lo + m], wt[idx[q + 1], lo : lo + m], wt[idx[q + 2], lo : lo + m], wt[idx[q + 3], lo : lo + m]
        for j in range(m):
            out[j] += (np.int32(w0[j]) + np.int32(w1[j])) + (np.int32(w2[j]) + np.int32(w3[j]))
        q += 4
    for e in range(q, k1):
        w = wt[idx[e], lo : lo + m]
        for j in range(m):
            out[j] += w[j]


@nb.njit(inline="always")
def add_residuals(out, idx, val, graded, k0, k1, lo, res_ptr, res_col, res_val):
    """out += the residual weights (the part of a weight its narrow row does not hold) of the events
    idx[k0:k1] that fall in columns lo:lo + len(out), times the payload when graded."""
    m = out.shape[0]
    for q in range(k0, k1):
        i = idx[q]
        for e in range(res_ptr[i], res_ptr[i + 1]):
            j = res_col[e] - lo
            if 0 <= j < m:
                out[j] += res_val[e] * (val[q] if graded else 1)


@nb.njit(inline="always")
def tile(unit, n_blocks, block, n):
    """(sample, first neuron, end) of work item `unit` of a feed-forward scan tiled by `block` neurons."""
    b = unit // n_blocks
    lo = (unit % n_blocks) * block
    return b, lo, min(n, lo + block)


@nb.njit(inline="always")
def count_tile_step(unit, t, lo, n_msg, s_row, fanout, spikes_t, ops_t):
    """The counters of one step of a tile: its nonzero messages, and the synaptic ops they cause on
    each outgoing projection (the fanout of every neuron that sent)."""
    spikes_t[unit, 0, t] += n_msg
    if n_msg > 0:
        for p in range(fanout.shape[0]):
            total = 0
            for j in range(s_row.shape[0]):
                total += fanout[p, lo + j] * (s_row[j] != 0)
            ops_t[unit, p, t] += total


@nb.njit(inline="always")
def record_tile_step(b, t, lo, u, v, u_out, v_out, write_u, write_v):
    """A tile's two state variables at step t into the probe buffers that are written."""
    if write_u:
        for j in range(u.shape[0]):
            u_out[b, t, lo + j] = u[j]
    if write_v:
        for j in range(v.shape[0]):
            v_out[b, t, lo + j] = v[j]


@nb.njit(inline="always")
def count_step(b, t, n_spk, n_act, s_out, fanout, spikes_t, active, ops_t):
    """The activity counters of one (sample, step) of a single-population component: its nonzero
    messages, active neurons, and the synaptic ops they cause (fanout per nonzero message)."""
    spikes_t[b, 0, t] += n_spk
    active[b, 0] += n_act
    if n_spk > 0:
        for p in range(fanout.shape[0]):
            total = 0
            for j in range(fanout.shape[1]):
                total += fanout[p, j] * (s_out[b, t, j] != 0)
            ops_t[b, p, t] += total


def inline(fn, **helpers):
    """The spec function `fn` compiled inline, with the spec functions it calls (`helpers`, by name)
    bound to their compiled versions: how every kernel module reuses `ir/fixed_point` unchanged."""
    bound = types.FunctionType(fn.__code__, {**fn.__globals__, **helpers}, fn.__name__, fn.__defaults__)
    return nb.njit(inline="always")(bound)


def spec_digest(*modules) -> str:
    """A digest of the source of `modules` (what a kernel inlines) and of this module (the helpers
    every kernel module inlines: `tile`, `count_step`, ...), for a kernel to close over."""
    sources = (inspect.getsource(m) for m in (sys.modules[__name__], *modules))
    return hashlib.sha256("".join(sources).encode()).hexdigest()


SPEC_DIGEST = spec_digest(arith, units)
"""A digest of the arithmetic the kernels inline. numba's on-disk cache is keyed on a kernel's own
bytecode and closure, not on what it inlines: the kernels close over this digest, so an edit of
`ir/fixed_point` recompiles them instead of loading stale code. A kernel module that inlines more
(a spec module of its own) closes over `spec_digest(arith, units, its_spec)`."""


def _make_kernels(digest: str):
    """The parallel kernels, closed over `digest`."""

    @nb.njit(parallel=True, cache=True)
    def accumulate(y, samples, steps, acc, t_off, n_off, shift, mode):
        """acc[samples[i], t_off + t, n_off + j] += what a projection sends for y[i * steps + t, j].

        `y` holds exact integers (float32/float64 from BLAS or torch within their exact range).
        `acc` is int32 and wraps like Lava's int32 channel sums.
        """
        digest  # noqa: B018 - part of numba's cache key (see SPEC_DIGEST)
        n = y.shape[1]
        for r in nb.prange(y.shape[0]):
            b = samples[r // steps]
            t = r % steps
            add_row(acc[b, t_off + t, n_off : n_off + n], y[r], mode, shift)


    @nb.njit(parallel=True, cache=True)
    def check_input(x, graded, limit, nnz):
        """Check one chunk of user input x [rows, n] (row = b * C + t) and count its messages.

        Binary inputs must be 0 or 1, graded ones integers with |value| <= limit. Writes per row the
        number of nonzero messages (`nnz` [rows]); the synaptic ops follow from the events or from
        `row_ops`. Returns (number of bad values, largest |value|).
        """
        digest  # noqa: B018 - part of numba's cache key (see SPEC_DIGEST)
        rows, n = x.shape
        bad = np.zeros(rows, np.int64)
        peak = np.zeros(rows, np.float64)
        for r in nb.prange(rows):
            xr = x[r]
            c = 0
            nbad = 0
            if graded:
                pk = 0.0
                for i in range(n):
                    fv = np.float64(xr[i])
                    c += fv != 0.0
                    nbad += (fv != np.floor(fv)) | (abs(fv) > limit)
                    pk = max(pk, abs(fv))
                peak[r] = pk
            else:  # comparisons only (vectorized); a valid row's peak is 1 (an invalid one is reported)
                for i in range(n):
                    v = xr[i]
                    c += v != 0
                    nbad += (v != 0) & (v != 1)
                peak[r] = 1.0 if c > 0 else 0.0
            nnz[r] = c
            bad[r] = nbad
        return bad.sum(), peak.max() if rows > 0 else 0.0


    @nb.njit(parallel=True, cache=True)
    def row_ops(x, fanout, ops):
        """ops[r, p] = synaptic ops of outgoing projection p caused by row r of x [rows, n] (the
        fanout [P, n] of every source that sent), for a chunk whose events were not made."""
        digest  # noqa: B018 - part of numba's cache key (see SPEC_DIGEST)
        for r in nb.prange(x.shape[0]):
            xr = x[r]
            for p in range(fanout.shape[0]):
                total = 0
                for i in range(x.shape[1]):
                    total += fanout[p, i] * (xr[i] != 0)
                ops[r, p] = total


    @nb.njit(parallel=True, cache=True)
    def count_events(x, counts):
        """counts[r] = nonzero messages in row r of x [rows, n]."""
        digest  # noqa: B018 - part of numba's cache key (see SPEC_DIGEST)
        for r in nb.prange(x.shape[0]):
            c = 0
            for i in range(x.shape[1]):
                c += x[r, i] != 0
            counts[r] = c


    @nb.njit(parallel=True, cache=True)
    def fill_events(x, ptr, idx, val, fanout, ops):
        """The nonzero messages of x [rows, n] as CSR events (`row_events`): row r's sources
        idx[ptr[r]:ptr[r + 1]] (int32) and their values val (int32; an empty `val` writes none), `ptr`
        from the row counts. Also
        ops[r, p]: the fanout [P, n] summed over row r's events (P = 0 when the counters come from
        elsewhere)."""
        digest  # noqa: B018 - part of numba's cache key (see SPEC_DIGEST)
        n = x.shape[1]
        for r in nb.prange(x.shape[0]):
            xr = x[r]
            k = row_events(xr, ptr[r], ptr[r + 1], idx, val)
            dense = (k - ptr[r]) * 12 > n  # then a pass over the row costs less than one gather per event (measured)
            for p in range(fanout.shape[0]):
                total = 0
                if dense:
                    for i in range(n):
                        total += fanout[p, i] * (xr[i] != 0)
                else:
                    for q in range(ptr[r], k):
                        total += fanout[p, idx[q]]
                ops[r, p] = total


    @nb.njit(parallel=True, cache=True)
    def gather_dense(ptr, idx, val, graded, skip, wt, res_ptr, res_col, res_val, steps, acc, t_off, n_off, shift, mode):
        """Event-driven dense synapses for one chunk: for each row r = (b, t) not in a skipped sample
        (`skip` [batch]), add the weight rows of its events (times the payload when graded, else 1)
        and put what the projection sends into acc[b, t_off + t, n_off:].

        The weights are the transposed matrix [n_src, n_dst] in a narrow type `wt` (int8 or int16)
        plus, per source, the residual list of what that type does not hold (CSR `res_ptr` [n_src + 1],
        `res_col`, `res_val`: w - wt; usually empty). Work items are (block of rows, tile of TILE
        target neurons), so that a tile of the weights stays in the core's L2 cache while a block of
        rows reads it. Without a shift the weights are added straight into the int32 buffer
        (everything modulo 2**32, as Lava's int32 channels); otherwise the exact int64 sum is formed first.
        """
        digest  # noqa: B018 - part of numba's cache key (see SPEC_DIGEST)
        rows = ptr.shape[0] - 1
        n = wt.shape[1]
        direct = shift == 0 and mode != MODE_WRAP24
        residual = res_col.shape[0] > 0
        n_tiles = (n + TILE - 1) // TILE
        n_blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
        for unit in nb.prange(n_blocks * n_tiles):  # tile-major: a thread's share of the units reads few tiles
            blk = unit % n_blocks
            lo = (unit // n_blocks) * TILE
            m = min(n, lo + TILE) - lo
            buf = np.zeros(m, np.int64)
            t16 = np.empty(m, np.int16)
            for r in range(blk * ROW_BLOCK, min(rows, (blk + 1) * ROW_BLOCK)):
                k0, k1 = ptr[r], ptr[r + 1]
                b = r // steps
                if k0 == k1 or skip[b]:
                    continue
                out = acc[b, t_off + r % steps, n_off + lo : n_off + lo + m]
                if direct and not graded:
                    add_weight_rows(out, wt, idx, k0, k1, lo, t16)
                elif direct:
                    for q in range(k0, k1):
                        w = wt[idx[q], lo : lo + m]
                        g = np.int32(val[q])
                        for j in range(m):
                            out[j] += w[j] * g
                else:
                    for j in range(m):
                        buf[j] = 0
                    for q in range(k0, k1):
                        w = wt[idx[q], lo : lo + m]
                        g = val[q] if graded else np.int64(1)
                        for j in range(m):
                            buf[j] += w[j] * g
                    if residual:
                        add_residuals(buf, idx, val, graded, k0, k1, lo, res_ptr, res_col, res_val)
                    add_row(out, buf, mode, shift)
                    continue
                if residual:
                    add_residuals(out, idx, val, graded, k0, k1, lo, res_ptr, res_col, res_val)


    @nb.njit(parallel=True, cache=True)
    def scatter_sparse(ptr, idx, val, graded, skip, colptr, rows_of, wvals, n_dst, steps, acc, t_off, n_off, shift, mode):
        """Event-driven sparse or conv synapses (CSC weights, one column per source neuron): like
        `gather_dense`. Without shift or 24-bit wrap the weights go straight into the int32 buffer;
        otherwise the exact int64 sum of each touched target is formed first."""
        digest  # noqa: B018 - part of numba's cache key (see SPEC_DIGEST)
        rows = ptr.shape[0] - 1
        direct = shift == 0 and mode != MODE_WRAP24
        n_blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
        for blk in nb.prange(n_blocks):
            buf = np.zeros(n_dst, np.int64)
            touched = np.zeros(n_dst, np.bool_)
            order = np.empty(n_dst, np.int64)
            for r in range(blk * ROW_BLOCK, min(rows, (blk + 1) * ROW_BLOCK)):
                k0, k1 = ptr[r], ptr[r + 1]
                b = r // steps
                if k0 == k1 or skip[b]:
                    continue
                out = acc[b, t_off + r % steps, n_off : n_off + n_dst]
                if direct:
                    for q in range(k0, k1):
                        i = idx[q]
                        m = val[q] if graded else 1
                        for e in range(colptr[i], colptr[i + 1]):
                            out[rows_of[e]] += wvals[e] * m
                    continue
                n_touched = 0
                for q in range(k0, k1):
                    i = idx[q]
                    m = val[q] if graded else 1
                    for e in range(colptr[i], colptr[i + 1]):
                        j = rows_of[e]
                        if not touched[j]:
                            touched[j] = True
                            order[n_touched] = j
                            n_touched += 1
                        buf[j] += wvals[e] * m
                for q in range(n_touched):
                    j = order[q]
                    out[j] = wrap32(np.int64(out[j]) + synapse_value(buf[j], mode, shift))
                    buf[j] = 0
                    touched[j] = False


    @nb.njit(parallel=True, cache=True)
    def scan(
        acc, t0, steps, u_state, v_state, p_state,
        du, dv, vth_e, bias, model, r_interval, r_offset, vth_hi_e, vth_lo_e, reset, v_reset, r_shift,
        g_src_lo, g_src_hi, g_dst_lo, g_dst_hi, g_colptr_off, g_delay, g_shift, g_mode, g_graded,
        colptr, rows, wvals, hist,
        s_out, u_out, v_out, write_u, write_v,
        fanout, block, member,
        spikes_t, counts, active, ops_t,
    ):
        """Advance the neurons of one component by `steps` time steps.

        acc [B, >=steps, N] int32: input from projections outside the component (already shifted).
        Recurrent projections inside the component are CSC groups (one per projection and delay);
        they read the spike history `hist` [B, H, N] (a ring over absolute steps). A feed-forward
        component has no groups and is split into neuron blocks of size `block` for parallelism.
        Counters are accumulated per work unit (b, block) and per member population (`member` [N]):
        spikes_t [U, M, C], counts [U, N], active [U, M] (updates where u or v, before the reset, is
        non-zero), ops_t [U, P, C] (synaptic ops of the P outgoing projections, `fanout` [P, N]).
        `p_state` [B, N] int8: spiked at the previous step (subtract reset). A relay's "spikes" are its
        nonzero graded messages.
        """
        digest  # noqa: B018 - part of numba's cache key (see SPEC_DIGEST)
        batch = acc.shape[0]
        n = acc.shape[2]
        n_groups = g_src_lo.shape[0]
        n_hist = hist.shape[1]
        n_blocks = (n + block - 1) // block
        n_proj = fanout.shape[0]
        for unit in nb.prange(batch * n_blocks):
            b = unit // n_blocks
            lo = (unit % n_blocks) * block
            hi = min(n, lo + block)
            a = np.zeros(n, np.int64)
            tmp = np.zeros(n, np.int64)
            for t in range(steps):
                step = t0 + t + 1  # Lava's 1-based time step
                for j in range(lo, hi):
                    a[j] = acc[b, t, j]
                for g in range(n_groups):
                    src_step = step - 1 - g_delay[g]  # 1-based step whose spikes arrive now
                    if src_step < 1:
                        continue
                    slot = (src_step - 1) % n_hist
                    direct = g_mode[g] == MODE_PLAIN and g_shift[g] == 0
                    target = a if direct else tmp
                    base = g_colptr_off[g]
                    for i in range(g_src_lo[g], g_src_hi[g]):
                        m = hist[b, slot, i]
                        if m == 0.0:
                            continue
                        mi = np.int64(m) if g_graded[g] else np.int64(1)
                        c = base + i - g_src_lo[g]
                        for k in range(colptr[c], colptr[c + 1]):
                            target[rows[k]] += wvals[k] * mi
                    if not direct:
                        for j in range(g_dst_lo[g], g_dst_hi[g]):
                            a[j] += synapse_value(tmp[j], g_mode[g], g_shift[g])
                            tmp[j] = 0
                for j in range(lo, hi):
                    prev = np.int64(p_state[b, j])
                    if model[j] == MODEL_RESET and (step % r_interval[j]) == r_offset[j]:
                        u_state[b, j] = 0
                        v_state[b, j] = 0
                        prev = 0
                    u = wrap_u(wrap32(decay(np.int64(u_state[b, j]), DECAY_ONE - 1 - du[j]) + wrap32(wrap32(a[j]) << STATE_SHIFT)))
                    v = decay(np.int64(v_state[b, j]), DECAY_ONE - dv[j]) + u + bias[j]
                    if reset[j] == RESET_SUBTRACT:
                        v -= prev * vth_e[j]
                    v = saturate_v(v)
                    if u != 0 or v != 0:
                        active[unit, member[j]] += 1
                    s = 0
                    if model[j] == MODEL_RELAY:
                        s = v >> r_shift[j]
                    elif model[j] == MODEL_TERNARY:
                        if v > vth_hi_e[j]:
                            s = 1
                        elif v < vth_lo_e[j]:
                            s = -1
                    elif v > vth_e[j]:
                        s = 1
                    fired = s != 0 and model[j] != MODEL_RELAY
                    if fired and reset[j] == RESET_ZERO:
                        v = v_reset[j]
                    p_state[b, j] = fired
                    if s != 0:
                        spikes_t[unit, member[j], t] += 1
                        counts[unit, j] += 1
                        for p in range(n_proj):
                            ops_t[unit, p, t] += fanout[p, j]
                    if write_u:
                        u_out[b, t, j] = u
                    if write_v:
                        v_out[b, t, j] = v
                    u_state[b, j] = u
                    v_state[b, j] = v
                    s_out[b, t, j] = s
                if n_groups > 0:
                    slot = (step - 1) % n_hist
                    for j in range(n):
                        hist[b, slot, j] = s_out[b, t, j]


    @nb.njit(parallel=True, cache=True)
    def scan_ff(
        acc, t0, steps, u_state, v_state, p_state,
        du, dv, vth_e, bias, model, r_interval, r_offset, vth_hi_e, vth_lo_e, reset, v_reset, r_shift,
        s_out, u_out, v_out, write_u, write_v,
        fanout, block, spikes_t, counts, active, ops_t,
    ):
        """`scan` for a feed-forward component (one population: `model`, `reset`, `r_shift` and the
        reset phase are scalars): branch-free inner loops over neurons that the compiler vectorizes.
        Same arguments and counters as `scan` (member index always 0), except that it clears the
        rows of `acc` it has read (while they are in cache), so the program need not clear the buffer."""
        digest  # noqa: B018 - part of numba's cache key (see SPEC_DIGEST)
        batch = u_state.shape[0]
        n = u_state.shape[1]
        n_blocks = (n + block - 1) // block
        subtract = reset == RESET_SUBTRACT  # selects below, not products: fewer 64-bit multiplies per neuron
        to_reset = reset == RESET_ZERO
        for unit in nb.prange(batch * n_blocks):
            b, lo, hi = tile(unit, n_blocks, block, n)
            m = hi - lo
            u = np.empty(m, np.int64)
            v = np.empty(m, np.int64)
            prev = np.empty(m, np.int64)
            fu = np.empty(m, np.int64)
            fv = np.empty(m, np.int64)
            for j in range(m):
                u[j] = u_state[b, lo + j]
                v[j] = v_state[b, lo + j]
                prev[j] = p_state[b, lo + j]
                fu[j] = DECAY_ONE - 1 - du[lo + j]
                fv[j] = DECAY_ONE - dv[lo + j]
            thr = vth_e[lo:hi]
            hi_e = vth_hi_e[lo:hi]
            lo_e = vth_lo_e[lo:hi]
            bs = bias[lo:hi]
            vr = v_reset[lo:hi]
            cnt = counts[unit, lo:hi]
            n_active = 0
            for t in range(steps):
                step = t0 + t + 1
                if model == MODEL_RESET and (step % r_interval) == r_offset:
                    for j in range(m):
                        u[j] = 0
                        v[j] = 0
                        prev[j] = 0
                a = acc[b, t, lo:hi]
                s_row = s_out[b, t, lo:hi]
                n_spk = 0
                if model == MODEL_RELAY:
                    for j in range(m):
                        x = wrap_u(wrap32(decay(u[j], fu[j]) + wrap32(np.int64(a[j]) << STATE_SHIFT)))
                        w = saturate_v(decay(v[j], fv[j]) + x + bs[j])
                        n_active += (x != 0) | (w != 0)
                        sp = w >> r_shift
                        u[j] = x
                        v[j] = w
                        s_row[j] = sp
                        cnt[j] += sp != 0
                        n_spk += sp != 0
                elif model == MODEL_TERNARY:
                    for j in range(m):
                        x = wrap_u(wrap32(decay(u[j], fu[j]) + wrap32(np.int64(a[j]) << STATE_SHIFT)))
                        w = saturate_v(decay(v[j], fv[j]) + x + bs[j])
                        n_active += (x != 0) | (w != 0)
                        sp = np.int64(w > hi_e[j]) - np.int64(w < lo_e[j])
                        fired = np.int64(sp != 0)
                        u[j] = x
                        v[j] = vr[j] if to_reset and fired != 0 else w
                        s_row[j] = sp
                        cnt[j] += fired
                        n_spk += fired
                else:
                    for j in range(m):
                        x = wrap_u(wrap32(decay(u[j], fu[j]) + wrap32(np.int64(a[j]) << STATE_SHIFT)))
                        w = decay(v[j], fv[j]) + x + bs[j]
                        w = saturate_v(w - thr[j] if subtract and prev[j] != 0 else w)
                        n_active += (x != 0) | (w != 0)
                        fired = np.int64(w > thr[j])
                        u[j] = x
                        v[j] = vr[j] if to_reset and fired != 0 else w
                        prev[j] = fired
                        s_row[j] = fired
                        cnt[j] += fired
                        n_spk += fired
                for j in range(m):
                    a[j] = 0
                count_tile_step(unit, t, lo, n_spk, s_row, fanout, spikes_t, ops_t)
                record_tile_step(b, t, lo, u, v, u_out, v_out, write_u, write_v)
            active[unit, 0] += n_active
            for j in range(m):
                u_state[b, lo + j] = u[j]
                v_state[b, lo + j] = v[j]
                p_state[b, lo + j] = prev[j]

    return accumulate, check_input, row_ops, count_events, fill_events, gather_dense, scatter_sparse, scan, scan_ff


accumulate, check_input, row_ops, count_events, fill_events, gather_dense, scatter_sparse, scan, scan_ff = _make_kernels(SPEC_DIGEST)


# -- canonical dtypes and the compiled signatures ------------------------------------------------------
# Every kernel above is compiled once per distinct argument type. To keep that a small, fixed set
# (compiled at install time by `warmup`, loaded from numba's cache afterwards), messages reach the
# kernels in three dtypes only: uint8 for boolean inputs (a free view) and the 0/1 spikes of
# feed-forward LIF-like populations (`scan_ff`), float32 for other spikes (ternary, recurrent) and
# payloads below 2**24 (every input a graph accepts, a relay's messages), float64
# for wider integers (sigma-delta's int32 messages; an input that is not exact in float32, which
# `check_input` then reports as out of range).



def message_array(x: np.ndarray) -> np.ndarray:
    """`x` in the kernels' message dtype that holds it exactly, C-contiguous and writable."""
    if x.dtype == np.bool_:
        out = np.ascontiguousarray(x).view(np.uint8)
    else:
        out = np.ascontiguousarray(x, dtype=np.float32)
        lossless = x.dtype == np.float32 or (x.dtype.kind in "biu" and x.dtype.itemsize <= 2)
        if not lossless and not np.array_equal(out, x):
            out = np.ascontiguousarray(x, dtype=np.float64)
    return out if out.flags.writeable else out.copy()


def _signatures() -> dict[str, list[tuple]]:
    """The argument types each kernel is called with (`arg_types`)."""
    from numba import types as T

    i64, flag, vec, ev, acc = A.I64, A.FLAG, A.VEC, A.EVENTS, A.ACC
    arr = A.array
    sigs: dict[str, list[tuple]] = {
        "accumulate": [(arr(f, 2), vec, i64, acc, i64, i64, i64, i64) for f in (T.float32, T.float64)],
        "check_input": [(x, flag, A.F64, vec) for x in A.MESSAGES],
        "row_ops": [(x, arr(T.int64, 2), arr(T.int64, 2)) for x in A.MESSAGES],
        "count_events": [(x, vec) for x in A.MESSAGES],
        "fill_events": [(x, vec, ev, ev, arr(T.int64, 2), arr(T.int64, 2)) for x in A.MESSAGES],
        "gather_dense": [(vec, ev, ev, flag, A.MASK, arr(w, 2), vec, vec, vec, i64, acc, i64, i64, i64, i64)
                         for w in (T.int8, T.int16)],
        "scatter_sparse": [(vec, ev, ev, flag, A.MASK, vec, vec, vec, i64, i64, acc, i64, i64, i64, i64)],
    }
    neuron = [acc, i64, i64, arr(T.int32, 2), arr(T.int32, 2), arr(T.int8, 2)]
    state_out = [A.SPIKES_OUT, *A.PROBES]
    counters = list(A.COUNTERS[1:])  # spikes_t, counts, active, ops_t (fanout comes earlier)
    sigs["scan"] = [tuple(
        neuron + [vec] * 12 + [vec] * 9 + [vec, vec, vec, arr(T.float32, 3)] + state_out
        + [arr(T.int64, 2), i64, vec] + counters
    )]
    sigs["scan_ff"] = [tuple(  # spikes of a LIF-like population as uint8 (a message dtype), else float32
        neuron + [vec, vec, vec, vec, i64, i64, i64, vec, vec, i64, vec, i64] + [arr(s, 3)] + state_out[1:]
        + [arr(T.int64, 2), i64] + counters
    ) for s in (T.float32, T.uint8)]
    return sigs


SIGNATURES = _signatures()
