"""NIR-level Graph: reading every nir 1.0.8 node type, flattening, shapes, round trips, errors.

Shapes are checked against torch's own convolution/pooling/flatten (an independent oracle), the
paper files against what their README says they hold.
"""
from __future__ import annotations

import dataclasses
import shutil

import h5py
import nir
import numpy as np
import pytest
import torch

from snnc.backends.base import normalize_inputs
from snnc.ir.errors import GraphError, ModelFileError, ParameterError, ShapeError, SnncError, UnsupportedNodeError
from snnc.ir.graph import Graph, read_nir_file

PAPER = ("lif/lif_norse.nir", "cnn/cnn_sinabs.nir", "braille/braille_noDelay_bias_zero.nir")


# -- helpers ----------------------------------------------------------------------------------------
def lif(n=None, tau=0.01):
    """A LIF with per-neuron arrays (n) or scalar parameters (n=None)."""
    if n is None:
        return nir.LIF(tau=np.float64(tau), r=np.float64(1.0), v_leak=np.float64(0.0), v_threshold=np.float64(1.0))
    return nir.LIF(tau=np.full(n, tau), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n))


def graph(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def chain(*nodes, in_shape):
    names = ["input"] + [f"n{i}" for i in range(len(nodes))] + ["output"]
    table = {"input": nir.Input(np.array(in_shape)), **{f"n{i}": n for i, n in enumerate(nodes)}, "output": nir.Output(np.array([]))}
    return graph(table, list(zip(names[:-1], names[1:])))


def value_fields(node):
    return [f.name for f in dataclasses.fields(node) if f.name not in ("input_type", "output_type", "metadata")]


def assert_same_value(a, b, where):
    if isinstance(a, str) or isinstance(b, str):
        assert a == b, where
        return
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    assert a_arr.shape == b_arr.shape, f"{where}: shape {a_arr.shape} != {b_arr.shape}"
    assert a_arr.dtype == b_arr.dtype, f"{where}: dtype {a_arr.dtype} != {b_arr.dtype}"
    assert np.array_equal(a_arr, b_arr), where


def assert_same_metadata(a: dict, b: dict, where):
    assert set(a) == set(b), where
    for k in a:
        if isinstance(a[k], dict):
            assert_same_metadata(a[k], b[k], f"{where}[{k}]")
        else:
            assert_same_value(a[k], b[k], f"{where}[{k}]")


def assert_same_graph(g1: Graph, g2: Graph):
    assert list(g1.nodes) == list(g2.nodes)
    assert g1.edges == g2.edges
    assert g1.recurrent == g2.recurrent
    assert g1.in_shapes == g2.in_shapes and g1.out_shapes == g2.out_shapes
    assert_same_metadata(g1.metadata, g2.metadata, "graph metadata")
    for name in g1.nodes:
        a, b = g1.nodes[name], g2.nodes[name]
        assert type(a) is type(b), name
        for f in value_fields(a):
            if getattr(a, f) is None and f == "input_shape":
                # the only change a write makes: a missing Conv input_shape is filled in from
                # inference, so that nir.read (which requires it) can load the file
                want = g1.in_shapes[name][1:] if isinstance(a, nir.Conv2d) else g1.in_shapes[name][1]
                assert_same_value(np.asarray(want, dtype=np.int64), getattr(b, f), f"{name}.{f}")
                continue
            assert_same_value(getattr(a, f), getattr(b, f), f"{name}.{f}")
        if isinstance(a, nir.Input):
            assert_same_value(a.input_type["input"], b.input_type["input"], f"{name} shape")
        assert_same_metadata(a.metadata, b.metadata, f"{name} metadata")


def all_types_graph() -> nir.NIRGraph:
    """Every nir 1.0.8 node type, scalar and array parameters, a nested subgraph, two inputs."""
    rng = np.random.default_rng(0)
    sub = graph(
        {
            "input": nir.Input(np.array([6])),
            "li": nir.LI(tau=np.full(6, 0.02), r=np.ones(6), v_leak=np.zeros(6)),
            "i": nir.I(r=np.float64(2.0)),
            "output": nir.Output(np.array([6])),
        },
        [("input", "li"), ("li", "i"), ("i", "output")],
    )
    nodes = {
        "img": nir.Input(np.array([2, 9, 9])),
        "conv_same": nir.Conv2d(input_shape=None, weight=rng.normal(size=(4, 2, 3, 3)).astype(np.float32), stride=1,
                                padding="same", dilation=1, groups=1, bias=np.zeros(4, dtype=np.float32)),
        "lif_scalar": lif(None),
        "conv_g": nir.Conv2d(input_shape=np.array([9, 9]), weight=rng.normal(size=(4, 2, 3, 2)), stride=(2, 1),
                             padding=(1, 0), dilation=(1, 2), groups=2, bias=rng.normal(size=4)),
        "if_": nir.IF(r=np.ones((4, 5, 7)), v_threshold=np.full((4, 5, 7), 0.5)),
        "sumpool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 2]), padding=np.array([0, 1])),
        "avgpool": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type=None, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=rng.normal(size=(6, 16)), bias=rng.normal(size=6)),
        "cuba": nir.CubaLIF(tau_syn=np.full(6, 5e-3), tau_mem=np.full(6, 1e-2), r=np.ones(6), v_leak=np.zeros(6),
                            v_threshold=np.ones(6), w_in=np.full(6, 2.0)),
        "rec": nir.Linear(weight=rng.normal(size=(6, 6))),
        "sub": sub,
        "scale": nir.Scale(scale=np.arange(1, 7, dtype=np.float64)),
        "delay": nir.Delay(delay=np.full(6, 2e-3)),
        "thr": nir.Threshold(threshold=np.float64(0.3)),
        "cubali": nir.CubaLI(tau_syn=np.float64(5e-3), tau_mem=np.float64(1e-2), r=np.float64(1.0), v_leak=np.float64(0.0)),
        "out": nir.Output(np.array([6])),
        "seq": nir.Input(np.array([3, 10])),
        "conv1d": nir.Conv1d(input_shape=None, weight=rng.normal(size=(5, 3, 3)), stride=2, padding="valid",
                             dilation=1, groups=1, bias=np.zeros(5)),
        "if1d": nir.IF(r=np.float64(1.0), v_threshold=np.float64(1.0)),
        "out1d": nir.Output(np.array([])),
    }
    nodes["fc"].metadata = {"origin": "test", "nested": {"k": np.arange(3)}}
    edges = [
        ("img", "conv_same"), ("conv_same", "lif_scalar"), ("lif_scalar", "conv_g"), ("conv_g", "if_"),
        ("if_", "sumpool"), ("sumpool", "avgpool"), ("avgpool", "flat"), ("flat", "fc"), ("fc", "cuba"),
        ("cuba", "rec"), ("rec", "cuba"), ("cuba", "sub"), ("sub", "scale"), ("scale", "delay"),
        ("delay", "thr"), ("thr", "cubali"), ("cubali", "out"),
        ("seq", "conv1d"), ("conv1d", "if1d"), ("if1d", "out1d"),
    ]
    g = graph(nodes, edges)
    g.metadata = {"producer": "test_graph", "dt": 1e-4}
    return g


