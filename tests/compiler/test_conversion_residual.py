"""Residual blocks relu(body(x) + x) converted for the chip: each neuron's spike count on sim (and
Lava) equals the integer block recomputed here by hand (torch conv on integers, floor-divide-clamp,
skip k n_in added), including skips from the input image and skip weights beyond 8 bits
(m 2**e carried by weight_exp)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from snnc.compiler.analysis.conversion_sweep import network_layout, window_steps
from snnc.compiler.frontends.conversion.chip import (
    IntGridNet,
    IntResidual,
    Residual,
    SumPool2d,
    convert_to_chip,
    quantize_model,
    skip_weight,
)
from conversion_layers import int_layer
from snnc.ir.errors import ShapeError, UnsupportedNodeError


def _by_hand(x, ints, k, L):
    """The integer network written out: conv -> block(conv, conv + k skip) -> sum pool -> linear."""
    (q1, b1, d1), (qa, ba, da), (qb, bb, db), (qr, br) = ints

    def act(z, d):
        return torch.clamp(torch.div(z, d, rounding_mode="floor"), 0, L)

    def conv(n, q, b):
        return F.conv2d(n, torch.as_tensor(q, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64), padding=1)

    n1 = act(conv(x, q1, b1), d1)
    na = act(conv(n1, qa, ba), da)
    nb = act(conv(na, qb, bb) + k * n1, db)
    pooled = F.avg_pool2d(nb, 2) * 4
    logits = pooled.reshape(len(x), -1) @ torch.as_tensor(qr, dtype=torch.float64).T + torch.as_tensor(br, dtype=torch.float64)
    return [t.numpy().astype(np.int64) for t in (n1, na, nb, logits)]


def _residual_net(seed, k):
    rng = np.random.default_rng(seed)
    L, c = int(rng.integers(1, 5)), int(rng.integers(1, 4))
    q1, qa, qb = rng.integers(-50, 51, size=(c, 1, 3, 3)), rng.integers(-50, 51, size=(c, c, 3, 3)), \
        rng.integers(-50, 51, size=(c, c, 3, 3))
    d1, da = max(1, 200 // L), max(1, 30 * c // L)
    db = max(1, (30 * c + k) // L)
    b1, ba, bb = (rng.integers(-d * L, d * L + 1, c) for d in (d1, da, db))
    qr, br = rng.integers(-60, 61, size=(3, c * 4)), rng.integers(-40, 41, 3)
    net = IntGridNet([
        int_layer(nn.Conv2d(1, c, 3, padding=1), q1, b1, d1, L),
        IntResidual([int_layer(nn.Conv2d(c, c, 3, padding=1), qa, ba, da, L),
                     int_layer(nn.Conv2d(c, c, 3, padding=1), qb, bb, db, L)], skip=k),
        SumPool2d(2),
        nn.Flatten(),
        int_layer(nn.Linear(c * 4, 3), qr, br, 1, L, act=False),
    ], input_range=(0, 16))
    x = torch.as_tensor(rng.integers(0, 17, size=(6, 1, 4, 4)).astype(np.float64))
    return net, x, [(q1, b1, d1), (qa, ba, da), (qb, bb, db), (qr, br)], L


@pytest.mark.parametrize("seed,k", [(0, 1), (1, 3), (2, 40), (3, 3344)])
def test_residual_counts_equal_the_block_by_hand(seed, k):
    net, x, ints, L = _residual_net(seed, k)
    expected = _by_hand(x, ints, k, L)
    conv = convert_to_chip(net, (1, 4, 4))
    skip = conv.chip.projections["h1->h3/skip"]
    # single-sign diagonal k: exact at the fewest bits (k << (8 - n), weight_exp n - 8); 3344 = 209 << 4
    assert skip.weight_exp == (4 if k == 3344 else skip.num_weight_bits - 8)
    result = conv.run(x)
    counts = conv.layer_counts(result)
    for name, exp in zip(("h1", "h2", "h3"), expected):
        np.testing.assert_array_equal(counts[name], exp, err_msg=name)
    np.testing.assert_array_equal(conv.activations(result), expected[3])
    if k >= 40:
        assert not np.array_equal(expected[2], _by_hand(x, ints, 0, L)[2])  # the skip matters


def test_quantized_residual_models_from_the_image_and_after_aint_layer():
    torch.manual_seed(0)
    x = torch.as_tensor(np.random.default_rng(0).integers(0, 17, size=(16, 1, 8, 8)).astype(np.float64))
    block = Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)))
    models = [
        nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), block, nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 5)),
        nn.Sequential(Residual(nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 1, 3, padding=1))),
                      nn.Flatten(), nn.Linear(64, 5)),
    ]
    for model in models:
        model = model.double()
        qnet = quantize_model(model, x, levels=3, input_range=(0, 16))
        blocks = [m for m in qnet.layers if isinstance(m, IntResidual)]
        assert len(blocks) == 1 and blocks[0].skip == skip_weight(blocks[0].skip)
        conv = convert_to_chip(qnet, (1, 8, 8))
        hidden, readout, pools = network_layout(model)
        assert conv.steps == window_steps(hidden, 3, readout, pools)
        result = conv.run(x)
        expected = [t.numpy().astype(np.int64) for t in qnet.integer_forward(x)]
        counts = conv.layer_counts(result)
        for layer, exp in zip([m for m in conv.layers if m["act"]], expected):
            np.testing.assert_array_equal(counts[layer["name"]], exp, err_msg=layer["name"])
        np.testing.assert_array_equal(conv.activations(result), expected[-1])
        # the float STE model evaluates the same integers (its argmax equals the integer network's)
        np.testing.assert_array_equal(qnet(x).argmax(1).numpy(), qnet.predict(x))


def test_skip_weight_is_representable():
    for ratio in (0.2, 1.0, 7.9, 255.0, 256.0, 3355.7, 1e6):
        k = skip_weight(ratio)
        e = next(e for e in range(16) if k >> e <= 255)  # k = m 2**e with m <= 255: one synapse + weight_exp
        assert 1 <= k <= max(1, ratio) and e <= 7 and k % (1 << e) == 0
    assert skip_weight(3355.7) == 209 << 4


def test_residual_errors_name_the_block():
    x = torch.ones(2, 1, 6, 6)
    relu_end = nn.Sequential(Residual(nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU())), nn.Flatten(),
                             nn.Linear(36, 2)).double()
    with pytest.raises(UnsupportedNodeError, match=r"module 0 \(Residual\).*without activation"):
        quantize_model(relu_end, x, levels=2, input_range=(0, 4))
    reshaping = nn.Sequential(Residual(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1))), nn.Flatten(),
                              nn.Linear(72, 2)).double()
    with pytest.raises(ShapeError, match=r"module 0 \(Residual\).*keep its input's shape"):
        quantize_model(reshaping, x, levels=2, input_range=(0, 4))


@pytest.mark.lava
def test_residual_exact_on_lava():
    net, x, ints, L = _residual_net(3, 3344)
    expected = _by_hand(x[:2], ints, 3344, L)
    conv = convert_to_chip(net, (1, 4, 4))
    lava = conv.run(x[:2], backend="lava")
    counts = conv.layer_counts(lava)
    for name, exp in zip(("h1", "h2", "h3"), expected):
        np.testing.assert_array_equal(counts[name], exp, err_msg=name)
    np.testing.assert_array_equal(conv.activations(lava), expected[3])
