"""from_torch: snnTorch spikes and torch values reproduced by the reference backend on the NIR graph.

snnTorch runs in float64 with a Heaviside spike function that keeps the dtype (its default
surrogate returns float32 spikes), so any disagreement is a mapping error, not rounding.
"""
from __future__ import annotations

import math

import nir
import numpy as np
import pytest
import snntorch as snn
from snntorch import utils as snn_utils
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.backends.base import get_backend
from snnc.compiler.frontends.torch import from_torch
from snnc.ir.errors import ParameterError, ShapeError, SnncError, UnsupportedNodeError

DT = 1e-4
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def heaviside(x):
    return (x > 0).to(x.dtype)


def run_torch(model: nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    """One forward call per step on x [T, B, ...]; each output stacked to [B, T, ...]."""
    snn_utils.reset(model)
    steps = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            out = model(x[t])
            steps.append(out if isinstance(out, tuple) else (out,))
    return [torch.stack([s[i] for s in steps], 1).numpy() for i in range(len(steps[0]))]


def run_reference(graph: nir.NIRGraph, x: torch.Tensor, dt: float = DT) -> list[np.ndarray]:
    res = get_backend("reference").build(graph, dt=dt).run(x.transpose(0, 1).numpy())
    names = sorted(res.outputs, key=lambda n: (len(n), n))
    return [res.outputs[n] for n in names]


# -- snnTorch neurons -----------------------------------------------------------------------------
def make_neuron(kind, mech, n, beta, alpha, thr, rec_kind, learn):
    common = dict(threshold=thr, init_hidden=True, reset_mechanism=mech, spike_grad=heaviside, learn_threshold=learn, learn_beta=learn)
    if kind == "Leaky":
        return snn.Leaky(beta=beta, **common)
    if kind == "Synaptic":
        return snn.Synaptic(alpha=alpha, beta=beta, learn_alpha=learn, **common)
    rec = dict(linear_features=n) if rec_kind == "linear" else dict(all_to_all=False, V=torch.rand(n) - 0.3)
    if kind == "RLeaky":
        return snn.RLeaky(beta=beta, **rec, **common)
    return snn.RSynaptic(alpha=alpha, beta=beta, learn_alpha=learn, **rec, **common)


class TwoLayer(nn.Module):
    """Linear -> neuron -> Linear -> Leaky(zero); returns both layers' spikes."""

    def __init__(self, n_in, n_hidden, n_out, neuron):
        super().__init__()
        self.fc1 = nn.Linear(n_in, n_hidden)
        self.lif1 = neuron
        self.fc2 = nn.Linear(n_hidden, n_out)
        self.lif2 = snn.Leaky(beta=0.7, threshold=0.5, init_hidden=True, reset_mechanism="zero", spike_grad=heaviside)

    def forward(self, x):
        s1 = self.lif1(self.fc1(x))
        return s1, self.lif2(self.fc2(s1))


@settings(max_examples=24, **SETTINGS)
@given(
    kind=st.sampled_from(["Leaky", "Synaptic", "RLeaky", "RSynaptic"]),
    mech=st.sampled_from(["zero", "subtract", "none"]),
    per_neuron=st.booleans(),
    rec_kind=st.sampled_from(["linear", "one_to_one"]),
    seed=st.integers(0, 2**16),
)
def test_snntorch_spikes_match_reference_exact_reset(kind, mech, per_neuron, rec_kind, seed):
    torch.manual_seed(seed)
    n = 7
    beta = torch.rand(n) * 0.9 if per_neuron else 0.85
    alpha = torch.rand(n) * 0.9 if per_neuron else 0.6
    thr = torch.rand(n) + 0.4 if per_neuron else 0.8
    model = TwoLayer(5, n, 3, make_neuron(kind, mech, n, beta, alpha, thr, rec_kind, learn=per_neuron)).double()
    x = torch.rand(30, 3, 5, dtype=torch.float64) * 1.2
    expect = run_torch(model, x)
    graph = from_torch(model, (5,), DT, reset="exact")
    got = run_reference(graph, x)
    assert sum(e.sum() for e in expect) > 0, "test model never spikes"
    for e, g in zip(expect, got):
        np.testing.assert_array_equal(g, e)


@settings(max_examples=8, **SETTINGS)
@given(seed=st.integers(0, 2**16), beta_one=st.booleans(), gsf=st.sampled_from([1.0, 0.5]))
def test_leaky_zero_reset_maps_natively_and_exactly(seed, beta_one, gsf):
    """Leaky(reset='zero') is NIR's LIF (IF for beta = 1) in the default strict mode."""
    torch.manual_seed(seed)
    neuron = snn.Leaky(beta=1.0 if beta_one else 0.9, threshold=0.6, init_hidden=True, reset_mechanism="zero",
                       spike_grad=heaviside, graded_spikes_factor=gsf)
    model = TwoLayer(4, 6, 2, neuron).double()
    x = torch.rand(25, 2, 4, dtype=torch.float64)
    graph = from_torch(model, (4,))
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert ("IF" if beta_one else "LIF") in kinds and "Threshold" not in kinds
    for e, g in zip(run_torch(model, x), run_reference(graph, x)):
        np.testing.assert_array_equal(g, e)


def test_conv_snn_spikes_match():
    torch.manual_seed(3)
    sg = heaviside
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), snn.Leaky(beta=0.8, init_hidden=True, reset_mechanism="zero", spike_grad=sg),
        nn.AvgPool2d(2), nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * 3 * 3, 5),
        snn.Synaptic(alpha=0.5, beta=0.9, init_hidden=True, reset_mechanism="subtract", spike_grad=sg),
    ).double()
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.2, 0.2)
        model[1].running_var.uniform_(0.5, 2.0)
        model[1].weight.uniform_(0.5, 1.5)
    model.eval()
    x = torch.rand(20, 2, 2, 6, 6, dtype=torch.float64) * 2
    graph = from_torch(model, (2, 6, 6), reset="exact")
    (expect,) = run_torch(model, x)
    (got,) = run_reference(graph, x)
    assert expect.sum() > 0
    np.testing.assert_array_equal(got, expect)