# -- the paper's files --------------------------------------------------------------------------------
@pytest.mark.refdata
def test_paper_cnn_structure_and_shapes(refdata):
    g = Graph.from_nir(refdata / "nir-paper/cnn/cnn_sinabs.nir")
    kinds = [type(g.nodes[n]).__name__ for n in g.topo_order()]
    assert kinds.count("Conv2d") == 3 and kinds.count("SumPool2d") == 2 and kinds.count("Flatten") == 1
    assert kinds.count("Affine") == 2 and kinds.count("IF") == 5
    assert g.in_shapes[g.inputs[0]] == (2, 34, 34)
    assert g.in_shapes[g.outputs[0]] == (10,)
    assert not g.recurrent
    # Every Conv2d/pool output shape agrees with torch applied to a zero input of the inferred shape.
    for name, node in g.nodes.items():
        x = torch.zeros(1, *g.in_shapes[name])
        if isinstance(node, nir.Conv2d):
            y = torch.nn.functional.conv2d(x, torch.zeros(*node.weight.shape), stride=tuple(node.stride),
                                           padding=tuple(node.padding), dilation=tuple(node.dilation), groups=int(node.groups))
            assert g.out_shapes[name] == tuple(y.shape[1:]), name
        if isinstance(node, nir.SumPool2d):
            y = torch.nn.functional.avg_pool2d(x, tuple(node.kernel_size), tuple(node.stride), tuple(node.padding))
            assert g.out_shapes[name] == tuple(y.shape[1:]), name


