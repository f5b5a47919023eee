"""The quantizer's teacher-forced integer re-simulator (`Quantize._teacher_chip`), checked directly
against the simulator: fed the chip's own spikes as the "float" teacher it must count zero flipped
decisions, and exactly k when k decisions of the teacher are flipped at the last step."""
from __future__ import annotations

import nir
import numpy as np
import pytest

from snnc.compiler.passes.canonicalize import Canonicalize
from snnc.compiler.passes.fuse import Fuse
from snnc.compiler.passes.netlist import FloatRun, lower, simulate
from snnc.compiler.passes.quantize import Quantize
from snnc.compiler.passes.timing import Timing
from snnc.backends.sim import SimBackend
from snnc.ir.chip import ChipGraph, InputPopulation, Population
from snnc.ir.fixed_point import du_from_alpha, dv_from_beta
from snnc.ir.fixed_point.units import STATE_UNIT
from snnc.ir.graph import Graph

DT = 1e-4


def one_layer(seed: int, reset_mode: str, n_in=6, n=5) -> Graph:
    rng = np.random.default_rng(seed)
    nodes = {
        "in": nir.Input(input_type=np.array([n_in])),
        "fc": nir.Affine(weight=rng.normal(0.3, 0.4, (n, n_in)), bias=np.zeros(n)),
        "lif": nir.CubaLIF(tau_syn=np.full(n, 3e-4), tau_mem=np.full(n, 2e-3), r=np.ones(n) * 20, v_leak=np.zeros(n),
                           v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.full(n, 3.0), metadata={"reset_mode": reset_mode}),
        "out": nir.Output(output_type=np.array([n])),
    }
    return Graph.from_nir(nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")], type_check=False))


@pytest.mark.parametrize("reset_mode", ["zero", "subtract", "none"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_teacher_counts_flips_exactly(seed, reset_mode):
    g = one_layer(seed, reset_mode)
    x = (np.random.default_rng(seed + 10).random((2, 120, 6)) < 0.4).astype(float)
    # the quantizer's own view of the layer, as in Quantize.run
    q = Quantize(refine=False, bias="mant")
    net = lower(Timing().run(Fuse().run(Canonicalize(dt=DT).run(g).graph).graph).graph)
    run = simulate(net, {"in": x})
    pop = net.pops["lif"]
    (proj,) = net.incoming("lif")
    weights = [q._weights(proj, {"in": 1.0})]
    thr = pop.cuba.thr.ravel()
    # a chip factor whose threshold k * thr / 64 lies 0.7 past an integer: rounding matters
    k = STATE_UNIT * 40.7
    trial = q._evaluate(k, weights, thr, np.zeros(pop.size))
    du, dv = du_from_alpha(pop.cuba.alpha.ravel()), dv_from_beta(pop.cuba.beta.ravel())
    chip = ChipGraph()
    chip.add(InputPopulation("in", (6,)))
    chip.add(Population("lif", (pop.size,), du=du, dv=dv, vth=np.rint(k * thr / STATE_UNIT).astype(np.int64), reset_mode=reset_mode))
    for part in q._projections(proj, weights[0], trial["q"][0], trial["e"][0], 0, 0):
        chip.add(part)
    spikes = SimBackend().build(chip).run(x, probes=["lif/s"], steps=x.shape[1] + 1).probes["lif/s"][:, 1:]
    assert spikes.sum() > 10
    teacher = np.transpose(spikes, (1, 0, 2)).astype(float)  # FloatRun layout [T, B, n]
    forced = FloatRun({**run.outputs, "lif": teacher}, run.i_absmax, run.v_max, run.v_min, run.params, run.resets)
    v_float = np.zeros(teacher.shape)
    args = (weights, trial, k, thr, du, dv, "lif", {}, forced, {"in": 1.0}, v_float)
    assert q._teacher_chip("lif", [proj], *args)[0] == 0  # the chip's own spikes: nothing flips
    flipped = teacher.copy()
    flipped[-1, 0, :3] = 1 - flipped[-1, 0, :3]
    forced.outputs["lif"] = flipped
    assert q._teacher_chip("lif", [proj], *args)[0] == 3
