"""Timing: chip delays that keep every path in step with the float model."""
from __future__ import annotations

import nir
import numpy as np
import pytest

from snnc.backends.base import get_backend
from snnc.backends.reference import ReferenceBackend
from snnc.compiler.passes.base import PassManager
from snnc.compiler.passes.canonicalize import Canonicalize
from snnc.compiler.passes.fuse import Fuse
from snnc.compiler.passes.legalize import Legalize
from snnc.compiler.passes.quantize import Quantize
from snnc.compiler.passes.timing import Timing
from snnc.ir.errors import GraphError, PassError
from snnc.ir.graph import Graph

DT = 1e-4
N = 2


def if_node():
    return nir.IF(r=np.ones(N), v_threshold=np.full(N, 0.5), v_reset=np.zeros(N))


def aff(w):
    return nir.Affine(weight=np.eye(N) * w, bias=np.zeros(N))


def residual_graph() -> Graph:
    """in -> A -> B -> C and in -> C directly; C (a Threshold) fires only when both paths deliver
    in the same step, which in the float model they do (feed-forward paths take no time)."""
    nodes = {
        "in": nir.Input(input_type=np.array([N])),
        "fa": aff(1.0), "A": if_node(),
        "fb": aff(1.0), "B": if_node(),
        "fc": aff(0.6), "skip": aff(0.6),
        "C": nir.Threshold(threshold=np.full(N, 1.0)),
        "out": nir.Output(output_type=np.array([N])),
    }
    edges = [("in", "fa"), ("fa", "A"), ("A", "fb"), ("fb", "B"), ("B", "fc"), ("fc", "C"), ("in", "skip"), ("skip", "C"), ("C", "out")]
    return Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))


def spikes(steps=60, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((1, steps, N)) < 0.3).astype(float)


def chip_of(graph, timing=True, **timing_options):
    passes = [Canonicalize(dt=DT), Fuse()] + ([Timing(**timing_options)] if timing else []) + [Quantize(), Legalize()]
    return PassManager(passes).run(graph)


def test_skip_connection_is_delayed_to_meet_the_deep_branch():
    g = residual_graph()
    x = spikes()
    ref = ReferenceBackend().build(g, dt=DT).run(x).outputs["out"]
    assert ref.sum() > 10  # C fires at each input spike: both paths arrive together
    res = chip_of(g)
    chip = res.graph
    rep = res.report("timing")
    assert rep["latency"] == {"A": 1, "B": 2, "C": 3} and rep["time_shift"] == 3
    assert chip.projections["skip"].delay == 2 and rep["added_delay"] == {"skip": 2}
    assert chip.meta["time_shift"] == 3
    out = get_backend("sim").build(chip).run(x, steps=x.shape[1] + 3)  # 3 more steps to see the last outputs
    assert out.time_shift == 3
    assert np.array_equal(out.aligned(out.outputs["out"])[:, : x.shape[1]], ref)
    # without the timing pass the skip input arrives two steps early: C fires only by coincidence
    naive = chip_of(g, timing=False).graph
    out2 = get_backend("sim").build(naive).run(x).outputs["out"]
    best = min(np.abs(np.roll(out2, -s, axis=1)[:, : x.shape[1] - 3] - ref[:, : x.shape[1] - 3]).sum() for s in range(4))
    assert best > ref.sum() / 2


def test_recurrent_layer_needs_no_extra_delay_and_loops_too_fast_for_the_chip_are_approximated():
    nodes = {
        "in": nir.Input(input_type=np.array([N])),
        "fin": aff(1.0), "A": if_node(), "rec": aff(-0.3),
        "out": nir.Output(output_type=np.array([N])),
    }
    edges = [("in", "fin"), ("fin", "A"), ("A", "rec"), ("rec", "A"), ("A", "out")]
    g = Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    res = chip_of(g)
    assert res.report("timing")["latency"] == {"A": 1}
    assert res.graph.projections["rec"].delay == 0 and res.graph.projections["fin"].delay == 0
    # two layers in a loop with one recurrent edge: the float model goes round in one step, the chip in two
    nodes = {
        "in": nir.Input(input_type=np.array([N])),
        "fin": aff(1.0), "A": if_node(), "fab": aff(1.0), "B": if_node(), "fba": aff(-0.5),
        "out": nir.Output(output_type=np.array([N])),
    }
    edges = [("in", "fin"), ("fin", "A"), ("A", "fab"), ("fab", "B"), ("B", "fba"), ("fba", "A"), ("B", "out")]
    g = Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    with pytest.raises(PassError) as info:
        chip_of(g, approximate_loops=False)
    assert isinstance(info.value.__cause__, GraphError)
    msg = str(info.value)
    assert "'timing'" in msg and "loop" in msg and "fab" in msg and "fba" in msg
    # by default the closest the chip can do: one extra step on the loop, stated in the report
    res = chip_of(g)
    report = res.report("timing")
    assert sum(report["extra_delay"].values()) == 1 and any("timing changed" in n for n in report["notes"])
    loop_delay = {p.meta["part_of"]: p.delay for p in res.graph.projections.values() if p.src in ("A", "B") and p.dst in ("A", "B")}
    assert sum(loop_delay.values()) == 0  # the chip's fastest loop: two steps where the float model takes one


def test_float_delays_become_synaptic_delays_and_too_long_ones_are_refused():
    def graph(steps):
        nodes = {
            "in": nir.Input(input_type=np.array([N])),
            "d": nir.Delay(delay=np.full(N, steps * DT)),
            "fa": aff(1.0), "A": if_node(),
            "out": nir.Output(output_type=np.array([N])),
        }
        edges = [("in", "d"), ("d", "fa"), ("fa", "A"), ("A", "out")]
        return Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))

    g = graph(5)
    x = spikes(seed=3)
    ref = ReferenceBackend().build(g, dt=DT).run(x).outputs["out"]
    chip = chip_of(g).graph
    assert chip.projections["fa"].delay == 5
    out = get_backend("sim").build(chip).run(x, steps=x.shape[1] + 1)
    assert np.array_equal(out.aligned(out.outputs["out"])[:, : x.shape[1]], ref) and ref.sum() > 5
    with pytest.raises(PassError) as info:
        chip_of(graph(70))
    assert "delay <= 62" in str(info.value) and "'fa'" in str(info.value)


def test_timing_on_a_chip_graph_sets_the_same_delays():
    g = residual_graph()
    naive = chip_of(g, timing=False).graph
    fixed = Timing().run(naive)
    want = chip_of(g).graph
    assert fixed.graph.meta["time_shift"] == want.meta["time_shift"] == 3
    assert {n: p.delay for n, p in fixed.graph.projections.items()} == {n: p.delay for n, p in want.projections.items()}
