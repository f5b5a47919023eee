"""lif_refractory populations in the bit budget and the energy model (hand-checked counts)."""
from __future__ import annotations

import numpy as np

from snnc.backends.base import get_backend
from snnc.compiler.analysis.budget import bit_budget
from snnc.compiler.analysis.energy import estimate_energy
from snnc.compiler.mapping import map_to_cores
from snnc.compiler.targets import LOIHI2
from snnc.ir.bits import SPECS, STATE_BITS
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection


def _graph() -> ChipGraph:
    g = ChipGraph()
    g.add(InputPopulation("x", (4,)))
    g.add(Population("r", (5,), model="lif_refractory", du=4095, dv=0, vth=3, refractory_period=2))
    g.add(Projection("xr", "x", "r", np.full((5, 4), 100)))
    g.outputs["r"] = OutputPort("r")
    return g.validate()


def _run(g):
    x = (np.random.default_rng(0).random((1, 20, 4)) < 0.5).astype(np.int64)
    return get_backend("sim").build(g).run({"x": x}, probes=["r"])


def test_budget_counts_the_refractory_counter_and_period():
    g = _graph()
    b = bit_budget(g, _run(g).activity)
    layer = {lb.name: lb for lb in b.layers}["r"]
    assert layer.state_bits == 5 * (STATE_BITS + 6)  # u, v and a 6-bit down-counter per neuron
    # du, dv, vth, bias_mant, bias_exp shared, plus the shared refractory_period
    assert layer.param_bits == sum(SPECS[k].bits for k in ("du", "dv", "vth", "bias_mant", "bias_exp")) + 6


def test_energy_prices_refractory_updates_as_cuba_updates_and_says_so():
    g = _graph()
    run = _run(g)
    report = estimate_energy(run.activity, map_to_cores(g, LOIHI2))
    r, table = report.layers["r"], LOIHI2.costs
    spikes = int(run.probes["r"].sum())
    assert spikes > 0 and r.spikes == spikes and np.isclose(r.energy["spike_out"], spikes * table.e_spike_out)
    active = run.activity.populations["r"].active_updates
    assert np.isclose(r.energy["neuron_active"], active * table.e_neuron_active)
    assert np.isclose(r.energy["neuron_inactive"], (5 * 20 - active) * table.e_neuron_inactive)
    assert any("'r' (lif_refractory)" in a for a in report.assumptions)
