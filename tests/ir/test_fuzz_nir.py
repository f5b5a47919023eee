"""Property tests: bad NIR input only ever raises snnc errors; valid graphs are always accepted.

(a) valid NIR files mutated byte by byte and in their HDF5 structure (datasets deleted, renamed,
    retyped, reshaped; node type strings changed), (b) random valid graphs, which must load and
    round-trip exactly, then perturbed in memory. Anything but an SnncError escaping is a bug.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph

SETTINGS = settings(max_examples=int(os.environ.get("SNNC_FUZZ_EXAMPLES", 250)), deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PAPER = ("lif/lif_norse.nir", "cnn/cnn_sinabs.nir", "braille/braille_noDelay_bias_zero.nir")


def load_or_snnc_error(source) -> Graph | None:
    """Graph.from_nir, where an SnncError is an acceptable outcome and anything else fails."""
    try:
        return Graph.from_nir(source)
    except SnncError as exc:
        assert str(exc).strip(), "an snnc error must say what is wrong"
        return None


# -- (b) random valid graphs ------------------------------------------------------------------------
@st.composite
def neuron(draw, shape):
    """A neuron node with scalar (NIR #176) or per-neuron parameters."""
    per = draw(st.booleans())
    make = (lambda v: np.full(shape, v)) if per else (lambda v: np.float64(v))
    tau = draw(st.floats(1e-4, 1e-1))
    kind = draw(st.sampled_from(["LIF", "CubaLIF", "IF", "LI", "I", "CubaLI"]))
    if kind == "LIF":
        return nir.LIF(tau=make(tau), r=make(1.0), v_leak=make(0.0), v_threshold=make(draw(st.floats(0.1, 2))))
    if kind == "CubaLIF":
        return nir.CubaLIF(tau_syn=make(tau), tau_mem=make(2 * tau), r=make(1.0), v_leak=make(0.0), v_threshold=make(1.0))
    if kind == "IF":
        return nir.IF(r=make(1.0), v_threshold=make(1.0))
    if kind == "LI":
        return nir.LI(tau=make(tau), r=make(1.0), v_leak=make(0.0))
    if kind == "I":
        return nir.I(r=make(1.0))
    return nir.CubaLI(tau_syn=make(tau), tau_mem=make(tau), r=make(1.0), v_leak=make(0.0))


@st.composite
def layer(draw, shape):
    """One node that accepts `shape`, with its output shape."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    options = ["neuron", "scale", "delay", "threshold"]
    if len(shape) == 1:
        options += ["affine", "linear"]
    if len(shape) == 2:
        options += ["conv1d", "flatten"]
    if len(shape) == 3:
        options += ["conv2d", "pool", "flatten"]
    kind = draw(st.sampled_from(options))
    if kind == "neuron":
        return draw(neuron(shape)), shape
    if kind == "scale":
        return nir.Scale(scale=rng.normal(size=shape)), shape
    if kind == "delay":
        return nir.Delay(delay=np.full(shape, draw(st.floats(0, 1e-2)))), shape
    if kind == "threshold":
        return nir.Threshold(threshold=np.float64(0.5) if draw(st.booleans()) else np.full(shape, 0.5)), shape
    if kind in ("affine", "linear"):
        n = draw(st.integers(1, 6))
        w = rng.normal(size=(n, shape[0])).astype(draw(st.sampled_from([np.float32, np.float64])))
        return (nir.Affine(w, rng.normal(size=n)) if kind == "affine" else nir.Linear(w)), (n,)
    if kind == "flatten":
        return nir.Flatten(input_type=None, start_dim=0, end_dim=-1), (int(np.prod(shape)),)
    dims = len(shape) - 1
    groups = draw(st.sampled_from([g for g in (1, 2) if shape[0] % g == 0]))
    c_out = groups * draw(st.integers(1, 2))
    k = tuple(draw(st.integers(1, min(3, s))) for s in shape[1:])
    if kind == "pool":
        k = tuple(draw(st.integers(1, min(2, s))) for s in shape[1:])
        stride = tuple(draw(st.integers(1, 2)) for _ in k)
        pad = tuple(draw(st.integers(0, kk // 2)) for kk in k)
        out = tuple((s + 2 * p - kk) // st_ + 1 for s, kk, st_, p in zip(shape[1:], k, stride, pad))
        cls = draw(st.sampled_from([nir.SumPool2d, nir.AvgPool2d]))
        return cls(kernel_size=np.array(k), stride=np.array(stride), padding=np.array(pad)), (shape[0], *out)
    padding = draw(st.sampled_from(["same", "valid", "int"]))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(dims)) if padding != "same" else (1,) * dims
    pad = tuple(draw(st.integers(0, 1)) for _ in range(dims)) if padding == "int" else None
    out = []
    for i in range(dims):
        if padding == "same":
            out.append(shape[1 + i])
        else:
            p = pad[i] if pad else 0
            out.append((shape[1 + i] + 2 * p - k[i]) // stride[i] + 1)
    w = rng.normal(size=(c_out, shape[0] // groups, *k))
    given_shape = draw(st.booleans())
    if dims == 2:
        node = nir.Conv2d(input_shape=np.array(shape[1:]) if given_shape else None, weight=w, stride=stride,
                          padding=padding if padding != "int" else pad, dilation=1, groups=groups, bias=rng.normal(size=c_out))
    else:
        node = nir.Conv1d(input_shape=shape[1] if given_shape else None, weight=w, stride=stride[0],
                          padding=padding if padding != "int" else pad[0], dilation=1, groups=groups, bias=rng.normal(size=c_out))
    return node, (c_out, *out)


@st.composite
def valid_graph(draw):
    """A chain of random layers from one Input, maybe with a recurrent loop and a nested part."""
    shape = draw(st.sampled_from([(3,), (2, 6), (2, 5, 5), (1, 4, 6)]))
    nodes = {"input": nir.Input(np.array(shape))}
    edges = []
    prev = "input"
    for i in range(draw(st.integers(1, 6))):
        node, out = draw(layer(shape))
        nodes[f"l{i}"] = node
        edges.append((prev, f"l{i}"))
        prev, shape = f"l{i}", out
    if len(shape) == 1 and draw(st.booleans()):  # recurrent block: neuron -> Linear -> back
        nodes["rec_n"] = draw(neuron(shape))
        nodes["rec_w"] = nir.Linear(np.eye(shape[0]) * 0.5)
        edges += [(prev, "rec_n"), ("rec_n", "rec_w"), ("rec_w", "rec_n")]
        prev = "rec_n"
    if draw(st.booleans()):  # a nested subgraph with one Input and one Output
        inner_node, out = draw(layer(shape))
        sub = nir.NIRGraph(
            nodes={"input": nir.Input(np.array(shape)), "x": inner_node, "output": nir.Output(np.array(out))},
            edges=[("input", "x"), ("x", "output")],
            type_check=False,
        )
        nodes["sub"] = sub
        edges.append((prev, draw(st.sampled_from(["sub", "sub.input"]))))
        prev, shape = draw(st.sampled_from(["sub", "sub.x", "sub.output"])), out
    nodes["output"] = nir.Output(np.array(shape) if draw(st.booleans()) else np.array([]))
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"seed": "fuzz"}, type_check=False)


def same_graph(g1: Graph, g2: Graph) -> None:
    assert list(g1.nodes) == list(g2.nodes) and g1.edges == g2.edges and g1.recurrent == g2.recurrent
    assert g1.in_shapes == g2.in_shapes and g1.out_shapes == g2.out_shapes
    for name, a in g1.nodes.items():
        b = g2.nodes[name]
        assert type(a) is type(b)
        for f in dataclasses.fields(a):
            if f.name in ("input_type", "output_type", "metadata"):
                continue
            va, vb = getattr(a, f.name), getattr(b, f.name)
            if va is None and f.name == "input_shape":
                continue  # filled in from inference on write
            if isinstance(va, str) or isinstance(vb, str):
                assert va == vb
            else:
                assert np.shape(va) == np.shape(vb) and np.asarray(va).dtype == np.asarray(vb).dtype, (name, f.name)
                assert np.array_equal(va, vb), (name, f.name)


@SETTINGS
@given(valid_graph())
def test_random_valid_graphs_load_and_round_trip(model):
    g = Graph.from_nir(model)  # must never be rejected
    assert set(g.in_shapes) == set(g.nodes)
    with tempfile.TemporaryDirectory() as tmp:
        g.write(Path(tmp) / "g.nir")
        same_graph(g, Graph.from_nir(Path(tmp) / "g.nir"))


@st.composite
def perturbed_graph(draw):
    model = draw(valid_graph())
    names = [n for n, v in model.nodes.items() if not isinstance(v, nir.NIRGraph)]
    name = draw(st.sampled_from(names))
    node = model.nodes[name]
    what = draw(st.sampled_from(["param", "edge_add", "edge_del", "edge_rename", "node_swap", "node_del", "input_shape"]))
    if what == "param":
        fields = [f.name for f in dataclasses.fields(node) if f.name not in ("input_type", "output_type", "metadata")]
        if fields:
            f = draw(st.sampled_from(fields))
            value = draw(st.sampled_from([
                np.nan, -1.0, 0.0, np.inf, "text", None, np.zeros((2, 3, 4, 5)), np.ones(7), [1, 2],
                np.array([1 + 2j]), (0, 0), -3, np.array(["a", "b"]), object(),
            ]))
            setattr(node, f, value)
    elif what == "edge_add":
        a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names + ["ghost", "sub.nothing"]))
        model.edges.append((a, b))
    elif what == "edge_del" and model.edges:
        model.edges.pop(draw(st.integers(0, len(model.edges) - 1)))
    elif what == "edge_rename" and model.edges:
        i = draw(st.integers(0, len(model.edges) - 1))
        model.edges[i] = draw(st.sampled_from([(model.edges[i][0], "zz"), (3, 4), ("a",), ("a", "b", "c"), None]))
    elif what == "node_swap":
        model.nodes[name] = draw(st.sampled_from([object(), nir.Output(np.array([1])), nir.Input(np.array([2])), 42]))
    elif what == "node_del":
        del model.nodes[name]
    elif what == "input_shape":
        model.nodes["input"].input_type = {"input": draw(st.sampled_from([np.array([0]), np.array([-1, 2]), np.array([]), None, np.array([1.5])]))}
    return model


@SETTINGS
@given(perturbed_graph())
def test_perturbed_graphs_raise_only_snnc_errors(model):
    load_or_snnc_error(model)


# -- (a) mutated files ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def seeds(refdata, tmp_path_factory):
    """The paper's NIR files, one holding every node type (written by snnc), and nested subgraphs as
    snnTorch and the NIR paper write them (tests/nir_platform_files.py)."""
    from nir_platform_files import recurrent_net, write
    from test_graph import all_types_graph  # pytest puts tests/ir on sys.path (no __init__.py)

    folder = tmp_path_factory.mktemp("seeds")
    paths = []
    for rel in PAPER:
        paths.append(folder / Path(rel).name)
        shutil.copy(refdata / "nir-paper" / rel, paths[-1])
    paths.append(folder / "all_types.nir")
    Graph.from_nir(all_types_graph()).write(paths[-1])
    for layout in ("snntorch", "paper"):
        paths.append(write(recurrent_net(layout), folder / f"nested_{layout}.nir"))
    return paths


@pytest.mark.refdata
@SETTINGS
@given(data=st.data())
def test_byte_mutations_raise_only_snnc_errors(seeds, data):
    raw = bytearray(data.draw(st.sampled_from(seeds)).read_bytes())
    op = data.draw(st.sampled_from(["flip", "truncate", "zero_block", "insert"]))
    if op == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
    elif op == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif op == "zero_block":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i : i + data.draw(st.integers(1, 512))] = b"\0" * len(raw[i : i + 512])
    else:
        i = data.draw(st.integers(0, len(raw)))
        raw[i:i] = bytes(data.draw(st.lists(st.integers(0, 255), min_size=1, max_size=16)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mutated.nir"
        path.write_bytes(bytes(raw))
        load_or_snnc_error(path)


def _datasets(f: h5py.File) -> list[str]:
    found = []
    f["node"].visititems(lambda name, obj: found.append(f"node/{name}") if isinstance(obj, h5py.Dataset) else None)
    return found


def _groups(f: h5py.File) -> list[str]:
    found = ["node"]
    f["node"].visititems(lambda name, obj: found.append(f"node/{name}") if isinstance(obj, h5py.Group) else None)
    return found


@pytest.mark.refdata
@SETTINGS
@given(data=st.data())
def test_structure_mutations_raise_only_snnc_errors(seeds, data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mutated.nir"
        shutil.copy(data.draw(st.sampled_from(seeds)), path)
        with h5py.File(path, "r+") as f:
            for _ in range(data.draw(st.integers(1, 3))):
                op = data.draw(st.sampled_from(["delete", "rename", "dtype", "shape", "type", "group", "extra", "edges", "dotted"]))
                datasets = _datasets(f)
                target = data.draw(st.sampled_from(datasets)) if datasets else None
                if target is None:
                    break
                parent, leaf = target.rsplit("/", 1)
                if op == "delete":
                    del f[target]
                elif op == "rename":
                    new = data.draw(st.sampled_from(["tau2", "weight", "type", "x", "bias", "shape"]))
                    if new != leaf and new not in f[parent]:
                        f.move(target, f"{parent}/{new}")
                elif op == "dtype":
                    value = data.draw(st.sampled_from([np.float32(1.5), np.int8(-3), np.array([True, False]), "str", np.array([np.nan])]))
                    del f[target]
                    if isinstance(value, str):
                        f[parent].create_dataset(leaf, data=value, dtype=h5py.string_dtype())
                    else:
                        f[parent].create_dataset(leaf, data=value)
                elif op == "shape":
                    shape = tuple(data.draw(st.lists(st.integers(0, 4), min_size=0, max_size=4)))
                    del f[target]
                    f[parent].create_dataset(leaf, data=np.ones(shape))
                elif op == "type":
                    types = [t for t in _datasets(f) if t.endswith("/type")]
                    if types:
                        t = data.draw(st.sampled_from(types))
                        p2, _ = t.rsplit("/", 1)
                        del f[t]
                        name = data.draw(st.sampled_from(["LIF", "Affine", "Conv2d", "NIRGraph", "Input", "Output", "Bogus", "", "Flatten"]))
                        f[p2].create_dataset("type", data=name, dtype=h5py.string_dtype())
                elif op == "group":
                    groups = [g for g in _groups(f) if g != "node"]
                    if groups:
                        del f[data.draw(st.sampled_from(groups))]
                elif op == "extra":
                    extra = f"extra{data.draw(st.integers(0, 9))}"
                    if extra not in f[parent]:
                        f[parent].create_dataset(extra, data=np.arange(3))
                elif op == "dotted":  # an edge end re-pointed at a dotted name, real or dangling, any level
                    edges = [d for d in _datasets(f) if d.endswith("/edges")]
                    edges = [d for d in edges if f[d].ndim == 2 and f[d].shape[1] == 2]  # not mangled already
                    if edges:
                        e = data.draw(st.sampled_from(edges))
                        pairs = [[bytes(x) if isinstance(x, bytes) else str(x).encode() for x in pair] for pair in f[e][()]]
                        names = [g.split("/nodes/")[-1].replace("/nodes/", ".") for g in _groups(f) if "/nodes/" in g]
                        if pairs and names:
                            i, side = data.draw(st.integers(0, len(pairs) - 1)), data.draw(st.integers(0, 1))
                            pairs[i][side] = (data.draw(st.sampled_from(names)) + data.draw(st.sampled_from(["", ".x", ".lif", "."]))).encode()
                            del f[e]
                            f.create_dataset(e, data=np.array(pairs, dtype=object), dtype=h5py.string_dtype())
                else:
                    edges = [d for d in _datasets(f) if d.endswith("/edges")]
                    if edges:
                        e = data.draw(st.sampled_from(edges))
                        p2, _ = e.rsplit("/", 1)
                        del f[e]
                        bad = data.draw(st.sampled_from([np.array([[b"a", b"b", b"c"]], dtype=object), np.array([1, 2]), np.array([[b"\xff", b"x"]], dtype=object)]))
                        f[p2].create_dataset("edges", data=bad, dtype=h5py.string_dtype() if bad.dtype == object else None)
        load_or_snnc_error(path)

