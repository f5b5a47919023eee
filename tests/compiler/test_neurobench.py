"""snnc's NeuroBench metrics against the neurobench package itself (2.3.0, installed --no-deps)
on the same layers, weights and inputs."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn
from neurobench.metrics.static import ConnectionSparsity, Footprint
from neurobench.metrics.utils.layers import single_layer_MACs

from snnc.compiler.analysis.neurobench import (
    activation_sparsity,
    connection_sparsity,
    footprint,
    membrane_updates,
    synaptic_operations,
)


class _Wrapped:
    """The one method neurobench's static metrics call on a NeuroBenchModel."""

    def __init__(self, net):
        self.net = net

    def __net__(self):
        return self.net


def _pruned(seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, 4))
    with torch.no_grad():
        for p in (net[0].weight, net[3].weight):
            p[torch.rand_like(p) < 0.4] = 0
    return net


def test_static_metrics_equal_neurobench():
    net = _pruned(0)
    assert footprint(net) == Footprint()(_Wrapped(net))
    ours = connection_sparsity([net[0].weight.detach().numpy(), net[3].weight.detach().numpy()])
    assert ours == ConnectionSparsity()(_Wrapped(net)) and 0.2 < ours < 0.6


def _conv_matrix(conv, in_shape):
    """The conv as a sparse [out, in] matrix: column j = the conv of unit input j (taps stored)."""
    n_in = int(np.prod(in_shape))
    rows, cols, vals = [], [], []
    w = conv.weight.detach().clone()
    with torch.no_grad():
        marker = conv.weight.detach().clone()
        marker[:] = 1  # structural taps, including zero weights
        for j in range(n_in):
            e = torch.zeros(1, n_in)
            e[0, j] = 1
            e = e.reshape(1, *in_shape)
            taps = torch.nn.functional.conv2d(e, marker, None, conv.stride, conv.padding).reshape(-1)
            val = torch.nn.functional.conv2d(e, w, None, conv.stride, conv.padding).reshape(-1)
            for i in torch.nonzero(taps).reshape(-1).tolist():
                rows.append(i)
                cols.append(j)
                vals.append(float(val[i]))
    out = int(torch.nn.functional.conv2d(torch.zeros(1, *in_shape), w, None, conv.stride, conv.padding).numel())
    return sp.csr_matrix((vals, (rows, cols)), shape=(out, n_in))


def test_synaptic_operations_equal_neurobench():
    """Spiking inputs (ACs) over 4 steps and one graded call (MACs), on a pruned conv and linear."""
    net = _pruned(1)
    rng = np.random.default_rng(1)
    batch, steps = 3, 4
    spikes = [torch.as_tensor((rng.random((batch, 1, 5, 5)) < 0.3).astype(np.float32)) for _ in range(steps)]
    graded = torch.as_tensor(rng.integers(0, 4, size=(batch, 75)).astype(np.float32))
    eff_ac = eff_mac = dense = 0
    for x in spikes:
        ops, spiking = single_layer_MACs(x, net[0])
        assert spiking
        eff_ac += ops
        dense += single_layer_MACs(x, net[0], total=True)[0]
    ops, spiking = single_layer_MACs(graded, net[3])
    assert not spiking
    eff_mac += ops
    dense += single_layer_MACs(graded, net[3], total=True)[0]
    conv_w = _conv_matrix(net[0], (1, 5, 5))
    calls = [(conv_w, x.reshape(batch, -1).numpy()) for x in spikes]
    calls.append((net[3].weight.detach().numpy(), graded.numpy()))
    ours = synaptic_operations(calls, samples=batch)
    assert ours == {"Effective_MACs": eff_mac / batch, "Effective_ACs": eff_ac / batch, "Dense": dense / batch}
    assert 0 < ours["Effective_ACs"] < ours["Dense"]


