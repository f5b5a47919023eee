"""Sigma-delta populations on the sim: the numba kernel against the numpy specification
(`snnc.ir.fixed_point.sigma_delta_step`, hypothesis), and sim against Lava's own `lava.proc.sdn`
processes (cumulative error on/off, ReLU and unit activation), every message and state."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import chip_strategies as cs

from snnc.backends.base import get_backend
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection
from snnc.ir.errors import ParameterError
from snnc.ir.fixed_point import SigmaDeltaState, sigma_delta_step

KINDS = ("delta", "sigma_delta", "sigma")


def _fed_by_input(n: int, bits: int, **pops) -> ChipGraph:
    """Every population gets the input one-to-one (weight 1): its `a` at step t+1 is input[t]."""
    g = ChipGraph()
    g.add(InputPopulation("input", (n,), num_message_bits=bits))
    for name, pop in pops.items():
        g.add(Population(name, (n,), **pop))
        g.add(Projection(f"input->{name}", "input", name, np.eye(n, dtype=np.int64), num_message_bits=bits))
    return g.validate()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 5),
    steps=st.integers(1, 12),
    bits=st.integers(1, 24),
    exps=st.tuples(st.integers(0, 7), st.integers(0, 7)),
    vth=st.integers(0, 2**17 - 1) | st.integers(0, 8),
    cum_error=st.booleans(),
    act_mode=st.sampled_from(["relu", "unit"]),
    bias=st.integers(-(2**15), 2**15 - 1),
    seed=st.integers(0, 2**16),
)
def test_kernel_equals_numpy_step(n, steps, bits, exps, vth, cum_error, act_mode, bias, seed):
    """Messages, sigma and act of all three kinds, including int32 wraps (large inputs << 14)."""
    spike_exp, state_exp = exps
    rng = np.random.default_rng(seed)
    lim = (1 << bits) - 1
    x = rng.integers(-lim, lim + 1, (steps, n))
    x[rng.random((steps, n)) < 0.3] = 0
    common = dict(vth=vth, cum_error=cum_error, spike_exp=spike_exp, state_exp=state_exp)
    pops = {
        "delta": dict(model="delta", **common),
        "sigma_delta": dict(model="sigma_delta", act_bias=bias, act_mode=act_mode, **common),
        "sigma": dict(model="sigma"),
    }
    g = _fed_by_input(n, bits, **pops)
    probes = [f"{k}/{v}" for k in KINDS for v in "suv"]
    got = get_backend("sim").build(g).run({"input": x[None]}, probes=probes).probes
    for kind in KINDS:
        params = {k: v for k, v in pops[kind].items() if k not in ("model", "act_bias")}
        state = SigmaDeltaState.zeros(1, n)
        for t in range(steps):
            a = x[t - 1][None] if t else np.zeros((1, n), np.int64)  # one step of synaptic latency
            s = sigma_delta_step(state, a, kind=kind, bias=bias, **params)
            np.testing.assert_array_equal(got[f"{kind}/s"][0, t], s[0], err_msg=f"{kind} s at {t}")
            np.testing.assert_array_equal(got[f"{kind}/u"][0, t], state.sigma[0], err_msg=f"{kind} sigma at {t}")
            np.testing.assert_array_equal(got[f"{kind}/v"][0, t], state.act[0], err_msg=f"{kind} act at {t}")


def test_numpy_step_hand_values():
    """Lava's SigmaDelta by hand: vth 1 -> 1 << 12 = 4096; bias 1 -> 4096; input 2 per step."""
    state = SigmaDeltaState.zeros(1, 1)
    out = [int(sigma_delta_step(state, np.array([[2]]), kind="sigma_delta", vth=1, bias=1, spike_exp=6, state_exp=6)[0, 0])
           for _ in range(3)]
    # sigma 2, 4, 6; act = sigma + 4096; the first delta (4098) passes, later deltas (2) stay in the residue
    assert out == [4098 >> 6, 0, 0]
    assert int(state.residue[0, 0]) == 4 and int(state.act[0, 0]) == 4102
    # Delta of a ramp 1, 2, 3, 4 with vth 3: without cum_error the residue grows until |delta| >= 3;
    # with it, the error (1, 3: reset, 1, 3: reset) triggers sending the delta (with its residue)
    for cum_error, expect in ((False, [0, 0, 3, 0]), (True, [0, 2, 0, 2])):
        state = SigmaDeltaState.zeros(1, 1)
        sent = [int(sigma_delta_step(state, np.array([[t]]), kind="delta", vth=3, cum_error=cum_error)[0, 0]) for t in (1, 2, 3, 4)]
        assert sent == expect, cum_error


