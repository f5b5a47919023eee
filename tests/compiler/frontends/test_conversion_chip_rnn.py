"""Chip-exact conversion of an integer-grid Elman RNN: per-frame hidden spike counts on the bit-exact
`sim` (and Lava) equal the integer RNN's h, evaluated independently by torch
(`IntGridRNN.integer_forward`), and the readout voltages equal its integer logits."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.backends.base import get_backend
from snnc.compiler.frontends import conversion
from snnc.compiler.frontends.conversion.chip_rnn import (
    IntGridRNN,
    convert_rnn_to_chip,
    float_equivalent_rnn,
    quantize_rnn,
)
from snnc.ir.errors import QuantizationError


def _torch_reference(wq, uq, B, D, L, x):
    """The integer Elman recurrence written out independently of IntGridRNN (int64 numpy)."""
    h = np.zeros((x.shape[0], wq.shape[0]), np.int64)
    out = []
    for t in range(x.shape[1]):
        z = x[:, t] @ wq.T + h @ uq.T + B
        h = np.clip(np.floor_divide(z, D), 0, L)
        out.append(h)
    return np.stack(out, 1)


@st.composite
def rnns(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    L = draw(st.integers(1, 6))
    T = draw(st.integers(1, 5))
    F = draw(st.integers(1, 6))
    H = draw(st.integers(1, 6))
    C = draw(st.integers(2, 4))
    wmax = draw(st.sampled_from([3, 31, 127]))
    signed_input = draw(st.booleans())
    lo, hi = (-8, 8) if signed_input else (0, 16)
    wq = rng.integers(-wmax, wmax + 1, size=(H, F))
    uq = rng.integers(-wmax, wmax + 1, size=(H, H))
    # D spreads z over 0..L: about (typical |W x| + typical |U h|) / L, times 0.3..1.5
    typical = max(1.0, np.abs(wq).sum(1).mean() * hi / 3 + np.abs(uq).sum(1).mean() * L / 3)
    D = max(1, int(typical / L * rng.uniform(0.3, 1.5)))
    B = rng.integers(-D * L, D * L + 1, size=H)
    rq = rng.integers(-127, 128, size=(C, H))
    Br = rng.integers(-300, 301, size=C)
    x = rng.integers(lo, hi + 1, size=(6, T, F))
    model = IntGridRNN.from_integers(wq, uq, B, D, L, rq, Br, input_range=(lo, hi))
    return model, (wq, uq, B, D, L, rq, Br), x


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rnns())
def test_chip_counts_equal_integer_rnn_every_frame(case):
    model, (wq, uq, B, D, L, rq, Br), x = case
    h_ref = _torch_reference(wq, uq, B, D, L, x)
    h, y = model.integer_forward(torch.as_tensor(x, dtype=torch.float64))
    np.testing.assert_array_equal(h.numpy(), h_ref)  # IntGridRNN holds exactly these integers
    np.testing.assert_array_equal(y.numpy(), h_ref @ rq.T + Br)
    conv = convert_rnn_to_chip(model, x.shape[1])
    result = conv.run(x, backend="sim")
    np.testing.assert_array_equal(conv.hidden_counts(result), h_ref)
    assert conv.stray_spikes(result) == 0
    np.testing.assert_array_equal(conv.activations(result), h_ref @ rq.T + Br)
    np.testing.assert_array_equal(conv.decode(result), model.predict(torch.as_tensor(x, dtype=torch.float64)))


def _small_case():
    """Hand-made: 3 frames, L = 3, signed weights; counts hit 0, L and values in between, and the
    recurrent term matters (zeroing U changes h)."""
    rng = np.random.default_rng(7)
    wq = rng.integers(-60, 61, size=(4, 3))
    uq = np.array([[0, 40, -50, 10], [30, 0, 20, -40], [-30, 50, 0, 30], [20, -20, 40, 0]])
    B = np.array([30, -20, 60, 0])
    model = IntGridRNN.from_integers(wq, uq, B, 40, 3, rng.integers(-100, 101, size=(3, 4)), [5, -7, 100],
                                     input_range=(0, 16))
    x = rng.integers(0, 17, size=(5, 3, 3)).astype(np.float64)
    return model, x


def test_layout_counts_not_trivial_and_recurrence_matters():
    model, x = _small_case()
    conv = convert_rnn_to_chip(model, 3)
    L = 3
    assert conv.period == 2 * L - 1 and conv.steps == 2 * conv.period + 2 * L + 1
    assert conv.chip.projections["h->h"].delay == L - 1
    assert conv.chip.populations["h"].model == "lif_reset"
    result = conv.run(x)
    counts = conv.hidden_counts(result)
    h, y = model.integer_forward(torch.as_tensor(x))
    np.testing.assert_array_equal(counts, h.numpy())
    np.testing.assert_array_equal(conv.activations(result), y.numpy())
    assert {0, L} <= set(np.unique(counts).tolist()) and np.any((counts > 0) & (counts < L))
    no_rec = IntGridRNN.from_integers(model.int_weight().numpy(), np.zeros((4, 4)), model.int_bias().numpy(), 40, 3,
                                      input_range=(0, 16))
    assert not np.array_equal(no_rec.integer_forward(torch.as_tensor(x))[0].numpy(), counts)


@pytest.mark.lava
def test_lava_equals_sim():
    model, x = _small_case()
    conv = convert_rnn_to_chip(model, 3)
    sim = conv.run(x[:2], backend="sim", probes=False)
    lava = get_backend("lava").build(conv.chip).run(conv.encode(x[:2]), steps=conv.steps)
    np.testing.assert_array_equal(lava.outputs["out"], sim.outputs["out"])
    np.testing.assert_array_equal(conv.activations(lava), model.integer_forward(torch.as_tensor(x[:2]))[1].numpy())


def test_too_large_input_names_layer():
    wq = np.full((2, 64), -127)
    model = IntGridRNN.from_integers(wq, np.zeros((2, 2)), [0, 0], 10, 4, input_range=(0, 255))
    with pytest.raises(QuantizationError, match="layer 'h'"):
        convert_rnn_to_chip(model, 2)


def test_readout_too_large_names_layer():
    model = IntGridRNN.from_integers(np.ones((64, 2)), np.zeros((64, 64)), np.zeros(64), 1, 60,
                                     rq=np.full((2, 64), 127), input_range=(0, 16))
    with pytest.raises(QuantizationError, match="layer 'readout'.*24-bit v"):
        convert_rnn_to_chip(model, 2)


def test_float_equivalent_needs_power_of_two_step():
    model, _ = _small_case()  # D = 40
    with pytest.raises(QuantizationError, match="power-of-two"):
        float_equivalent_rnn(model)


def test_quantized_rnn_on_chip_and_reference():
    """A float nn.RNN (relu) trained briefly on a toy sequence task, quantized with power-of-two D:
    the chip (sim) and the float converter on `reference` both equal the integer RNN."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 9, size=(256, 4, 3)).astype(np.float64)
    target = torch.as_tensor((x[:, :, 0].sum(1) > x[:, :, 1].sum(1)).astype(np.int64))
    rnn = nn.RNN(3, 8, nonlinearity="relu", batch_first=True).double()
    head = nn.Linear(8, 2).double()
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-2)
    xt = torch.as_tensor(x)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(head(rnn(xt / 8)[0][:, -1]), target).backward()
        opt.step()
    float_acc = float((head(rnn(xt / 8)[0][:, -1]).argmax(1) == target).double().mean())
    q = quantize_rnn(rnn, head, xt / 8, levels=8, input_scale=1 / 8, input_range=(0, 8), pow2_step=True)
    assert q.step & (q.step - 1) == 0
    int_pred = q.predict(xt / 8)
    assert float_acc > 0.85 and float(np.mean(int_pred == target.numpy())) > float_acc - 0.1
    h, y = q.integer_forward(xt / 8)
    conv = convert_rnn_to_chip(q, 4)
    result = conv.run(xt / 8)
    np.testing.assert_array_equal(conv.hidden_counts(result), h.numpy())
    np.testing.assert_array_equal(conv.activations(result), y.numpy())
    # the float converter (QuantRNN + Linear) on the reference backend, fed the integers n0
    seq = float_equivalent_rnn(q)
    snn = conversion.convert(seq, (3,))
    info = conversion.conversion_info(snn)
    ref = get_backend("reference").build(snn).run(conversion.encode(info, x[:64]))
    values = conversion.decode(info, ref.output, frames=4)
    np.testing.assert_array_equal(values / q.step, y[:64].numpy())