def test_activation_sparsity_and_membrane_updates_by_hand():
    a = [np.array([[0, 1, 0, 0]]), np.array([[2, 0]])]
    assert activation_sparsity(a) == 4 / 6
    v = np.array([[[0.0, 1.0]], [[0.5, 1.0]], [[0.5, 0.0]]])  # T=3, B=1, N=2: 2 + 1 + 1 updates
    assert membrane_updates([v], samples=1) == 4.0


def test_chip_metrics_equal_neurobench_on_the_recorded_spikes():
    """A sim run's counters give what neurobench's single_layer_MACs gives on the same spikes."""
    from snnc.backends.base import get_backend
    from snnc.compiler.analysis.neurobench import chip_metrics
    from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection

    g = ChipGraph()
    g.add(InputPopulation("in", (3,)))
    g.add(Population("h", (2,), du=4095, dv=0, vth=10))
    g.add(Population("o", (2,), du=4095, dv=0, vth=10))
    wp, wq = np.array([[40, 0, 30], [0, 24, -6]]), np.array([[20, 0], [16, 14]])
    g.add(Projection("p", "in", "h", wp))
    g.add(Projection("q", "h", "o", wq))
    g.outputs["out"] = OutputPort("o")
    x = (np.random.default_rng(0).random((3, 20, 3)) < 0.5).astype(np.float32)
    result = get_backend("sim").build(g).run(x, probes=["h"])
    h = (np.asarray(result.probes["h"]) != 0).astype(np.float32)
    lp, lq = nn.Linear(3, 2, bias=False), nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lp.weight.copy_(torch.as_tensor(wp, dtype=torch.float32))
        lq.weight.copy_(torch.as_tensor(wq, dtype=torch.float32))
    eff = dense = 0
    for t in range(20):  # one layer call per step, as snnTorch models are stepped
        for layer, inp in ((lp, x[:, t]), (lq, h[:, t])):
            eff += single_layer_MACs(torch.as_tensor(inp), layer)[0]
            dense += single_layer_MACs(torch.as_tensor(inp), layer, total=True)[0]
    m = chip_metrics(g, result.activity)
    assert (m["Effective_ACs"], m["Effective_MACs"], m["Dense"]) == (eff / 3, 0, dense / 3)
    spikes = h.sum() + np.asarray(result.outputs["out"]).sum()
    assert m["activation_sparsity"] == 1 - spikes / (4 * 20 * 3)
    assert m["connection_sparsity"] == round(3 / 10, 4)  # zeros: 2 in wp, 1 in wq, of 10 entries


def test_chip_metrics_of_a_conv_equal_neurobench():
    """A conv projection (zero taps and padding included): effective ACs and Dense equal
    neurobench's single_layer_MACs on an nn.Conv2d with the same kernel and the same spikes."""
    from snnc.backends.base import get_backend
    from snnc.compiler.analysis.neurobench import chip_metrics
    from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, OutputPort, Population, Projection

    rng = np.random.default_rng(4)
    k = rng.integers(-20, 21, size=(2, 1, 3, 3))
    k[0, 0, 1, 1] = k[1, 0, 0, 2] = 0  # zero taps: connections for Dense, not for effective ops
    geom = ConvGeometry((1, 5, 5), (2, 3, 3), (3, 3), stride=(2, 2), padding=(1, 1))
    g = ChipGraph()
    g.add(InputPopulation("in", (1, 5, 5)))
    g.add(Population("h", (2, 3, 3), du=4095, dv=0, vth=10))
    g.add(Projection("c", "in", "h", k, kind="conv", conv=geom))
    g.outputs["out"] = OutputPort("h")
    x = (rng.random((2, 6, 1, 5, 5)) < 0.4).astype(np.float32)
    result = get_backend("sim").build(g).run(x)
    conv = nn.Conv2d(1, 2, 3, stride=2, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(k, dtype=torch.float32))
    eff = dense = 0
    for t in range(6):
        inp = torch.as_tensor(x[:, t])
        eff += single_layer_MACs(inp, conv)[0]
        dense += single_layer_MACs(inp, conv, total=True)[0]
    m = chip_metrics(g, result.activity)
    assert (m["Effective_ACs"], m["Dense"]) == (eff / 2, dense / 2)
    assert 0 < m["Effective_ACs"] < m["Dense"]