@pytest.mark.lava
def test_sim_equals_lava_sdn_processes():
    """Delta (cum_error) -> SigmaDelta (unit, cum_error) -> SigmaDelta (ReLU) -> Sigma through graded
    dense projections: sim equals Lava's own Delta/SigmaDelta/Sigma fixed_pt, messages and states."""
    rng = np.random.default_rng(5)
    g = ChipGraph()
    g.add(InputPopulation("input", (6,), num_message_bits=10))
    g.add(Population("d", (6,), model="delta", vth=2, cum_error=True, spike_exp=3, state_exp=2))
    g.add(Population("u", (5,), model="sigma_delta", act_mode="unit", vth=3, cum_error=True,
                     act_bias=rng.integers(-40, 40, 5), spike_exp=2, state_exp=4))
    g.add(Population("r", (4,), model="sigma_delta", vth=5, act_bias=rng.integers(-40, 40, 4), spike_exp=6, state_exp=6))
    g.add(Population("o", (3,), model="sigma"))
    g.add(Projection("i->d", "input", "d", rng.integers(-60, 60, (6, 6)), num_message_bits=10))
    g.add(Projection("d->u", "d", "u", rng.integers(-120, 120, (5, 6)), num_message_bits=16, weight_exp=-1))
    g.add(Projection("u->r", "u", "r", rng.integers(-120, 120, (4, 5)), num_message_bits=16))
    g.add(Projection("r->o", "r", "o", rng.integers(-120, 120, (3, 4)), num_message_bits=16, num_weight_bits=6))
    g.outputs["output"] = OutputPort("o", "s")
    x = rng.integers(-1000, 1000, (20, 6))
    x[10:14] = 0
    probes = [f"{p}/{v}" for p in ("d", "u", "r") for v in "suv"] + ["o/s", "o/u"]
    sim = get_backend("sim").build(g).run({"input": x[None]}, probes=probes)
    lava = get_backend("lava").build(g).run({"input": x[None]}, probes=probes)
    for key in probes:
        np.testing.assert_array_equal(sim.probes[key], lava.probes[key], err_msg=key)
    np.testing.assert_array_equal(sim.outputs["output"], lava.outputs["output"])
    assert np.any(sim.probes["u/v"] < 0) and np.any(sim.probes["r/s"])  # unit passes negatives, ReLU layer sends


@pytest.mark.lava
@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(case=cs.chip_cases(steps=st.integers(6, 16), models=cs.SIGMA_DELTA_MODELS + ("lif",), kinds=cs.ALL_KINDS,
                          graded=True, delays=True, max_populations=4))
def test_random_sigma_delta_networks_sim_equals_lava(case):
    """Random graphs of Delta/SigmaDelta/Sigma (and LIF) populations through dense, sparse (delayed)
    and conv projections carrying their int32 messages: sim equals Lava's own processes, every
    population's messages at every step, and sigma/act of the sigma-delta ones."""
    g = case.graph
    assume(any(pop.sigma_delta for pop in g.populations.values()))
    probes = [f"{name}/{var}" for name, pop in g.populations.items() if pop.sigma_delta for var in "uv"]
    sim = get_backend("sim").build(g).run(case.batched(), steps=case.steps, probes=probes)
    lava = get_backend("lava").build(g).run(case.batched(), steps=case.steps, probes=probes)
    for name in g.outputs:
        np.testing.assert_array_equal(sim.outputs[name], lava.outputs[name], err_msg=name)
    for key in probes:
        np.testing.assert_array_equal(sim.probes[key], lava.probes[key], err_msg=key)


def test_sigma_delta_fields_are_checked():
    with pytest.raises(ParameterError, match="spike_exp"):
        Population("p", (2,), model="sigma_delta", spike_exp=8)
    with pytest.raises(ParameterError, match="act_bias"):
        Population("p", (2,), model="sigma_delta", act_bias=2**15)
    with pytest.raises(ParameterError, match="du does not apply"):
        Population("p", (2,), model="delta", du=5)
    with pytest.raises(ParameterError, match="sigma-delta populations only"):
        Population("p", (2,), model="lif", cum_error=True)
    g = ChipGraph()
    g.add(InputPopulation("input", (2,)))
    g.add(Population("a", (2,), model="sigma"))
    g.add(Population("b", (2,)))
    g.add(Projection("in", "input", "a", np.eye(2, dtype=np.int64)))
    g.add(Projection("ab", "a", "b", np.eye(2, dtype=np.int64)))  # binary projection from a graded source
    with pytest.raises(ParameterError, match="graded payloads"):
        g.validate()