def test_nir_file_round_trip_keeps_reset_and_delay(tmp_path):
    """The chip graph (LIFReset populations, delayed recurrent synapses) survives a NIR file."""
    import nir

    from snnc.ir.chip_nir import chip_from_nir

    model, x = _small_case()
    conv = convert_rnn_to_chip(model, 3)
    nir.write(tmp_path / "m.nir", conv.to_nir())
    chip = chip_from_nir(nir.read(tmp_path / "m.nir"))
    assert chip.populations["h"].reset_interval == conv.period and chip.projections["h->h"].delay == 2
    result = get_backend("sim").build(chip).run(conv.encode(x), steps=conv.steps)
    np.testing.assert_array_equal(conv.activations(result), model.integer_forward(torch.as_tensor(x))[1].numpy())


def test_quantize_rnn_rejects_tanh_and_too_many_levels():
    from snnc.ir.errors import UnsupportedNodeError

    with pytest.raises(UnsupportedNodeError, match="relu"):
        quantize_rnn(nn.RNN(3, 4, batch_first=True), None, torch.zeros(2, 3, 3), levels=4)
    model = IntGridRNN.from_integers(np.ones((2, 2)), np.zeros((2, 2)), [0, 0], 1, 64, input_range=(0, 1))
    with pytest.raises(QuantizationError, match="layer 'h'.*delay"):
        convert_rnn_to_chip(model, 2)


@pytest.mark.parametrize("kwargs,setting", [
    (dict(nonlinearity="tanh"), "nonlinearity"),
    (dict(nonlinearity="relu", bidirectional=True), "bidirectional"),
    (dict(nonlinearity="relu", batch_first=False), "batch_first"),
])
def test_quantize_rnn_names_the_unsupported_setting(kwargs, setting):
    """Each unsupported nn.RNN setting is named on its own (not one catch-all message)."""
    from snnc.ir.errors import UnsupportedNodeError

    kwargs.setdefault("batch_first", True)
    with pytest.raises(UnsupportedNodeError, match=f"nn.RNN.{setting}") as err:
        quantize_rnn(nn.RNN(3, 4, **kwargs), None, torch.zeros(2, 3, 3), levels=4)
    others = {"nonlinearity", "num_layers", "bidirectional", "batch_first"} - {setting}
    assert not any(f"nn.RNN {o}=" in str(err.value) for o in others)
