"""The chip conversion programs weights at the network's real width: a b-bit integer network gets
b-bit synapses (nothing truncated: the chip's effective weights are q * 2**k exactly), stays exact
on sim and Lava (spike counts = the integer activations computed by torch), and the bit budget
prices its weights at b bits."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from snnc.compiler.analysis.budget import bit_budget
from snnc.compiler.frontends.conversion.chip import IntGridNet, SumPool2d, convert_to_chip
from conversion_layers import int_layer
from snnc.compiler.frontends.conversion.chip_rnn import IntGridRNN, convert_rnn_to_chip


def _layer(op, q, b, step, levels, bits, act=True):
    return int_layer(op, q, b, step, levels, act, bits=bits)


def _net(bits, seed=0):
    """conv -> sum pool -> linear (hidden) -> linear readout, weights spanning -qmax..qmax."""
    rng = np.random.default_rng(seed)
    qmax = 2 ** (bits - 1) - 1
    L = 3

    def w(*shape):
        q = rng.integers(-qmax, qmax + 1, size=shape)
        q.flat[0], q.flat[1] = qmax, -qmax  # both extremes of the width
        return q

    q1, q2, q3 = w(2, 1, 3, 3), w(5, 8), w(3, 5)
    d1 = max(1, qmax * 16 // 3)
    d2 = max(1, qmax * 4 * L * 8 // 12)
    net = IntGridNet([
        _layer(nn.Conv2d(1, 2, 3, padding=1), q1, [qmax, -qmax], d1, L, bits),
        SumPool2d(2),
        nn.Flatten(),
        _layer(nn.Linear(8, 5), q2, rng.integers(-d2, d2 + 1, 5), d2, L, bits),
        _layer(nn.Linear(5, 3), q3, [1, -2, 3], 1, L, bits, act=False),
    ], input_range=(0, 16))
    x = torch.as_tensor(rng.integers(0, 17, size=(6, 1, 4, 4)).astype(np.float64))
    return net, x


def _data_projections(conv):
    return {n: p for n, p in conv.chip.projections.items() if not p.src.startswith("clock_")}


@pytest.mark.parametrize("bits", [2, 3, 5, 8])
def test_weights_programmed_and_priced_at_the_network_width(bits):
    net, x = _net(bits)
    conv = convert_to_chip(net, (1, 4, 4))
    data = _data_projections(conv)
    assert set(data) == {"x->h1", "h1->h2", "h2->readout"}
    for name, proj in data.items():
        assert proj.num_weight_bits == bits, name  # mixed signs, extremes +-qmax: exactly b bits
        if proj.kind != "conv":
            eff = proj.effective_weights()
            eff = eff.toarray() if hasattr(eff, "toarray") else eff
            w = proj.weights.toarray() if hasattr(proj.weights, "toarray") else proj.weights
            np.testing.assert_array_equal(eff, w)  # Lava truncates nothing
            assert proj.weight_exp == -(9 - bits)
    result = conv.run(x, backend="sim")
    expected = [t.numpy().astype(np.int64) for t in net.integer_forward(x)]
    counts = conv.layer_counts(result)
    np.testing.assert_array_equal(counts["h1"], expected[0])
    np.testing.assert_array_equal(counts["h2"], expected[1])
    np.testing.assert_array_equal(conv.activations(result), expected[2])
    budget = bit_budget(conv.chip, result.activity, warn=False)
    per_proj = {p.name: p for layer in budget.layers for p in layer.projections}
    for name in data:
        assert per_proj[name].weight_bits == bits * per_proj[name].stored
    # bit ops: every synaptic op at its projection's width (recomputed from the counters)
    ops = {n: result.activity.projections[n].synaptic_ops for n in conv.chip.projections}
    assert budget.bit_ops == sum(ops[n] * p.num_weight_bits for n, p in conv.chip.projections.items())


def test_narrower_network_costs_fewer_bits():
    costs = {}
    for bits in (3, 8):
        net, _ = _net(bits)
        costs[bits] = bit_budget(convert_to_chip(net, (1, 4, 4)).chip, warn=False)
    data = {b: sum(p.weight_bits for layer in c.layers for p in layer.projections if not p.src.startswith("clock_"))
            for b, c in costs.items()}
    assert data[3] * 8 == data[8] * 3


def test_single_sign_projection_shares_its_sign():
    """All-positive integers 0..7 take 3 bits in excitatory mode (the sign is per projection)."""
    net, x = _net(4)
    lin = net.layers[3]
    with torch.no_grad():
        lin.op.weight.abs_()
    conv = convert_to_chip(net, (1, 4, 4))
    proj = conv.chip.projections["h1->h2"]
    assert proj.sign_mode == "excitatory" and proj.num_weight_bits == 3 and proj.weight_exp == -5
    result = conv.run(x)
    np.testing.assert_array_equal(conv.layer_counts(result)["h2"], net.integer_forward(x)[1].numpy())


@pytest.mark.lava
def test_three_bit_cnn_and_rnn_exact_on_lava():
    net, x = _net(3, seed=1)
    conv = convert_to_chip(net, (1, 4, 4))
    lava = conv.run(x[:2], backend="lava")
    expected = [t.numpy().astype(np.int64) for t in net.integer_forward(x[:2])]
    np.testing.assert_array_equal(conv.layer_counts(lava)["h1"], expected[0])
    np.testing.assert_array_equal(conv.layer_counts(lava)["h2"], expected[1])
    np.testing.assert_array_equal(conv.activations(lava), expected[2])

    rng = np.random.default_rng(2)
    wq, uq, rq = (rng.integers(-3, 4, size=s) for s in ((4, 3), (4, 4), (2, 4)))
    wq[0, 0], uq[0, 0] = 3, -3
    rnn = IntGridRNN.from_integers(wq, uq, rng.integers(-4, 5, 4), 6, 2, rq, [1, -1], input_range=(0, 4),
                                   weight_bits=3)
    xs = rng.integers(0, 5, size=(2, 3, 3))
    rconv = convert_rnn_to_chip(rnn, 3)
    assert {p.num_weight_bits for p in rconv.chip.projections.values() if not p.src.startswith("clock_")} == {3}
    h, y = rnn.integer_forward(torch.as_tensor(xs, dtype=torch.float64))
    out = rconv.run(xs, backend="lava")
    np.testing.assert_array_equal(rconv.hidden_counts(out), h.numpy())
    np.testing.assert_array_equal(rconv.activations(out), y.numpy())
