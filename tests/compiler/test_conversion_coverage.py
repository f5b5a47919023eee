"""Conversion coverage beyond ReLU + sum pooling: exact MaxPool (OR neurons on suffix-coded counts),
signed activations (split-sign pairs, counts -L..L), Conv1d / AvgPool1d / MaxPool1d. Each hidden
neuron's spike count on sim (and Lava) must equal the integer network's activation, which the tests
also recompute independently in numpy (window maxima, floor-divide-clamp)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from snnc.backends.base import get_backend
from snnc.compiler.frontends.conversion.chip import (
    IntGridLayer,
    IntGridNet,
    MaxPoolCounts,
    SumPool2d,
    convert_to_chip,
    quantize_model,
)
from conversion_layers import int_layer
from snnc.ir.errors import UnsupportedNodeError


def _window_max(counts, k, stride, pad):
    """Max over k x k windows of [B, C, H, W] integer counts, -inf padding (numpy, by hand)."""
    b, c, h, w = counts.shape
    padded = np.full((b, c, h + 2 * pad, w + 2 * pad), np.iinfo(np.int64).min)
    padded[:, :, pad:pad + h, pad:pad + w] = counts
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.empty((b, c, ho, wo), np.int64)
    for y in range(ho):
        for x in range(wo):
            out[:, :, y, x] = padded[:, :, y * stride:y * stride + k, x * stride:x * stride + k].max(axis=(2, 3))
    return out


def _max_pool_net(seed):
    rng = np.random.default_rng(seed)
    L = int(rng.integers(1, 6))
    c1, c2 = (int(v) for v in rng.integers(1, 4, size=2))
    q1, q2 = rng.integers(-60, 61, size=(c1, 1, 3, 3)), rng.integers(-60, 61, size=(c2, c1, 3, 3))
    d1, d2 = (max(1, int(v)) for v in (rng.uniform(0.3, 1.2) * 300 / L, rng.uniform(0.3, 1.2) * 60 * c1 / L))
    q3 = rng.integers(-60, 61, size=(4, c2 * 2 * 2))
    net = IntGridNet([
        int_layer(nn.Conv2d(1, c1, 3, padding=1), q1, rng.integers(-d1, d1 + 1, c1), d1, L),
        MaxPoolCounts(2),  # 8x8 -> 4x4
        int_layer(nn.Conv2d(c1, c2, 3, padding=1), q2, rng.integers(-d2, d2 + 1, c2), d2, L),
        MaxPoolCounts(3, 2, 1),  # overlapping, padded: 4x4 -> 2x2
        nn.Flatten(),
        int_layer(nn.Linear(c2 * 4, 4), q3, rng.integers(-50, 51, 4), 1, L, act=False),
    ], input_range=(0, 16))
    x = torch.as_tensor(rng.integers(0, 17, size=(6, 1, 8, 8)).astype(np.float64))
    return net, x


@pytest.mark.parametrize("seed", range(4))
def test_max_pool_counts_are_window_maxima(seed):
    net, x = _max_pool_net(seed)
    conv = convert_to_chip(net, (1, 8, 8))
    assert [layer["name"] for layer in conv.layers] == ["h1", "maxpool2", "h3", "maxpool4", "readout"]
    assert conv.steps == 2 + 2 * net.layers[0].levels + 2 + 1  # one step per max pool
    probes = ["h1/s", "maxpool2/s", "h3/s", "maxpool4/s"]
    result = get_backend("sim").build(conv.chip).run(conv.encode(x), steps=conv.steps, probes=probes)
    counts = {p[:-2]: np.asarray(result.probes[p], np.int64).sum(1) for p in probes}
    np.testing.assert_array_equal(counts["maxpool2"], _window_max(counts["h1"], 2, 2, 0))
    np.testing.assert_array_equal(counts["maxpool4"], _window_max(counts["h3"], 3, 2, 1))
    expected = [t.numpy().astype(np.int64) for t in net.integer_forward(x)]
    np.testing.assert_array_equal(counts["h1"], expected[0])
    np.testing.assert_array_equal(counts["h3"], expected[1])
    np.testing.assert_array_equal(conv.activations(result), expected[2])


def _signed_net(seed, in_range=(-8, 8)):
    rng = np.random.default_rng(seed)
    L = int(rng.integers(1, 5))
    q1, q2 = rng.integers(-60, 61, size=(3, 1, 3, 3)), rng.integers(-60, 61, size=(5, 3 * 4 * 4))
    q3 = rng.integers(-60, 61, size=(4, 5))
    d1, d2 = max(1, 250 // L), max(1, int(60 * 48 * L * 4 / 8 / L / L))
    net = IntGridNet([
        int_layer(nn.Conv2d(1, 3, 3, padding=1), q1, rng.integers(-d1, d1 + 1, 3), d1, L, signed=True),
        SumPool2d(2),  # a sum of signed counts folds into the next layer as before
        nn.Flatten(),
        int_layer(nn.Linear(48, 5), q2, rng.integers(-d2, d2 + 1, 5), d2, L, signed=True),
        int_layer(nn.Linear(5, 4), q3, rng.integers(-50, 51, 4), 1, L, act=False),
    ], input_range=in_range)
    x = torch.as_tensor(rng.integers(in_range[0], in_range[1] + 1, size=(6, 1, 8, 8)).astype(np.float64))
    return net, x


def _numpy_signed_linear(n, layer):
    """clamp(floor((n W^T + B) / D), -L, L) in numpy int64 (the signed activation by hand)."""
    z = n @ layer.int_weight().numpy().astype(np.int64).T + layer.int_bias().numpy().astype(np.int64)
    return np.clip(np.floor_divide(z, layer.step), -layer.levels, layer.levels)


@pytest.mark.parametrize("seed", range(4))
def test_signed_counts_are_positive_minus_negative_half(seed):
    net, x = _signed_net(seed)
    conv = convert_to_chip(net, (1, 8, 8))
    h1 = conv.chip.populations["h1"]
    assert h1.shape == (6, 8, 8)  # 3 channels x (positive, negative)
    result = conv.run(x)
    counts = conv.layer_counts(result)
    expected = [t.numpy().astype(np.int64) for t in net.integer_forward(x)]
    L = net.layers[0].levels
    assert counts["h1"].min() >= -L and counts["h1"].max() <= L
    np.testing.assert_array_equal(counts["h1"], expected[0])
    pooled = counts["h1"].reshape(len(x), 3, 4, 2, 4, 2).sum(axis=(3, 5)).reshape(len(x), -1)
    np.testing.assert_array_equal(counts["h2"], _numpy_signed_linear(pooled, net.layers[3]))
    np.testing.assert_array_equal(conv.activations(result), expected[2])
    assert np.any(counts["h1"] < 0) and np.any(counts["h1"] > 0)


def _check_quantized_on_chip(model, x, input_range):
    """quantize_model on x (L = 3, 6 weight bits), converted: every hidden layer's spike counts and
    the readout equal the integer network's; returns its activations."""
    qnet = quantize_model(model.double(), x, levels=3, input_range=input_range, weight_bits=6)
    conv = convert_to_chip(qnet, tuple(x.shape[1:]))
    result = conv.run(x)
    expected = [t.numpy().astype(np.int64) for t in qnet.integer_forward(x)]
    counts = conv.layer_counts(result)
    hidden = [layer["name"] for layer in conv.layers if layer["act"]]
    for name, exp in zip(hidden, expected):
        np.testing.assert_array_equal(counts[name], exp, err_msg=f"{type(model[0]).__name__} {name}")
    np.testing.assert_array_equal(conv.activations(result), expected[-1])
    return expected


