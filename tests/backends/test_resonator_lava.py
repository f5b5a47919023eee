"""Resonate-and-fire neurons against Lava 0.10.0 itself (`lava.proc.rf` RF, `lava.proc.rf_iz` RF_IZ, fixed_pt).

`test_spec_equals_lava_rf_processes`: many RF / RF_IZ processes built by Lava's own constructors
(period, alpha floats; Lava computes the integer decays, read back from its Vars), fed straight
from RingBuffers with random int32 inputs on both ports (small values, values that drive the state
into the +-(2**23 - 1) clip, values whose << state_exp leaves int32), every step's real, imag and
spikes against `snnc.ir.fixed_point.resonator_step`.
`test_backends_equal_lava_on_chip_graphs`: rf / rf_iz populations inside chip graphs (two
projections, one per port, per-neuron decays, decay_bits < 12): the sim backend and snnc's lava
backend against the spec fed with the same synaptic sums, every probe at every step.
"""
from __future__ import annotations

import numpy as np
import pytest

import lava_oracle  # noqa: F401,I001  (imports Lava before numba's threading layer starts)
from snnc.backends.base import get_backend
from snnc.backends.sim import SimBackend
from snnc.ir.bits import truncate_weights
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection
from snnc.ir.fixed_point import ResonatorState, resonator_step, wrap32
from snnc.ir.fixed_point.resonator import lava_decays, period_alpha

pytestmark = [pytest.mark.lava, pytest.mark.timeout(900)]
STEPS = 40
N = 6


def _cases(rng) -> list[dict]:
    """Lava constructor arguments: both kinds, shared and per-neuron periods, decay_bits and state_exp
    across their ranges, thresholds from 0 up to beyond the clip."""
    cases = []
    for k in range(12):
        kind = ("rf", "rf_iz")[k % 2]
        per_neuron = k % 3 == 0
        period = rng.uniform(4, 40, N) if per_neuron else float(rng.uniform(4, 40))
        alpha = rng.uniform(0.0, 0.3, N) if per_neuron else float(rng.uniform(0.0, 0.3))
        cases.append(dict(kind=kind, period=period, alpha=alpha, decay_bits=int((12, 12, 8, 3, 1, 12)[k % 6]),
                          state_exp=int((6, 0, 7, 3)[k % 4]), vth=int((1, 0, 300, 2**17 - 1, 50, 4096)[k % 6])))
    return cases


def _inputs(rng) -> tuple[np.ndarray, np.ndarray]:
    """[T, N] int32 per port: mostly small, some near the clip, some whose shift wraps int32."""
    def one():
        x = rng.integers(-3000, 3000, (STEPS, N))
        x[rng.random((STEPS, N)) < 0.15] = 0
        big = rng.random((STEPS, N)) < 0.1
        x[big] = rng.integers(-(2**23), 2**23, big.sum())
        huge = rng.random((STEPS, N)) < 0.05
        x[huge] = rng.integers(-(2**31), 2**31, huge.sum())
        x[STEPS - 8:] = 0  # free oscillation at the end
        return x.astype(np.int32)
    return one(), one()