@pytest.mark.refdata
def test_paper_braille_recurrent_edge_and_sizes(refdata):
    g = Graph.from_nir(refdata / "nir-paper/braille/braille_noDelay_bias_zero.nir")
    cuba = [n for n, node in g.nodes.items() if isinstance(node, nir.CubaLIF)]
    assert sorted(g.out_shapes[n] for n in cuba) == [(7,), (38,)]
    assert g.in_shapes[g.inputs[0]] == (12,)
    hidden = next(n for n in cuba if g.out_shapes[n] == (38,))
    # exactly one recurrent edge, and it closes the hidden layer's loop
    assert len(g.recurrent) == 1
    (a, b), = g.recurrent
    assert b == hidden and (b, a) in g.edges


@pytest.mark.refdata
def test_paper_lif_parameters(refdata):
    g = Graph.from_nir(refdata / "nir-paper/lif/lif_norse.nir")
    (name,) = [n for n, node in g.nodes.items() if isinstance(node, nir.LIF)]
    assert np.allclose(g.nodes[name].tau, 2.5e-3) and np.allclose(g.nodes[name].v_threshold, 0.1)
    (aff,) = [n for n, node in g.nodes.items() if isinstance(node, nir.Affine)]
    assert np.asarray(g.nodes[aff].weight).shape == (1, 1)


@pytest.mark.refdata
@pytest.mark.parametrize("rel", PAPER)
def test_paper_round_trip_is_exact(refdata, tmp_path, rel):
    path = refdata / "nir-paper" / rel
    g1 = Graph.from_nir(path)
    raw = nir.read(str(path), type_check=False)
    for name, node in raw.nodes.items():  # Graph keeps nir's parameters untouched
        if not isinstance(node, nir.NIRGraph):
            for f in value_fields(node):
                assert_same_value(getattr(node, f), getattr(g1.nodes[name], f), f"{name}.{f}")
    g1.write(tmp_path / "a.nir")
    g2 = Graph.from_nir(tmp_path / "a.nir")
    assert_same_graph(g1, g2)
    g2.write(tmp_path / "b.nir")
    assert_same_graph(g2, Graph.from_nir(tmp_path / "b.nir"))
    nir.read(str(tmp_path / "a.nir"))  # and nir itself (with its type check) reads what we wrote