def test_parameter_mapping_follows_snntorch_dt_convention():
    """tau = dt / (1 - beta), r = tau / dt, w_in = tau_syn / dt, v_reset = 0."""
    model = nn.Sequential(nn.Linear(3, 2), snn.Synaptic(alpha=0.75, beta=0.9, threshold=1.5, init_hidden=True, reset_mechanism="zero"))
    graph = from_torch(model, (3,), dt=1e-3, reset="nir")
    (cuba,) = [n for n in graph.nodes.values() if isinstance(n, nir.CubaLIF)]
    np.testing.assert_allclose(cuba.tau_mem, 1e-3 / 0.1, rtol=1e-6)  # beta is float32 in snnTorch
    np.testing.assert_allclose(cuba.tau_syn, 1e-3 / 0.25)
    np.testing.assert_allclose(cuba.r, 10.0, rtol=1e-6)
    np.testing.assert_allclose(cuba.w_in, 4.0)
    np.testing.assert_array_equal(cuba.v_threshold, [1.5, 1.5])
    np.testing.assert_array_equal(cuba.v_reset, [0.0, 0.0])
    assert graph.metadata["dt"] == 1e-3


def test_nir_mode_differs_from_snntorch_for_synaptic_zero_reset():
    """Why strict mode refuses Synaptic(reset='zero'): snnTorch clears the step after a spike."""
    neuron = snn.Synaptic(alpha=0.5, beta=0.9, threshold=1.0, init_hidden=True, reset_mechanism="zero", spike_grad=heaviside)
    model = nn.Sequential(nn.Linear(1, 1, bias=False), neuron).double()
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    x = torch.full((8, 1, 1), 3.0, dtype=torch.float64)
    (expect,) = run_torch(model, x)
    assert expect[0, :, 0].tolist() == [1, 0, 1, 0, 1, 0, 1, 0]
    (native,) = run_reference(from_torch(model, (1,), reset="nir"), x)
    assert native[0, :, 0].tolist() == [1] * 8
    (exact,) = run_reference(from_torch(model, (1,), reset="exact"), x)
    np.testing.assert_array_equal(exact, expect)
    with pytest.raises(UnsupportedNodeError, match="refractory") as err:
        from_torch(model, (1,))
    assert "'1'" in str(err.value) and "reset='exact'" in str(err.value)


