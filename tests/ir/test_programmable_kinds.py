"""Product and atrlif populations: the sim kernels against the numpy steps (hypothesis, extremes
included), the IR's validation, the NIR round trip and the bit budget. Lava itself is the oracle
in tests/backends/test_programmable_lava.py."""
from __future__ import annotations

import nir
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc.backends.sim import kernels_atrlif, kernels_prodneuron
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection
from snnc.ir.chip_nir import chip_from_nir, chip_to_nir
from snnc.ir.errors import GraphError, ParameterError
from snnc.ir.fixed_point import ATRLIFState, atrlif_step, product_step, threshold_value

INT32 = st.integers(-(2**31), 2**31 - 1)
SMALL = st.integers(-(2**12), 2**12)


def _int32_arrays(draw, shape):
    vals = draw(st.lists(st.one_of(INT32, SMALL, st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31)])),
                         min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return np.array(vals, np.int64).reshape(shape).astype(np.int32)


@settings(max_examples=60, deadline=None)
@given(st.data(), st.integers(1, 3), st.integers(1, 6), st.integers(1, 5), st.integers(0, 23),
       st.sampled_from([0, 1, 7, 2**16, 2**17 - 1]))
def test_product_kernel_equals_numpy_step(data, batch, steps, n, exp, vth):
    acc = _int32_arrays(data.draw, (batch, steps, 2 * n))
    s_out = np.zeros((batch, steps, n))
    fanout = np.ones((1, n), np.int64)
    spikes_t, counts = np.zeros((batch, 1, steps), np.int64), np.zeros((batch, n), np.int64)
    active, ops_t = np.zeros((batch, 1), np.int64), np.zeros((batch, 1, steps), np.int64)
    kernels_prodneuron.scan_product(acc, steps, exp, vth, s_out, fanout, spikes_t, counts, active, ops_t)
    want = np.stack([product_step(acc[:, t, :n], acc[:, t, n:], exp=exp, vth=vth) for t in range(steps)], axis=1)
    assert np.array_equal(s_out, want)
    assert counts.sum() == np.count_nonzero(want) == ops_t.sum() == spikes_t.sum()


@settings(max_examples=40, deadline=None)
@given(st.data(), st.integers(1, 2), st.integers(1, 12), st.integers(1, 4),
       st.fixed_dictionaries({k: st.sampled_from([0, 1, 100, 2048, 4095]) for k in ("du", "dv", "d_theta", "d_r")}),
       st.integers(0, 4095), st.sampled_from([0, 1, 64, 4095]), st.integers(-(2**12), 2**12 - 1), st.integers(0, 7))
def test_atrlif_kernel_equals_numpy_step(data, batch, steps, n, decays, theta_0, theta_step, bias_mant, bias_exp):
    acc = _int32_arrays(data.draw, (batch, steps, n)) if data.draw(st.booleans()) else \
        np.asarray(data.draw(st.lists(st.integers(-300, 3000), min_size=batch * steps * n, max_size=batch * steps * n)),
                   np.int32).reshape(batch, steps, n)
    pop = Population("a", (n,), model="atrlif", vth=theta_0, theta_step=theta_step, bias_mant=bias_mant,
                     bias_exp=bias_exp, **decays)
    args = kernels_atrlif.population_params(pop)
    state = kernels_atrlif.initial_state(batch, n, args["theta_0"])
    spec = ATRLIFState.initial(batch, n, threshold_value(theta_0))
    z = lambda *s: np.zeros(s, np.int64)  # noqa: E731
    for t in range(steps):  # one step per call: the persistent state must carry over
        s_out = np.zeros((batch, 1, n), np.float32)
        u_out, v_out = np.zeros((batch, 1, n), np.int32), np.zeros((batch, 1, n), np.int32)
        kernels_atrlif.scan_atrlif(np.ascontiguousarray(acc[:, t : t + 1]), 1, state, **args, s_out=s_out, u_out=u_out, v_out=v_out,
                                   write_u=True, write_v=True, fanout=z(0, n), spikes_t=z(batch, 1, 1),
                                   counts=z(batch, n), active=z(batch, 1), ops_t=z(batch, 0, 1))
        s = atrlif_step(spec, acc[:, t], du=pop.du, dv=pop.dv, bias=args["bias"], theta_0=args["theta_0"],
                        theta_step=args["theta_step"], d_theta=pop.d_theta, d_r=pop.d_r)
        assert np.array_equal(s_out[:, 0], s)
        for row, want in ((0, spec.i), (1, spec.v), (2, spec.theta), (3, spec.r)):
            assert np.array_equal(state[row], want), f"state row {row} at step {t}"
        assert np.array_equal(u_out[:, 0], spec.i) and np.array_equal(v_out[:, 0], spec.v)


