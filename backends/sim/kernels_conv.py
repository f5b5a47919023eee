"""numba kernel of the sim backend: a conv projection evaluated event-driven, from its kernel.

Sigma-delta and spiking sources send few nonzero messages per step, and a dense convolution
(torch) multiplies every input position anyway. Here each nonzero message adds its weights into a
per-row int buffer laid out [groups, H', W', C'/groups]: for a source column x, the kernel
columns kx that reach an output all have one residue modulo the stride, and their output columns
ox are consecutive (dilation 1), so with the kx of a kernel row stored in that order (`x_order`)
one kernel row of one message is ONE contiguous vector add of (taps x C'/groups) weights. The
buffer is then sent as Lava's Conv sends it (`kernels.synapse_value`, 24-bit wrap) into the int32
input buffer in the target's (C', H', W') order. Integer sums are exact in any order: an int32
buffer while every partial sum is below 2**31 (`l1 * peak`, checked by the caller), else int64.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from snnc.ir.chip import ConvProjection
from snnc.ir.fixed_point import arith, units

from . import arg_types as A
from . import kernels as K

ROW_BLOCK = 8  # rows (sample, step) per parallel work item
I32_EXACT = 2**31  # an int32 sum is exact while every partial sum stays below this

# geometry vector: the ints of `ConvGeometry` in this order
C_IN, H_IN, W_IN, C_OUT, H_OUT, W_OUT, KH, KW, SY, SX, PY, PX, DY, DX, GROUPS = range(15)


def geometry(g) -> np.ndarray:
    """The kernel's int64 geometry vector of a `ConvGeometry`."""
    return np.array([*g.in_shape, *g.out_shape, *g.kernel, *g.stride, *g.padding, *g.dilation, g.groups], np.int64)