@settings(max_examples=16, **SETTINGS)
@given(
    kind=st.sampled_from(["Leaky", "Synaptic", "RLeaky", "RSynaptic"]),
    mech=st.sampled_from(["subtract", "none"]),
    per_neuron=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_subtract_and_none_reset_map_to_single_nodes_in_every_mode(kind, mech, per_neuron, seed):
    """snnTorch's default subtract reset (and none) become one neuron node whose metadata states the
    mode, in the default strict mode too, and the reference reproduces snnTorch spike for spike."""
    torch.manual_seed(seed)
    n = 6
    beta = torch.rand(n) * 0.9 if per_neuron else 0.85
    alpha = torch.rand(n) * 0.9 if per_neuron else 0.6
    thr = torch.rand(n) + 0.4 if per_neuron else 0.8
    model = TwoLayer(5, n, 3, make_neuron(kind, mech, n, beta, alpha, thr, "linear", learn=per_neuron)).double()
    x = torch.rand(30, 3, 5, dtype=torch.float64) * 1.2
    expect = run_torch(model, x)
    graph = from_torch(model, (5,), DT)
    neurons = {name: node for name, node in graph.nodes.items() if isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF))}
    assert len(neurons) == 2 and {node.metadata["reset_mode"] for node in neurons.values()} == {mech, "zero"}
    assert not any(isinstance(node, (nir.Threshold, nir.LI)) for node in graph.nodes.values())
    got = run_reference(graph, x)
    assert sum(e.sum() for e in expect) > 0, "test model never spikes"
    for e, g in zip(expect, got):
        np.testing.assert_array_equal(g, e)


def test_membrane_output_is_dropped_but_cannot_feed_a_layer():
    class Net(nn.Module):
        def __init__(self, use_mem):
            super().__init__()
            self.fc = nn.Linear(3, 4)
            self.lif = snn.Leaky(beta=0.9, reset_mechanism="zero", spike_grad=heaviside)
            self.out = nn.Linear(4, 2)
            self.use_mem = use_mem

        def forward(self, x):
            mem = self.lif.reset_mem()
            spk, mem = self.lif(self.fc(x), mem)
            return self.out(mem) if self.use_mem else (spk, mem)

    graph = from_torch(Net(False), (3,))
    assert [n for n, v in graph.nodes.items() if isinstance(v, nir.Output)] == ["output"]
    with pytest.raises(UnsupportedNodeError, match="membrane potential of 'lif'"):
        from_torch(Net(True), (3,))


# -- plain torch models ---------------------------------------------------------------------------
class Residual(nn.Module):
    def __init__(self, c, use_bn):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c) if use_bn else nn.Identity()
        self.conv2 = nn.Conv2d(c, c, 3, padding="same", bias=False)

    def forward(self, x):
        y = self.bn(self.conv1(x))
        return x + self.conv2(y) * 0.5


@settings(max_examples=12, **SETTINGS)
@given(
    arch=st.sampled_from(["mlp", "conv", "conv1d", "residual"]),
    use_bn=st.booleans(),
    seed=st.integers(0, 2**16),
    stride=st.sampled_from([1, 2]),
)
def test_pure_torch_values_match(arch, use_bn, seed, stride):
    torch.manual_seed(seed)
    if arch == "mlp":
        layers = [nn.Linear(6, 8)] + ([nn.BatchNorm1d(8)] if use_bn else []) + [nn.Dropout(0.2), nn.Linear(8, 3, bias=False)]
        model, shape = nn.Sequential(*layers), (6,)
    elif arch == "conv":
        layers = [nn.Conv2d(2, 3, 3, stride=stride, padding=1)] + ([nn.BatchNorm2d(3)] if use_bn else [])
        model, shape = nn.Sequential(*layers, nn.AvgPool2d(2), nn.Flatten(), nn.Linear(3 * (4 // stride) ** 2, 4)), (2, 8, 8)
    elif arch == "conv1d":
        layers = [nn.Conv1d(2, 4, 3, stride=stride, dilation=2)] + ([nn.BatchNorm1d(4)] if use_bn else [])
        model, shape = nn.Sequential(*layers, nn.Flatten(), nn.Identity()), (2, 11)
    else:
        model, shape = nn.Sequential(Residual(2, use_bn), nn.Flatten()), (2, 5, 5)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            with torch.no_grad():
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 2)
                m.bias.uniform_(-1, 1)
    model = model.double().eval()
    x = torch.randn(4, 2, *shape, dtype=torch.float64)
    (expect,) = run_torch(model, x)
    (got,) = run_reference(from_torch(model, shape), x)
    np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-9)


def test_nir_file_round_trip(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), snn.Leaky(beta=0.8, init_hidden=True, reset_mechanism="subtract", spike_grad=heaviside)).double()
    graph = from_torch(model, (3,), reset="exact")
    nir.write(str(tmp_path / "m.nir"), graph)
    x = torch.rand(20, 2, 3, dtype=torch.float64) * 2
    (expect,) = run_torch(model, x)
    res = get_backend("reference").build(str(tmp_path / "m.nir"), dt=DT).run(x.transpose(0, 1).numpy())
    np.testing.assert_array_equal(res.output, expect)