# -- every node type ----------------------------------------------------------------------------------
def test_all_node_types_flatten_shapes_and_round_trip(tmp_path):
    g = Graph.from_nir(all_types_graph())
    assert {type(n).__name__ for n in g.nodes.values()} == {
        "Input", "Conv2d", "LIF", "IF", "SumPool2d", "AvgPool2d", "Flatten", "Affine", "CubaLIF", "Linear",
        "LI", "I", "Scale", "Delay", "Threshold", "CubaLI", "Output", "Conv1d",
    }
    assert "sub.li" in g.nodes and "sub.i" in g.nodes and "sub" not in g.nodes
    assert ("cuba", "sub.li") in g.edges and ("sub.i", "scale") in g.edges
    assert g.recurrent == {("rec", "cuba")}
    # shapes from torch, independently
    x = torch.zeros(1, 2, 9, 9)
    c1 = torch.nn.Conv2d(2, 4, 3, padding="same")(x)
    assert g.out_shapes["conv_same"] == tuple(c1.shape[1:]) == (4, 9, 9)
    c2 = torch.nn.Conv2d(4, 4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)(c1)
    assert g.out_shapes["conv_g"] == tuple(c2.shape[1:])
    p1 = torch.nn.functional.avg_pool2d(c2, 2, stride=(1, 2), padding=(0, 1))
    assert g.out_shapes["sumpool"] == tuple(p1.shape[1:])
    p2 = torch.nn.functional.avg_pool2d(p1, 2, stride=2)
    assert g.out_shapes["avgpool"] == tuple(p2.shape[1:])
    assert g.out_shapes["flat"] == (int(np.prod(p2.shape[1:])),) == (16,)
    c3 = torch.nn.Conv1d(3, 5, 3, stride=2)(torch.zeros(1, 3, 10))
    assert g.out_shapes["conv1d"] == tuple(c3.shape[1:]) and g.in_shapes["out1d"] == (5, 4)
    assert g.in_shapes["lif_scalar"] == (4, 9, 9)  # scalar-parameter LIF learns its shape from its input
    assert g.out_shapes["delay"] == (6,) and g.in_shapes["out"] == (6,)
    # round trip: scalars stay scalars (NIR issue #176), arrays stay arrays, dtypes kept
    g.write(tmp_path / "all.nir")
    g2 = Graph.from_nir(tmp_path / "all.nir")
    assert_same_graph(g, g2)
    g2.write(tmp_path / "again.nir")
    g3 = Graph.from_nir(tmp_path / "again.nir")
    assert_same_graph(g2, g3)
    assert g3.nodes["conv1d"].input_shape == 10 and list(g3.nodes["conv_same"].input_shape) == [9, 9]
    nir.read(str(tmp_path / "again.nir"), type_check=False)  # nir's own reader loads it too
    assert np.ndim(g2.nodes["lif_scalar"].tau) == 0 and np.ndim(g2.nodes["thr"].threshold) == 0
    assert np.asarray(g2.nodes["conv_same"].weight).dtype == np.float32
    assert g2.nodes["conv_same"].padding == "same"
    assert_same_value(g2.nodes["fc"].metadata["nested"]["k"], np.arange(3), "metadata")


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_conv_shapes_match_torch_over_a_grid():
    rng = np.random.default_rng(1)
    for _ in range(40):
        c_in, groups = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        c_in *= groups
        c_out = groups * int(rng.integers(1, 3))
        k = tuple(int(v) for v in rng.integers(1, 4, size=2))
        stride = tuple(int(v) for v in rng.integers(1, 3, size=2))
        dil = tuple(int(v) for v in rng.integers(1, 3, size=2))
        hw = tuple(int(v) for v in rng.integers(6, 12, size=2))
        padding = ["same", "valid", tuple(int(v) for v in rng.integers(0, 2, size=2))][int(rng.integers(3))]
        if padding == "same":
            stride = (1, 1)  # torch: 'same' only with stride 1
        w = np.zeros((c_out, c_in // groups, *k))
        node = nir.Conv2d(input_shape=None, weight=w, stride=stride, padding=padding, dilation=dil, groups=groups, bias=np.zeros(c_out))
        g = Graph.from_nir(chain(node, in_shape=(c_in, *hw)))
        y = torch.nn.functional.conv2d(torch.zeros(1, c_in, *hw), torch.zeros(*w.shape), stride=stride, padding=padding,
                                       dilation=dil, groups=groups)
        assert g.out_shapes["n0"] == tuple(y.shape[1:]), (k, stride, dil, padding, groups)


def test_flatten_partial_dims_and_range():
    g = Graph.from_nir(chain(nir.Flatten(input_type=None, start_dim=1, end_dim=2), in_shape=(2, 3, 4)))
    assert g.out_shapes["n0"] == tuple(torch.flatten(torch.zeros(2, 3, 4), 1, 2).shape)
    with pytest.raises(ShapeError, match="Flatten dimension out of range"):
        Graph.from_nir(chain(nir.Flatten(input_type=None, start_dim=3, end_dim=-1), in_shape=(2, 3, 4)))


# -- nesting and recurrence -----------------------------------------------------------------------------
def _sub(n=4):
    return graph(
        {"input": nir.Input(np.array([n])), "fc": nir.Affine(np.eye(n), np.zeros(n)), "lif": lif(n), "output": nir.Output(np.array([n]))},
        [("input", "fc"), ("fc", "lif"), ("lif", "output"), ("lif", "fc")],
    )


def test_nested_subgraph_edges_by_graph_name_and_inner_name():
    outer = graph(
        {"in": nir.Input(np.array([3])), "pre": nir.Affine(np.ones((4, 3)), np.zeros(4)), "a": _sub(), "b": _sub(),
         "post": nir.Linear(np.ones((2, 4))), "out": nir.Output(np.array([2]))},
        [("in", "pre"), ("pre", "a"), ("a", "b.input"), ("b.lif", "post"), ("post", "out")],
    )
    g = Graph.from_nir(outer)
    assert set(g.nodes) == {"in", "pre", "a.fc", "a.lif", "b.fc", "b.lif", "post", "out"}
    assert set(g.edges) == {("in", "pre"), ("pre", "a.fc"), ("a.fc", "a.lif"), ("a.lif", "a.fc"), ("a.lif", "b.fc"),
                            ("b.fc", "b.lif"), ("b.lif", "b.fc"), ("b.lif", "post"), ("post", "out")}
    assert g.recurrent == {("a.lif", "a.fc"), ("b.lif", "b.fc")}
    assert g.nodes["a.fc"] is not g.nodes["b.fc"]  # one subgraph object used twice: separate copies
    assert g.in_shapes["b.fc"] == (4,)


def test_doubly_nested_subgraph():
    mid = graph({"input": nir.Input(np.array([4])), "inner": _sub(), "output": nir.Output(np.array([4]))},
                [("input", "inner"), ("inner", "output")])
    outer = graph({"in": nir.Input(np.array([4])), "mid": mid, "out": nir.Output(np.array([4]))}, [("in", "mid"), ("mid", "out")])
    g = Graph.from_nir(outer)
    assert set(g.nodes) == {"in", "mid.inner.fc", "mid.inner.lif", "out"}
    assert ("in", "mid.inner.fc") in g.edges and ("mid.inner.lif", "out") in g.edges


def test_subgraph_with_two_inputs_needs_inner_names():
    two = graph(
        {"x": nir.Input(np.array([2])), "y": nir.Input(np.array([2])), "s": nir.Scale(np.ones(2)), "o": nir.Output(np.array([2]))},
        [("x", "s"), ("y", "s"), ("s", "o")],
    )
    ok = graph({"i": nir.Input(np.array([2])), "j": nir.Input(np.array([2])), "t": two, "out": nir.Output(np.array([2]))},
               [("i", "t.x"), ("j", "t.y"), ("t", "out")])
    g = Graph.from_nir(ok)
    assert set(g.edges) == {("i", "t.s"), ("j", "t.s"), ("t.s", "out")}
    bad = graph({"i": nir.Input(np.array([2])), "t": two, "out": nir.Output(np.array([2]))}, [("i", "t"), ("t", "out")])
    with pytest.raises(GraphError, match="exactly one Input") as err:
        Graph.from_nir(bad)
    assert "'t'" in str(err.value)


def test_name_collision_after_flattening_is_an_error():
    outer = graph({"in": nir.Input(np.array([4])), "a": _sub(), "a.fc": nir.Scale(np.ones(4)), "out": nir.Output(np.array([4]))},
                  [("in", "a"), ("a", "a.fc"), ("a.fc", "out")])
    with pytest.raises(GraphError, match="same name") as err:
        Graph.from_nir(outer)
    assert "a.fc" in str(err.value)


def test_self_loop_is_recurrent():
    g = Graph.from_nir(graph({"i": nir.Input(np.array([3])), "l": lif(3), "w": nir.Linear(np.eye(3)), "o": nir.Output(np.array([3]))},
                             [("i", "w"), ("w", "l"), ("l", "l"), ("l", "o")]))
    assert g.recurrent == {("l", "l")}
    assert g.topo_order() == ["i", "w", "l", "o"]


# -- bad input ---------------------------------------------------------------------------------------
@pytest.fixture
def lif_file(refdata, tmp_path):
    path = tmp_path / "lif.nir"
    shutil.copy(refdata / "nir-paper/lif/lif_norse.nir", path)
    return path


def test_truncated_file(lif_file):
    data = lif_file.read_bytes()
    lif_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError) as err:
        Graph.from_nir(lif_file)
    assert str(lif_file) in str(err.value) and ("HDF5" in str(err.value) or "corrupt" in str(err.value))


def test_corrupt_signature(lif_file):
    data = bytearray(lif_file.read_bytes())
    data[:8] = b"NOTHDF5!"
    lif_file.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="cannot read as HDF5"):
        Graph.from_nir(lif_file)


