"""Convolution geometry, once: which source position each kernel tap of each output reads.

Every layer that needs a convolution as connections — the simulator's recurrent and counting
paths, the mapping's synapse patterns, the float netlist, the chip converter — asks this module,
so padding, stride, dilation and groups follow one set of (torch) conventions everywhere; and a
convolution evaluated in torch (the float model's, the sim's) runs under one thread policy
(`torch_threads`).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import scipy.sparse as sp

SERIAL_MACS = 1 << 27
"""Convolutions of fewer multiply-adds run on one torch thread (see `torch_threads`)."""


def conv_taps(kernel_shape, geom, *, nonzero: np.ndarray | None = None):
    """(rows, cols, index) of every in-bounds tap of a 2-D cross-correlation: the target row, the
    source column and the tap's flat index into the kernel array.

    `kernel_shape` is (C_out, C_in/groups, kh, kw); `geom` has in_shape/out_shape (C, H, W),
    stride, padding, dilation, groups. `nonzero`: a kernel array whose zero entries are skipped.
    Rows index the flattened (C_out, H', W') target, cols the flattened (C_in, H, W) source.
    Taps come in CSR order: rows ascending and, within a row, cols ascending, each pair once (a
    target reads source channel, row and column increasing with ci, ky and kx).
    """
    c_out, c_in_g, kh, kw = (int(n) for n in kernel_shape)
    c_in, h, w = geom.in_shape
    _, ho, wo = geom.out_shape
    iy = np.arange(ho)[:, None] * geom.stride[0] - geom.padding[0] + np.arange(kh)[None, :] * geom.dilation[0]  # [ho, kh]
    ix = np.arange(wo)[:, None] * geom.stride[1] - geom.padding[1] + np.arange(kw)[None, :] * geom.dilation[1]  # [wo, kw]
    # the taps of one output channel of group 0: (oy, ox, ci, ky, kx) in bounds, and the column each reads
    src = (np.arange(c_in_g)[None, None, :, None, None] * (h * w)
           + iy[:, None, None, :, None] * w + ix[None, :, None, None, :])
    valid = ((iy >= 0) & (iy < h))[:, None, None, :, None] & ((ix >= 0) & (ix < w))[None, :, None, None, :]
    one = np.flatnonzero(np.broadcast_to(valid, src.shape))
    per_pos = c_in_g * kh * kw
    pos, tap = np.divmod(one, per_pos)
    o = np.arange(c_out, dtype=np.int64)[:, None]  # every output channel repeats them, shifted to its group
    rows = o * (ho * wo) + pos[None, :]
    cols = src.reshape(-1)[one][None, :] + (o // (c_out // geom.groups)) * (c_in_g * h * w)
    index = o * per_pos + tap[None, :]
    if nonzero is not None:
        keep = np.asarray(nonzero).reshape(-1)[index] != 0
        return rows[keep], cols[keep], index[keep]
    return rows.reshape(-1), cols.reshape(-1), index.reshape(-1)


def conv_matrix(kernel: np.ndarray, geom, dtype=np.int64, *, keep_zeros: bool = False) -> sp.csr_matrix:
    """The [C'*H'*W', C*H*W] matrix of the convolution (torch cross-correlation), in `dtype`, in
    canonical CSR form (sorted column indices, no duplicates), built without sorting.

    Zero kernel entries are not stored unless `keep_zeros` (then every in-bounds tap is)."""
    kernel = np.asarray(kernel)
    rows, cols, index = conv_taps(kernel.shape, geom, nonzero=None if keep_zeros else kernel)
    shape = (int(np.prod(geom.out_shape)), int(np.prod(geom.in_shape)))
    indptr = np.zeros(shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    m = sp.csr_matrix((kernel.reshape(-1)[index].astype(dtype), cols, indptr), shape=shape, dtype=dtype)
    m.has_sorted_indices = True  # conv_taps' order (asserted by tests/ir/test_conv.py)
    m.has_canonical_format = True
    return m


def conv_pattern(kernel: np.ndarray, geom) -> sp.csr_matrix:
    """Which (target, source) pairs a convolution connects (nonzero taps), as an int8 0/1 matrix."""
    m = conv_matrix(np.asarray(kernel) != 0, geom, np.int8)
    m.data[:] = 1
    return m


@contextlib.contextmanager
def torch_threads(torch: Any, macs: int) -> Iterator[None]:
    """One torch thread for a convolution of fewer than SERIAL_MACS multiply-adds.

    Why: waking torch's thread pool costs more than a small convolution, and on a busy machine
    its spinning threads cost far more (measured on 2 cores at load 3-5, float64: 37 x 2 x 34 x 34
    -> 16 channels took 32 ms on 2 threads and 0.56 ms on one; 37 x 16 x 16 x 16 -> 16 channels,
    22 M multiply-adds, 16 ms and 3.4 ms)."""
    threads = torch.get_num_threads()
    if macs >= SERIAL_MACS or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