def test_quantized_float_models_with_maxpool_hardtanh_and_conv1d():
    """quantize_model reads MaxPool (before or after the ReLU), Hardtanh(-a, a) (signed),
    Hardtanh(0, a)/ReLU6 (ceiling a), Conv1d, AvgPool1d, MaxPool1d, BatchNorm1d; the chip
    reproduces each integer network exactly."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cases = [
        (nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.AvgPool1d(2), nn.Conv1d(4, 3, 3, stride=2),
                       nn.BatchNorm1d(3).eval(), nn.MaxPool1d(2), nn.ReLU(), nn.Flatten(), nn.Linear(3, 5)), (2, 12), (0, 16)),
        (nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Hardtanh(-2, 2), nn.AvgPool2d(2), nn.Flatten(),
                       nn.Linear(64, 8), nn.Hardtanh(-1, 1), nn.Linear(8, 5)), (1, 8, 8), (-8, 8)),
        (nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU6(), nn.MaxPool2d(3, 2, 1), nn.Conv2d(4, 4, 3),
                       nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 5)), (1, 8, 8), (0, 16)),
    ]
    for model, shape, xr in cases:
        x = torch.as_tensor(rng.integers(xr[0], xr[1] + 1, size=(20, *shape)).astype(np.float64))
        _check_quantized_on_chip(model, x, xr)
    signed = quantize_model(cases[1][0], torch.zeros(1, 1, 8, 8), levels=1, input_range=(-8, 8))
    assert [m.signed for m in signed.layers if isinstance(m, IntGridLayer)] == [True, True, False]


def test_string_padding_is_resolved_for_the_chip():
    """torch's padding='same'/'valid' (convert_to_chip used to fail on the string with a TypeError):
    the chip's symmetric padding reproduces the integer network, also folded into a strided conv
    after a pool and for Conv1d; 'same' with an even kernel pads unevenly and is refused."""
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    cases = [
        (nn.Sequential(nn.Conv2d(1, 3, 3, padding="same"), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(3, 2, 3, padding="same"),
                       nn.ReLU(), nn.Conv2d(2, 2, 3, padding="valid"), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3)), (1, 8, 8)),
        (nn.Sequential(nn.Conv1d(2, 3, 5, padding="same", dilation=2), nn.ReLU(), nn.Flatten(), nn.Linear(30, 3)), (2, 10)),
    ]
    for model, shape in cases:
        x = torch.as_tensor(rng.integers(0, 17, size=(10, *shape)).astype(np.float64))
        expected = _check_quantized_on_chip(model, x, (0, 16))
        assert np.any(expected[0] > 0)
    even = nn.Sequential(nn.Conv2d(1, 2, 2, padding="same"), nn.ReLU(), nn.Flatten(), nn.Linear(32, 2))
    x = torch.ones(2, 1, 4, 4, dtype=torch.float64)
    qnet = quantize_model(even.double(), x, levels=2, input_range=(0, 4))
    with pytest.raises(UnsupportedNodeError, match="asymmetric padding"):
        convert_to_chip(qnet, (1, 4, 4))


@pytest.mark.lava
def test_max_pool_and_signed_exact_on_lava():
    for net, x in (_max_pool_net(1), _signed_net(2)):
        conv = convert_to_chip(net, (1, 8, 8))
        lava = conv.run(x[:2], backend="lava")
        expected = [t.numpy().astype(np.int64) for t in net.integer_forward(x[:2])]
        hidden = [layer["name"] for layer in conv.layers if layer["act"]]
        counts = conv.layer_counts(lava)
        for name, exp in zip(hidden, expected):
            np.testing.assert_array_equal(counts[name], exp, err_msg=name)
        np.testing.assert_array_equal(conv.activations(lava), expected[-1])


@pytest.mark.parametrize("model, fragment", [
    (nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2, 2)),
     r"module 0 \(MaxPool2d\).*MaxPool on the input image"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Hardtanh(-1, 1), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2, 2)),
     r"module 2 \(MaxPool2d\).*after a signed activation.*AvgPool"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AvgPool2d(2), nn.MaxPool2d(1), nn.Flatten(), nn.Linear(2, 2)),
     r"module 3 \(MaxPool2d\).*AvgPool directly before MaxPool"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(2, 2)),
     r"module 2 \(MaxPool2d\).*ceil_mode"),
    (nn.Sequential(nn.Linear(4, 3), nn.Hardtanh(-1, 2), nn.Linear(3, 2)), r"module 1 \(Hardtanh\).*\(-1.0, 2.0\)"),
    (nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)), r"module 1 \(Tanh\).*Hardtanh\(-a, a\)"),
])
def test_unsupported_modules_name_the_module_and_the_alternative(model, fragment):
    shape = (1, 6, 6) if isinstance(model[0], (nn.Conv2d, nn.MaxPool2d)) else (4,)
    with pytest.raises(UnsupportedNodeError, match=fragment):
        quantize_model(model.double(), torch.ones(2, *shape), levels=2, input_range=(0, 4))
