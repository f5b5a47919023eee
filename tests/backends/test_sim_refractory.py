"""lif_refractory (Lava's LIFRefractory): the sim kernel against the numpy specification, and the sim
and snnc's lava backend (its own fixed_pt CubaRefractory process) against Lava 0.10.0's own
LIFRefractory, which has only a floating-point model.

The Lava comparison uses settings where Lava's float arithmetic is exact integer arithmetic: du = 1
(fixed du = 4095: u is the input of this step), dv = 0 (no leak), integer weights, inputs and
biases (fixed bias_exp = 6, so fixed bias = float bias << 6), thresholds below the 24-bit range.
Then fixed u, v = float u, v << 6 and the spikes must be identical at every step.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lava_oracle  # noqa: F401,I001  (imports Lava before numba's threading layer starts)
from snnc.backends.base import get_backend
from snnc.backends.sim import SimBackend
from snnc.backends.sim import kernels_refractory as KR
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection
from snnc.ir.fixed_point import RefractoryState, refractory_step, threshold_value
from snnc.ir.fixed_point.units import bias_value

STEPS = 24


def _graph(w: np.ndarray, vth: int, bias: np.ndarray, period: int) -> ChipGraph:
    g = ChipGraph()
    g.add(InputPopulation("x", (w.shape[1],)))
    g.add(Population("r", (w.shape[0],), model="lif_refractory", du=4095, dv=0, vth=vth, bias_mant=bias, bias_exp=6,
                     refractory_period=period))
    g.add(Projection("xr", "x", "r", w))
    g.outputs["r"] = OutputPort("r")
    return g.validate()


def _lava_float(w: np.ndarray, vth: int, bias: np.ndarray, period: int, x: np.ndarray) -> dict[str, np.ndarray]:
    """Lava's own LIFRefractory (floating_pt; its plain LIF for period 0, which LIFRefractory refuses)
    behind a Dense; {"s"|"u"|"v": [T, n]}."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF, LIFRefractory
    from lava.proc.monitor.process import Monitor

    src = RingBuffer(data=np.ascontiguousarray(x.T).astype(float))
    dense = Dense(weights=w.astype(float))
    kw = dict(shape=(w.shape[0],), du=1.0, dv=0.0, vth=float(vth), bias_mant=bias.astype(float))
    lif = LIFRefractory(**kw, refractory_period=period) if period else LIF(**kw)
    src.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    ports = {"s": lif.s_out, "u": lif.u, "v": lif.v}
    monitors = {k: Monitor() for k in ports}
    for k, port in ports.items():
        monitors[k].probe(port, STEPS)
    src.run(condition=RunSteps(num_steps=STEPS), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
    try:
        return {k: np.asarray(m.get_data()[lif.name][ports[k].name]).reshape(STEPS, -1) for k, m in monitors.items()}
    finally:
        src.stop()


@pytest.mark.lava
@pytest.mark.parametrize("period", [0, 1, 3])
def test_sim_equals_lava_lifrefractory(period):
    rng = np.random.default_rng(period)
    w = 2 * rng.integers(-2, 4, (6, 4))  # even: 8-bit mixed-sign weights lose their lowest bit on the chip
    bias = rng.integers(-1, 3, 6)
    x = (rng.random((STEPS, 4)) < 0.6).astype(np.int64)
    lava = _lava_float(w, 6, bias, period, x)
    assert np.all(lava["v"] == np.round(lava["v"])) and lava["s"].sum() > 0  # exact-integer regime, and it fires
    probes = ["r/s", "r/u", "r/v"]
    batch = np.stack([x, x[::-1]])  # the second sample checks that state (the counter too) restarts per sample
    sim = SimBackend().build(_graph(w, 6, bias, period)).run(batch, probes=probes)
    emitted = get_backend("lava").build(_graph(w, 6, bias, period)).run(batch, probes=probes)  # snnc's CubaRefractory
    for rec in (sim, emitted):
        assert np.array_equal(rec.probes["r/s"][0], lava["s"].astype(np.int64))
        assert np.array_equal(rec.probes["r/u"][0], (lava["u"] * 64).astype(np.int64))
        assert np.array_equal(rec.probes["r/v"][0], (lava["v"] * 64).astype(np.int64))
    for key in probes:
        assert np.array_equal(sim.probes[key][1], emitted.probes[key][1])
    if period:  # the refractory period changes what a plain LIF would do
        plain = _lava_float(w, 6, bias, 0, x)
        assert not np.array_equal(plain["s"], lava["s"])


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2**31 - 1), st.integers(0, 8), st.integers(1, 3))
def test_kernel_equals_numpy_step(seed, period, batch):
    """scan_refractory over two chunks (state kept across them) equals refractory_step, with
    per-neuron decays, biases and thresholds and inputs large enough to wrap u and clip v."""
    rng = np.random.default_rng(seed)
    n, steps = 5, 12
    pop = Population("r", (n,), model="lif_refractory", du=rng.integers(0, 4096, n), dv=rng.integers(0, 4096, n),
                     vth=rng.integers(0, 2**17, n), bias_mant=rng.integers(-4096, 4096, n), bias_exp=rng.integers(0, 8, n),
                     refractory_period=period)
    acc = rng.integers(-(2**31), 2**31, (batch, steps, n)).astype(np.int32) >> rng.integers(0, 31)
    params = KR.population_params(pop)
    state = KR.initial_state(batch, n)
    s_out = np.zeros((batch, steps, n), np.float32)
    u_out = np.zeros((batch, steps, n), np.int32)
    v_out = np.zeros((batch, steps, n), np.int32)
    z2, z3 = np.zeros((0, n), np.int64), np.zeros((batch, 1, steps), np.int64)
    for lo, hi in ((0, 5), (5, steps)):
        part = [np.ascontiguousarray(b[:, lo:hi]) for b in (s_out, u_out, v_out)]
        KR.scan_refractory(np.ascontiguousarray(acc[:, lo:hi]), hi - lo, state, **params, s_out=part[0], u_out=part[1],
                           v_out=part[2], write_u=True, write_v=True, fanout=z2, spikes_t=z3.copy(),
                           counts=np.zeros((batch, n), np.int64), active=np.zeros((batch, 1), np.int64),
                           ops_t=np.zeros((batch, 0, steps), np.int64))
        s_out[:, lo:hi], u_out[:, lo:hi], v_out[:, lo:hi] = part
    spec = RefractoryState.zeros(batch, n)
    for t in range(steps):
        s = refractory_step(spec, acc[:, t], du=pop.du, dv=pop.dv, bias=bias_value(pop.bias_mant, pop.bias_exp),
                            vth_e=threshold_value(pop.vth), refractory_period=period)
        assert np.array_equal(s_out[:, t], s) and np.array_equal(u_out[:, t], spec.u) and np.array_equal(v_out[:, t], spec.v)
