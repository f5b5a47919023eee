"""The sim's buffer pool: a run's large buffers are handed back and reused by the next run (no fresh
pages), zeroed buffers are zero even when reused, the pool keeps at most its limit, and a program's
repeated runs (which reuse every large buffer) equal a fresh program's."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

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
    assert sorted(b.nbytes for b in pool._free) == [2**20, 2 * 2**20]  # 4 MB would pass the limit


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
