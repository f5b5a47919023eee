"""The `sim` backend: a cycle-accurate, batched CPU simulator of chip graphs, bit-exact with Lava
0.10.0 fixed_pt (`Loihi2SimCfg(select_tag="fixed_pt")`, see docs/loihi-fixed-point.md).

    program = SimBackend().build(chip_graph, chunk=None, memory_budget_mb=64, synapses="auto")
    result = program.run(inputs, steps=None, probes=("pop/v", "pop/u", "pop/s", "pop", "input"))

Inputs: one array [batch, T, *shape] (or [T, *shape]) for a single-input graph, else a dict by
input name. Binary inputs must hold 0/1 (bool, int or float); graded inputs (num_message_bits=m)
integers with |x| <= 2**m - 1. With `steps` > T the remaining steps get no input.

Time: input index t (0-based) is what Lava's RingBuffer sends at Lava step t+1; output and probe
index t is the state after Lava step t+1 (what a Monitor records at step t+1). A spike at input or
population index t reaches its target's `u` at index t+1+delay, so nothing arrives at index 0.

Results: `outputs` per `ChipGraph.outputs` and `probes` per requested name, shaped
[batch, T, *shape]: s as int8 (-1/0/1), u and v as int32 (u may leave the 24-bit range exactly
where Lava's single wrap leaves it). `activity` (summed over the batch):
* population: neuron_updates = neurons x T x batch; active_updates = updates whose u or v
  (before the spike reset) is non-zero; spikes (nonzero s, ternary -1 included), spikes_per_step
  [T], spike_counts [neurons, flat C order];
* projection: synaptic_ops = for every nonzero message, the number of nonzero effective synapses
  it fans out to (for a conv: kernel taps with nonzero weight that land on a target neuron),
  counted at the step the source sent it; messages_in = nonzero messages from its source;
  synaptic_ops_per_step [T].

Build options: `chunk` (steps per chunk; default from `memory_budget_mb`), `max_chunk`,
`synapses` ('auto' picks event-driven or dense BLAS/torch evaluation by activity; 'events' and
'dense' force one; the results are identical).
"""
from .backend import SimBackend
from .program import SimProgram

__all__ = ["SimBackend", "SimProgram"]
