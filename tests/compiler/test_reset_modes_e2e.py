"""snnTorch's reset mechanisms end to end: snnTorch -> NIR file -> reference (equal to snnTorch spike
for spike) -> compile with calibration -> sim = Lava, spike counts following the float model."""
from __future__ import annotations

import nir
import numpy as np
import pytest
import snntorch as snn
from snntorch import utils as snn_utils
import torch
from torch import nn

from snnc.backends.base import get_backend
from snnc.compiler.frontends.torch import from_torch
from snnc.compiler.pipeline import compile
from snnc.ir.graph import write_nir

DT = 1e-4


def heaviside(x):
    return (x > 0).to(x.dtype)


class Net(nn.Module):
    def __init__(self, neuron):
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(8, 12), neuron
        self.fc2 = nn.Linear(12, 4)
        self.lif2 = snn.Leaky(beta=0.8, threshold=0.5, init_hidden=True, reset_mechanism="subtract", spike_grad=heaviside)

    def forward(self, x):
        s1 = self.lif1(self.fc1(x))
        return s1, self.lif2(self.fc2(s1))


def neuron(kind: str, mech: str, per_neuron: bool):
    n = 12
    gen = torch.Generator().manual_seed(5)
    beta = torch.rand(n, generator=gen) * 0.3 + 0.65 if per_neuron else 0.85
    thr = torch.rand(n, generator=gen) * 0.5 + 0.5 if per_neuron else 0.8
    common = dict(threshold=thr, init_hidden=True, reset_mechanism=mech, spike_grad=heaviside)
    if kind == "Leaky":
        return snn.Leaky(beta=beta, **common)
    if kind == "Synaptic":
        return snn.Synaptic(alpha=0.5, beta=beta, **common)
    if kind == "RLeaky":
        return snn.RLeaky(beta=beta, linear_features=n, **common)
    return snn.RSynaptic(alpha=0.5, beta=beta, linear_features=n, **common)


def snntorch_run(model, x):
    snn_utils.reset(model)
    with torch.no_grad():
        outs = [model(x[:, t]) for t in range(x.shape[1])]
    return [torch.stack([o[i] for o in outs], 1).detach().numpy() for i in range(2)]


CASES = [("Leaky", "subtract", False), ("Leaky", "none", True), ("Leaky", "zero", True), ("Synaptic", "subtract", True),
         ("RLeaky", "subtract", False), ("RSynaptic", "none", False), ("RSynaptic", "subtract", True)]


@pytest.mark.parametrize("kind, mech, per_neuron", CASES)
def test_snntorch_reset_modes_through_nir_reference_sim_and_lava(kind, mech, per_neuron, tmp_path):
    torch.manual_seed(0)
    model = Net(neuron(kind, mech, per_neuron)).double()
    x = (torch.rand(3, 60, 8, dtype=torch.float64) < 0.3).double()
    hidden, out = snntorch_run(model, x)
    assert hidden.sum() > 30, "the test network must spike"
    path = tmp_path / "model.nir"
    write_nir(from_torch(model, (8,), DT), path)
    stated = {n.metadata.get("reset_mode") for n in nir.read(str(path)).nodes.values() if isinstance(n, (nir.LIF, nir.CubaLIF, nir.IF))}
    assert mech in stated  # the file says how its neurons reset

    ref = get_backend("reference").build(path).run(x.numpy())
    names = sorted(ref.outputs, key=lambda n: (len(n), n))
    assert np.array_equal(ref.outputs[names[0]], hidden) and np.array_equal(ref.outputs[names[1]], out)

    xs = x.numpy()
    result = compile(path, calibrate=xs, **({"shared": ()} if per_neuron else {}))
    assert {p.reset_mode for p in result.chip.populations.values() if p.spiking} >= {mech if mech != "zero" else "zero"}
    steps = xs.shape[1] + result.time_shift
    sim = result.run(xs, backend="sim", steps=steps, raw=True)
    chip_out = {k: result.align(v, output=k)[:, : xs.shape[1]] for k, v in sim.outputs.items()}
    ref_counts = np.concatenate([ref.outputs[n].sum(axis=1).ravel() for n in names])
    chip_counts = np.concatenate([chip_out[n].sum(axis=1).ravel() for n in names])
    corr = np.corrcoef(ref_counts, chip_counts)[0, 1]
    print(f"{kind}/{mech}/per-neuron={per_neuron}: spike-count correlation chip vs float {corr:.4f}")
    assert corr >= 0.95


@pytest.mark.lava
@pytest.mark.parametrize("kind, mech", [("RLeaky", "subtract"), ("Synaptic", "none")])
def test_compiled_reset_modes_run_identically_on_lava(kind, mech, tmp_path):
    torch.manual_seed(1)
    model = Net(neuron(kind, mech, False)).double()
    x = (torch.rand(2, 40, 8, dtype=torch.float64) < 0.3).numpy().astype(float)
    result = compile(from_torch(model, (8,), DT), calibrate=x)
    sim = result.run(x, backend="sim")
    lava = result.run(x, backend="lava")
    assert sum(v.sum() for v in sim.outputs.values()) > 0
    for k in sim.outputs:
        assert np.array_equal(sim.outputs[k], lava.outputs[k]), k