def axis_index(n_in: int, n_out: int, k: int, stride: int, pad: int, dil: int) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis: the input coordinate o * stride - pad + t * dil that output o's tap t reads,
    [n_out, k], and whether it is in bounds (torch's cross-correlation; padding reads nothing)."""
    idx = np.arange(n_out)[:, None] * stride - pad + np.arange(k)[None, :] * dil
    return idx, (idx >= 0) & (idx < n_in)


def x_order(k: int, stride: int) -> np.ndarray:
    """The kernel columns in storage order: by residue modulo the stride, then descending, so that
    the columns one source column reaches are adjacent and in ascending output order."""
    return np.array(sorted(range(k), key=lambda t: (t % stride, -t)), np.int64)


def y_taps(n_in: int, n_out: int, k: int, stride: int, pad: int, dil: int) -> tuple[np.ndarray, np.ndarray]:
    """Per source row y, the (kernel row, output row) pairs that read it: ([n_in, k, 2], counts [n_in])."""
    idx, valid = axis_index(n_in, n_out, k, stride, pad, dil)
    taps = np.zeros((n_in, k, 2), np.int64)
    counts = np.zeros(n_in, np.int64)
    for o, t in zip(*np.nonzero(valid)):
        taps[idx[o, t], counts[idx[o, t]]] = (t, o)
        counts[idx[o, t]] += 1
    return taps, counts


def x_runs(n_in: int, n_out: int, k: int, stride: int, pad: int, dil: int) -> tuple[np.ndarray, np.ndarray]:
    """Per source column x, the runs of kernel columns that reach an output, as (first position in
    `x_order`, first output column, length) with positions and output columns both consecutive
    (one run per column for dilation 1): ([n_in, k, 3], counts [n_in])."""
    pos = np.argsort(x_order(k, stride))  # storage position of each kernel column
    idx, valid = axis_index(n_in, n_out, k, stride, pad, dil)
    o, t = np.nonzero(valid)
    i, p = idx[o, t], pos[t]
    order = np.lexsort((p, i))  # by source column, then storage position
    i, p, o = i[order], p[order], o[order]
    new = np.ones(i.size, bool)  # a run starts at a new column or where position or output jumps
    new[1:] = (i[1:] != i[:-1]) | (p[1:] != p[:-1] + 1) | (o[1:] != o[:-1] + 1)
    starts = np.flatnonzero(new)
    run_i = i[starts]
    counts = np.bincount(run_i, minlength=n_in).astype(np.int64)
    slot = np.arange(starts.size) - np.searchsorted(run_i, run_i)  # k-th run of its column
    runs = np.zeros((n_in, k, 3), np.int64)
    runs[run_i, slot] = np.stack([p[starts], o[starts], np.diff(np.append(starts, i.size))], axis=1)
    return runs, counts


def tap_weights(weights: np.ndarray, groups: int, stride_x: int) -> np.ndarray:
    """Flat int32 [C_in, kh, kw (in `x_order`), C'/groups]: the weights one input channel's taps add
    to its group's output channels (torch's [C', C_in/groups, kh, kw] regrouped)."""
    w = np.asarray(weights, np.int64)
    c_out, cin_g, kh, kw = w.shape
    cout_g = c_out // groups
    out = w.reshape(groups, cout_g, cin_g, kh, kw).transpose(0, 2, 3, 4, 1)[:, :, :, x_order(kw, stride_x)]
    return np.ascontiguousarray(out, np.int32).reshape(-1)


def kernel_args(proj: ConvProjection) -> tuple:
    """(weights, geometry, y taps, y counts, x runs, x counts): what `scatter_conv` reads of a conv projection."""
    g = proj.conv
    return (tap_weights(proj.weights, g.groups, g.stride[1]), geometry(g),
            *y_taps(g.in_shape[1], g.out_shape[1], g.kernel[0], g.stride[0], g.padding[0], g.dilation[0]),
            *x_runs(g.in_shape[2], g.out_shape[2], g.kernel[1], g.stride[1], g.padding[1], g.dilation[1]))


@nb.njit(inline="always")
def _row(xr, graded, wt, geo, ty, ny, tx, nx, buf, xs):
    """Add the taps of row xr's nonzero messages into buf ([groups, H', W', C'/groups], its dtype:
    an int32 multiply when int32); returns whether any message was nonzero. xs: scratch [W]."""
    c_in, h_in, w_in = geo[C_IN], geo[H_IN], geo[W_IN]
    h_out, w_out = geo[H_OUT], geo[W_OUT]
    kh, kw = geo[KH], geo[KW]
    cin_g = c_in // geo[GROUPS]
    cout_g = wt.shape[0] // (c_in * kh * kw)
    sent = False
    for ci in range(c_in):
        g = ci // cin_g
        for y in range(h_in):
            base = (ci * h_in + y) * w_in
            cnt = 0
            for x in range(w_in):  # the row's nonzero columns, without a branch per column
                xs[cnt] = x
                cnt += xr[base + x] != 0
            sent |= cnt > 0
            for e in range(cnt):
                x = xs[e]
                m = buf.dtype.type(np.int64(xr[base + x]) if graded else 1)
                for a in range(ny[y]):
                    w_row = (ci * kh + ty[y, a, 0]) * kw
                    o_row = (g * h_out + ty[y, a, 1]) * w_out
                    for c in range(nx[x]):
                        w = wt[(w_row + tx[x, c, 0]) * cout_g :]
                        b = buf[(o_row + tx[x, c, 1]) * cout_g :]
                        for k in range(tx[x, c, 2] * cout_g):
                            b[k] += w[k] * m
    return sent


@nb.njit(inline="always")
def _send(buf, out, groups, hw, wide):
    """out[c * hw + p] += what Lava's Conv sends for the exact sum of channel c at position p, held in
    buf [groups, H', W', C'/groups]; buf cleared. An int32 buffer holds sums below 2**31 (the caller's
    bound), which Lava's int32 cast keeps: only the 24-bit wrap remains, without a branch."""
    cout_g = buf.shape[0] // (groups * hw)
    for g in range(groups):
        for k in range(cout_g):
            dst = out[(g * cout_g + k) * hw : (g * cout_g + k + 1) * hw]
            src = buf[g * hw * cout_g + k :]
            if wide:
                for p in range(hw):
                    dst[p] += K.synapse_value(np.int64(src[p * cout_g]), K.MODE_WRAP24, 0)
            else:
                for p in range(hw):
                    dst[p] += K.wrap24(np.int64(src[p * cout_g]))
    buf[:] = 0


def _make_scatter_conv(digest: str):
    @nb.njit(parallel=True, cache=True)
    def scatter_conv(x, skip, graded, wide, wt, geo, ty, ny, tx, nx, steps, acc, t_off, n_off):
        """Event-driven conv for one chunk: for every row r = (b, t) of x [B*C, C_in*H*W] not in a
        skipped sample (`skip` [B]), the nonzero messages' taps (times the payload when graded, else
        1) summed exactly (int64 buffer when `wide`, else int32) and sent into acc[b, t_off + t, n_off:]."""
        digest  # noqa: B018 - part of numba's cache key (see kernels.SPEC_DIGEST)
        rows = x.shape[0]
        groups = geo[GROUPS]
        hw = geo[H_OUT] * geo[W_OUT]
        n_dst = geo[C_OUT] * hw
        n_blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
        for blk in nb.prange(n_blocks):
            buf64 = np.zeros(n_dst if wide else 0, np.int64)
            buf32 = np.zeros(0 if wide else n_dst, np.int32)
            xs = np.empty(geo[W_IN], np.int64)
            for r in range(blk * ROW_BLOCK, min(rows, (blk + 1) * ROW_BLOCK)):
                b = r // steps
                if skip[b]:
                    continue
                sent = _row(x[r], graded, wt, geo, ty, ny, tx, nx, buf64, xs) if wide else \
                    _row(x[r], graded, wt, geo, ty, ny, tx, nx, buf32, xs)
                if not sent:
                    continue
                out = acc[b, t_off + r % steps, n_off : n_off + n_dst]
                if wide:
                    _send(buf64, out, groups, hw, True)
                else:
                    _send(buf32, out, groups, hw, False)

    return scatter_conv


scatter_conv = _make_scatter_conv(K.spec_digest(arith, units))


def _signatures() -> dict[str, list[tuple]]:
    """The argument types `program` calls the kernel with (`arg_types`)."""
    tab = A.array(A.I64, 3)
    return {"scatter_conv": [(x, A.MASK, A.FLAG, A.FLAG, A.I32_VEC, A.VEC, tab, A.VEC, tab, A.VEC, A.I64, A.ACC, A.I64, A.I64)
                             for x in A.MESSAGES]}


SIGNATURES = _signatures()
