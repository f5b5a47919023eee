"""Chip-exact ANN->SNN conversion: spike counts on the bit-exact `sim` (and Lava) equal the integer
activations of the quantized ANN, evaluated independently by torch (`IntGridNet.integer_forward`)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.backends.base import get_backend
from snnc.compiler.frontends.conversion.chip import (
    IntGridLayer,
    IntGridNet,
    SumPool2d,
    convert_to_chip,
    quantize_model,
)
from snnc.ir.errors import QuantizationError


def _layer(op, q, b, step, levels, act=True):
    """An IntGridLayer on the unit grid holding exactly the integer weights q and bias b."""
    op = op.double()
    with torch.no_grad():
        op.weight.copy_(torch.as_tensor(q, dtype=torch.float64))
        op.bias.copy_(torch.as_tensor(b, dtype=torch.float64))
    return IntGridLayer(op, in_scale=1.0, weight_scale=1.0, step=step, levels=levels, act=act)


def _step_for(rng, q, in_max, levels):
    """A step D that spreads the counts over 0..L (about 2 typical |z| over L, times 0.3..1.5)."""
    typical = max(1.0, float(np.abs(q).sum(axis=tuple(range(1, q.ndim))).mean()) * in_max / 4)
    return max(1, int(typical / levels * rng.uniform(0.3, 1.5)))


@st.composite
def nets(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    levels = draw(st.integers(1, 8))
    kind = draw(st.sampled_from(["mlp", "cnn", "cnn_pool_conv"]))
    readout = draw(st.booleans())
    signed_input = draw(st.booleans())
    in_range = (-8, 8) if signed_input else (0, 16)
    in_max = 8 if signed_input else 16
    wmax = draw(st.sampled_from([7, 31, 127]))

    def w(*shape):
        return rng.integers(-wmax, wmax + 1, size=shape)

    def b(n, scale):
        return rng.integers(-scale, scale + 1, size=n)

    layers = []
    if kind == "mlp":
        shape = (int(rng.integers(3, 13)),)
        sizes = [shape[0]] + [int(rng.integers(2, 9)) for _ in range(int(rng.integers(1, 3)))]
        amp = in_max
        for i in range(len(sizes) - 1):
            q = w(sizes[i + 1], sizes[i])
            D = _step_for(rng, q, amp, levels)
            layers.append(_layer(nn.Linear(sizes[i], sizes[i + 1]), q, b(sizes[i + 1], D * levels), D, levels))
            amp = levels
        last_in = sizes[-1]
    else:
        c1 = int(rng.integers(1, 4))
        shape = (1, 6, 6) if kind == "cnn" else (1, 8, 8)
        q = w(c1, 1, 3, 3)
        D = _step_for(rng, q, in_max, levels)
        layers.append(_layer(nn.Conv2d(1, c1, 3, padding=1), q, b(c1, D * levels), D, levels))
        layers.append(SumPool2d(2))
        hw = shape[1] // 2
        if kind == "cnn_pool_conv":  # pool -> conv folds into one strided conv on the chip
            c2 = int(rng.integers(1, 4))
            q = w(c2, c1, 3, 3)
            D = _step_for(rng, q, 4 * levels, levels)
            layers.append(_layer(nn.Conv2d(c1, c2, 3, padding=1), q, b(c2, D * levels), D, levels))
            layers.append(SumPool2d(2))
            hw //= 2
            c1 = c2
        layers.append(nn.Flatten())
        last_in = c1 * hw * hw
    n_out = int(rng.integers(2, 6))
    q = w(n_out, last_in)
    D = _step_for(rng, q, 4 * levels if kind != "mlp" else levels, levels) if not readout else 1
    layers.append(_layer(nn.Linear(last_in, n_out), q, b(n_out, 3 * wmax), D, levels, act=not readout))
    net = IntGridNet(layers, input_range=in_range)
    x = rng.integers(in_range[0], in_range[1] + 1, size=(12, *shape)).astype(np.float64)
    return net, shape, torch.as_tensor(x)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nets())
def test_chip_counts_equal_integer_ann(case):
    net, shape, x = case
    expected = [t.numpy().astype(np.int64) for t in net.integer_forward(x)]
    conv = convert_to_chip(net, shape)
    result = conv.run(x, backend="sim")
    counts = conv.layer_counts(result)
    hidden = [layer["name"] for layer in conv.layers if layer["act"]]
    assert len(hidden) == sum(1 for m in net.layers if isinstance(m, IntGridLayer) and m.act)
    for name, exp in zip(hidden, expected):
        np.testing.assert_array_equal(counts[name], exp.reshape(counts[name].shape), err_msg=name)
    np.testing.assert_array_equal(conv.activations(result), expected[-1].reshape(len(x), -1))
    np.testing.assert_array_equal(conv.decode(result), net.predict(x))


def _small_case(readout=True):
    rng = np.random.default_rng(3)
    L = 3
    q1 = rng.integers(-127, 128, size=(2, 1, 3, 3))
    q2 = rng.integers(-127, 128, size=(3, 2 * 2 * 2))
    layers = [
        _layer(nn.Conv2d(1, 2, 3, padding=1), q1, [40, -300], 250, L),
        SumPool2d(2),
        nn.Flatten(),
        _layer(nn.Linear(8, 3), q2, [5, -7, 100], 1, L, act=not readout),
    ]
    net = IntGridNet(layers, input_range=(0, 16))
    x = torch.as_tensor(rng.integers(0, 17, size=(4, 1, 4, 4)).astype(np.float64))
    return net, x


def test_counts_are_not_trivial_and_layout():
    """The hand-made case really exercises 0 < n < L and clamping at L, and steps = 2 + N L + 1."""
    net, x = _small_case()
    conv = convert_to_chip(net, (1, 4, 4))
    assert conv.steps == 2 + 1 * 3 + 1
    result = conv.run(x)
    counts = conv.layer_counts(result)["h1"]
    expected = net.integer_forward(x)[0].numpy()
    np.testing.assert_array_equal(counts, expected)
    assert {0, 3} <= set(np.unique(counts).tolist()) and np.any((counts > 0) & (counts < 3))


@pytest.mark.lava
def test_lava_equals_sim():
    net, x = _small_case()
    conv = convert_to_chip(net, (1, 4, 4))
    sim = conv.run(x[:2], backend="sim", probes=False)
    lava = get_backend("lava").build(conv.chip).run(conv.encode(x[:2]), steps=conv.steps)
    np.testing.assert_array_equal(lava.outputs["out"], sim.outputs["out"])
    np.testing.assert_array_equal(conv.activations(lava), net.integer_forward(x[:2])[-1].numpy())


def test_nir_file_round_trip(tmp_path):
    import nir

    from snnc.ir.chip_nir import chip_from_nir

    net, x = _small_case(readout=False)
    conv = convert_to_chip(net, (1, 4, 4))
    nir.write(tmp_path / "m.nir", conv.to_nir())
    chip = chip_from_nir(nir.read(tmp_path / "m.nir"))
    result = get_backend("sim").build(chip).run(conv.encode(x), steps=conv.steps)
    np.testing.assert_array_equal(conv.activations(result), net.integer_forward(x)[-1].numpy())


def test_readout_too_large_for_24_bit_v_names_layer():
    q = np.full((2, 64), 127)
    net = IntGridNet([_layer(nn.Linear(64, 2), q, [0, 0], 1, 4, act=False)], input_range=(0, 255))
    with pytest.raises(QuantizationError, match="layer 'readout'.*24-bit v"):
        convert_to_chip(net, (64,))


def test_hidden_layer_too_large_names_layer():
    q1 = np.full((4, 64), -127)
    q2 = np.ones((2, 4))
    net = IntGridNet(
        [_layer(nn.Linear(64, 4), q1, [0] * 4, 10, 4), _layer(nn.Linear(4, 2), q2, [0, 0], 1, 4, act=False)],
        input_range=(0, 255),
    )
    with pytest.raises(QuantizationError, match="layer 'h1'"):
        convert_to_chip(net, (64,))


def test_quantized_digits_mlp_on_chip():
    """A float MLP trained briefly on sklearn digits, quantized (L = 4) and converted: the chip's
    predictions equal the integer ANN's, which keep the float model's accuracy."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.as_tensor(digits.data, dtype=torch.float64)
    y = torch.as_tensor(digits.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    train, test = slice(0, 1400), slice(1400, None)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[train] / 16), y[train]).backward()
        opt.step()
    with torch.no_grad():
        model[0].weight /= 16  # the quantized net sees the integer pixels 0..16
    float_acc = float((model(x[test]).argmax(1) == y[test]).double().mean())
    qnet = quantize_model(model, x[train], levels=4, input_range=(0, 16))
    int_pred = qnet.predict(x[test])
    int_acc = float((torch.as_tensor(int_pred) == y[test]).double().mean())
    assert float_acc > 0.9 and int_acc > float_acc - 0.05
    conv = convert_to_chip(qnet, (64,))
    result = conv.run(x[test], probes=True)
    np.testing.assert_array_equal(conv.decode(result), int_pred)
    np.testing.assert_array_equal(conv.layer_counts(result)["h1"], qnet.integer_forward(x[test])[0].numpy())


def test_cli_runs_the_converted_file_with_one_array_per_input_port(tmp_path, capsys):
    """`snnc run model.nir --input IN.npz` feeds a multi-input network (data + clocks) by port name."""
    from snnc.compiler.cli import main

    net, x = _small_case(readout=False)
    conv = convert_to_chip(net, (1, 4, 4))
    from snnc.ir.graph import write_nir

    write_nir(conv.to_nir(), tmp_path / "m.nir")
    inputs = conv.encode(x)
    np.savez(tmp_path / "in.npz", **inputs)
    assert len(inputs) > 1
    assert main(["run", str(tmp_path / "m.nir"), "--input", str(tmp_path / "in.npz"), "--out", str(tmp_path / "o.npz"),
                 "--steps", str(conv.steps)]) == 0
    saved = np.load(tmp_path / "o.npz")
    expected = conv.run(x)
    np.testing.assert_array_equal(saved["output"], expected.outputs["out"])
    assert saved["output"].sum() > 0
