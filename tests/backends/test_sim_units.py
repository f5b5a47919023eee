"""The sim backend on hand-computed cases (docs/loihi-fixed-point.md), errors and API behaviour.

Time convention: input index t is sent at Lava step t+1; record index t is the state after Lava
step t+1. So a spike at input index t reaches `u` at index t+1 (+ delay).
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chip_strategies as cs
from snnc.backends.base import get_backend
from snnc.backends.sim import SimBackend
from snnc.backends.sim.plan import conv_matrix
from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, OutputPort, Population, Projection
from snnc.ir.errors import BackendError, ShapeError, SnncError

H = 2**23


def single(weights, *, n_in=None, steps=6, spikes=None, probes=("n/u", "n/v", "n/s"), inp_bits=0, **kw):
    """One input population -> dense projection -> population 'n'; returns the probes [T, n]."""
    weights = np.atleast_2d(np.asarray(weights))
    proj_kw = {k: kw.pop(k) for k in ("weight_exp", "num_weight_bits", "num_message_bits", "delay") if k in kw}
    g = ChipGraph()
    g.add(InputPopulation("x", (weights.shape[1],), num_message_bits=inp_bits))
    g.add(Population("n", (weights.shape[0],), **kw))
    g.add(Projection("w", "x", "n", weights, **proj_kw))
    x = np.zeros((steps, weights.shape[1]), np.int64) if spikes is None else np.asarray(spikes)
    res = SimBackend().build(g).run(x, probes=probes)
    return {k.split("/")[1]: v[0] for k, v in res.probes.items()}


# -- current u ---------------------------------------------------------------------------------------
def test_u_wraps_once_by_2_pow_24():
    # 5 spikes x (255 << 7) = 163200; << 6 = 10444800 > 2**23, so u = 10444800 - 2**24.
    x = np.zeros((3, 5), np.int64)
    x[0] = 1
    r = single([[255] * 5], spikes=x, du=4095, dv=0, vth=0, weight_exp=7)
    assert r["u"][:, 0].tolist() == [0, 10444800 - 2**24, 0]
    assert r["v"][1, 0] == 10444800 - 2**24  # negative: no spike
    assert r["s"][:, 0].tolist() == [0, 0, 0]


def test_u_boundary_plus_2_pow_23_stays_minus_wraps():
    # a = 8 x (128 << 7) = 2**17, a << 6 = 2**23: kept; -2**23 wraps to +2**23 (Lava: x <= -2**23).
    x = np.zeros((2, 8), np.int64)
    x[0] = 1
    up = single([[128] * 8], spikes=x, du=4095, dv=0, vth=0, weight_exp=7)
    down = single([[-128] * 8], spikes=x, du=4095, dv=0, vth=0, weight_exp=7)
    assert up["u"][1, 0] == H
    assert down["u"][1, 0] == H


def test_du_zero_still_decays_and_truncates_toward_zero():
    x = np.zeros((4, 1), np.int64)
    x[0] = 1
    pos = single([[100]], spikes=x, du=0, dv=0, vth=10**5)
    neg = single([[-100]], spikes=x, du=0, dv=0, vth=10**5)
    # 6400 * 4095 / 4096 = 6398.4 -> 6398; 6398 * 4095 / 4096 = 6396.4 -> 6396
    assert pos["u"][:, 0].tolist() == [0, 6400, 6398, 6396]
    assert neg["u"][:, 0].tolist() == [0, -6400, -6398, -6396]  # toward zero, not floor (-6399)


def test_du_4095_clears_current_every_step():
    x = np.array([[1], [1], [0], [1]])
    r = single([[7]], spikes=x, du=4095, dv=0, vth=10**5)
    assert r["u"][:, 0].tolist() == [0, 448, 448, 0]


# -- voltage v ---------------------------------------------------------------------------------------
def test_v_saturates_at_minus_2_pow_23_plus_1():
    # u = -(250 << 7) << 6 = -2048000 every step; dv=0 keeps v: -2048000 ... clipped at -(2**23 - 1).
    x = np.ones((7, 1), np.int64)
    r = single([[-250]], spikes=x, du=4095, dv=0, vth=0, weight_exp=7)
    assert r["v"][:, 0].tolist() == [0, -2048000, -4096000, -6144000, -8192000, -(H - 1), -(H - 1)]


def test_v_decay_and_bias_and_strict_threshold():
    # bias = 8 << 3 = 64 = vth << 6 with vth=1: v == 64 does not spike, 128 does.
    r = single([[0]], steps=5, du=0, dv=0, vth=1, bias_mant=8, bias_exp=3)
    assert r["v"][:, 0].tolist() == [64, 0, 64, 0, 64]
    assert r["s"][:, 0].tolist() == [0, 1, 0, 1, 0]
    # dv = 2048 halves v (toward zero): bias -100 each step: -100, -150, -175, -187 (-187.5 -> -187)
    r = single([[0]], steps=4, du=0, dv=2048, vth=0, bias_mant=-100)
    assert r["v"][:, 0].tolist() == [-100, -150, -175, -187]


def test_only_v_is_reset():
    x = np.array([[1], [0], [0]])
    r = single([[10]], spikes=x, du=2047, dv=0, vth=1)  # factor 4096 - (2047 + 1): halves u
    assert r["u"][:, 0].tolist() == [0, 640, 320]
    assert r["s"][:, 0].tolist() == [0, 1, 1]
    assert r["v"][:, 0].tolist() == [0, 0, 0]


# -- weights -------------------------------------------------------------------------------------------
def test_mixed_weights_lose_their_lowest_bit():
    # Mixed sign mode at 8 bits: 3 -> 2 and -3 -> -4 (arithmetic shift), as docs/loihi-fixed-point.md.
    x = np.array([[1, 0], [0, 1], [0, 0]])
    r = single([[3, -3]], spikes=x, du=4095, dv=0, vth=10**5)
    assert r["u"][:, 0].tolist() == [0, 2 * 64, -4 * 64]


@pytest.mark.parametrize(
    "w, bits, want",
    [
        ([[13, -13]], 6, [8, -16]),  # mixed: drop 8 - 6 + 1 = 3 bits
        ([[200, 100]], 1, [128, 0]),  # excitatory 1 bit: drop 7 bits
        ([[-256, -3]], 8, [-255, -3]),  # inhibitory: clip to -255, no truncation at 8 bits
        ([[-200, -3]], 7, [-200, -2]),  # inhibitory: negate, drop 1 bit, negate back
    ],
)
def test_weight_clip_and_truncation(w, bits, want):
    x = np.array([[1, 0], [0, 1], [0, 0]])
    r = single(w, spikes=x, du=4095, dv=0, vth=10**5, num_weight_bits=bits)
    assert r["u"][1:, 0].tolist() == [want[0] * 64, want[1] * 64]


def test_weight_exp_shifts_the_sum_with_floor():
    # two inputs of 7 in the same step: (7 + 7) >> 1 = 7, not 3 + 3; -2 >> 2 = -1 (floor).
    x = np.array([[1, 1], [0, 0]])
    r = single([[7, 7]], spikes=x, du=4095, dv=0, vth=10**5, weight_exp=-1)
    assert r["u"][1, 0] == 7 * 64
    x = np.array([[1, 0], [0, 0]])
    r = single([[-2, 4]], spikes=x, du=4095, dv=0, vth=10**5, weight_exp=-2)
    assert r["u"][1, 0] == -1 * 64
    r = single([[3]], spikes=np.array([[1], [0]]), du=4095, dv=0, vth=10**5, weight_exp=3)
    assert r["u"][1, 0] == 24 * 64


def test_graded_messages_multiply():
    x = np.array([[5, -2], [0, 0]])
    r = single([[3, 10]], spikes=x, inp_bits=4, num_message_bits=4, du=4095, dv=0, vth=10**5)
    assert r["u"][1, 0] == (15 - 20) * 64


# -- time -------------------------------------------------------------------------------------------------
def test_delay_adds_steps():
    x = np.zeros((6, 1), np.int64)
    x[0] = 1
    r = single([[1]], spikes=x, du=4095, dv=0, vth=10**5, delay=3)
    assert np.nonzero(r["u"][:, 0])[0].tolist() == [4]


def test_per_synapse_delays_shift_each_delay_slot_separately():
    # DelayDense shifts each delay slot's sum: two 1s arriving together through different delays
    # give (1 >> 1) + (1 >> 1) = 0, not (1 + 1) >> 1 = 1.
    x = np.array([[1, 0], [0, 1], [0, 0], [0, 0]])
    delays = np.array([[1, 0]])
    r = single([[1, 1]], spikes=x, du=4095, dv=0, vth=10**5, weight_exp=-1, delay=delays)
    assert r["u"][:, 0].tolist() == [0, 0, 0, 0]
    r = single([[1, 1]], spikes=np.array([[1, 1], [0, 0], [0, 0]]), du=4095, dv=0, vth=10**5, weight_exp=-1)
    assert r["u"][:, 0].tolist() == [0, 64, 0]


def test_lif_reset_zeroes_state_at_its_phase():
    # reset when Lava step % 3 == 1: steps 1, 4, 7 -> indices 0, 3, 6 (before integrating).
    g = ChipGraph()
    g.add(Population("n", (1,), du=0, dv=0, vth=10**5, bias_mant=10, model="lif_reset", reset_interval=3, reset_offset=1))
    res = SimBackend().build(g).run({}, steps=7, probes=("n/v",))
    assert res.probes["n/v"][0, :, 0].tolist() == [10, 20, 30, 10, 20, 30, 10]


def test_ternary_spikes_both_ways_and_feeds_binary_and_graded():
    g = ChipGraph()
    g.add(Population("t", (1,), du=0, dv=0, bias_mant=-50, model="ternary", vth_hi=1, vth_lo=-1))
    g.add(Population("b", (2,), du=4095, dv=0, vth=10**5))
    g.add(Projection("bin", "t", "b", np.array([[5], [0]])))
    g.add(Projection("grd", "t", "b", np.array([[0], [5]]), num_message_bits=2))
    res = SimBackend().build(g).run({}, steps=5, probes=("t/s", "t/v", "b/u"))
    assert res.probes["t/v"][0, :, 0].tolist() == [-50, 0, -50, 0, -50]  # -100 < -64: spike -1
    assert res.probes["t/s"][0, :, 0].tolist() == [0, -1, 0, -1, 0]
    # binary: any nonzero message is a spike (+5); graded: the payload -1 multiplies (-5)
    assert res.probes["b/u"][0, :, 0].tolist() == [0, 0, 5 * 64, 0, 5 * 64]
    assert res.probes["b/u"][0, :, 1].tolist() == [0, 0, -5 * 64, 0, -5 * 64]


def test_several_projections_into_one_population_are_summed():
    g = ChipGraph()
    g.add(InputPopulation("a", (1,)))
    g.add(InputPopulation("b", (1,)))
    g.add(Population("n", (1,), du=4095, dv=0, vth=10**5))
    g.add(Projection("pa", "a", "n", np.array([[10]])))
    g.add(Projection("pb", "b", "n", np.array([[-3]]), weight_exp=2))
    res = SimBackend().build(g).run({"a": np.array([[1], [0]]), "b": np.array([[1], [0]])}, probes=("n/u",))
    assert res.probes["n/u"][0, 1, 0] == (10 - 12) * 64


def test_conv_is_cross_correlation_and_wraps_at_24_bits():
    geom = ConvGeometry((1, 3, 3), (1, 2, 2), (2, 2))
    g = ChipGraph()
    g.add(InputPopulation("x", (1, 3, 3)))
    g.add(Population("n", (1, 2, 2), du=4095, dv=0, vth=10**5))
    g.add(Projection("c", "x", "n", np.array([[[[1, 2], [3, 4]]]]), kind="conv", conv=geom))
    x = np.zeros((2, 1, 3, 3), np.int64)
    x[0, 0, 1, 1] = 1  # centre pixel: reaches every output through a different tap
    u = SimBackend().build(g).run(x, probes=("n/u",)).probes["n/u"][0, 1, 0]
    assert (u // 64).tolist() == [[4, 3], [2, 1]]
    # 24-bit wrap of the conv output, then the LIF's single wrap of the too-large current:
    g = ChipGraph()
    g.add(InputPopulation("x", (1, 1, 1), num_message_bits=24))
    g.add(Population("n", (1, 1, 1), du=4095, dv=0, vth=100))
    one = ConvGeometry((1, 1, 1), (1, 1, 1), (1, 1))
    g.add(Projection("c", "x", "n", np.array([[[[255]]]]), kind="conv", num_message_bits=24, conv=one))
    x = np.zeros((2, 1, 1, 1), np.int64)
    x[0] = 40000  # 255 * 40000 = 10200000 -> 10200000 - 2**24 = -6577216
    res = SimBackend().build(g).run(x, probes=("n/u", "n/v"))
    assert res.probes["n/u"][0, 1].item() == -6577216 * 64 + 2**24
    assert res.probes["n/v"][0, 1].item() == -(H - 1)


def test_graded_dense_wraps_in_int32_before_the_shift():
    # Lava's Dense computes a graded dot product in int32: 1016 * (2**24 - 1) wraps to -134218744,
    # >> 3 (floor) = -16777343; << 6 = -1073749952; <= -2**23 so + 2**24 once.
    m = 2**24 - 1
    x = np.array([[m, m, m, -m], [0, 0, 0, 0]])
    r = single([[254, 254, 254, -254]], spikes=x, inp_bits=24, num_message_bits=24, weight_exp=-3, du=4095, dv=4095, vth=100)
    assert r["u"][1, 0] == -1073749952 + 2**24


def test_recurrent_self_projection():
    # Bias 1 makes the neuron spike; its own spike (weight -4) arrives one step later and
    # silences it; dv=4095 forgets v (-255 * 1 >> 12 = 0) so it spikes every second step.
    g = ChipGraph()
    g.add(Population("n", (1,), du=4095, dv=4095, vth=0, bias_mant=1))
    g.add(Projection("self", "n", "n", np.array([[-4]])))
    res = SimBackend().build(g).run({}, steps=4, probes=("n/u", "n/v", "n/s"))
    assert res.probes["n/s"][0, :, 0].tolist() == [1, 0, 1, 0]
    assert res.probes["n/u"][0, :, 0].tolist() == [0, -256, 0, -256]
    assert res.probes["n/v"][0, :, 0].tolist() == [0, -255, 0, -255]


# -- activity -------------------------------------------------------------------------------------------
def test_activity_counters_match_hand_counts():
    g = ChipGraph()
    g.add(InputPopulation("x", (3,)))
    g.add(Population("a", (2,), du=4095, dv=4095, vth=0))
    g.add(Population("b", (1,), du=4095, dv=4095, vth=10**5))
    g.add(Projection("xa", "x", "a", np.array([[1, 0, 2], [0, 0, 3]])))
    g.add(Projection("ab", "a", "b", np.array([[5, 0]])))
    g.outputs["out"] = OutputPort("a", "s")
    x = np.array([[1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 0, 0]])
    batch = np.stack([x, np.zeros_like(x)])  # the silent second sample adds updates, nothing else
    res = SimBackend().build(g).run(batch)
    a = res.activity.populations["a"]
    # a's input: index1 W@x0 = [1, 0]; index2 W@x1 = [2, 3]; index3 W@x2 = [3, 3]; u = 64 a = v
    assert res.outputs["out"][0].tolist() == [[0, 0], [1, 0], [1, 1], [1, 1]]
    assert a.neurons == 2 and a.neuron_updates == 2 * 4 * 2
    assert a.spikes == 5 and a.spikes_per_step.tolist() == [0, 1, 2, 2] and a.spike_counts.tolist() == [3, 2]
    assert a.active_updates == 1 + 2 + 2
    xa = res.activity.projections["xa"]
    # per step: cols {0,1} -> 1 + 0 synapses; {2} -> 2; {0,2} -> 3; {} -> 0
    assert xa.synaptic_ops_per_step.tolist() == [1, 2, 3, 0] and xa.synaptic_ops == 6 and xa.messages_in == 5
    ab = res.activity.projections["ab"]
    # a spikes: index1 {0}, index2 {0,1}, index3 {0,1}; only a0 has a synapse
    assert ab.synaptic_ops_per_step.tolist() == [0, 1, 1, 1] and ab.messages_in == 5
    b = res.activity.populations["b"]
    assert b.spikes == 0 and b.active_updates == 2  # u = v = 320 at indices 2 and 3 (index 4 is past T)
    assert res.activity.total_synaptic_ops == 9 and res.activity.total_spikes == 5


def test_conv_synaptic_ops_count_only_taps_that_hit_the_target():
    geom = ConvGeometry((1, 3, 3), (1, 2, 2), (2, 2))
    g = ChipGraph()
    g.add(InputPopulation("x", (1, 3, 3)))
    g.add(Population("n", (1, 2, 2), du=4095, dv=0, vth=10**5))
    g.add(Projection("c", "x", "n", np.array([[[[1, 0], [3, 4]]]]), kind="conv", conv=geom))
    x = np.zeros((2, 1, 3, 3), np.int64)
    x[0, 0, 0, 0] = 1  # corner: only tap (0,0) of output (0,0) -> 1 synapse
    x[1, 0, 1, 1] = 1  # centre: 4 taps, one of them has weight 0 -> 3 synapses
    res = SimBackend().build(g).run(x)
    assert res.activity.projections["c"].synaptic_ops_per_step.tolist() == [1, 3]


# -- API and errors -------------------------------------------------------------------------------------
def test_registry_finds_the_sim_backend():
    backend = get_backend("sim")
    assert isinstance(backend, SimBackend) and backend.name == "sim" and backend.level == "chip"


def test_problems_and_build_errors():
    backend = SimBackend()
    assert backend.problems(object()) and "ChipGraph" in backend.problems(object())[0]
    g = ChipGraph()
    g.add(InputPopulation("x", (2,)))
    g.add(Population("n", (1,)))
    g.add(Projection("w", "x", "n", np.ones((1, 3), int)))
    assert backend.problems(g)
    with pytest.raises(BackendError, match="cannot run"):
        backend.build(g)
    g.projections["w"] = Projection("w", "x", "n", np.ones((1, 2), int))
    assert backend.problems(g) == []
    with pytest.raises(BackendError, match="unknown build option"):
        backend.build(g, chunks=3)


def _tiny():
    g = ChipGraph()
    g.add(InputPopulation("x", (2,)))
    g.add(InputPopulation("y", (2,), num_message_bits=3))
    g.add(Population("n", (1,)))
    g.add(Projection("w", "x", "n", np.ones((1, 2), int)))
    g.add(Projection("v", "y", "n", np.ones((1, 2), int), num_message_bits=3))
    return SimBackend().build(g)


@pytest.mark.parametrize(
    "x, y, match",
    [
        (np.array([[0, 2]]), np.zeros((1, 2)), "binary spikes"),
        (np.array([[0, 0.5]]), np.zeros((1, 2)), "binary spikes"),
        (np.zeros((1, 2)), np.array([[8, 0]]), r"\|value\| <= 7"),
        (np.zeros((1, 2)), np.array([[1.5, 0]]), r"\|value\| <= 7"),
    ],
)
def test_bad_input_values_are_named(x, y, match):
    with pytest.raises(ShapeError, match=match) as err:
        _tiny().run({"x": x, "y": y})
    assert "input" in str(err.value) and "index" in str(err.value)


def test_bad_input_shape_and_probe():
    program = _tiny()
    with pytest.raises(ShapeError):
        program.run({"x": np.zeros((3, 5)), "y": np.zeros((3, 2))})
    with pytest.raises(BackendError, match="unknown probe"):
        program.run({"x": np.zeros((3, 2)), "y": np.zeros((3, 2))}, probes=("n/w",))
    with pytest.raises(SnncError):
        program.run({"x": np.zeros((3, 2))})


def test_probes_outputs_shapes_and_dtypes():
    g = ChipGraph()
    g.add(InputPopulation("x", (2, 3, 3)))
    g.add(Population("n", (1, 2, 2), vth=0))
    g.add(Projection("c", "x", "n", np.ones((1, 2, 2, 2), int), kind="conv", conv=ConvGeometry((2, 3, 3), (1, 2, 2), (2, 2))))
    g.outputs["v"] = OutputPort("n", "v")
    res = SimBackend().build(g).run(np.ones((4, 5, 2, 3, 3), np.uint8), probes=("n", "n/u", "x"))
    assert res.outputs["v"].shape == (4, 5, 1, 2, 2) and res.outputs["v"].dtype == np.int32
    assert res.probes["n"].shape == (4, 5, 1, 2, 2) and res.probes["n"].dtype == np.int8
    assert res.probes["x"].shape == (4, 5, 2, 3, 3) and res.probes["x"].sum() == 4 * 5 * 18
    assert res.backend == "sim" and res.activity.batch == 4 and res.activity.steps == 5


def test_exact_paths_for_large_graded_sums():
    # 300 graded inputs of ~300..430 with weights ~200..254: sums ~2.5e7 > 2**24 cannot go through
    # float32 and must still be exact. Hand computation: u = 64 a (< 2**31), wrapped once by 2**24.
    rng = np.random.default_rng(3)
    w = rng.integers(100, 128, size=(5, 300)) * 2
    x = np.zeros((2, 300), np.int64)
    x[0] = rng.integers(300, 431, size=300)
    r = single(w, spikes=x, inp_bits=9, num_message_bits=9, du=4095, dv=0, vth=10**5)
    exact = w.astype(np.int64) @ x[0]
    assert exact.min() > 2**24 and exact.max() * 64 < 2**31
    assert r["u"][1].tolist() == (exact * 64 - 2**24).tolist()
    # The same through the event-driven path (sparse activity): one active input.
    x = np.zeros((2, 300), np.int64)
    x[0, 7] = 511
    r = single(w, spikes=x, inp_bits=9, num_message_bits=9, du=4095, dv=0, vth=10**5)
    assert r["u"][1].tolist() == (w[:, 7] * 511 * 64).tolist()


def test_conv_matrix_matches_a_direct_loop():
    rng = np.random.default_rng(0)
    geom = ConvGeometry((4, 5, 6), (4, 3, 2), (2, 3), stride=(2, 2), padding=(1, 0), dilation=(1, 2), groups=2)
    w = rng.integers(-5, 5, size=(4, 2, 2, 3)) * 2
    proj = Projection("c", "x", "n", w, kind="conv", conv=geom)
    m = conv_matrix(proj).toarray()
    x = rng.integers(0, 2, size=(4, 5, 6))
    want = np.zeros((4, 3, 2), np.int64)
    for co in range(4):
        grp = co // 2
        for ci in range(2):
            for oy in range(3):
                for ox in range(2):
                    for ky in range(2):
                        for kx in range(3):
                            y, xx = oy * 2 - 1 + ky, ox * 2 + kx * 2
                            if 0 <= y < 5 and 0 <= xx < 6:
                                want[co, oy, ox] += w[co, ci, ky, kx] * x[grp * 2 + ci, y, xx]
    assert (m @ x.ravel()).tolist() == want.ravel().tolist()


def test_sparse_projection_matches_dense_one():
    rng = np.random.default_rng(1)
    w = np.where(rng.random((6, 40)) < 0.1, rng.integers(-100, 100, (6, 40)), 0)
    x = (rng.random((30, 40)) < 0.3).astype(np.int64)
    dense = single(w, spikes=x, du=100, dv=50, vth=20)
    g = ChipGraph()
    g.add(InputPopulation("x", (40,)))
    g.add(Population("n", (6,), du=100, dv=50, vth=20))
    g.add(Projection("w", "x", "n", sp.csr_matrix(w), kind="sparse"))
    res = SimBackend().build(g).run(x, probes=("n/u", "n/s"))
    assert np.array_equal(res.probes["n/u"][0], dense["u"]) and np.array_equal(res.probes["n/s"][0], dense["s"])


# -- batching and chunking are invisible ------------------------------------------------------------------
@settings(max_examples=25, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    case=cs.chip_cases(kinds=cs.ALL_KINDS, models=cs.ALL_MODELS, recurrent=True, delays=True, graded=True, per_neuron=True),
    chunk=st.integers(1, 9),
    seed=st.integers(0, 2**16),
)
def test_batch_chunks_and_synapse_paths_do_not_change_results(case, chunk, seed):
    rng = np.random.default_rng(seed)
    samples = [case.inputs, {k: rng.permutation(v) for k, v in case.inputs.items()}, {k: np.zeros_like(v) for k, v in case.inputs.items()}]
    batch = {k: np.stack([s[k] for s in samples]) for k in case.inputs}
    probes = [f"{p}/{v}" for p in case.graph.populations for v in "suv"]
    whole = SimBackend().build(case.graph).run(batch, probes=probes)
    chunked = SimBackend().build(case.graph, chunk=chunk, synapses="events").run(batch, probes=probes)
    dense = SimBackend().build(case.graph, synapses="dense").run(batch, probes=probes)
    for i, sample in enumerate(samples):
        alone = SimBackend().build(case.graph).run({k: v[None] for k, v in sample.items()}, probes=probes)
        for key in probes:
            assert np.array_equal(alone.probes[key][0], whole.probes[key][i]), key
            assert np.array_equal(chunked.probes[key][i], whole.probes[key][i]), key
            assert np.array_equal(dense.probes[key][i], whole.probes[key][i]), key
    for name, act in whole.activity.populations.items():
        assert act.spikes == int(sum(np.abs(whole.probes[f"{name}/s"][i]).astype(bool).sum() for i in range(3)))
        assert chunked.activity.populations[name].spikes_per_step.tolist() == act.spikes_per_step.tolist()
    for name, act in whole.activity.projections.items():
        assert chunked.activity.projections[name].synaptic_ops_per_step.tolist() == act.synaptic_ops_per_step.tolist()


def test_sign_split_halves_are_planned_as_one_link_and_one_recurrent_block():
    """The two halves of a split layer become one signed matrix (exact: int32 sums wrap the same in
    any order); halves with a negative weight_exp (floor shift per projection) stay apart."""
    from snnc.backends.sim.plan import Plan

    rng = np.random.default_rng(3)
    w = rng.integers(-50, 50, (4, 6)) * 2  # even: a mixed-sign 8-bit projection (below) keeps them exactly
    r = rng.integers(-50, 50, (4, 4)) * 2
    g = ChipGraph()
    g.add(InputPopulation("x", (6,)))
    g.add(Population("n", (4,), du=300, dv=200, vth=40))
    for name, src, m, exp in (("w", "x", w, 0), ("r", "n", r, 1), ("s", "x", w, -1)):
        g.add(Projection(f"{name}.exc", src, "n", np.maximum(m, 0), weight_exp=exp))
        g.add(Projection(f"{name}.inh", src, "n", np.minimum(m, 0), weight_exp=exp))
    plan = Plan(g)
    (comp,) = plan.components
    assert sorted(link.proj for link in comp.links) == ["s.exc", "s.inh", "w.exc+w.inh"]
    merged = next(link for link in comp.links if link.proj == "w.exc+w.inh")
    assert np.array_equal(merged.dense, w)
    assert comp.groups["src_lo"].size == 1  # r.exc and r.inh: one recurrent block
    x = (rng.random((25, 6)) < 0.5).astype(np.int64)
    probes = ("n/u", "n/v", "n/s")
    got = SimBackend().build(g).run(x, probes=probes)
    # the same network with each layer as one mixed-sign projection of the effective weights
    h = ChipGraph()
    h.add(InputPopulation("x", (6,)))
    h.add(Population("n", (4,), du=300, dv=200, vth=40))
    for name, src, exp in (("w", "x", 0), ("r", "n", 1)):
        eff = g.projections[f"{name}.exc"].effective_weights() + g.projections[f"{name}.inh"].effective_weights()
        h.add(Projection(name, src, "n", eff, weight_exp=exp, num_weight_bits=8))
    for part in ("exc", "inh"):
        h.add(Projection(f"s.{part}", "x", "n", g.projections[f"s.{part}"].weights, weight_exp=-1))
    want = SimBackend().build(h).run(x, probes=probes)
    for key in probes:
        assert np.array_equal(got.probes[key], want.probes[key]), key


def test_exponent_split_parts_are_planned_as_one_link_scaled_by_their_shifts():
    """Parts of one layer with their own exponents (the quantizer's exponent_groups) become one
    matrix sent with the smallest shift, each part's weights scaled by its shift over it; a part with
    a negative weight_exp stays apart. (That this equals Lava's separate processes bit for bit is
    test_sim_lava's sign-split suite, whose pairs draw their own exponents.)"""
    from snnc.backends.sim.plan import Plan

    rng = np.random.default_rng(5)
    hi, lo, neg = (rng.integers(-120, 120, (3, 5)) for _ in range(3))
    r_hi, r_lo = (rng.integers(-120, 120, (3, 3)) for _ in range(2))
    g = ChipGraph()
    g.add(InputPopulation("x", (5,), num_message_bits=4))
    g.add(Population("n", (3,), du=300, dv=200, vth=4000))
    g.add(Projection("w.hi", "x", "n", hi, weight_exp=3, num_message_bits=4))
    g.add(Projection("w.lo", "x", "n", lo, weight_exp=1, num_message_bits=4))
    g.add(Projection("w.neg", "x", "n", neg, weight_exp=-2, num_message_bits=4))
    g.add(Projection("r.hi", "n", "n", r_hi, weight_exp=2))
    g.add(Projection("r.lo", "n", "n", r_lo, weight_exp=0))
    (comp,) = Plan(g).components
    links = {link.proj: link for link in comp.links}
    assert sorted(links) == ["w.hi+w.lo", "w.neg"]
    eff = {name: g.projections[name].effective_weights() for name in g.projections}
    merged = links["w.hi+w.lo"]
    assert merged.shift == 1 and np.array_equal(merged.dense, (eff["w.hi"] << 2) + eff["w.lo"])
    assert links["w.neg"].shift == -2
    gr = comp.groups
    assert gr["src_lo"].size == 1 and gr["shift"].tolist() == [0]  # r.hi and r.lo: one block, sent unshifted
    block = np.zeros((3, 3), np.int64)
    for col in range(3):
        for k in range(gr["colptr"][col], gr["colptr"][col + 1]):
            block[gr["rows"][k], col] = gr["wvals"][k]
    assert np.array_equal(block, (eff["r.hi"] << 2) + eff["r.lo"])


def test_input_bound_sums_each_blocks_row_l1_times_its_sources_peak_shifted():
    """Plan.input_bound (the guard's quick wrap bound) by hand on the graph above's shape: a merged
    pair, a part with a negative exponent (a right shift floors: + 1) and a recurrent block; and, on
    a run, it is never below the largest |a| the sim recorded."""
    from snnc.backends.sim.plan import Plan

    g = ChipGraph()
    g.add(InputPopulation("x", (2,), num_message_bits=4))
    g.add(Population("n", (2,), du=300, dv=200, vth=4000))
    g.add(Population("m", (2,), du=300, dv=200, vth=100))
    g.add(Projection("w.hi", "x", "n", np.array([[3, 0], [1, 2]]), weight_exp=1, num_message_bits=4))
    g.add(Projection("w.lo", "x", "n", np.array([[0, -2], [0, 0]]), weight_exp=0, num_message_bits=4))
    g.add(Projection("w.neg", "x", "n", np.array([[5, 5], [1, 0]]), weight_exp=-2, num_message_bits=4))
    g.add(Projection("r", "n", "n", np.array([[0, 6], [-8, 0]]), weight_exp=2))  # mixed signs: even weights stay
    g.add(Projection("f", "n", "m", np.array([[4, -4], [1, 1]])))
    plan = Plan(g)
    # merged [[6, -2], [2, 4]]: row sums of |w| 8 and 6; w.neg: 10 x 15 >> 2 = 37, + 1; r: 8 << 2
    assert plan.input_bound("n", {"x": 15, "n": 1}) == 8 * 15 + 38 + (8 << 2)
    assert plan.input_bound("m", {"n": 1}) == 8
    assert plan.input_bound("n", {"x": 0, "n": 0}) == 1  # only the floor's one
    x = np.random.default_rng(2).integers(0, 16, (3, 20, 2))
    run = SimBackend().build(g).run({"x": x}, probes=["m/a", "n/s"])
    assert np.abs(run.probes["m/a"]).max() <= plan.input_bound("m", {"n": int(np.abs(run.probes["n/s"]).max())})


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_mixed_batches_split_per_sample_between_blas_and_events(kind, monkeypatch):
    """A batch with a busy, a sparse and a silent sample: 'auto' runs the busy one on BLAS/torch
    and the others on the event kernels, and every value equals both forced paths."""
    from snnc.backends.sim import kernels as K

    rng = np.random.default_rng(4)
    g = ChipGraph()
    if kind == "dense":
        g.add(InputPopulation("x", (300,), num_message_bits=3))
        g.add(Population("n", (40,), du=300, dv=200, vth=900))
        g.add(Projection("w", "x", "n", rng.integers(-128, 128, (40, 300)) * 2, num_message_bits=3))
        shape = (300,)
    else:
        g.add(InputPopulation("x", (4, 12, 12)))
        g.add(Population("n", (6, 12, 12), du=300, dv=200, vth=300))
        g.add(Projection("w", "x", "n", rng.integers(-100, 100, (6, 4, 3, 3)), kind="conv",
                         conv=ConvGeometry((4, 12, 12), (6, 12, 12), (3, 3), (1, 1), (1, 1))))
        shape = (4, 12, 12)
    rates = (0.9, 0.03, 0.0)
    x = np.stack([(rng.random((30, *shape)) < r) * (rng.integers(1, 8, (30, *shape)) if kind == "dense" else 1) for r in rates])
    subsets = []
    real = K.accumulate

    def spy(y, samples, *args):
        subsets.append(samples.tolist())
        return real(y, samples, *args)

    monkeypatch.setattr(K, "accumulate", spy)
    probes = ("n/u", "n/v", "n/s")
    auto = SimBackend().build(g).run(x, probes=probes)
    assert subsets and all(s == [0] for s in subsets)  # only the busy sample went to BLAS/torch
    for synapses in ("events", "dense"):
        other = SimBackend().build(g, synapses=synapses).run(x, probes=probes)
        for key in probes:
            assert np.array_equal(other.probes[key], auto.probes[key]), (synapses, key)
    assert auto.probes["n/u"][0].any() and auto.probes["n/u"][1].any()


def test_a_run_without_activity_gives_the_same_outputs_and_makes_no_fanout():
    """run(activity=False) (the fidelity guard's): outputs and probes as with the counters, no
    activity, and the fanout tables the counters need are never made; a later run with activity
    makes them and counts what a fresh program counts."""
    rng = np.random.default_rng(8)
    g = ChipGraph()
    g.add(InputPopulation("x", (6,)))
    g.add(Population("h", (5,), du=300, dv=200, vth=30))
    g.add(Population("o", (3,), du=100, dv=100, vth=20))
    g.add(Projection("xh", "x", "h", rng.integers(-60, 120, (5, 6))))
    g.add(Projection("hh", "h", "h", rng.integers(-40, 40, (5, 5))))
    g.add(Projection("ho", "h", "o", rng.integers(0, 120, (3, 5)), kind="sparse"))
    x = rng.random((2, 30, 6)) < 0.4
    program = SimBackend().build(g)
    quiet = program.run(x, probes=["h/v", "o/u"], activity=False)
    assert quiet.activity is None
    assert all("fanout" not in c.__dict__ for c in program.plan.components)  # functools.cached_property's place
    assert all("fanout" not in i.__dict__ for i in program.plan.inputs.values())
    counted = program.run(x, probes=["h/v", "o/u"])
    for name in counted.outputs:
        np.testing.assert_array_equal(quiet.outputs[name], counted.outputs[name])
    for name in counted.probes:
        np.testing.assert_array_equal(quiet.probes[name], counted.probes[name])
    fresh = SimBackend().build(g).run(x).activity
    assert fresh is not None and counted.activity is not None
    for name in g.projections:
        assert counted.activity.projections[name].synaptic_ops == fresh.projections[name].synaptic_ops > 0
