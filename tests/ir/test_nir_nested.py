"""Nested NIR subgraphs as snnTorch and the NIR paper write them: they load where nir 1.0.8's
`nir.read` refuses them, flatten to exactly the flat network (same outputs on reference, sim and
Lava), show their nesting in `snnc inspect`, and malformed nestings give only snnc errors."""
from __future__ import annotations

import copy
import warnings

import nir
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.backends.base import get_backend
from snnc.compiler.cli import main
from snnc.compiler.pipeline import compile
from snnc.ir.errors import GraphError, SnncError
from snnc.ir.graph import Graph
from snnc.ir.repairs import ReadNote
from nir_platform_files import recurrent_net, write
from test_fuzz_nir import same_graph

LAYOUTS = ("snntorch", "paper")


def load(path, reset_mode="zero", **kw):
    """Graph.from_nir with the ReadNotes it stated."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = Graph.from_nir(path, reset_mode=reset_mode, **kw)
    return g, [str(w.message) for w in caught if issubclass(w.category, ReadNote)]


def spikes(seed=0, batch=2, steps=40, n=4):
    return (np.random.default_rng(seed).random((batch, steps, n)) < 0.4).astype(float)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("nested")
    return {layout: write(recurrent_net(layout), d / f"{layout}.nir") for layout in (*LAYOUTS, "flat")}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_nir_read_refuses_what_snnc_reads(files, layout):
    if layout == "snntorch":  # the premise of the issue: the dotted edges stop nir 1.0.8's reader
        with pytest.raises(ValueError, match="does not exist"):
            nir.read(str(files[layout]))
    g, notes = load(files[layout])
    flat, _ = load(files["flat"])
    rename = {"lif1.w_rec": "lif1.lin", "lif2.w_rec": "lif2.lin"}  # the paper names the weight w_rec
    assert sorted(rename.get(n, n) for n in g.nodes) == sorted(flat.nodes)
    assert {(rename.get(a, a), rename.get(b, b)) for a, b in g.edges} == set(flat.edges)
    assert {(rename.get(a, a), rename.get(b, b)) for a, b in g.recurrent} == flat.recurrent == {
        ("lif1.lin", "lif1.lif"), ("lif2.lin", "lif2.lif")}
    assert set(g.subgraphs) == {"lif1", "lif2"}
    # snnTorch restates the inner loop outside: said once, for both subgraphs together
    assert len(notes) == (1 if layout == "snntorch" else 0), notes
    if notes:
        assert "lif1.lif -> lif1.lin" in notes[0] and "lif2.lin -> lif2.lif" in notes[0] and "counted once" in notes[0]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_nested_equals_flat_on_reference_and_sim(files, layout):
    x = spikes()
    ref = {k: get_backend("reference").build(load(files[k])[0]).run(x).outputs["output"] for k in (layout, "flat")}
    assert ref["flat"].sum() > 5 and np.array_equal(ref[layout], ref["flat"])
    sims = {}
    for k in (layout, "flat"):
        result = compile(load(files[k])[0], calibrate=x, guard=False)
        sims[k] = result.run(x, backend="sim").outputs["output"]
    assert sims["flat"].sum() > 5 and np.array_equal(sims[layout], sims["flat"])


@pytest.mark.lava
def test_nested_equals_flat_on_lava(files):
    x = spikes(seed=1, batch=1, steps=30)
    out = {}
    for k in ("snntorch", "flat"):
        result = compile(load(files[k])[0], calibrate=x, guard=False)
        out[k] = result.run(x, backend="lava").outputs["output"]
        assert np.array_equal(out[k], result.run(x, backend="sim").outputs["output"])
    assert out["flat"].sum() > 0 and np.array_equal(out["snntorch"], out["flat"])


def test_snntorch_recurrent_export_nested_equals_snntorch(tmp_path):
    """RLeaky and RSynaptic exported by snnTorch's own `_extract_snntorch_module` (nested, dotted
    outer edges): the reference backend reproduces snnTorch spike for spike (reset by subtraction,
    snnTorch's default, which the file cannot state)."""
    import snntorch as snn
    import torch
    from snntorch import utils as snn_utils

    from nir_platform_files import snntorch_nested

    def heaviside(v):
        return (v > 0).to(v.dtype)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(5, 8), torch.nn.Linear(8, 3)
            self.lif1 = snn.RLeaky(beta=0.9, threshold=0.8, linear_features=8, init_hidden=True, spike_grad=heaviside)
            self.lif2 = snn.RSynaptic(alpha=0.6, beta=0.85, threshold=0.7, linear_features=3, init_hidden=True,
                                      spike_grad=heaviside, output=True)

        def forward(self, x):
            return self.lif2(self.fc2(self.lif1(self.fc1(x))))[0]

    torch.manual_seed(0)
    model = Net().double()
    x = (torch.rand(2, 50, 5, dtype=torch.float64) < 0.4).double()
    snn_utils.reset(model)
    with torch.no_grad():
        expected = torch.stack([model(x[:, t]) for t in range(x.shape[1])], 1).numpy()
    path = write(snntorch_nested(model, 5), tmp_path / "snntorch.nir")
    with pytest.raises(ValueError, match="does not exist"):
        nir.read(str(path))
    g, notes = load(path, reset_mode="subtract")
    assert {"lif1.lif", "lif1.w_rec", "lif2.lif", "lif2.w_rec"} <= set(g.nodes) and len(notes) == 1
    got = get_backend("reference").build(g).run(x.numpy()).outputs["output"]
    assert expected.sum() > 5 and np.array_equal(got, expected)


def _deep() -> nir.NIRGraph:
    """Three levels: outer -> a -> b -> (lif, lin); outer edges address b's nodes by 'a.b.lif'."""
    n = 3
    b = nir.NIRGraph(nodes={"i": nir.Input(np.array([n])), "lif": nir.LIF(tau=np.full(n, 1e-3), r=np.full(n, 10.0), v_leak=np.zeros(n),
                                                                      v_threshold=np.ones(n)),
                            "lin": nir.Linear(np.eye(n) * 0.5), "o": nir.Output(np.array([n]))},
                     edges=[("i", "lif"), ("lif", "lin"), ("lin", "lif"), ("lif", "o")], type_check=False)
    a = nir.NIRGraph(nodes={"input": nir.Input(np.array([n])), "b": b, "output": nir.Output(np.array([n]))},
                     edges=[("input", "b"), ("b", "output")], type_check=False)
    return nir.NIRGraph(nodes={"x": nir.Input(np.array([n])), "w": nir.Linear(np.eye(n) * 2), "a": a, "y": nir.Output(np.array([n]))},
                        edges=[("x", "w"), ("w", "a.b"), ("a.b.lif", "y")], type_check=False)


def test_dotted_names_several_levels_deep(tmp_path):
    g, notes = load(write(_deep(), tmp_path / "deep.nir"))
    assert set(g.nodes) == {"x", "w", "a.b.lif", "a.b.lin", "y"} and not notes
    assert set(g.edges) == {("x", "w"), ("w", "a.b.lif"), ("a.b.lif", "a.b.lin"), ("a.b.lin", "a.b.lif"), ("a.b.lif", "y")}
    assert g.subgraphs == {"a.b": ["a.b.lif", "a.b.lin"], "a": ["a.b.lif", "a.b.lin"]}


@pytest.mark.parametrize("edit, message", [
    (lambda g: g.edges.__setitem__(1, ("w", "a.b.nope")), "names no node inside subgraph 'a.b'"),
    (lambda g: g.edges.__setitem__(1, ("w", "a.zz.lif")), "names no node inside subgraph 'a'"),
    (lambda g: g.edges.__setitem__(1, ("w", "nope")), "does not exist"),
    (lambda g: (g.nodes["a"].nodes["b"].nodes.pop("i"), g.nodes["a"].nodes["b"].edges.remove(("i", "lif"))),
     "without exactly one Input"),
    (lambda g: (g.nodes["a"].nodes["b"].nodes.pop("o"), g.nodes["a"].nodes["b"].edges.remove(("lif", "o"))),
     "without exactly one Output"),
    (lambda g: g.nodes["a"].nodes.__setitem__("again", g), "contains itself"),
    (lambda g: g.nodes["a"].nodes["b"].nodes.__setitem__("me", g.nodes["a"].nodes["b"]), "contains itself"),
])
def test_malformed_nestings_are_named_errors(edit, message):
    g = _deep()
    edit(g)
    with pytest.raises(GraphError, match=message) as err:
        Graph.from_nir(g, reset_mode="zero")
    assert "<graph>" in str(err.value)


def test_dangling_dotted_name_lists_the_inner_nodes():
    g = _deep()
    g.edges[1] = ("w", "a.b.nope")
    with pytest.raises(GraphError) as err:
        Graph.from_nir(g, reset_mode="zero")
    assert "edge 'w' -> 'a.b.nope'" in str(err.value) and "lif, lin" in str(err.value)


def test_inspect_shows_the_nesting(files, capsys):
    assert main(["inspect", str(files["snntorch"]), "--reset-mode", "zero"]) == 0
    out = capsys.readouterr()
    assert "nested subgraphs (2)" in out.out and "lif1.lif, lif1.lin" in out.out
    assert out.err.count("snnc: note:") == 1 and "counted once" in out.err


# -- round trip: what snnc writes, nir.read loads, and snnc reads back unchanged ---------------------
def test_float_level_round_trip_with_scalars_through_nir_read(files, tmp_path):
    g, _ = load(files["snntorch"])
    lif = g.nodes["lif1.lif"]  # scalar parameters next to a vector input (NIR issue #176 style)
    lif.tau, lif.r, lif.v_leak, lif.v_threshold, lif.v_reset = np.float64(1e-3), np.float64(10.0), np.float64(0), np.float64(1), np.float64(0)
    g.validate()
    g.write(tmp_path / "a.nir")
    back = nir.read(str(tmp_path / "a.nir"))  # nir 1.0.8 with its type check
    assert np.shape(back.nodes["lif1.lif"].tau) == (6,)
    g2, notes = load(tmp_path / "a.nir")
    assert not notes and np.ndim(g2.nodes["lif1.lif"].tau) == 0  # scalars read back as scalars
    same_graph(g, g2)
    g2.write(tmp_path / "b.nir")
    same_graph(g2, load(tmp_path / "b.nir")[0])
    x = spikes()
    ref = get_backend("reference")
    assert np.array_equal(ref.build(g).run(x).outputs["output"], ref.build(g2).run(x).outputs["output"])


def test_chip_level_round_trip_through_nir_read(files, tmp_path):
    from snnc.compiler.data.encoding import run
    from snnc.ir.chip_nir import chip_from_nir, chip_to_nir
    from snnc.ir.graph import read_nir_file

    out, again = tmp_path / "chip.nir", tmp_path / "again.nir"
    assert main(["compile", str(files["snntorch"]), "-o", str(out), "--reset-mode", "zero", "--no-guard"]) == 0
    nir.read(str(out))  # nir 1.0.8 with its type check
    chip = chip_from_nir(read_nir_file(out))
    assert main(["compile", str(out), "-o", str(again)]) == 0  # chip-level in: written unchanged
    back = chip_from_nir(read_nir_file(again))
    assert chip_to_nir(back).to_dict().keys() == chip_to_nir(chip).to_dict().keys()
    assert list(back.populations) == list(chip.populations) and list(back.projections) == list(chip.projections)
    dense = lambda w: w.toarray() if hasattr(w, "toarray") else np.asarray(w)  # noqa: E731 - sparse or dense
    for name, p in chip.projections.items():
        assert np.array_equal(dense(p.weights), dense(back.projections[name].weights))
        assert p.weight_exp == back.projections[name].weight_exp
    x = spikes()
    a, b = run(chip, x, backend="sim").outputs, run(back, x, backend="sim").outputs
    assert sum(v.sum() for v in a.values()) > 0 and all(np.array_equal(a[k], b[k]) for k in a)


# -- fuzz: malformed nested graphs give snnc errors only ---------------------------------------------
MUTATIONS = ("cycle", "drop_input", "drop_output", "dangle", "bad_node", "bad_edge", "bad_nodes", "dup_name", "self_edge",
             "bad_param", "none")


@st.composite
def malformed(draw):
    g = recurrent_net(draw(st.sampled_from(LAYOUTS)), seed=draw(st.integers(0, 3)))
    g = copy.deepcopy(g)
    subs = [g.nodes["lif1"], g.nodes["lif2"]]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(MUTATIONS))
        sub = draw(st.sampled_from(subs))
        inner = [k for k in sub.nodes]
        if kind == "cycle":
            draw(st.sampled_from([sub, g])).nodes["loop"] = draw(st.sampled_from([g, sub]))
        elif kind in ("drop_input", "drop_output"):
            want = nir.Input if kind == "drop_input" else nir.Output
            for k in [k for k in inner if isinstance(sub.nodes[k], want)]:
                del sub.nodes[k]
        elif kind == "dangle":
            i = draw(st.integers(0, len(g.edges) - 1))
            a, b = g.edges[i]
            g.edges[i] = (a, draw(st.sampled_from(["lif1.nope", "lif1.lif.x", "nope.lif", "lif2.", ".lif", "lif1..lif"])))
        elif kind == "bad_node":
            sub.nodes[draw(st.sampled_from(inner))] = draw(st.sampled_from([None, 3, "LIF", np.ones(3), {"type": "LIF"}]))
        elif kind == "bad_edge":
            sub.edges.append(draw(st.sampled_from([("lif",), (1, 2), None, ("a", "b", "c"), (b"lif", "lin"), "lif"])))
        elif kind == "bad_nodes":
            sub.nodes = draw(st.sampled_from([None, [], "nodes", 5]))
            subs = [s for s in subs if s is not sub] or [g]
        elif kind == "dup_name":
            g.nodes[f"{'lif1' if sub is g.nodes.get('lif1') else 'lif2'}.lif"] = nir.Scale(np.ones(3))
        elif kind == "bad_param":  # a wrong type or shape inside a subgraph's node
            holders = [v for v in sub.nodes.values() if hasattr(v, "weight") or hasattr(v, "tau")] if isinstance(sub.nodes, dict) else []
            if holders:
                node = draw(st.sampled_from(holders))
                setattr(node, "weight" if hasattr(node, "weight") else "tau",
                        draw(st.sampled_from(["x", None, np.array([np.nan]), np.ones((2, 2, 2)), np.zeros(0), [1, [2]]])))
        elif kind == "self_edge":
            sub.edges.append((inner[0], inner[0]) if inner else ("x", "x"))
    return g


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(malformed())
def test_fuzz_malformed_nested_graphs_raise_only_snnc_errors(g):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Graph.from_nir(g, reset_mode="zero")
    except SnncError as exc:
        assert str(exc).strip()
