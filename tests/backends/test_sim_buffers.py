"""The sim's buffer pool: a run's large buffers are handed back and reused by the next run (no fresh
pages), zeroed buffers are zero even when reused, the pool keeps at most its limit, and a program's
repeated runs (which reuse every large buffer) equal a fresh program's."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chip_strategies as cs
from snnc.backends.sim import SimBackend, buffers
from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, OutputPort, Population, Projection


def test_a_released_buffer_is_reused_and_zeroed_on_request():
    pool = buffers.Pool(limit=64 * 2**20)
    first = buffers.Lease(pool)
    a = first.empty((3, 1000, 100), np.float64)  # 2.4 MB: from the pool
    small = first.empty((10,), np.int32)  # below MIN_BYTES: plain numpy
    assert a.shape == (3, 1000, 100) and a.dtype == np.float64 and a.flags.c_contiguous
    assert small.base is None and len(first.taken) == 1
    a[:] = 7.0
    first.release()
    second = buffers.Lease(pool)
    b = second.zeros((1000, 300), np.int32)  # 1.2 MB fits the released 2.4 MB buffer
    assert np.shares_memory(a, b) and not b.any()
    c = second.empty((3, 1000, 100), np.float64)  # nothing free any more: a new buffer
    assert not np.shares_memory(b, c)
    second.release()


def test_the_pool_keeps_at_most_its_limit_smallest_first():
    pool = buffers.Pool(limit=5 * 2**20)
    lease = buffers.Lease(pool)
    for mb in (1, 2, 4):
        lease.empty((mb * 2**20,), np.uint8)
    lease.release()
    assert sorted(b.nbytes for b, _ in pool._free) == [2**20, 2 * 2**20]  # 4 MB would pass the limit


def test_repeated_runs_reusing_the_pool_equal_fresh_programs():
    geom = ConvGeometry((2, 48, 48), (4, 23, 23), (3, 3), (2, 2))
    g = ChipGraph()
    g.add(InputPopulation("x", geom.in_shape, num_message_bits=12))
    g.add(Population("d", geom.in_shape, model="delta", vth=2, spike_exp=3))
    g.add(Population("s", geom.out_shape, model="sigma_delta", vth=1, act_bias=5))
    g.add(Projection("x->d", "x", "d", sp.identity(4608, dtype=np.int64, format="csr"), kind="sparse", num_message_bits=12))
    w = np.random.default_rng(0).integers(-40, 40, (4, 2, 3, 3))
    g.add(Projection("d->s", "d", "s", w, kind="conv", num_message_bits=16, conv=geom))
    g.outputs["s"] = OutputPort("s")
    rng = np.random.default_rng(1)
    runs = [rng.integers(-4000, 4000, (1, 120, 2, 48, 48)) for _ in range(3)]
    program = SimBackend().build(g.validate(), chunk=40)  # chunks of 40 steps: large buffers, reused
    assert 40 * 4608 * 8 >= buffers.MIN_BYTES
    for x in runs:
        got = program.run({"x": x}, probes=["d", "s/u"])
        fresh = SimBackend().build(g, chunk=120).run({"x": x}, probes=["d", "s/u"])
        assert np.any(got.outputs["s"] != 0)
        for key in ("d", "s/u"):
            assert np.array_equal(got.probes[key], fresh.probes[key]), key
        assert np.array_equal(got.outputs["s"], fresh.outputs["s"])


@settings(max_examples=25, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    case=cs.chip_cases(kinds=cs.ALL_KINDS, models=cs.ALL_MODELS, recurrent=True, delays=True, graded=True, per_neuron=True),
    sd_case=cs.chip_cases(kinds=("dense", "conv"), models=cs.SIGMA_DELTA_MODELS, graded=True),
    chunk=st.integers(1, 5),
    prog_graph=cs.programmable_graphs(),
)
def test_input_sums_go_back_to_the_pool_all_zero(case, sd_case, chunk, prog_graph):
    """A run gives its input sums back as clean (the neuron kernels clear what they read, the run
    what landed past its last step), and the next run takes them without clearing: every clean
    buffer in the pool is zero after runs of every kind, and repeated runs equal the first."""
    old = buffers.MIN_BYTES
    buffers.MIN_BYTES = 0  # every buffer from the pool, however small
    try:
        buffers.POOL.give([(np.ones(64, np.uint8), False)])  # a dirty one that a run may take
        cases = [(case.graph, case.inputs), (sd_case.graph, sd_case.inputs), (prog_graph, {"x": cs.programmable_inputs(prog_graph, 6, 0)})]
        for graph, inputs in cases:
            program = SimBackend().build(graph, chunk=chunk)
            probes = [f"{p}/{v}" for p, pop in graph.populations.items() for v in ("s" if pop.model == "product" else "suv")]
            first = program.run({k: v[None] for k, v in inputs.items()}, probes=probes)
            for _ in range(2):
                again = program.run({k: v[None] for k, v in inputs.items()}, probes=probes)
                for key in probes:
                    assert np.array_equal(again.probes[key], first.probes[key]), key
            assert any(clean for _, clean in buffers.POOL._free)
            for buf, clean in buffers.POOL._free:
                assert not clean or not buf.any()
    finally:
        buffers.MIN_BYTES = old
