"""Fuse: linear chains collapse into single nodes without changing what the network computes."""
from __future__ import annotations

import nir
import numpy as np

from snnc.backends.reference import ReferenceBackend
from snnc.compiler.passes.canonicalize import Canonicalize
from snnc.compiler.passes.fuse import Fuse
from snnc.compiler.passes.netlist import lower
from snnc.ir.graph import Graph

DT = 1e-4


def reference(graph: Graph, x, probes=()):
    return ReferenceBackend().build(graph, dt=DT).run(x, probes=probes)


def if_node(shape):
    return nir.IF(r=np.ones(shape), v_threshold=np.ones(shape), v_reset=np.zeros(shape))


def test_cnn_pool_folds_into_conv_and_affine(refdata):
    g = Graph.from_nir(refdata / "nir-paper/cnn/cnn_sinabs.nir")
    canon = Canonicalize(dt=DT).run(g).graph
    res = Fuse().run(canon)
    fused = res.graph
    rules = {f["rule"] for f in res.report["fused"]}
    assert rules == {"pool o conv", "sumpool2d -> flatten -> affine"}
    assert not any(isinstance(n, (nir.SumPool2d, nir.AvgPool2d)) for n in fused.nodes.values())
    # SumPool(2) -> Conv(3x3, pad 1) became one Conv: 6x6 kernel, stride 2, padding 2
    conv = fused.nodes["5"]
    assert np.asarray(conv.weight).shape == (8, 16, 6, 6)
    assert tuple(np.asarray(conv.stride)) == (2, 2) and tuple(np.asarray(conv.padding)) == (2, 2)
    # every population is fed by exactly one projection now
    net = lower(fused)
    assert sorted((p.src, p.dst, p.op.kind) for p in net.projs) == [
        ("1", "3", "conv"), ("10", "12", "dense"), ("3", "6", "conv"), ("6", "10", "dense"), ("input", "1", "conv")
    ]
    rng = np.random.default_rng(0)
    x = (rng.random((1, 25, 2, 34, 34)) < 0.15).astype(float)
    probes = ["3", "6", "10", "12"]
    a, b = reference(g, x, probes), reference(fused, x, probes)
    assert a.probes["10"].sum() > 0
    for p in probes:
        assert np.array_equal(a.probes[p], b.probes[p]), p


def chain_graph(middle: dict, edges_mid: list[tuple[str, str]], first: str, last: str, n_in=4, n_out=3) -> Graph:
    nodes = {
        "in": nir.Input(input_type=np.array([n_in])),
        "lif": nir.LIF(tau=np.full(n_out, 2e-3), r=np.ones(n_out), v_leak=np.zeros(n_out), v_threshold=np.full(n_out, 0.02)),
        "out": nir.Output(output_type=np.array([n_out])),
    }
    nodes.update(middle)
    edges = [("in", first), *edges_mid, (last, "lif"), ("lif", "out")]
    return Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))


def test_affine_scale_affine_chain_becomes_one_affine():
    rng = np.random.default_rng(1)
    mid = {
        "a1": nir.Affine(weight=rng.normal(size=(5, 4)), bias=rng.normal(size=5) * 0.1),
        "s": nir.Scale(scale=np.array([1.0, 0.5, 2.0, -1.0, 0.25])),
        "a2": nir.Affine(weight=rng.normal(size=(3, 5)), bias=rng.normal(size=3) * 0.1),
    }
    g = chain_graph(mid, [("a1", "s"), ("s", "a2")], "a1", "a2")
    canon = Canonicalize(dt=DT).run(g).graph
    res = Fuse().run(canon)
    assert len(res.graph.nodes) == 4  # in, one affine, lif, out
    (aff,) = [n for n in res.graph.nodes.values() if isinstance(n, nir.Affine)]
    w1, b1, s, w2, b2 = mid["a1"].weight, mid["a1"].bias, mid["s"].scale, mid["a2"].weight, mid["a2"].bias
    gain = canon.nodes["a2"].weight[0, 0] / w2[0, 0]  # gain/threshold canonicalize folded into a2
    np.testing.assert_allclose(aff.weight, gain * w2 @ (s[:, None] * w1))
    np.testing.assert_allclose(aff.bias, gain * (w2 @ (s * b1) + b2))
    x = (rng.random((1, 200, 4)) < 0.3).astype(float)
    ref = reference(g, x).outputs["out"]
    assert ref.sum() > 10
    assert np.array_equal(ref, reference(res.graph, x).outputs["out"])


def test_parallel_projections_from_one_source_are_merged():
    rng = np.random.default_rng(2)
    mid = {"p1": nir.Affine(weight=rng.normal(size=(3, 4)), bias=np.zeros(3)),
           "p2": nir.Affine(weight=rng.normal(size=(3, 4)), bias=np.full(3, 0.01))}
    nodes = {
        "in": nir.Input(input_type=np.array([4])),
        "lif": nir.LIF(tau=np.full(3, 2e-3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.full(3, 0.02)),
        "out": nir.Output(output_type=np.array([3])),
        **mid,
    }
    edges = [("in", "p1"), ("in", "p2"), ("p1", "lif"), ("p2", "lif"), ("lif", "out")]
    g = Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    res = Fuse().run(Canonicalize(dt=DT).run(g).graph)
    assert res.report["merged_parallel"] == [{"nodes": ["p1", "p2"], "into": "p1"}]
    assert "p2" not in res.graph.nodes
    np.testing.assert_allclose(res.graph.nodes["p1"].weight, mid["p1"].weight + mid["p2"].weight)
    x = (rng.random((1, 200, 4)) < 0.3).astype(float)
    assert np.array_equal(reference(g, x).outputs["out"], reference(res.graph, x).outputs["out"])


def test_overlapping_pool_is_not_fused_but_lowered_exactly():
    c = 2
    conv = nir.Conv2d(input_shape=np.array([6, 6]), weight=np.random.default_rng(3).normal(size=(2, c, 3, 3)), stride=1,
                      padding=1, dilation=1, groups=1, bias=np.zeros(2))
    pool = nir.SumPool2d(kernel_size=np.array([3, 3]), stride=np.array([1, 1]), padding=np.array([1, 1]))
    nodes = {
        "in": nir.Input(input_type=np.array([c, 6, 6])),
        "pool": pool,
        "conv": conv,
        "n": if_node((2, 6, 6)),
        "out": nir.Output(output_type=np.array([2, 6, 6])),
    }
    g = Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=[("in", "pool"), ("pool", "conv"), ("conv", "n"), ("n", "out")], type_check=False))
    res = Fuse().run(Canonicalize(dt=DT).run(g).graph)
    assert "pool" in res.graph.nodes
    assert res.report["skipped"] and "overlapping" in res.report["skipped"][0]["why"]
    (proj,) = lower(res.graph).projs  # still one projection: the exact composition, sparse
    assert proj.op.kind == "sparse"
