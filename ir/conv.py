"""Convolution geometry, once: which source position each kernel tap of each output reads.

Every layer that needs a convolution as connections — the simulator's recurrent and counting
paths, the mapping's synapse patterns, the float netlist, the chip converter — asks this module,
so padding, stride, dilation and groups follow one set of (torch) conventions everywhere.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def conv_taps(kernel_shape, geom, *, nonzero: np.ndarray | None = None):
    """(rows, cols, (o, ci, ky, kx)) of every in-bounds tap of a 2-D cross-correlation.

    `kernel_shape` is (C_out, C_in/groups, kh, kw); `geom` has in_shape/out_shape (C, H, W),
    stride, padding, dilation, groups. `nonzero`: a kernel array whose zero entries are skipped.
    Rows index the flattened (C_out, H', W') target, cols the flattened (C_in, H, W) source.
    """
    c_out, c_in_g = int(kernel_shape[0]), int(kernel_shape[1])
    c_in, h, w = geom.in_shape
    _, ho, wo = geom.out_shape
    if nonzero is not None:
        o, ci, ky, kx = np.nonzero(np.asarray(nonzero))
    else:
        o, ci, ky, kx = (a.ravel() for a in np.meshgrid(*(np.arange(int(n)) for n in kernel_shape), indexing="ij"))
    cin = (o // (c_out // geom.groups)) * c_in_g + ci
    yy, xx = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    yy, xx = yy.ravel(), xx.ravel()
    iy = yy[None, :] * geom.stride[0] - geom.padding[0] + ky[:, None] * geom.dilation[0]
    ix = xx[None, :] * geom.stride[1] - geom.padding[1] + kx[:, None] * geom.dilation[1]
    valid = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    rows = (o[:, None] * (ho * wo) + (yy * wo + xx)[None, :])[valid]
    cols = (cin[:, None] * (h * w) + iy * w + ix)[valid]
    tap = np.nonzero(valid)[0]
    return rows, cols, (o[tap], ci[tap], ky[tap], kx[tap])


def conv_matrix(kernel: np.ndarray, geom, dtype=np.int64, *, keep_zeros: bool = False) -> sp.csr_matrix:
    """The [C'*H'*W', C*H*W] matrix of the convolution (torch cross-correlation), in `dtype`.

    Zero kernel entries are not stored unless `keep_zeros` (then every in-bounds tap is)."""
    kernel = np.asarray(kernel)
    rows, cols, (o, ci, ky, kx) = conv_taps(kernel.shape, geom, nonzero=None if keep_zeros else kernel)
    shape = (int(np.prod(geom.out_shape)), int(np.prod(geom.in_shape)))
    m = sp.csr_matrix((kernel[o, ci, ky, kx].astype(dtype), (rows, cols)), shape=shape, dtype=dtype)
    m.sum_duplicates()
    return m


def conv_pattern(kernel: np.ndarray, geom) -> sp.csr_matrix:
    """Which (target, source) pairs a convolution connects (nonzero taps), as an int8 0/1 matrix."""
    m = conv_matrix(np.asarray(kernel) != 0, geom, np.int8)
    m.data[:] = 1
    return m
