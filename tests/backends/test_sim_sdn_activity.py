"""The sigma-delta kernel's activity counters and message bound, against numpy on its own messages:
synaptic ops per step of each outgoing projection (the first is summed inside the neuron loop, the
others in a pass of their own) = the fanout of every nonzero message; messages per step and per
neuron; and the largest |message| the kernel reports, which picks float32/float64/events, so the
dense, event and automatic evaluations must give the same messages."""
from __future__ import annotations

import numpy as np
import pytest

from snnc.backends.sim import SimBackend
from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, OutputPort, Population, Projection
from snnc.ir.conv import conv_matrix


def _graph() -> tuple[ChipGraph, dict[str, np.ndarray]]:
    """A Delta layer feeding a sigma output through a dense and through a conv projection."""
    rng = np.random.default_rng(7)
    shape = (2, 6, 7)
    n = int(np.prod(shape))
    geom = ConvGeometry(shape, (3, 3, 4), (3, 3), (2, 2), (1, 1), (1, 1), 1)
    g = ChipGraph()
    g.add(InputPopulation("x", shape, num_message_bits=16))
    g.add(Population("d", shape, model="delta", vth=3, spike_exp=6, state_exp=2))
    g.add(Population("o", (5,), model="sigma"))
    g.add(Population("c", geom.out_shape, model="sigma"))
    g.add(Projection("x->d", "x", "d", np.eye(n, dtype=np.int64), num_message_bits=16))
    dense = rng.integers(-100, 100, (5, n)) * (rng.random((5, n)) < 0.5)
    kernel = rng.integers(-60, 60, (3, 2, 3, 3)) * (rng.random((3, 2, 3, 3)) < 0.7)
    g.add(Projection("d->o", "d", "o", dense, num_message_bits=24))
    g.add(Projection("d->c", "d", "c", kernel, kind="conv", num_message_bits=24, conv=geom))
    g.outputs["o"] = OutputPort("o")
    g.outputs["c"] = OutputPort("c")
    g.validate()  # a dense synapse counts where Lava's truncation leaves its weight nonzero; a conv is not truncated
    return g, {"d->o": g.projections["d->o"].effective_weights() != 0, "d->c": conv_matrix(kernel, geom).toarray() != 0}


@pytest.mark.parametrize("synapses", ["auto", "dense", "events"])
def test_sigma_delta_counters_equal_numpy_on_its_messages(synapses):
    g, nonzero = _graph()
    rng = np.random.default_rng(8)
    x = rng.integers(-3000, 3000, (2, 9, 2, 6, 7)) * (rng.random((2, 9, 2, 6, 7)) < 0.6)
    res = SimBackend().build(g, synapses=synapses).run({"x": x}, probes=["d"])
    s = res.probes["d"].reshape(2, 9, -1)
    sent = s != 0
    assert sent.any() and not sent.all()
    act = res.activity
    assert act.populations["d"].spikes_per_step.tolist() == sent.sum(axis=(0, 2)).tolist()
    assert act.populations["d"].spike_counts.tolist() == sent.sum(axis=(0, 1)).tolist()
    for proj, mask in nonzero.items():
        fanout = mask.sum(axis=0)
        assert act.projections[proj].synaptic_ops_per_step.tolist() == (sent * fanout).sum(axis=(0, 2)).tolist(), proj
    reference = SimBackend().build(g, synapses="events").run({"x": x})
    for name in ("o", "c"):
        assert np.array_equal(res.outputs[name], reference.outputs[name]), name
    assert np.any(reference.outputs["c"] != 0)


def test_float_paths_stay_exact_when_messages_need_float64():
    """Delta messages near 2**24 (odd), each read by one weight 3: their sums pass 2**24 while a
    bound from a smaller largest message would not, so the dense (BLAS / torch) evaluation must see
    the kernel's true largest message to take float64, and equal the integer event kernels."""
    n = 12
    geom = ConvGeometry((1, 3, 4), (2, 3, 4), (1, 1))
    g = ChipGraph()
    g.add(InputPopulation("x", (1, 3, 4), num_message_bits=24))
    g.add(Population("d", (1, 3, 4), model="delta", vth=0))
    g.add(Population("o", (2,), model="sigma"))
    g.add(Population("c", geom.out_shape, model="sigma"))
    g.add(Projection("x->d", "x", "d", np.eye(n, dtype=np.int64), num_message_bits=24))
    w = np.zeros((2, n), np.int64)
    w[0, 0] = w[1, 5] = 3
    g.add(Projection("d->o", "d", "o", w, num_message_bits=24))
    g.add(Projection("d->c", "d", "c", np.full((2, 1, 1, 1), 3), kind="conv", num_message_bits=24, conv=geom))
    g.outputs["o"] = OutputPort("o")
    g.outputs["c"] = OutputPort("c")
    x = np.random.default_rng(9).integers(2**22, 2**23, (1, 6, 1, 3, 4)) * 2 - 2**23 + 1  # odd, |x| < 2**23
    x[0, 1::2] *= -1  # steps alternate in sign: the Delta's messages (differences) reach 2**24
    dense = SimBackend().build(g.validate(), synapses="dense").run({"x": x}, probes=["d"])
    events = SimBackend().build(g, synapses="events").run({"x": x}, probes=["d"])
    assert np.abs(events.probes["d"]).max() > 2**23 and np.any(events.probes["d"] % 2)
    for name in ("o", "c"):
        assert np.array_equal(dense.outputs[name], events.outputs[name]), name


def test_chunks_carry_delayed_messages_into_sigma_delta_layers():
    """The sigma-delta kernel clears the input rows it reads, so the program keeps only what lands
    past a chunk (a delayed projection's tail): any chunk length gives the same run."""
    g, _ = _graph()
    g.add(Population("late", (4,), model="sigma_delta", vth=1, act_bias=3))
    g.add(Projection("d->late", "d", "late", np.random.default_rng(3).integers(-50, 50, (4, 84)), num_message_bits=24,
                     delay=np.random.default_rng(4).integers(0, 4, (4, 84))))
    g.outputs["late"] = OutputPort("late")
    x = np.random.default_rng(5).integers(-3000, 3000, (2, 11, 2, 6, 7))
    whole = SimBackend().build(g.validate()).run({"x": x}, probes=["late/u", "c/u"])
    assert np.any(whole.outputs["late"] != 0)
    for chunk in (1, 3, 4):
        part = SimBackend().build(g, chunk=chunk).run({"x": x}, probes=["late/u", "c/u"])
        for key in ("late", "o", "c"):
            assert np.array_equal(part.outputs[key], whole.outputs[key]), (chunk, key)
        for key in ("late/u", "c/u"):
            assert np.array_equal(part.probes[key], whole.probes[key]), (chunk, key)
