"""rf / rf_iz populations (Lava's RF, RF_IZ): hand-computed steps of the numpy specification, the sim
kernel against it (hypothesis, clip and int32 extremes included), the IR's validation, the chip NIR
round trip, the bit budget and the energy model. Lava itself is the oracle in
tests/backends/test_resonator_lava.py."""
from __future__ import annotations

import nir
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc.backends.sim import kernels_rf
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection
from snnc.ir.chip_nir import chip_from_nir, chip_to_nir
from snnc.ir.errors import GraphError, ParameterError
from snnc.ir.fixed_point import ResonatorState, resonator_step

V_MAX = 2**23 - 1


def _step(state, a_re, a_im, **kw):
    return int(resonator_step(state, np.array([[a_re]]), np.array([[a_im]]), **kw)[0, 0])


def test_rf_hand_values():
    """A quarter turn per step without decay (sin_decay = 2048 of 2**11, i.e. 1; cos_decay = 0): z is
    multiplied by i each step. vth = 1, state_exp = 2: the input is shifted by 2, vth_e = 4."""
    kw = dict(kind="rf", sin_decay=2048, cos_decay=0, decay_bits=11, state_exp=2, vth=1)
    st_ = ResonatorState.zeros(1, 1)
    rows = []
    # step 1: input real 3 -> z = 12 + 0i; step 2: z = i*12 = 0 + 12i; step 3: -12 + 0i; step 4: 0 - 12i;
    # step 5: 12 + 0i with input imag 0: im goes -12 -> 0 (crosses from below) but re = 12 >= 4: spike
    for a in (3, 0, 0, 0, 0):
        s = _step(st_, a, 0, **kw)
        rows.append((s, int(st_.real[0, 0]), int(st_.imag[0, 0])))
    assert rows == [(0, 12, 0), (0, 0, 12), (0, -12, 0), (0, 0, -12), (1, 12, 0)]


def test_scale_truncates_toward_zero_and_state_clips():
    """sin = 0, cos = 3 of 2**2: re' = sign(3 re) (|3 re| >> 2): -5 -> -3 (floor would give -4); a huge
    input is shifted by state_exp inside int32 (2**30 << 1 wraps to -2**31) and clipped to -(2**23 - 1)."""
    kw = dict(kind="rf", sin_decay=0, cos_decay=3, decay_bits=2, state_exp=0, vth=1000)
    st_ = ResonatorState.zeros(1, 1)
    _step(st_, -5, 5, **kw)
    _step(st_, 0, 0, **kw)
    assert (int(st_.real[0, 0]), int(st_.imag[0, 0])) == (-3, 3)
    st_ = ResonatorState.zeros(1, 1)
    _step(st_, 2**30, 2**22, **{**kw, "state_exp": 1})
    assert (int(st_.real[0, 0]), int(st_.imag[0, 0])) == (-V_MAX, V_MAX)


def test_rf_iz_resets_to_threshold_minus_one():
    """rf_iz spikes on im >= vth_e, then re = 0 and im = vth_e - 1 (Lava's Izhikevich reset)."""
    kw = dict(kind="rf_iz", sin_decay=0, cos_decay=4095, decay_bits=12, state_exp=6, vth=2)  # vth_e = 128
    st_ = ResonatorState.zeros(1, 1)
    assert _step(st_, 1, 1, **kw) == 0 and (int(st_.real[0, 0]), int(st_.imag[0, 0])) == (64, 64)
    # 64 * 4095 >> 12 = 63, plus (1, 2) << 6: (127, 191); 191 >= 128 fires and resets
    assert _step(st_, 1, 2, **kw) == 1 and (int(st_.real[0, 0]), int(st_.imag[0, 0])) == (0, 127)
    # no input: 127 * 4095 >> 12 = 126, below the threshold
    assert _step(st_, 0, 0, **kw) == 0 and (int(st_.real[0, 0]), int(st_.imag[0, 0])) == (0, 126)


INT32 = st.integers(-(2**31), 2**31 - 1)


@settings(max_examples=40, deadline=None)
@given(st.data(), st.integers(1, 2), st.integers(1, 10), st.integers(1, 4), st.sampled_from(["rf", "rf_iz"]),
       st.integers(1, 12), st.integers(0, 7), st.sampled_from([0, 1, 50, 2**17 - 1]), st.booleans())
def test_kernel_equals_numpy_step(data, batch, steps, n, kind, decay_bits, state_exp, vth, per_neuron):
    decay = st.integers(0, 4095)
    sin = np.array(data.draw(st.lists(decay, min_size=n, max_size=n))) if per_neuron else data.draw(decay)
    cos = np.array(data.draw(st.lists(decay, min_size=n, max_size=n))) if per_neuron else data.draw(decay)
    values = st.one_of(INT32, st.integers(-3000, 3000), st.sampled_from([0, 1, -1, V_MAX, -V_MAX, 2**31 - 1, -(2**31)]))
    acc = np.array(data.draw(st.lists(values, min_size=batch * steps * 2 * n, max_size=batch * steps * 2 * n)),
                   np.int64).reshape(batch, steps, 2 * n).astype(np.int32)
    pop = Population("r", (n,), model=kind, vth=vth, sin_decay=sin, cos_decay=cos, decay_bits=decay_bits, state_exp=state_exp)
    args = kernels_rf.population_params(pop)
    state = kernels_rf.initial_state(batch, n)
    spec = ResonatorState.zeros(batch, n)
    z = lambda *s: np.zeros(s, np.int64)  # noqa: E731
    for t in range(steps):  # one step per call: the persistent state must carry over
        s_out = np.zeros((batch, 1, n), np.float32)
        u_out, v_out = np.zeros((batch, 1, n), np.int32), np.zeros((batch, 1, n), np.int32)
        kernels_rf.scan_rf(np.ascontiguousarray(acc[:, t : t + 1]), 1, state, **args, s_out=s_out, u_out=u_out, v_out=v_out, write_u=True,
                           write_v=True, fanout=z(0, n), spikes_t=z(batch, 1, 1), counts=z(batch, n), active=z(batch, 1),
                           ops_t=z(batch, 0, 1))
        s = resonator_step(spec, acc[:, t, :n], acc[:, t, n:], kind=kind, sin_decay=sin, cos_decay=cos,
                           decay_bits=decay_bits, state_exp=state_exp, vth=vth)
        assert np.array_equal(s_out[:, 0], s), f"spikes at step {t}"
        assert np.array_equal(state[0], spec.real) and np.array_equal(state[1], spec.imag), f"state at step {t}"
        assert np.array_equal(u_out[:, 0], spec.real) and np.array_equal(v_out[:, 0], spec.imag)


