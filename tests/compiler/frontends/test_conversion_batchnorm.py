"""BatchNorm folding and unsupported-module errors of `quantize_model` (issue 17).

The folded network is checked against an independent numpy integer forward pass (naive conv loops,
floor division, clamp) and the chip's spike counts on the bit-exact sim."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from snnc.compiler.frontends.conversion.chip import IntGridLayer, SumPool2d, convert_to_chip, quantize_model
from snnc.ir.errors import UnsupportedNodeError


def _numpy_integer_forward(net, x: np.ndarray) -> list[np.ndarray]:
    """Own integer forward pass: int64 throughout, no torch ops on the data."""
    n = np.rint(np.clip(np.rint(x / net.input_scale), *net.input_range)).astype(np.int64)
    outs = []
    for layer in net.layers:
        if isinstance(layer, SumPool2d):
            k0, k1 = layer.kernel_size
            b, c, h, w = n.shape
            n = n[:, :, : h // k0 * k0, : w // k1 * k1].reshape(b, c, h // k0, k0, w // k1, k1).sum(axis=(3, 5))
        elif isinstance(layer, nn.Flatten):
            n = n.reshape(len(n), -1)
        else:
            q = layer.int_weight().numpy().astype(np.int64)
            bias = layer.int_bias().numpy().astype(np.int64)
            if q.ndim == 2:
                z = n @ q.T + bias
            else:
                (p0, p1), (s0, s1) = layer.op.padding, layer.op.stride
                xp = np.pad(n, ((0, 0), (0, 0), (p0, p0), (p1, p1)))
                co, ci, kh, kw = q.shape
                ho, wo = (xp.shape[2] - kh) // s0 + 1, (xp.shape[3] - kw) // s1 + 1
                z = np.zeros((len(n), co, ho, wo), dtype=np.int64)
                for i in range(ho):
                    for j in range(wo):
                        patch = xp[:, :, i * s0: i * s0 + kh, j * s1: j * s1 + kw]
                        z[:, :, i, j] = np.einsum("bchw,ochw->bo", patch, q)
                z += bias[None, :, None, None]
            n = np.clip(z // layer.step, 0, layer.levels) if layer.act else z
            outs.append(n)
    return outs


def _bn_model(seed: int):
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(3 * 4 * 4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 4),
    ).double()
    for bn in (model[1], model[6]):  # non-trivial statistics and affine parameters
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.2, 2.0)
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.3, 0.3)
    return model.eval()


def test_batchnorm_folds_and_chip_counts_equal_numpy_integers():
    model = _bn_model(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, size=(24, 1, 8, 8)).astype(np.float64)
    net = quantize_model(model, torch.as_tensor(x), levels=4, input_range=(0, 16))
    assert sum(isinstance(m, IntGridLayer) for m in net.layers) == 3  # BN absorbed, no extra layer
    expected = _numpy_integer_forward(net, x)
    torch_int = [t.numpy() for t in net.integer_forward(torch.as_tensor(x))]
    for e, t in zip(expected, torch_int):
        np.testing.assert_array_equal(e, t)
    assert expected[0].max() > 0 and expected[1].max() > 0  # layers are not dead
    conv = convert_to_chip(net, (1, 8, 8))
    result = conv.run(torch.as_tensor(x), backend="sim")
    counts = conv.layer_counts(result)
    hidden = [layer["name"] for layer in conv.layers if layer["act"]]
    for name, exp in zip(hidden, expected):
        np.testing.assert_array_equal(counts[name], exp.reshape(counts[name].shape), err_msg=name)
    np.testing.assert_array_equal(conv.activations(result), expected[-1])


def test_folded_float_equals_batchnorm_float():
    """The folded float ops compute what Conv/Linear + eval BatchNorm compute (before any rounding)."""
    from snnc.compiler.frontends.conversion.chip import _fold_batchnorm

    model = _bn_model(1)
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    folded = _fold_batchnorm(model[0], model[1], where="test")
    np.testing.assert_allclose(folded(x).detach().numpy(), model[1](model[0](x)).detach().numpy(), atol=1e-12)
    h = torch.randn(5, 48, dtype=torch.float64)
    folded = _fold_batchnorm(model[5], model[6], where="test")
    np.testing.assert_allclose(folded(h).detach().numpy(), model[6](model[5](h)).detach().numpy(), atol=1e-12)


@pytest.mark.parametrize("module,index,hint", [
    (nn.AdaptiveAvgPool2d(4), 2, "AvgPool2d"),
    (nn.Tanh(), 1, "Hardtanh"),
])
def test_unsupported_module_names_module_index_and_alternative(module, index, hint):
    layers = [nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), module, nn.Flatten(), nn.Linear(2 * 4 * 4, 3)]
    if index == 1:
        layers = [nn.Conv2d(1, 2, 3, padding=1), module, nn.Flatten(), nn.Linear(2 * 8 * 8, 3)]
    model = nn.Sequential(*layers).double()
    x = torch.randint(0, 17, (4, 1, 8, 8)).double()
    with pytest.raises(UnsupportedNodeError) as err:
        quantize_model(model, x, levels=4, input_range=(0, 16))
    text = str(err.value)
    assert type(module).__name__ in text and hint in text


@pytest.mark.lava
def test_batchnorm_folded_network_on_lava_equals_numpy_integers():
    from snnc.backends.base import get_backend

    model = _bn_model(0)
    x = np.random.default_rng(0).integers(0, 17, size=(24, 1, 8, 8)).astype(np.float64)
    net = quantize_model(model, torch.as_tensor(x), levels=4, input_range=(0, 16))
    conv = convert_to_chip(net, (1, 8, 8))
    lava = get_backend("lava").build(conv.chip).run(conv.encode(torch.as_tensor(x[:2])), steps=conv.steps)
    np.testing.assert_array_equal(conv.activations(lava), _numpy_integer_forward(net, x[:2])[-1])
