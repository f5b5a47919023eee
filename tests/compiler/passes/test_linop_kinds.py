"""netlist's linear operators, one class per kind: each kind's matrix, apply and nnz against values
worked out by hand (and a convolution against torch's conv2d), compose/add of every pair of kinds
against the plain matrix product/sum, and the invariants each kind checks when it is built."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from snnc.compiler.passes.netlist import ConvOp, DenseOp, IdentityOp, LinOp, SparseOp, add, compose
from snnc.ir.chip import ConvGeometry
from snnc.ir.errors import ShapeError

W = np.array([[1.0, 0.0, 2.0], [0.0, -3.0, 4.0]])
X = np.array([1.0, 2.0, 3.0])
WX = np.array([7.0, 6.0])  # 1*1 + 2*3, -3*2 + 4*3


@pytest.mark.parametrize("op", [DenseOp(3, 2, W), SparseOp(3, 2, sp.csr_matrix(W))], ids=["dense", "sparse"])
def test_matrix_kinds(op):
    assert np.array_equal(op.dense(), W) and op.sparse().shape == (2, 3)
    assert np.array_equal(op.apply(X), WX)
    assert op.nnz() == 4


def test_identity():
    op = IdentityOp(3, 3)
    assert np.array_equal(op.dense(), np.eye(3))
    y = op.apply(X)
    assert np.array_equal(y, X) and y is not X  # a copy: callers add constants to it
    assert op.nnz() == 3


def test_conv_against_a_hand_written_sum_and_torch():
    """3x3 input, 2x2 kernel, padding 1: a 4x4 output. Every in-bounds tap is stored, the zero
    kernel entry too: per output axis 1 + 2 + 2 + 1 = 6 taps, so 36 in all."""
    kernel = np.array([[1.0, -2.0], [0.0, 3.0]])
    x = np.arange(1.0, 10.0).reshape(3, 3)
    geom = ConvGeometry(in_shape=(1, 3, 3), out_shape=(1, 4, 4), kernel=(2, 2), padding=(1, 1))
    op = ConvOp(9, 16, kernel[None, None], geom)
    padded = np.pad(x, 1)
    by_hand = np.array([[sum(kernel[a, b] * padded[i + a, j + b] for a in range(2) for b in range(2)) for j in range(4)] for i in range(4)])
    by_torch = torch.nn.functional.conv2d(torch.tensor(x[None, None]), torch.tensor(kernel[None, None]), padding=1)[0, 0].numpy()
    assert np.array_equal(by_hand, by_torch)
    assert np.array_equal(op.apply(x.ravel()), by_hand.ravel())
    assert np.array_equal(op.dense() @ x.ravel(), by_hand.ravel())
    assert op.nnz() == 36


def _square_ops() -> dict[str, LinOp]:
    """One operator of each kind on 4 values (a 2x2 image for the conv)."""
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((4, 4))
    sparse = np.where(rng.random((4, 4)) < 0.5, rng.standard_normal((4, 4)), 0.0)
    geom = ConvGeometry(in_shape=(1, 2, 2), out_shape=(1, 2, 2), kernel=(3, 3), padding=(1, 1))
    return {
        "identity": IdentityOp(4, 4),
        "dense": DenseOp(4, 4, dense),
        "sparse": SparseOp(4, 4, sp.csr_matrix(sparse)),
        "conv": ConvOp(4, 4, rng.standard_normal((1, 1, 3, 3)), geom),
        "conv2": ConvOp(4, 4, rng.standard_normal((1, 1, 3, 3)), geom),
    }


@pytest.mark.parametrize("a, b", list(itertools.product(_square_ops(), repeat=2)))
def test_compose_and_add_of_every_pair_of_kinds(a, b):
    ops = _square_ops()
    after, before = ops[a], ops[b]
    composed = compose(after, before)
    assert np.allclose(composed.dense(), after.dense() @ before.dense(), rtol=1e-12, atol=1e-12)
    # the cheapest exact form: the identity disappears, a dense factor makes it dense, else sparse
    expected = before.kind if a == "identity" else after.kind if b == "identity" else "dense" if "dense" in (a, b) else "sparse"
    assert composed.kind == expected
    summed = add(after, before)
    assert np.allclose(summed.dense(), after.dense() + before.dense(), rtol=1e-12, atol=1e-12)
    both_conv = a.startswith("conv") and b.startswith("conv")  # same geometry: the kernels add
    assert summed.kind == ("conv" if both_conv else "dense" if "dense" in (a, b) else "sparse")


def test_compose_changes_the_size():
    ops = _square_ops()
    reduce = DenseOp(4, 2, np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]]))
    composed = compose(reduce, ops["conv"])
    assert (composed.n_in, composed.n_out) == (4, 2)
    assert np.allclose(composed.dense(), reduce.data @ ops["conv"].dense(), rtol=1e-12, atol=1e-12)


def test_each_kind_checks_what_it_holds():
    geom = ConvGeometry(in_shape=(1, 2, 2), out_shape=(1, 2, 2), kernel=(3, 3), padding=(1, 1))
    with pytest.raises(TypeError, match="geom"):
        ConvOp(4, 4, np.ones((1, 1, 3, 3)))  # type: ignore[call-arg]
    with pytest.raises(ShapeError, match="ConvOp"):
        ConvOp(4, 4, np.ones((1, 1, 2, 2)), geom)  # kernel does not match the geometry
    with pytest.raises(ShapeError, match="ConvOp"):
        ConvOp(9, 4, np.ones((1, 1, 3, 3)), geom)  # n_in is not the geometry's input size
    with pytest.raises(ShapeError, match="DenseOp"):
        DenseOp(2, 3, W)  # W is [2, 3]: n_out=2, n_in=3
    with pytest.raises(ShapeError, match="SparseOp"):
        SparseOp(2, 3, sp.csr_matrix(W))
    with pytest.raises(ShapeError, match="IdentityOp"):
        IdentityOp(3, 4)
    with pytest.raises(TypeError):
        LinOp(3, 2)  # type: ignore[abstract]  # the kinds are classes now: the base is abstract