def test_atrlif_hand_values():
    """One neuron, input 1 every step, du = 4095 (i = 64 each step), dv = 0, theta_0 = 1 (64),
    theta_step = 1 (64), no decay of theta or r: v climbs by 64 per step; it spikes when
    v - r >= theta, then r jumps by 2 * theta and theta by 64."""
    state = ATRLIFState.initial(1, 1, 64)
    kw = dict(du=4095, dv=0, bias=0, theta_0=64, theta_step=64, d_theta=0, d_r=0)
    rows = []
    for _ in range(4):
        s = atrlif_step(state, np.array([[1]]), **kw)
        rows.append((int(s[0, 0]), int(state.v[0, 0]), int(state.theta[0, 0]), int(state.r[0, 0])))
    # step 1: v = 64 >= 64 -> spike, r = 128, theta = 128; step 2: v = 128, 128 - 128 < 128;
    # step 3: v = 192, 64 < 128; step 4: v = 256, 128 >= 128 -> spike, r = 384, theta = 192
    assert rows == [(1, 64, 128, 128), (0, 128, 128, 128), (0, 192, 128, 128), (1, 256, 192, 384)]


def test_product_hand_values():
    assert product_step(np.array([3, -3, 2**16]), np.array([5, 5, 2**16]), exp=1, vth=7).tolist() == [0, -8, 0]
    assert product_step(np.array([3]), np.array([5]), exp=0, vth=14).tolist() == [15]


def _graph(**prod) -> ChipGraph:
    g = ChipGraph()
    g.add(InputPopulation("x", (2,), num_message_bits=8))
    g.add(Population("p", (2,), model="product", vth=3, prod_exp=2, **prod))
    g.add(Population("a", (2,), model="atrlif", du=7, dv=9, vth=11, theta_step=13, d_theta=15, d_r=17, bias_mant=[1, -2], bias_exp=3))
    g.add(Projection("w1", "x", "p", np.eye(2, dtype=int), num_message_bits=8, port="a_in1"))
    g.add(Projection("w2", "x", "p", np.eye(2, dtype=int), num_message_bits=8, port="a_in2"))
    g.add(Projection("pa", "p", "a", np.eye(2, dtype=int), num_message_bits=24))
    g.outputs["a"] = OutputPort("a")
    return g


def test_nir_round_trip_keeps_kinds_and_ports(tmp_path):
    g = _graph()
    nir.write(tmp_path / "g.nir", chip_to_nir(g))
    back = chip_from_nir(nir.read(tmp_path / "g.nir"))
    assert back.populations["p"].model == "product" and back.populations["p"].prod_exp == 2
    a = back.populations["a"]
    assert (a.model, a.theta_step, a.d_theta, a.d_r, a.vth, list(a.bias_mant)) == ("atrlif", 13, 15, 17, 11, [1, -2])
    assert [back.projections[n].port for n in ("w1", "w2", "pa")] == ["a_in1", "a_in2", "a_in"]


@pytest.mark.parametrize("kw, match", [
    (dict(model="product", vth=1, du=5), "du does not apply to a product"),
    (dict(model="lif", prod_exp=1), "prod_exp applies to product populations only"),
    (dict(model="atrlif", vth=5000), "12 bits"),
    (dict(model="atrlif", du=np.array([1, 2])), "one value per layer"),
    (dict(model="atrlif", d_r=4096), "d_r out of its 12-bit range"),
    (dict(model="product", reset_mode="none"), "no reset mode"),
])
def test_invalid_fields_are_named(kw, match):
    with pytest.raises(ParameterError, match=match):
        Population("p", (2,), **kw)


def test_ports_are_checked():
    g = _graph()
    g.projections["pa"].port = "a_in2"
    with pytest.raises(GraphError, match="port its atrlif population does not have"):
        g.validate()
    g = _graph()
    del g.projections["w2"]
    with pytest.raises(GraphError, match="no projection into its port a_in2"):
        g.validate()


def test_budget_counts_state_per_kind():
    from snnc.compiler.analysis.budget import bit_budget

    report = bit_budget(_graph(), warn=False)
    layers = {layer.name: layer for layer in report.layers}
    assert layers["p"].state_bits == 0  # ProdNeuron keeps nothing between steps
    assert layers["a"].state_bits == 2 * 4 * 24  # i, v, theta, r


def test_energy_prices_programmable_updates_as_stated():
    """A product/atrlif update is priced at UPDATE_COST_FACTOR CUBA updates, and the report says so;
    the counts come from the run (hand check: every product neuron is active when both ports are)."""
    from snnc.backends.sim import SimBackend
    from snnc.compiler.analysis.energy import UPDATE_COST_FACTOR, estimate_energy
    from snnc.compiler.mapping import map_to_cores

    g = _graph()
    run = SimBackend().build(g).run(np.full((1, 6, 2), 3))
    report = estimate_energy(run.activity, map_to_cores(g, "loihi2", traffic=run.activity))
    table = report.table
    for name in ("p", "a"):
        layer, act = report.layers[name], run.activity.populations[name]
        factor = UPDATE_COST_FACTOR[g.populations[name].model]
        assert layer.energy["neuron_active"] == pytest.approx(act.active_updates * table.e_neuron_active * factor)
        assert layer.energy["neuron_inactive"] == pytest.approx((act.neuron_updates - act.active_updates) * table.e_neuron_inactive * factor)
        assert any(f"layer {name!r}" in a and "CUBA updates" in a for a in report.assumptions)
    # inputs 3 from step 0: both ports of p receive 3 from step 1 on, so p is active 5 of 6 steps
    assert run.activity.populations["p"].active_updates == 2 * 5