def _lava_run(cases: list[dict], x_re: np.ndarray, x_im: np.ndarray):
    """Run every case as its own Lava process on the same inputs; returns ([(sin, cos)], [{var: [T, N]}])."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor
    from lava.proc.rf.process import RF
    from lava.proc.rf_iz.process import RF_IZ

    re_src, im_src = RingBuffer(data=np.ascontiguousarray(x_re.T)), RingBuffer(data=np.ascontiguousarray(x_im.T))
    procs, monitors, decays = [], [], []
    for case in cases:
        cls = RF_IZ if case["kind"] == "rf_iz" else RF
        proc = cls(shape=(N,), period=case["period"], alpha=case["alpha"], state_exp=case["state_exp"],
                   decay_bits=case["decay_bits"], vth=case["vth"])
        re_src.s_out.connect(proc.a_real_in)
        im_src.s_out.connect(proc.a_imag_in)
        decays.append((np.asarray(proc.sin_decay.init, np.int64), np.asarray(proc.cos_decay.init, np.int64)))
        mon = {}
        for var, port in (("s", proc.s_out), ("real", proc.real), ("imag", proc.imag)):
            mon[var] = Monitor()
            mon[var].probe(port, STEPS)
        procs.append(proc)
        monitors.append(mon)
    re_src.run(condition=RunSteps(num_steps=STEPS), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    try:
        records = [{var: np.asarray(m.get_data()[proc.name][{"s": "s_out"}.get(var, var)]).reshape(STEPS, N).astype(np.int64)
                    for var, m in mon.items()} for proc, mon in zip(procs, monitors)]
    finally:
        re_src.stop()
    return decays, records


def test_spec_equals_lava_rf_processes():
    rng = np.random.default_rng(7)
    cases = _cases(rng)
    x_re, x_im = _inputs(rng)
    decays, records = _lava_run(cases, x_re, x_im)
    clipped = wrapped = spikes = 0
    for case, (sin, cos), lava in zip(cases, decays, records):
        # Lava's integers are the spec's conversion of its float arguments
        want_sin, want_cos = lava_decays(case["period"], case["alpha"], case["decay_bits"])
        assert np.array_equal(sin, want_sin) and np.array_equal(cos, want_cos)
        state = ResonatorState.zeros(1, N)
        for t in range(STEPS):
            s = resonator_step(state, x_re[t][None], x_im[t][None], kind=case["kind"], sin_decay=sin, cos_decay=cos,
                               decay_bits=case["decay_bits"], state_exp=case["state_exp"], vth=case["vth"])
            where = f"{case['kind']} {case['decay_bits']=} {case['state_exp']=} {case['vth']=} step {t}"
            assert np.array_equal(s[0], lava["s"][t]), where
            assert np.array_equal(state.real[0], lava["real"][t]), where
            assert np.array_equal(state.imag[0], lava["imag"][t]), where
        clipped += int(np.sum(np.abs(lava["real"]) == 2**23 - 1) + np.sum(np.abs(lava["imag"]) == 2**23 - 1))
        shifted = np.concatenate([x_re, x_im]).astype(np.int64) << case["state_exp"]
        wrapped += int(np.sum(wrap32(shifted) != shifted))
        spikes += int(lava["s"].sum())
    # the run reached what it is meant to check: the clip, the int32 wrap of the shift, spikes of both kinds
    assert clipped > 20 and wrapped > 10 and spikes > 20
    assert all(records[k]["s"].any() for k in (0, 1))


def test_emitted_decays_are_the_integers():
    """`period_alpha` inverts Lava's conversion exactly: every 12-bit pair on a grid (edges included)
    and every decay_bits comes back as the same integers."""
    ks = np.unique(np.concatenate([np.arange(0, 4096, 37), [0, 1, 2, 2047, 2048, 4094, 4095]]))
    s, c = np.meshgrid(ks, ks)
    for bits in (12, 9, 1):
        lim = min(4095, 2**bits * 2 - 1)
        ss, cc = np.minimum(s, lim), np.minimum(c, lim)
        got = lava_decays(*period_alpha(ss, cc, bits), bits)
        assert np.array_equal(got[0], ss) and np.array_equal(got[1], cc)


def _graph(kind: str) -> ChipGraph:
    rng = np.random.default_rng(3 if kind == "rf" else 4)
    g = ChipGraph()
    g.add(InputPopulation("x", (5,), num_message_bits=8))
    g.add(Population("r", (N,), model=kind, vth=40, sin_decay=rng.integers(300, 2000, N), cos_decay=rng.integers(2500, 3900, N),
                     decay_bits=12, state_exp=6))
    g.add(Population("q", (3,), model=kind, vth=2, sin_decay=200, cos_decay=240, decay_bits=8, state_exp=2))
    g.add(Population("out", (2,), du=4095, dv=100, vth=3))
    g.add(Projection("re", "x", "r", rng.integers(-40, 40, (N, 5)), num_message_bits=8, port="a_real_in"))
    g.add(Projection("im", "x", "r", rng.integers(-40, 40, (N, 5)), num_message_bits=8, weight_exp=-1, num_weight_bits=7,
                     port="a_imag_in"))
    g.add(Projection("rq", "r", "q", rng.integers(-8, 8, (3, N)), port="a_real_in", weight_exp=2))
    g.add(Projection("qo", "q", "out", rng.integers(0, 4, (2, 3))))
    g.outputs["out"] = OutputPort("out")
    return g.validate()


def _spec_run(g: ChipGraph, x: np.ndarray) -> dict[str, np.ndarray]:
    """The spec fed with the projections' sums (truncated weights, weight_exp, one step of latency)."""
    def sent(proj, msg):
        acc = truncate_weights(proj.weights, proj.num_weight_bits) @ msg.astype(np.int64)
        e = int(proj.weight_exp)
        return wrap32(acc << e if e >= 0 else acc >> -e)

    out: dict[str, list] = {k: [] for k in ("r/s", "r/u", "r/v", "q/s", "q/u", "q/v")}
    states = {p: ResonatorState.zeros(1, g.populations[p].size) for p in ("r", "q")}
    last = {"x": np.zeros(5, np.int64), "r": np.zeros(N, np.int64)}
    for t in range(x.shape[0]):
        ports = {"r": (sent(g.projections["re"], last["x"]), sent(g.projections["im"], last["x"])),
                 "q": (sent(g.projections["rq"], last["r"]), np.zeros(3, np.int64))}
        spikes = {}
        for p in ("r", "q"):
            pop = g.populations[p]
            spikes[p] = resonator_step(states[p], ports[p][0][None], ports[p][1][None], kind=pop.model, sin_decay=pop.sin_decay,
                                       cos_decay=pop.cos_decay, decay_bits=pop.decay_bits, state_exp=pop.state_exp, vth=pop.vth)[0]
            out[f"{p}/s"].append(spikes[p])
            out[f"{p}/u"].append(states[p].real[0].copy())
            out[f"{p}/v"].append(states[p].imag[0].copy())
        last = {"x": x[t].astype(np.int64), "r": spikes["r"]}
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("kind", ["rf", "rf_iz"])
def test_backends_equal_lava_on_chip_graphs(kind):
    g = _graph(kind)
    x = np.random.default_rng(5).integers(-255, 256, (STEPS, 5))
    x[STEPS - 10:] = 0
    probes = ["r/s", "r/u", "r/v", "q/s", "q/u", "q/v", "out/s"]
    want = _spec_run(g, x)
    both = np.stack([x, x[::-1]])
    sim = SimBackend().build(g, chunk=7).run(both, probes=probes)
    lava = get_backend("lava").build(g).run(both, probes=probes)  # two samples: real/imag are reset between them
    for key in want:
        assert np.array_equal(sim.probes[key][0], want[key]), f"sim {key}"
        assert np.array_equal(lava.probes[key][0], want[key]), f"lava backend {key}"
    for key in probes:
        assert np.array_equal(sim.probes[key], lava.probes[key]), f"{key}: sim and lava backend, both samples"
    assert want["r/s"].sum() > 3 and want["q/s"].sum() > 0 and sim.probes["out/s"][0].any()
    alone = SimBackend().build(g).run(x[::-1][None], probes=probes)  # the second sample equals a run of it alone
    for key in probes:
        assert np.array_equal(sim.probes[key][1], alone.probes[key][0])
