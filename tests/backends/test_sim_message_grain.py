"""Sigma-delta messages that share a power-of-two factor (a Delta's are multiples of 2**spike_exp)
are summed in float32 divided by it: the result must equal the integer-only event kernels."""
from __future__ import annotations

import numpy as np

from snnc.backends.sim import SimBackend
from snnc.backends.sim import program as sim_program
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection


def _graph(spike_exp: int, weight: int) -> ChipGraph:
    n = 8
    g = ChipGraph()
    g.add(InputPopulation("x", (n,), num_message_bits=24))
    g.add(Population("d", (n,), model="delta", vth=0, spike_exp=spike_exp, state_exp=0))
    g.add(Population("s", (3,), model="sigma"))
    g.add(Projection("x->d", "x", "d", np.eye(n, dtype=np.int64), num_message_bits=24))
    rng = np.random.default_rng(1)
    g.add(Projection("d->s", "d", "s", rng.integers(-weight, weight + 1, (3, n)), num_message_bits=24))
    g.outputs["s"] = OutputPort("s")
    return g.validate()


def test_float32_sum_of_divided_messages_equals_event_kernels(monkeypatch):
    g = _graph(spike_exp=6, weight=4)  # messages up to 2**22, L1 <= 32: bound 2**27 raw, 2**21 / 64
    x = np.random.default_rng(2).integers(-(2**16), 2**16, (1, 12, 8))
    grains = []
    original = sim_program._ChunkSource.granularity

    def spy(self):
        grains.append(original(self))
        return grains[-1]

    monkeypatch.setattr(sim_program._ChunkSource, "granularity", spy)
    dense = SimBackend().build(g, synapses="dense").run({"x": x}, probes=["s/s", "d/s"]).probes
    assert grains and min(grains) >= 64  # the float path divided the Delta's messages
    events = SimBackend().build(g, synapses="events").run({"x": x}, probes=["s/s", "d/s"]).probes
    assert np.any(dense["s/s"] != 0)
    assert np.all(dense["d/s"] % 64 == 0)
    for key in ("s/s", "d/s"):
        assert np.array_equal(dense[key], events[key]), key
