"""Sigma-delta populations in the bit budget and the energy model: state and payload bits of a
SigmaDelta network, and graded messages priced from the counts of a sim run (hand-checked)."""
from __future__ import annotations

import warnings

import numpy as np

from snnc.backends.base import get_backend
from snnc.compiler.analysis.budget import AccumulatorOverflowWarning, bit_budget
from snnc.compiler.analysis.energy import UPDATE_COST_FACTOR, estimate_energy
from snnc.compiler.mapping import map_to_cores
from snnc.compiler.targets import LOIHI2
from snnc.ir.bits import SPECS
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection


def _sdnn() -> ChipGraph:
    rng = np.random.default_rng(0)
    g = ChipGraph()
    g.add(InputPopulation("input", (6,), num_message_bits=16))
    g.add(Population("d", (6,), model="delta", vth=2, spike_exp=6, state_exp=6))
    g.add(Population("h", (5,), model="sigma_delta", vth=3, act_bias=rng.integers(-9, 9, 5), spike_exp=6, state_exp=6))
    g.add(Population("o", (3,), model="sigma"))
    g.add(Projection("i->d", "input", "d", np.eye(6, dtype=np.int64), num_message_bits=16))
    g.add(Projection("d->h", "d", "h", rng.integers(-100, 100, (5, 6)), num_message_bits=16))
    g.add(Projection("h->o", "h", "o", rng.integers(-100, 100, (3, 5)), num_message_bits=16))
    g.outputs["output"] = OutputPort("o", "s")
    return g.validate()


def test_bit_budget_counts_sigma_delta_state_and_payload_bits():
    g = _sdnn()
    x = np.random.default_rng(1).integers(-300, 300, (1, 20, 6))
    run = get_backend("sim").build(g).run({"input": x}, probes=["h"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", AccumulatorOverflowWarning)  # 16-bit messages into int32 sigma: no false alarm
        b = bit_budget(g, run.activity)
    layer = {lb.name: lb for lb in b.layers}
    assert layer["d"].state_bits == 6 * 3 * 24 and layer["h"].state_bits == 5 * 4 * 24 and layer["o"].state_bits == 3 * 24
    # h: vth shared (17) + act_bias per neuron (16 x 5) + spike_exp, state_exp (3 + 3) + cum_error, act_mode (1 + 1)
    assert layer["h"].param_bits == SPECS["vth"].bits + 5 * SPECS["act_bias"].bits + 3 + 3 + 1 + 1
    sent = int(np.count_nonzero(run.probes["h"]))  # nonzero graded messages of h over the run
    assert sent > 0 and layer["h"].spikes.spikes == sent
    assert layer["h"].spikes.payload_bits == 16 and layer["h"].spikes.spike_bits == 16 * sent


def test_energy_prices_sigma_delta_updates_and_graded_messages():
    g = _sdnn()
    x = np.random.default_rng(2).integers(-300, 300, (1, 15, 6))
    run = get_backend("sim").build(g).run({"input": x}, probes=["h"])
    report = estimate_energy(run.activity, map_to_cores(g, LOIHI2))
    table = LOIHI2.costs
    h = report.layers["h"]
    sent = int(np.count_nonzero(run.probes["h"]))
    assert h.spikes == sent and np.isclose(h.energy["spike_out"], sent * table.e_spike_out)
    factor = UPDATE_COST_FACTOR["sigma_delta"]
    active = run.activity.populations["h"].active_updates
    assert np.isclose(h.energy["neuron_active"], active * table.e_neuron_active * factor)
    assert np.isclose(h.energy["neuron_inactive"], (5 * 15 - active) * table.e_neuron_inactive * factor)
    assert any("'h' (sigma_delta)" in a and "graded message" in a for a in report.assumptions)
