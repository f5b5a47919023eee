"""Projection kinds are classes (DenseProjection, SparseProjection, ConvProjection) that the old
spelling `Projection(..., kind=...)` still builds; `kind`, `dataclasses.replace`, pickling (dask
ships chip graphs to workers) and shallow copies (passes share weight arrays) keep working."""
from __future__ import annotations

import copy
import dataclasses
import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from snnc.ir import (ChipGraph, ConvGeometry, ConvProjection, DenseProjection, InputPopulation, ParameterError,
                     Population, Projection, ShapeError, SparseProjection)

GEOM = ConvGeometry((1, 4, 4), (2, 3, 3), (2, 2))
KERNEL = np.arange(8).reshape(2, 1, 2, 2) - 4
W = np.array([[1, 0, -3], [0, 2, 0]])


def every_kind() -> list[Projection]:
    return [Projection("d", "x", "y", W, delay=np.where(W != 0, 3, 0)), Projection("s", "x", "y", W, kind="sparse", delay=2),
            Projection("c", "x", "y", KERNEL, kind="conv", conv=GEOM)]


def test_the_kind_names_the_class_and_reads_back():
    d, s, c = every_kind()
    assert (type(d), type(s), type(c)) == (DenseProjection, SparseProjection, ConvProjection)
    assert (d.kind, s.kind, c.kind) == ("dense", "sparse", "conv")
    assert isinstance(s.weights, sp.csr_matrix) and s.weights.dtype == np.int64 and s.weights.nnz == 3
    assert c.conv is GEOM and d.conv is None and s.conv is None
    assert (d.num_synapses, s.num_synapses, c.num_synapses) == (3, 3, 8)  # nonzeros; every kernel entry
    direct = ConvProjection("c2", "x", "y", KERNEL, conv=GEOM)
    assert direct.kind == "conv" and np.array_equal(direct.weights, KERNEL)


def test_each_kind_checks_its_own_invariants():
    with pytest.raises(ParameterError, match="unknown projection kind"):
        Projection("p", "x", "y", W, kind="diagonal")
    with pytest.raises(ParameterError, match="conv projection without geometry"):
        Projection("p", "x", "y", KERNEL, kind="conv")
    with pytest.raises(ShapeError, match="per-synapse delays"):
        Projection("p", "x", "y", W, kind="sparse", delay=np.ones_like(W))
    with pytest.raises(ParameterError, match="no weight_exp and no delay"):
        ConvProjection("p", "x", "y", KERNEL, delay=1, conv=GEOM)
    with pytest.raises(ShapeError, match="conv kernel does not match"):
        ConvProjection("p", "x", "y", KERNEL[:1], conv=GEOM)
    with pytest.raises(ShapeError, match="dense weights must have 2 dimensions"):
        DenseProjection("p", "x", "y", KERNEL)


def test_replace_can_change_the_kind():
    d, s, c = every_kind()
    m = sp.csr_matrix(np.eye(18, 16, dtype=np.int64))
    r = dataclasses.replace(c, kind="sparse", weights=m)  # a conv lowered to its matrix: the geometry goes
    assert type(r) is SparseProjection and r.conv is None and (r.weights != m).nnz == 0
    back = dataclasses.replace(d, kind="conv", weights=KERNEL, delay=0, conv=GEOM)
    assert type(back) is ConvProjection and back.conv is GEOM
    same = dataclasses.replace(s, delay=5)
    assert type(same) is SparseProjection and same.delay == 5 and same.weights.nnz == 3


def _array(w) -> np.ndarray:
    return w.toarray() if sp.issparse(w) else w


@pytest.mark.parametrize("index", range(3))
def test_pickles_and_shallow_copies_keep_the_class_and_the_arrays(index):
    p = every_kind()[index]
    q = pickle.loads(pickle.dumps(p))
    assert type(q) is type(p) and q.kind == p.kind and q.conv == p.conv
    assert np.array_equal(_array(q.weights), _array(p.weights)) and np.array_equal(q.delay, p.delay)
    c = copy.copy(p)
    assert type(c) is type(p) and c.weights is p.weights and c.delay is p.delay


def test_a_chip_graph_takes_every_kind():
    g = ChipGraph()
    g.add(InputPopulation("x", (1, 4, 4)))
    g.add(Population("y", (2, 3, 3)))
    g.add(Population("z", (18,)))
    g.add(Projection("c", "x", "y", KERNEL, kind="conv", conv=GEOM))
    g.add(SparseProjection("s", "y", "z", np.eye(18, dtype=np.int64)))
    g.validate()
    assert [type(p) for p in g.projections.values()] == [ConvProjection, SparseProjection]


def test_a_conv_geometry_takes_any_integer_sequences_of_the_right_lengths():
    g = ConvGeometry(np.array([1, 4, 4]), [2, 3, 3], np.array([2, 2]), stride=[1, 1])
    assert g == GEOM and all(type(x) is int for x in (*g.in_shape, *g.kernel, *g.stride))
    with pytest.raises(ShapeError, match="kernel must have 2 entries"):
        ConvGeometry((1, 4, 4), (2, 3, 3), (2, 2, 2))
    with pytest.raises(ShapeError, match="in_shape must have 3 entries"):
        ConvGeometry((4, 4), (2, 3, 3), (2, 2))