def _graph() -> ChipGraph:
    g = ChipGraph()
    g.add(InputPopulation("x", (3,)))
    g.add(Population("r", (2,), model="rf_iz", vth=7, sin_decay=[100, 900], cos_decay=3000, decay_bits=12, state_exp=6))
    g.add(Projection("re", "x", "r", np.ones((2, 3), int), port="a_real_in"))
    g.add(Projection("im", "x", "r", 2 * np.ones((2, 3), int), port="a_imag_in"))
    g.outputs["r"] = OutputPort("r")
    return g.validate()


def test_nir_round_trip_keeps_every_resonator_field(tmp_path):
    g = _graph()
    nir.write(tmp_path / "g.nir", chip_to_nir(g))
    back = chip_from_nir(nir.read(tmp_path / "g.nir"))
    r = back.populations["r"]
    assert (r.model, r.vth, list(r.sin_decay), r.cos_decay, r.decay_bits, r.state_exp) == ("rf_iz", 7, [100, 900], 3000, 12, 6)
    assert [back.projections[n].port for n in ("re", "im")] == ["a_real_in", "a_imag_in"]


@pytest.mark.parametrize("kw, match", [
    (dict(model="rf", sin_decay=4096), "sin_decay out of its 12-bit range"),
    (dict(model="rf", cos_decay=-1), "cos_decay out of its 12-bit range"),
    (dict(model="rf_iz", decay_bits=0), "decay_bits out of its 4-bit range"),
    (dict(model="rf", vth=np.array([1, 2])), "vth is one value per layer"),
    (dict(model="rf", du=5), "du does not apply to a rf population"),
    (dict(model="rf", bias_mant=1), "bias_mant does not apply"),
    (dict(model="lif", sin_decay=3), "sin_decay applies to rf/rf_iz populations only"),
    (dict(model="lif", state_exp=3), "state_exp apply to sigma-delta"),
    (dict(model="rf", state_exp=8), "state_exp out of its 3-bit range"),
    (dict(model="rf", reset_mode="none"), "no reset mode"),
])
def test_invalid_fields_are_named(kw, match):
    with pytest.raises(ParameterError, match=match):
        Population("p", (2,), **kw)


def test_ports_are_checked():
    g = _graph()
    g.projections["re"].port = "a_in"
    with pytest.raises(GraphError, match="port its rf_iz population does not have.*a_real_in"):
        g.validate()


def test_budget_and_energy_count_two_states_and_both_inputs():
    """Two 24-bit states per neuron, the resonator's parameters, per-port input headroom with the
    state_exp shift; the energy model prices an update at its stated factor."""
    from snnc.backends.sim import SimBackend
    from snnc.compiler.analysis.budget import bit_budget
    from snnc.compiler.analysis.energy import UPDATE_COST_FACTOR, estimate_energy
    from snnc.compiler.mapping import map_to_cores

    g = _graph()
    layer = {layer.name: layer for layer in bit_budget(g, warn=False).layers}["r"]
    assert layer.state_bits == 2 * 2 * 24
    assert layer.per_neuron_params == ["sin_decay"]
    assert layer.param_bits == 17 + 2 * 12 + 12 + 4 + 3  # vth, per-neuron sin_decay, cos_decay, decay_bits, state_exp
    assert layer.max_input == 6 << 6  # the ports are separate states: a_imag_in's 3 x 2, not 3 + 6; << state_exp
    run = SimBackend().build(g).run(np.ones((1, 5, 3)))
    report = estimate_energy(run.activity, map_to_cores(g, "loihi2", traffic=run.activity))
    act, table = run.activity.populations["r"], report.table
    factor = UPDATE_COST_FACTOR["rf_iz"]
    assert report.layers["r"].energy["neuron_active"] == pytest.approx(act.active_updates * table.e_neuron_active * factor)
    assert any("layer 'r'" in a and "CUBA updates" in a for a in report.assumptions)
    assert run.activity.projections["re"].synaptic_ops == run.activity.projections["im"].synaptic_ops == 2 * 3 * 5


def test_kernel_runs_its_declared_signatures_and_warmup_compiles_it():
    """Whatever the input dtype, scan_rf is called only with the types it declares, which `warmup`
    compiles at install (so a fresh process loads it instead of compiling)."""
    from snnc.backends.sim import SimBackend, warmup

    g, x = _graph(), np.random.default_rng(0).integers(0, 2, (1, 6, 3))
    program = SimBackend().build(g)
    for dtype in ("bool", "int16", "int64", "float64"):
        program.run(x.astype(dtype), probes=["r/u", "r/v"])
    assert kernels_rf.scan_rf.signatures and set(kernels_rf.scan_rf.signatures) <= set(kernels_rf.SIGNATURES["scan_rf"])
    assert kernels_rf in warmup.kernel_modules()
