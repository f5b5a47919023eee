"""Graph.copy: every pass works on a copy, so the copy must own its nodes, edges and metadata,
while a layer's weights (most of a model's memory) are shared read-only instead of copied: a pass
that wrote into them would change the graph it was given, so writing raises instead."""
from __future__ import annotations

import nir
import numpy as np
import pytest

from snnc.compiler.pipeline import compile as snnc_compile
from snnc.ir.graph import Graph


def model(w: np.ndarray) -> nir.NIRGraph:
    n_out, n_in = w.shape
    return nir.NIRGraph(nodes={
        "input": nir.Input(np.array([n_in])), "fc": nir.Affine(w, np.zeros(n_out)),
        "lif": nir.LIF(tau=np.full(n_out, 0.01), r=np.ones(n_out), v_leak=np.zeros(n_out), v_threshold=np.ones(n_out)),
        "output": nir.Output(np.array([n_out]))}, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])


def test_a_copy_owns_its_nodes_and_reads_the_arrays_it_shares():
    g = Graph.from_nir(model(np.arange(12.0).reshape(3, 4)), reset_mode="zero")
    c = g.copy()
    assert c.nodes is not g.nodes and c.edges is not g.edges
    fc, fc0 = c.nodes["fc"], g.nodes["fc"]
    assert fc is not fc0 and fc.metadata is not fc0.metadata
    assert np.shares_memory(fc.weight, fc0.weight) and np.array_equal(fc.weight, fc0.weight)
    with pytest.raises(ValueError, match="read-only"):
        fc.weight[0, 0] = 100.0
    fc0.weight[0, 0] = -1.0  # the original stays the caller's, writable
    fc.weight = np.zeros((3, 4))  # replacing an array in the copy leaves the original alone
    fc.metadata["mark"] = 1
    assert fc0.weight[0, 1] == 1.0 and "mark" not in fc0.metadata
    c.edges.append(("lif", "fc"))
    assert ("lif", "fc") not in g.edges


def test_compiling_leaves_the_models_weights_as_they_were():
    w = np.random.default_rng(0).normal(0, 0.5, (20, 30))
    before = w.copy()
    snnc_compile(model(w), dt=1e-4, reset_mode="zero", guard=False)
    assert np.array_equal(w, before) and w.flags.writeable
