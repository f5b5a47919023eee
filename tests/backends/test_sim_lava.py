"""Differential tests: the sim backend against Lava 0.10.0 fixed_pt itself, on random networks.

Every example is a suite of 4-6 independent random networks (tests/chip_strategies.py) that
tests/lava_oracle.py runs in ONE Lava run (Lava spawns an OS process per process model, so
packing keeps the suite fast). Each network is then run by the sim, in a batch of two samples
and with a random chunk length, and every spike, `u` and `v` of every population must equal
Lava's at every step. 9 examples x 6 tests x >= 4 networks = at least 216 networks per run.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import lava_oracle  # noqa: I001  (imports Lava before numba's threading layer starts)
import chip_strategies as cs
from snnc.backends.sim import SimBackend

pytestmark = [pytest.mark.lava, pytest.mark.timeout(900)]  # a hung Lava run fails, not stalls

EXAMPLES = 9
SUITE = dict(max_processes=52, max_cases=6, min_cases=4)

lava_settings = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: every extra example is a Lava run
    suppress_health_check=list(HealthCheck),
)


def _summary(graph) -> str:
    lines = []
    for p in graph.populations.values():
        lines.append(f"  pop {p.name} {p.shape} {p.model} du={p.du} dv={p.dv} vth={p.vth} bias={p.bias_mant}<<{p.bias_exp}")
    for j in graph.projections.values():
        lines.append(
            f"  proj {j.name} {j.src}->{j.dst} {j.kind} exp={j.weight_exp} bits={j.num_weight_bits} "
            f"msg={j.num_message_bits} delay={j.max_delay} mode={j.sign_mode}"
        )
    return "\n".join(lines)


def check_suite(suite: list[cs.ChipCase], chunk: int, synapses: str = "auto") -> None:
    """Run the suite on Lava once, then each case on the sim; compare s, u, v everywhere.

    `synapses` forces the event-driven or the dense (BLAS/torch) evaluation of projections, so
    both code paths meet Lava whatever the activity."""
    steps = suite[0].steps
    records = lava_oracle.run_lava_many([(c.graph, c.inputs) for c in suite], steps)
    backend = SimBackend()
    for n, (case, rec) in enumerate(zip(suite, records)):
        program = backend.build(case.graph, chunk=min(chunk, steps), synapses=synapses)
        other = {k: v[::-1].copy() for k, v in case.inputs.items()}  # a second, different sample
        batch = {k: np.stack([case.inputs[k], other[k]]) for k in case.inputs}
        probes = [f"{p}/{v}" for p in case.graph.populations for v in "suv"]
        result = program.run(batch, probes=probes)
        for pop in case.graph.populations:
            for var in "suv":
                got = result.probes[f"{pop}/{var}"][0].astype(np.int64)
                want = rec.var(pop, var)
                if not np.array_equal(got, want):
                    where = tuple(np.argwhere(got != want)[0])
                    raise AssertionError(
                        f"network {n}: {pop}/{var} differs from Lava first at [step, neuron...]={where}: "
                        f"sim {got[where]} vs lava {want[where]} (chunk={chunk}, steps={steps}, synapses={synapses})\n"
                        + _summary(case.graph)
                    )


CHUNKS = st.integers(1, 40)
SYNAPSES = st.sampled_from(["auto", "events", "dense"])


@lava_settings
@given(suite=cs.chip_suites(cs.chip_cases(kinds=("dense", "sparse"), per_neuron=True), **SUITE), chunk=CHUNKS, synapses=SYNAPSES)
def test_feedforward_dense_and_sparse(suite, chunk, synapses):
    check_suite(suite, chunk, synapses)


@lava_settings
@given(
    suite=cs.chip_suites(cs.chip_cases(kinds=("dense", "sparse"), delays=True, graded=True), **SUITE),
    chunk=CHUNKS,
    synapses=SYNAPSES,
)
def test_delays_and_graded_messages(suite, chunk, synapses):
    check_suite(suite, chunk, synapses)


@lava_settings
@given(
    suite=cs.chip_suites(cs.chip_cases(kinds=("conv", "dense"), graded=True, recurrent=True), **SUITE),
    chunk=CHUNKS,
    synapses=SYNAPSES,
)
def test_convolutions(suite, chunk, synapses):
    check_suite(suite, chunk, synapses)


@lava_settings
@given(
    suite=cs.chip_suites(cs.chip_cases(kinds=("dense", "sparse"), recurrent=True, delays=True), **SUITE),
    chunk=CHUNKS,
    synapses=SYNAPSES,
)
def test_recurrent_components(suite, chunk, synapses):
    check_suite(suite, chunk, synapses)


@lava_settings
@given(
    suite=cs.chip_suites(
        cs.chip_cases(kinds=("dense", "sparse"), models=("lif_reset", "ternary", "lif"), per_neuron=True, graded=True),
        **SUITE,
    ),
    chunk=CHUNKS,
    synapses=SYNAPSES,
)
def test_lif_reset_and_ternary(suite, chunk, synapses):
    check_suite(suite, chunk, synapses)


@lava_settings
@given(
    suite=cs.chip_suites(
        cs.chip_cases(kinds=cs.ALL_KINDS, models=cs.ALL_MODELS, recurrent=True, delays=True, graded=True, per_neuron=True),
        **SUITE,
    ),
    chunk=CHUNKS,
    synapses=SYNAPSES,
)
def test_everything_mixed(suite, chunk, synapses):
    check_suite(suite, chunk, synapses)


@settings(lava_settings, max_examples=4)
@given(
    suite=cs.chip_suites(
        cs.chip_cases(kinds=("dense", "sparse"), models=cs.ALL_MODELS, recurrent=True, delays=True, graded=True,
                      sign_split=True),
        **SUITE,
    ),
    chunk=CHUNKS,
    synapses=SYNAPSES,
)
def test_sign_split_pairs_planned_as_one_signed_matrix(suite, chunk, synapses):
    """Excitatory + inhibitory halves of one layer (the quantizer's split_sign), with one exponent
    or each its own (exponent_groups), which the sim merges into one signed link or recurrent block
    (scaled by their shifts), still equal Lava's separate processes."""
    check_suite(suite, chunk, synapses)


def test_extreme_values_against_lava():
    """Hand-made corner cases in one Lava run: 24-bit conv wrap and the LIF's single wrap of an
    out-of-range current, int32 wrap of a graded Dense dot product before a negative weight_exp,
    u exactly +-2**23, v saturation, clipping of -256 in inhibitory mode, 1-bit weights."""
    from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, Population, Projection

    jobs = []
    g = ChipGraph()
    g.add(InputPopulation("x", (1, 1, 1), num_message_bits=24))
    g.add(Population("n", (1, 1, 1), du=4095, dv=0, vth=100))
    g.add(Projection("c", "x", "n", np.array([[[[255]]]]), kind="conv", num_message_bits=24,
                     conv=ConvGeometry((1, 1, 1), (1, 1, 1), (1, 1))))
    x = np.zeros((6, 1, 1, 1), np.int64)
    x[0], x[2] = 40000, -(2**24 - 1)
    jobs.append((g, x))
    g = ChipGraph()
    g.add(InputPopulation("x", (4,), num_message_bits=24))
    g.add(Population("n", (2,), du=10, dv=4095, vth=100))
    g.add(Projection("d", "x", "n", np.array([[254, 254, 254, -254], [-256, 3, 5, 7]]), num_message_bits=24, weight_exp=-3))
    m = 2**24 - 1
    jobs.append((g, np.array([[m, m, m, -m], [m, 0, m, 0], [0, 0, 0, 0], [-m, -m, -m, m], [0] * 4, [0] * 4])))
    g = ChipGraph()
    g.add(InputPopulation("x", (8,)))
    g.add(Population("n", (4,), du=4095, dv=0, vth=2**17 - 1))
    g.add(Projection("d", "x", "n", np.array([[128] * 8, [0] * 8, [200] * 8, [0] * 8]), weight_exp=7))
    g.add(Projection("e", "x", "n", np.array([[0] * 8, [-128] * 8, [0] * 8, [-256] * 8]), weight_exp=7, num_weight_bits=1))
    x = np.zeros((6, 8), np.int64)
    x[0] = 1
    x[1:4, :3] = 1
    jobs.append((g, x))
    records = lava_oracle.run_lava_many(jobs, 6)
    for (graph, x), rec in zip(jobs, records):
        for synapses in ("events", "dense"):
            res = SimBackend().build(graph, synapses=synapses).run(x, probes=("n/u", "n/v", "n/s"))
            for var in "usv":
                assert np.array_equal(res.probes[f"n/{var}"][0], rec.var("n", var)), (var, synapses)
    assert records[0].u["n"][1].item() == -6577216 * 64 + 2**24  # the hand value of test_sim_units


def test_recurrent_extremes_against_lava():
    """A recurrent component whose u reaches and crosses 2**23, run by Lava and by the sim's
    recurrent kernel (`scan`): the feed-forward extremes above never reach it (issue 11).

    a (8 LIFs firing every step) -> b (4 neurons, self-connected) and c (1 neuron, self-connected,
    u accumulating). Hand values, with u cleared every step (du = 4095) in b, 8-bit mixed weights
    truncated to even (255 -> 254) and weight_exp 7:
      b0: 8 x 254 << 7 = 260096, << 6 = 16646144 > 2**23: wraps to 16646144 - 2**24 = -131072;
      b1: 8 x 128 << 7 = 2**17, << 6 = 2**23: kept (the boundary itself does not wrap);
      b2: -2**23 wraps to +2**23;
      b3: 8 x 120 from a alone is 7864320 (no wrap); with b1's and b2's recurrent spikes (+64 each)
          it is (960 + 128) << 13 = 8912896 > 2**23: wraps to -7864320, only through the loop.
    c keeps 4095/4096 of u and feeds itself 254 << 7 per spike: u climbs across 2**23 and wraps.
    """
    from snnc.ir.chip import ChipGraph, InputPopulation, Population, Projection

    g = ChipGraph()
    g.add(InputPopulation("x", (8,)))
    g.add(Population("a", (8,), du=4095, dv=4095, vth=1))
    g.add(Population("b", (4,), du=4095, dv=4095, vth=1000))
    g.add(Population("c", (1,), du=0, dv=4095, vth=1000))
    g.add(Projection("xa", "x", "a", np.eye(8, dtype=np.int64) * 100))
    g.add(Projection("ab", "a", "b", np.array([[255] * 8, [128] * 8, [-128] * 8, [120] * 8]), weight_exp=7))
    bb = np.zeros((4, 4), np.int64)
    bb[3, 1] = bb[3, 2] = 64
    g.add(Projection("bb", "b", "b", bb, weight_exp=7))
    g.add(Projection("xc", "x", "c", np.array([[100] + [0] * 7]), weight_exp=7))
    g.add(Projection("cc", "c", "c", np.array([[255]]), weight_exp=7))
    steps = 24
    x = np.ones((steps, 8), np.int64)
    (rec,) = lava_oracle.run_lava_many([(g, x)], steps)

    prog = SimBackend().build(g)
    assert {name for comp in prog.plan.components if comp.recurrent for name in comp.members} == {"b", "c"}
    probes = tuple(f"{p}/{v}" for p in "abc" for v in "suv")
    for synapses in ("events", "dense"):
        res = SimBackend().build(g, synapses=synapses).run(x, probes=probes)
        for key in probes:
            pop, var = key.split("/")
            assert np.array_equal(res.probes[key][0], rec.var(pop, var)), (key, synapses)

    b_u, c_u = rec.var("b", "u"), rec.var("c", "u")
    H = 2**23
    later = b_u[5:]  # a fires from step 1, its spikes reach b at step 2, b's own loop one step later
    assert np.all(later[:, 0] == 16646144 - 2**24)
    assert np.all(later[:, 1] == H) and np.all(later[:, 2] == H)
    assert np.all(later[:, 3] == (960 + 128) * 2**13 - 2**24)
    # c crossed +2**23 by accumulation: a step whose u is below the previous one by more than the
    # decay could take (only the wrap does that) after u had come within one input of 2**23
    c = c_u[:, 0].astype(np.int64)
    assert np.max(c) > H - 2 * (254 << 13)
    assert np.any(np.diff(c) < -H)
