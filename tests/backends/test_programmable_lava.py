"""Product and adaptive-threshold neurons against Lava 0.10.0 itself (ProdNeuron, ATRLIF fixed_pt).

Each random network (`chip_strategies.programmable_graphs`) is built here a second time, directly
from Lava's processes and the IR's own arrays (independent of `snnc.backends.lava.emit`), run under
`Loihi2SimCfg(select_tag="fixed_pt")` with Monitors on every state; the sim backend and snnc's lava
backend must equal it at every step: the product's graded output, the atrlif's spikes, i and v, the
LIF reading both; the atrlif's theta and r (which snnc does not expose as probes) must equal the
numpy specification `snnc.ir.fixed_point.atrlif_step` fed with the same inputs.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings

import lava_oracle  # noqa: F401,I001  (imports Lava before numba's threading layer starts)
import chip_strategies as cs
from snnc.backends.base import get_backend
from snnc.backends.sim import SimBackend
from snnc.ir.bits import truncate_weights
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection
from snnc.ir.errors import BackendError
from snnc.ir.fixed_point import ATRLIFState, atrlif_step, threshold_value, wrap32
from snnc.ir.fixed_point.units import bias_value

pytestmark = [pytest.mark.lava, pytest.mark.timeout(900)]
STEPS = 16


def _lava_records(graph: ChipGraph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run `graph` built straight from Lava processes; {"pop/var": [T, n]} for every state."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.atrlif.process import ATRLIF
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor
    from lava.proc.prodneuron.process import ProdNeuron

    pops = graph.populations
    p, a, o = pops["prod"], pops["alif"], pops["out"]
    procs = {
        "x": RingBuffer(data=np.ascontiguousarray(x.T).astype(np.int64)),
        "prod": ProdNeuron(shape=p.shape, vth=int(p.vth), exp=int(p.prod_exp)),
        "alif": ATRLIF(shape=a.shape, delta_i=a.du / 4096, delta_v=a.dv / 4096, delta_theta=a.d_theta / 4096,
                       delta_r=a.d_r / 4096, theta_0=int(a.vth), theta_step=int(a.theta_step),
                       bias_mant=np.broadcast_to(a.bias_mant, a.shape).astype(np.int64), bias_exp=int(a.bias_exp)),
        "out": LIF(shape=o.shape, du=int(o.du), dv=int(o.dv), vth=int(o.vth)),
    }
    for proj in graph.projections.values():
        dense = Dense(weights=np.asarray(proj.weights, np.int64), weight_exp=int(proj.weight_exp),
                      num_weight_bits=int(proj.num_weight_bits), num_message_bits=int(proj.num_message_bits))
        procs[proj.src].s_out.connect(dense.s_in)
        dense.a_out.connect(getattr(procs[proj.dst], proj.port))
    watched = {"prod/s": procs["prod"].s_out, "alif/s": procs["alif"].s_out, "alif/u": procs["alif"].i,
               "alif/v": procs["alif"].v, "alif/theta": procs["alif"].theta, "alif/r": procs["alif"].r,
               "out/s": procs["out"].s_out, "out/u": procs["out"].u, "out/v": procs["out"].v}
    monitors = {}
    for key, port in watched.items():
        monitors[key] = Monitor()
        monitors[key].probe(port, STEPS)
    procs["x"].run(condition=RunSteps(num_steps=STEPS), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    try:
        return {key: np.asarray(m.get_data()[watched[key].process.name][watched[key].name]).reshape(STEPS, -1).astype(np.int64)
                for key, m in monitors.items()}
    finally:
        procs["x"].stop()


def _spec_theta_r(graph: ChipGraph, x: np.ndarray, lava_alif_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """theta and r of the atrlif by the numpy step, its input computed from the IR's weights
    (Dense: truncated weights, weight_exp, one step of latency)."""
    a, proj = graph.populations["alif"], graph.projections["ina"]
    w = truncate_weights(proj.weights, proj.num_weight_bits)
    state = ATRLIFState.initial(1, a.size, threshold_value(int(a.vth)))
    thetas, rs = [], []
    for t in range(STEPS):
        acc = w @ x[t - 1] if t else np.zeros(a.size, np.int64)
        e = int(proj.weight_exp)
        acc = wrap32(acc << e if e >= 0 else acc >> -e)
        s = atrlif_step(state, acc[None], du=a.du, dv=a.dv, bias=bias_value(a.bias_mant, a.bias_exp),
                        theta_0=threshold_value(int(a.vth)), theta_step=threshold_value(int(a.theta_step)),
                        d_theta=a.d_theta, d_r=a.d_r)
        assert np.array_equal(s[0], lava_alif_s[t]), f"step {t}: spec spikes differ from Lava's"
        thetas.append(state.theta[0])
        rs.append(state.r[0])
    return np.array(thetas), np.array(rs)


def _check(graph: ChipGraph, seed: int, x: np.ndarray | None = None) -> dict[str, np.ndarray]:
    x = cs.programmable_inputs(graph, STEPS, seed) if x is None else x
    lava = _lava_records(graph, x)
    probes = ["prod/s", "alif/s", "alif/u", "alif/v", "out/s", "out/u", "out/v"]
    other = x[::-1].copy()
    sim = SimBackend().build(graph, chunk=5).run(np.stack([x, other]), probes=probes)
    emitted = get_backend("lava").build(graph).run(x[None], probes=probes)
    for key in probes:
        assert np.array_equal(sim.probes[key][0], lava[key]), f"sim {key} differs from Lava"
        assert np.array_equal(emitted.probes[key][0], lava[key]), f"lava backend {key} differs from Lava"
    theta, r = _spec_theta_r(graph, x, lava["alif/s"])
    assert np.array_equal(theta, lava["alif/theta"]) and np.array_equal(r, lava["alif/r"])
    # the second sample (time-reversed input) must equal a run of that sample alone
    alone = SimBackend().build(graph).run(other[None], probes=probes)
    for key in probes:
        assert np.array_equal(sim.probes[key][1], alone.probes[key][0])
    return lava


@settings(max_examples=3, derandomize=True, deadline=None, database=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
@given(cs.programmable_graphs())
def test_product_and_atrlif_equal_lava(graph):
    _check(graph, seed=graph.inputs["x"].size)


def _edge_graph() -> ChipGraph:
    """Inputs of 255 through weights 255 << 7 on both ports: each port receives 2 * 255 * 255 << 7
    (about 2**24), so the product leaves int32 and wraps; the atrlif gets a large drive, a steep
    threshold step and slow decays, so theta and r climb to large values."""
    g = ChipGraph()
    g.add(InputPopulation("x", (2,), num_message_bits=8))
    g.add(Population("prod", (2,), model="product", vth=0, prod_exp=0))
    g.add(Population("alif", (2,), model="atrlif", du=4095, dv=0, vth=4095, theta_step=4095, d_theta=1, d_r=1,
                     bias_mant=[4095, -4096], bias_exp=7))
    g.add(Population("out", (2,), du=4095, dv=0, vth=1))
    big = np.full((2, 2), 255)
    g.add(Projection("in1", "x", "prod", big, num_message_bits=8, weight_exp=7, port="a_in1"))
    g.add(Projection("in2", "x", "prod", big, num_message_bits=8, weight_exp=7, port="a_in2"))
    g.add(Projection("ina", "x", "alif", big, num_message_bits=8, weight_exp=4))
    g.add(Projection("p_out", "prod", "out", np.array([[1, -1], [-256, 255]]), num_message_bits=24, weight_exp=-8))
    g.add(Projection("a_out", "alif", "out", np.array([[1, 1], [-1, 0]])))
    g.outputs["out"] = OutputPort("out")
    return g.validate()


def test_extremes_equal_lava():
    """The int32 wrap of the product and large adaptive thresholds, step for step against Lava."""
    graph = _edge_graph()
    port = 2 * 255 * 255 << 7
    lava = _check(graph, seed=1, x=np.full((STEPS, 2), 255))
    prod = lava["prod/s"][1:]  # from step 1 on every port receives `port`
    assert np.all(prod == wrap32(port * port)) and wrap32(port * port) != port * port  # Lava wrapped, as the sim
    assert lava["alif/theta"].max() > 2**20 and lava["alif/s"].any()


def test_product_state_is_not_readable():
    with pytest.raises(BackendError, match="keeps no state"):
        SimBackend().build(_edge_graph()).run(np.zeros((1, 3, 2)), probes=["prod/v"])


def test_s4d_float_path_equals_lava_s4d_and_has_no_chip_path():
    """Lava 0.10's S4d has only a floating_pt model: snnc's S4DLayer is that float model (equal to
    Lava's process, step for step), and exporting it for the chip is an error naming the layer."""
    import torch
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor
    from lava.proc.s4d.process import S4d

    from snnc.compiler.frontends.attention import S4DLayer, SequenceClassifier, to_nir
    from snnc.ir.errors import UnsupportedNodeError

    rng = np.random.default_rng(0)
    n, steps = 3, 8
    a = 0.9 * np.exp(1j * rng.random(n))
    b, c = rng.random(n) + 1j * rng.random(n), rng.random(n) + 1j * rng.random(n)
    x = rng.standard_normal((n, steps))
    src, s4 = RingBuffer(data=x), S4d(shape=(n,), a=a, b=b, c=c)
    src.s_out.connect(s4.a_in)
    monitor = Monitor()
    monitor.probe(s4.s_out, steps)
    s4.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
    try:
        lava = np.asarray(monitor.get_data()[s4.name]["s_out"]).reshape(steps, n)
    finally:
        s4.stop()
    layer = S4DLayer(a, b, c)
    with torch.no_grad():
        ours = layer(torch.from_numpy(x.T[None]).double())[0].numpy()
    assert np.allclose(ours, lava, rtol=1e-12, atol=1e-12)
    with pytest.raises(UnsupportedNodeError, match=r"layer 'block'.*S4D layer.*floating_pt.*SpikingSSM"):
        to_nir(SequenceClassifier(layer, 10), n)


def test_programmable_kinds_run_on_fixed_pt_only():
    from snnc.backends.lava.emit import emit

    with pytest.raises(BackendError, match="population 'prod'.*fixed_pt model only"):
        emit(_edge_graph(), tag="floating_pt")


def test_product_threshold_is_strict_like_lava():
    """Binary inputs through weights of 1 give the ports (1, 2) and (1, 2): products 1 and 4. With
    vth = 1 Lava sends 0 for the first (|v| > vth is strict) and 4 for the second; so must the sim."""
    g = _edge_graph()
    g.inputs["x"].num_message_bits = 0
    g.populations["prod"].vth = 1
    ones = np.array([[1, 0], [1, 1]])
    for name in ("in1", "in2", "ina"):
        g.projections[name].weights = ones.copy()
        g.projections[name].weight_exp = 0
        g.projections[name].num_message_bits = 0
    g.validate()
    lava = _check(g, seed=0, x=np.ones((STEPS, 2), np.int64))
    assert lava["prod/s"][1:].tolist() == [[0, 4]] * (STEPS - 1)
