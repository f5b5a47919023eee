"""snnc's own Lava neuron process (`CubaNeuron`): Lava runs the new reset modes, reset voltages and
relays exactly as the sim does, and with reset to zero it is Lava's own LIF, bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

from snnc.backends.lava import LavaBackend
from snnc.backends.sim import SimBackend
from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection

pytestmark = [pytest.mark.lava, pytest.mark.timeout(600)]


def network(seed: int, *, native: bool = False) -> tuple[ChipGraph, np.ndarray]:
    """input -> a (subtract) -> relay r -> b (reset voltage) -> c (no reset) -> back to a: one
    recurrent loop through every new behaviour; `native`: the same shapes with Lava-native LIFs."""
    rng = np.random.default_rng(seed)
    mode = (lambda m: "zero") if native else (lambda m: m)
    g = ChipGraph()
    g.add(InputPopulation("x", (6,)))
    g.add(Population("a", (5,), du=int(rng.integers(3000, 4096)), dv=int(rng.integers(0, 400)), vth=rng.integers(5, 40, 5),
                     bias_mant=int(rng.integers(-5, 6)), reset_mode=mode("subtract")))
    g.add(Population("r", (4,), du=4095, dv=int(rng.integers(0, 300)), vth=1, model="lif" if native else "relay",
                     relay_shift=0 if native else int(rng.integers(0, 8))))
    g.add(Population("b", (3,), du=int(rng.integers(0, 200)), dv=10, vth=50, reset_mode=mode("zero"),
                     v_reset=0 if native else rng.integers(-3000, 3000, 3)))
    g.add(Population("c", (3,), du=4095, dv=0, vth=30, reset_mode=mode("none")))
    g.add(Projection("xa", "x", "a", rng.integers(-40, 60, (5, 6))))
    g.add(Projection("ar", "a", "r", rng.integers(-100, 100, (4, 5))))
    g.add(Projection("rb", "r", "b", rng.integers(-50, 50, (3, 4)), num_message_bits=0 if native else 24))
    g.add(Projection("bc", "b", "c", rng.integers(0, 80, (3, 3))))
    g.add(Projection("ca", "c", "a", rng.integers(-30, 30, (5, 3))))
    g.outputs["c"] = OutputPort("c")
    x = (rng.random((2, 40, 6)) < 0.4).astype(np.uint8)
    return g, x


PROBES = [f"{p}/{v}" for p in "arbc" for v in "suv"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lava_runs_the_new_neurons_as_the_sim_does(seed):
    g, x = network(seed)
    sim = SimBackend().build(g).run(x, probes=PROBES)
    lava = LavaBackend().build(g).run(x, probes=PROBES)
    assert sum(int(np.abs(sim.probes[f"{p}/s"]).sum()) for p in "abc") > 0  # the network is alive
    for key in PROBES:
        assert np.array_equal(sim.probes[key], lava.probes[key]), key


def test_cuba_neuron_with_reset_to_zero_is_lavas_lif(monkeypatch):
    """The independent check of the shared step: the same network run by Lava's LIF processes and
    by CubaNeuron (forced for every population) gives the same spikes, u and v."""
    g, x = network(4, native=True)
    lif = LavaBackend().build(g).run(x, probes=PROBES)
    monkeypatch.setattr(Population, "lava_native", property(lambda self: False))
    net = LavaBackend().build(g).network()
    assert {type(p).__name__ for p in net.populations.values()} == {"CubaNeuron"}
    cuba = LavaBackend().build(g).run(x, probes=PROBES)
    assert int(lif.probes["a/s"].sum()) > 0
    for key in PROBES:
        assert np.array_equal(lif.probes[key], cuba.probes[key]), key


def test_lava_finds_exactly_snnc_s_model_for_each_process():
    """Lava's model discovery (which runs every module of procs/ again under its bare name) finds one
    model per snnc process, its own, fixed_pt on CPU: the shared CubaCompartment base is no model."""
    from lava.magma.compiler.compiler_graphs import ProcGroupDiGraphs
    from lava.magma.core.resources import CPU

    from snnc.backends.lava.procs.cuba import CubaNeuron, PyCubaNeuronFixed
    from snnc.backends.lava.procs.refractory import CubaRefractory, PyCubaRefractoryFixed

    lif = {"shape": (2,), "du": 1, "dv": 2, "vth": 3, "bias_mant": 4, "bias_exp": 0}
    for proc, model, own in ((CubaNeuron(**lif), PyCubaNeuronFixed, {"spiked", "v_reset", "vth_hi", "vth_lo"}),
                             (CubaRefractory(**lif, refractory_period=2), PyCubaRefractoryFixed, {"refractory"})):
        assert ProcGroupDiGraphs._find_proc_models(proc) == [model]
        assert model.tags == ["fixed_pt"] and model.required_resources == [CPU]
        assert {v.name for v in proc.vars} == {"u", "v", "du", "dv", "vth", "bias_mant", "bias_exp"} | own
        assert proc.vth.init.tolist() == [3, 3] and proc.bias_mant.init.tolist() == [4, 4]
