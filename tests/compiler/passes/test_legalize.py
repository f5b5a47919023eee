"""Legalize: one du/dv/vth per layer where the target needs it, and the target's limits."""
from __future__ import annotations

import numpy as np
import pytest

from snnc.compiler.passes.legalize import Legalize
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection
from snnc.ir.errors import QuantizationError, ResourceError


def chip(du=1842, dv=410, vth=500, n=4, n_in=3, message_bits=0, weights=None) -> ChipGraph:
    g = ChipGraph(meta={"dt": 1e-4, "time_shift": 1})
    g.add(InputPopulation("in", (n_in,), num_message_bits=message_bits))
    g.add(Population("layer", (n,), du=du, dv=dv, vth=vth))
    w = np.full((n, n_in), 10) if weights is None else weights
    g.add(Projection("fc", "in", "layer", w, num_message_bits=message_bits))
    g.outputs["out"] = OutputPort("layer", "s")
    return g


def test_equal_per_neuron_values_collapse_to_one_per_layer():
    res = Legalize().run(chip(du=np.full(4, 1842), vth=np.full(4, 500)))
    pop = res.graph.populations["layer"]
    assert pop.du == 1842 and pop.vth == 500 and pop.per_layer()
    assert sorted(res.report["collapsed"]["layer"]) == ["du", "vth"]


def test_values_within_tolerance_collapse_with_a_report_and_others_are_refused():
    res = Legalize(tolerance=0.01).run(chip(vth=np.array([500, 500, 502, 501])))
    assert res.graph.populations["layer"].vth == 501
    assert res.report["approximated"]["layer"]["vth"]["relative_spread"] == pytest.approx(1 / 501)
    with pytest.raises(QuantizationError) as info:
        Legalize().run(chip(vth=np.array([500, 500, 900, 500])))
    msg = str(info.value)
    assert "layer 'layer'.vth" in msg and "500..900" in msg and "per_channel=False" in msg
    # a simulator-only setup may keep per-neuron thresholds
    res = Legalize(shared=("du", "dv")).run(chip(vth=np.array([500, 500, 900, 500])))
    assert res.report["per_neuron"] == {"layer": ["vth"]}
    assert list(res.graph.populations["layer"].vth) == [500, 500, 900, 500]
    # decays compare as decay factors: du 1842 vs 1850 differ by 0.4% of (4095 - du) / 4096
    res = Legalize().run(chip(du=np.array([1842, 1850, 1842, 1842])))
    assert res.graph.populations["layer"].du == 1842


def test_target_limits():
    with pytest.raises(QuantizationError) as info:
        Legalize(target="loihi1").run(chip(message_bits=8))
    assert "graded" in str(info.value) and "input 'in'" in str(info.value)
    Legalize(target="loihi2").run(chip(message_bits=8))
    wide = chip(n_in=5000, weights=np.full((4, 5000), 2))
    with pytest.raises(ResourceError) as info:
        Legalize().run(wide)
    assert "layer 'layer'" in str(info.value) and "4096" in str(info.value) and "5000" in str(info.value)
    report = Legalize().run(chip()).report
    assert report["max_fan_in"] == 3 and report["target"] == "loihi2"