def test_text_file_is_not_nir(tmp_path):
    path = tmp_path / "model.nir"
    path.write_text("this is not a NIR file\n")
    with pytest.raises(ModelFileError) as err:
        Graph.from_nir(path)
    assert str(path) in str(err.value) and "HDF5" in str(err.value)


def test_hdf5_without_node_group(tmp_path):
    path = tmp_path / "other.nir"
    with h5py.File(path, "w") as f:
        f.create_dataset("weights", data=np.ones(3))
    with pytest.raises(ModelFileError, match="no 'node' group") as err:
        read_nir_file(path)
    assert "weights" in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        Graph.from_nir(tmp_path / "nope.nir")
    with pytest.raises(ModelFileError, match="directory"):
        Graph.from_nir(tmp_path)


def test_unknown_node_type_in_file(lif_file):
    with h5py.File(lif_file, "r+") as f:
        del f["node/nodes/1/type"]
        f["node/nodes/1"].create_dataset("type", data="FancyNeuron", dtype=h5py.string_dtype())
    with pytest.raises(UnsupportedNodeError) as err:
        Graph.from_nir(lif_file)
    msg = str(err.value)
    assert "'1'" in msg and "FancyNeuron" in msg and "LIF" in msg  # names node, type, and what is known


def test_missing_parameter_in_file(lif_file):
    with h5py.File(lif_file, "r+") as f:
        del f["node/nodes/1/tau"]
    with pytest.raises(ModelFileError) as err:
        Graph.from_nir(lif_file)
    assert "'tau' is missing" in str(err.value) and "node '1' (LIF)" in str(err.value)


