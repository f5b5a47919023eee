"""The lif_refractory kind in the chip IR: hand-computed steps of the specification, the
Population field's validation, and its round trip through chip NIR files."""
from __future__ import annotations

import nir
import numpy as np
import pytest

from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection
from snnc.ir.chip_nir import chip_from_nir, chip_to_nir
from snnc.ir.errors import ParameterError
from snnc.ir.fixed_point import RefractoryState, refractory_step


def test_hand_values():
    """du = 4095 (u = a << 6), dv = 0, vth 2 (vth_e 128), period 2, input 3 every step: v rises
    0 -> 192 > 128 spikes at step 1, is held at 0 for steps 2 and 3 while u keeps taking the input,
    then integrates again: spikes at steps 1, 4, 7."""
    st = RefractoryState.zeros(1, 1)
    spikes, vs, cs = [], [], []
    for _ in range(7):
        spikes.append(int(refractory_step(st, np.array([[3]]), du=4095, dv=0, bias=0, vth_e=128, refractory_period=2)[0, 0]))
        vs.append(int(st.v[0, 0]))
        cs.append(int(st.c[0, 0]))
        assert st.u[0, 0] == 3 << 6
    assert spikes == [1, 0, 0, 1, 0, 0, 1]
    assert vs == [0] * 7 and cs == [2, 1, 0, 2, 1, 0, 2]


def test_period_zero_is_the_plain_lif():
    from snnc.ir.fixed_point import NeuronState, neuron_step

    rng = np.random.default_rng(0)
    a = rng.integers(-50, 90, (30, 2, 8))
    ref, lif = RefractoryState.zeros(2, 8), NeuronState.zeros(2, 8)
    for t in range(30):
        kw = dict(du=100, dv=300, bias=64, vth_e=40 << 6)
        assert np.array_equal(refractory_step(ref, a[t], **kw, refractory_period=0), neuron_step(lif, a[t], **kw))
        assert np.array_equal(ref.v, lif.v) and np.array_equal(ref.u, lif.u)


def test_field_validation_names_the_field():
    with pytest.raises(ParameterError, match=r"'p'.refractory_period.*only"):
        Population("p", (2,), refractory_period=3)
    with pytest.raises(ParameterError, match=r"'p'.refractory_period.*0..62"):
        Population("p", (2,), model="lif_refractory", refractory_period=63)


def test_chip_nir_round_trip(tmp_path):
    g = ChipGraph()
    g.add(InputPopulation("x", (3,)))
    g.add(Population("r", (2,), model="lif_refractory", du=4095, dv=[0, 7], vth=5, refractory_period=4))
    g.add(Projection("xr", "x", "r", np.ones((2, 3), np.int64)))
    g.outputs["r"] = OutputPort("r")
    nir.write(tmp_path / "g.nir", chip_to_nir(g.validate()))
    back = chip_from_nir(nir.read(tmp_path / "g.nir")).populations["r"]
    assert back.model == "lif_refractory" and back.refractory_period == 4 and list(back.dv) == [0, 7]
