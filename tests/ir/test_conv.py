"""ir.conv against torch's own conv2d: the one convolution geometry every module uses."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc.ir.chip import ConvGeometry
from snnc.ir.conv import conv_matrix, conv_pattern


@st.composite
def convs(draw):
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    hw = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    out_hw = ConvGeometry.output_hw(hw, kernel, stride, padding, dilation)
    if min(out_hw) <= 0:
        hw = tuple(h + (kernel[i] - 1) * dilation[i] for i, h in enumerate(hw))
        out_hw = ConvGeometry.output_hw(hw, kernel, stride, padding, dilation)
    geom = ConvGeometry((c_in, *hw), (c_out, *out_hw), kernel, stride, padding, dilation, groups)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    w = rng.integers(-4, 5, (c_out, c_in // groups, *kernel))
    x = rng.integers(-3, 4, (c_in, *hw))
    return geom, w, x


@settings(max_examples=150, deadline=None)
@given(convs())
def test_conv_matrix_equals_torch_conv2d(case):
    geom, w, x = case
    expected = torch.nn.functional.conv2d(
        torch.tensor(x[None], dtype=torch.float64), torch.tensor(w, dtype=torch.float64),
        stride=geom.stride, padding=geom.padding, dilation=geom.dilation, groups=geom.groups,
    )[0].numpy()
    m = conv_matrix(w, geom)
    assert m.dtype == np.int64 and m.shape == (expected.size, x.size)
    assert np.array_equal(m @ x.ravel(), expected.ravel().astype(np.int64))
    # zeros are not stored unless asked; every in-bounds tap is, then
    assert np.all(m.data != 0)
    full = conv_matrix(w, geom, np.float64, keep_zeros=True)
    assert np.array_equal(full @ x.ravel(), expected.ravel())
    ones = conv_matrix(np.ones_like(w), geom)
    assert full.nnz == ones.nnz >= m.nnz
    pattern = conv_pattern(w, geom)
    assert pattern.dtype == np.int8 and np.array_equal((pattern.toarray() != 0), (m.toarray() != 0))


@settings(max_examples=150, deadline=None)
@given(convs())
def test_conv_matrix_is_canonical_csr(case):
    """conv_matrix builds its CSR arrays in order and says so (no sort): the claim must hold."""
    geom, w, x = case
    for m in (conv_matrix(w, geom), conv_matrix(w, geom, np.float64, keep_zeros=True)):
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        key = rows * m.shape[1] + m.indices
        assert np.all(np.diff(key) > 0)  # rows ascending, cols strictly ascending within a row
        assert m.has_canonical_format and m.has_sorted_indices