def test_parameter_of_wrong_type_in_file(lif_file):
    with h5py.File(lif_file, "r+") as f:
        del f["node/nodes/0/weight"]
        f["node/nodes/0"].create_dataset("weight", data="heavy", dtype=h5py.string_dtype())
    with pytest.raises(ParameterError, match="must be numeric") as err:
        Graph.from_nir(lif_file)
    assert "'0'" in str(err.value) and "weight" in str(err.value)


def test_inconsistent_parameter_shapes_in_file(lif_file):
    # two different per-neuron shapes in one node cannot be repaired (a scalar next to a vector
    # can: tests/compiler/frontends/test_nir_quirks.py)
    with h5py.File(lif_file, "r+") as f:
        del f["node/nodes/1/r"], f["node/nodes/1/tau"]
        f["node/nodes/1"].create_dataset("r", data=np.ones(3, dtype=np.float32))
        f["node/nodes/1"].create_dataset("tau", data=np.ones(2, dtype=np.float32))
    with pytest.raises(ShapeError, match="different shapes") as err:
        Graph.from_nir(lif_file)
    assert "node '1'" in str(err.value) and "'r'" in str(err.value) and "'tau'" in str(err.value)


def test_dangling_edge_in_file(lif_file):
    with h5py.File(lif_file, "r+") as f:
        edges = f["node/edges"][()]
        del f["node/edges"]
        f["node"].create_dataset("edges", data=np.concatenate([edges, [[b"1", b"ghost"]]]), dtype=h5py.string_dtype())
    with pytest.raises(GraphError, match="does not exist") as err:
        Graph.from_nir(lif_file)
    assert "ghost" in str(err.value) and str(lif_file) in str(err.value)


def test_dangling_edge_in_object():
    g = graph({"i": nir.Input(np.array([2])), "o": nir.Output(np.array([2]))}, [("i", "o"), ("i", "missing")])
    with pytest.raises(GraphError, match="does not exist") as err:
        Graph.from_nir(g)
    assert "'missing'" in str(err.value)


def test_shape_mismatch_names_node_and_expected():
    g = chain(nir.Affine(np.ones((3, 4)), np.zeros(3)), in_shape=(5,))
    with pytest.raises(ShapeError) as err:
        Graph.from_nir(g)
    msg = str(err.value)
    assert "'n0'" in msg and "last dimension 4" in msg and "(5,)" in msg