def test_loader_dispatches_torch_modules():
    from snnc.compiler.frontends.loader import load_model
    from snnc.ir.graph import Graph

    g = load_model(nn.Sequential(nn.Linear(3, 2), snn.Leaky(beta=0.5, init_hidden=True, reset_mechanism="zero")), sample_input_shape=(3,))
    g = g if isinstance(g, Graph) else Graph.from_nir(g)
    assert g.out_shapes["output"] == (2,)


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "layer, name, hint",
    [
        (nn.MaxPool2d(2), "MaxPool2d", "AvgPool2d"),
        (nn.ReLU(), "ReLU", "QuantReLU"),
        (nn.Upsample(scale_factor=2), "Upsample", "supported"),
    ],
)
def test_unsupported_modules_name_the_module_and_the_alternative(layer, name, hint):
    model = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3), layer), nn.Flatten())
    with pytest.raises(UnsupportedNodeError) as err:
        from_torch(model, (1, 6, 6))
    msg = str(err.value)
    assert "'0.1'" in msg and name in msg and hint in msg


def test_lstm_and_functional_calls_are_rejected():
    class Lstm(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(3, 4)

        def forward(self, x):
            return self.rnn(x)[0]

    with pytest.raises(UnsupportedNodeError, match="LSTM.*RLeaky"):
        from_torch(Lstm(), (2, 3))

    class Func(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return torch.relu(self.fc(x))

    with pytest.raises(UnsupportedNodeError, match="relu"):
        from_torch(Func(), (3,))


def test_untraceable_and_misused_models():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else x

    with pytest.raises(UnsupportedNodeError, match="torch.fx"):
        from_torch(Branchy(), (2,))

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.lif = snn.Leaky(beta=0.5, init_hidden=True, reset_mechanism="zero")

        def forward(self, x):
            return self.lif(self.fc(self.lif(x)))

    with pytest.raises(UnsupportedNodeError, match="more than once"):
        from_torch(Twice(), (2,))
    bn_first = nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 2))
    with pytest.raises(UnsupportedNodeError, match="BatchNorm must directly follow"):
        from_torch(bn_first, (3,))
    with pytest.raises(ShapeError, match="does not run on an input of shape"):
        from_torch(nn.Linear(3, 2), (4,))
    with pytest.raises(ShapeError):
        from_torch(nn.Linear(3, 2))
    with pytest.raises(ParameterError):
        from_torch(nn.Linear(3, 2), (3,), dt=-1)
    with pytest.raises(ParameterError):
        from_torch(nn.Linear(3, 2), (3,), reset="sometimes")


def test_only_snnc_errors_escape_for_odd_inputs():
    for bad in [(0,), ("a",), (3, -1)]:
        with pytest.raises(SnncError):
            from_torch(nn.Linear(3, 2), bad)
    with pytest.raises(SnncError):
        from_torch("not a module", (3,))
    assert math.isclose(from_torch(nn.Linear(3, 2), torch.zeros(5, 3)).metadata["dt"], 1e-4)


def test_a_network_exported_right_after_a_training_step():
    """snnTorch keeps its hidden state (mem) as autograd results after a training step, which torch
    refuses to deepcopy: from_torch exports the network as it does after a no-grad pass."""
    torch.manual_seed(0)

    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.9, init_hidden=True, reset_mechanism="zero", output=True))

    trained = net()
    x = (torch.rand(5, 4) < 0.5).float()
    spk, mem = trained(x)
    (spk.sum() + mem.sum()).backward()  # the state now holds non-leaf tensors
    assert not trained[1].mem.is_leaf
    graph = from_torch(trained, (4,), dt=1e-4)
    fresh = net()
    with torch.no_grad():
        fresh(x)
    want = from_torch(fresh, (4,), dt=1e-4)
    assert graph.nodes.keys() == want.nodes.keys()
    for name, node in want.nodes.items():
        for field, value in vars(node).items():
            if isinstance(value, np.ndarray):
                assert np.array_equal(getattr(graph.nodes[name], field), value), (name, field)