def test_report_states_the_neurobench_metrics(tmp_path):
    """report.json carries chip_metrics of the run plus the chip's footprint (bit budget / 8);
    report.html shows them in their own section."""
    import json

    from snnc.backends.base import get_backend
    from snnc.compiler.analysis.budget import bit_budget
    from snnc.compiler.analysis.neurobench import chip_metrics
    from snnc.compiler.report import write_report
    from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection

    g = ChipGraph()
    g.add(InputPopulation("in", (3,)))
    g.add(Population("h", (2,), du=4095, dv=0, vth=10))
    g.add(Projection("p", "in", "h", np.array([[40, 0, 30], [0, 24, -6]])))
    g.outputs["out"] = OutputPort("h")
    x = (np.random.default_rng(5).random((2, 10, 3)) < 0.5).astype(np.float32)
    result = get_backend("sim").build(g).run(x)
    paths = write_report(tmp_path, graph=g, run_result=result)
    data = json.loads(paths["json"].read_text())["neurobench"]
    expected = chip_metrics(g, result.activity)
    assert {k: data[k] for k in expected} == expected and expected["Effective_ACs"] > 0
    assert data["footprint_bytes"] == bit_budget(g, warn=False).memory_bits / 8
    section = paths["html"].read_text().split('<section id="neurobench">')[1].split("</section>")[0]
    assert "Effective_ACs" in section and "connection_sparsity" in section


class _MemHook:
    """What neurobench's ActivationHook records on a spiking layer, step by step: the layer's
    membrane before (pre_fire) and after (post_fire) each forward call."""

    def __init__(self, v):  # v [T, batch, ...]
        zero = torch.zeros_like(torch.as_tensor(v[0]))
        self.layer = nn.Identity()
        self.post_fire_mem_potential = [torch.as_tensor(x) for x in v]
        self.pre_fire_mem_potential = [zero, *self.post_fire_mem_potential[:-1]]


def test_membrane_updates_of_a_sim_run_equal_neurobench(tmp_path):
    """The sim's v probes of both layers, counted by neurobench's own MembraneUpdates metric (fed
    as its hooks record an stepped layer), equal report.json's membrane_updates."""
    import json
    from types import SimpleNamespace

    from neurobench.metrics.workload import MembraneUpdates

    from snnc.backends.base import get_backend
    from snnc.compiler.report import write_report
    from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection

    g = ChipGraph()
    g.add(InputPopulation("in", (3,)))
    g.add(Population("h", (2,), du=4095, dv=0, vth=10))
    g.add(Population("o", (2,), du=4095, dv=0, vth=10))
    g.add(Projection("p", "in", "h", np.array([[40, 0, 30], [0, 24, -6]])))
    g.add(Projection("q", "h", "o", np.array([[20, 0], [16, 14]])))
    g.outputs["out"] = OutputPort("o")
    x = (np.random.default_rng(6).random((3, 12, 3)) < 0.3).astype(np.float32)
    result = get_backend("sim").build(g).run(x, probes=["h/v", "o/v"])
    hooks = [_MemHook(np.moveaxis(np.asarray(result.probes[f"{n}/v"]), 1, 0)) for n in ("h", "o")]
    model = SimpleNamespace(activation_hooks=hooks)
    expected = MembraneUpdates()(model, None, (torch.as_tensor(x), None))
    assert 4 < expected < 4 * 12  # some neurons keep v on some steps
    paths = write_report(tmp_path, graph=g, run_result=result)
    assert json.loads(paths["json"].read_text())["neurobench"]["membrane_updates"] == expected
    without_v = get_backend("sim").build(g).run(x)
    assert "membrane_updates" not in json.loads(
        write_report(tmp_path / "b", graph=g, run_result=without_v)["json"].read_text())["neurobench"]