def test_disagreeing_shapes_on_an_edge():
    g = chain(nir.Affine(np.ones((3, 4)), np.zeros(3)), lif(5), in_shape=(4,))
    with pytest.raises(ShapeError, match="shapes do not agree") as err:
        Graph.from_nir(g)
    assert "'n0' -> 'n1'" in str(err.value)


@pytest.mark.parametrize("field,value,needle", [
    ("tau", np.array([np.nan]), "NaN or inf"),
    ("v_threshold", np.array([np.inf]), "NaN or inf"),
    ("tau", np.array([-1e-3]), "must be positive"),
    ("tau", np.array([0.0]), "must be positive"),
])
def test_bad_parameter_values(field, value, needle):
    node = lif(1)
    setattr(node, field, value)
    with pytest.raises(ParameterError, match=needle) as err:
        Graph.from_nir(chain(node, in_shape=(1,)))
    assert f"'n0'.{field}" in str(err.value)


def test_bad_conv_hyperparameters():
    conv = nir.Conv2d(input_shape=None, weight=np.ones((2, 1, 3, 3)), stride=1, padding=0, dilation=1, groups=1, bias=np.zeros(2))
    conv.stride = (0, 1)
    with pytest.raises(ParameterError, match="stride must be at least 1") as err:
        Graph.from_nir(chain(conv, in_shape=(1, 8, 8)))
    assert "'n0'.stride" in str(err.value)
    conv2 = nir.Conv2d(input_shape=None, weight=np.ones((2, 1, 3, 3)), stride=2, padding="same", dilation=1, groups=1, bias=np.zeros(2))
    with pytest.raises(UnsupportedNodeError, match="stride other than 1"):
        Graph.from_nir(chain(conv2, in_shape=(1, 8, 8)))


def test_unsupported_object_as_node():
    g = graph({"i": nir.Input(np.array([2])), "x": object(), "o": nir.Output(np.array([2]))}, [("i", "x"), ("x", "o")])
    with pytest.raises(UnsupportedNodeError) as err:
        Graph.from_nir(g)
    assert "'x'" in str(err.value) and "object" in str(err.value)


def test_input_of_the_wrong_shape_is_named():
    g = Graph.from_nir(chain(lif(3), in_shape=(3,)))
    shapes = {n: g.in_shapes[n] for n in g.inputs}
    inputs, batch, steps = normalize_inputs(np.zeros((7, 3)), shapes, None)
    assert inputs["input"].shape == (1, 7, 3) and (batch, steps) == (1, 7)
    with pytest.raises(ShapeError) as err:
        normalize_inputs(np.zeros((7, 4)), shapes, None)
    assert "input 'input'" in str(err.value) and "[T, 3]" in str(err.value) and "[7, 4]" in str(err.value)


def test_inputs_for_a_network_without_input_ports_are_refused():
    # used to fail inside with a TypeError (None <= 0), or hand back batch None
    for steps in (None, 5):
        with pytest.raises(ShapeError, match="no input ports"):
            normalize_inputs({}, {}, steps)


def test_every_error_is_an_snnc_error():
    for cls in (GraphError, ModelFileError, ParameterError, ShapeError, UnsupportedNodeError):
        assert issubclass(cls, SnncError)


def test_any_array_parameter_fixes_the_neuron_shape():
    node = nir.LIF(tau=np.full(5, 0.01), r=np.ones(5), v_leak=np.zeros(5), v_threshold=np.ones(5))
    node.v_threshold = np.float64(1.0)  # the threshold is a scalar, tau still has 5 entries
    with pytest.raises(ShapeError, match="shapes do not agree") as err:
        Graph.from_nir(chain(node, in_shape=(3,)))
    assert "(5,)" in str(err.value) and "(3,)" in str(err.value)


def test_scalar_input_shape_means_one_dimension():
    g = chain(lif(4), in_shape=(4,))
    g.nodes["input"].input_type = {"input": np.int64(4)}
    assert Graph.from_nir(g).in_shapes["n0"] == (4,)
