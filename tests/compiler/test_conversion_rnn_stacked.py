"""Stacked Elman RNNs (nn.RNN num_layers > 1) converted for the chip: every layer's per-frame spike
counts on sim (and Lava) equal an independent numpy int64 recurrence, layer k fed the counts of
layer k - 1, and the readout voltages equal the integer logits of every frame."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from snnc.compiler.frontends.conversion.chip_rnn import (
    IntGridRNN,
    StackedIntGridRNN,
    convert_rnn_to_chip,
    quantize_rnn,
)
from snnc.ir.errors import ParameterError, UnsupportedNodeError


def _numpy_stack(layers, x):
    """h_k[t] = clip(floor((W_k h_{k-1}[t] + U_k h_k[t-1] + B_k) / D_k), 0, L), h_0 = x (int64)."""
    inp, out = np.asarray(x, np.int64), []
    for wq, uq, B, D, L in layers:
        h = np.zeros((inp.shape[0], wq.shape[0]), np.int64)
        hs = []
        for t in range(inp.shape[1]):
            h = np.clip(np.floor_divide(inp[:, t] @ wq.T + h @ uq.T + B, D), 0, L)
            hs.append(h)
        inp = np.stack(hs, 1)
        out.append(inp)
    return out


def _random_stack(seed, depth):
    rng = np.random.default_rng(seed)
    L = int(rng.integers(1, 5))
    F, sizes = 3, [int(v) for v in rng.integers(2, 6, size=depth)]
    ints, layers, fan_in, amp = [], [], F, 8
    for k, H in enumerate(sizes):
        wq, uq = rng.integers(-40, 41, size=(H, fan_in)), rng.integers(-40, 41, size=(H, H))
        D = max(1, int((np.abs(wq).sum(1).mean() * amp + np.abs(uq).sum(1).mean() * L) / 3 / L
                       * rng.uniform(0.4, 1.4)))
        B = rng.integers(-D * L, D * L + 1, size=H)
        top = k == depth - 1
        rq = rng.integers(-60, 61, size=(3, H)) if top else None
        layers.append(IntGridRNN.from_integers(wq, uq, B, D, L, rq, rng.integers(-50, 51, 3) if top else None,
                                               input_range=(0, 8) if k == 0 else (0, L)))
        ints.append((wq, uq, B, D, L))
        fan_in, amp = H, L
    x = rng.integers(0, 9, size=(5, int(rng.integers(1, 5)), F))
    return StackedIntGridRNN(layers), ints, x, layers[-1]


@pytest.mark.parametrize("seed,depth", [(0, 2), (1, 2), (2, 3), (3, 3), (4, 2), (11, 3)])  # 11: L = 1
def test_every_layer_equals_the_numpy_recurrence(seed, depth):
    model, ints, x, top = _random_stack(seed, depth)
    expected = _numpy_stack(ints, x)
    hs, y = model.integer_forward(torch.as_tensor(x, dtype=torch.float64))
    for h, e in zip(hs, expected):
        np.testing.assert_array_equal(h.numpy(), e)  # the stacked integer model holds these integers
    conv = convert_rnn_to_chip(model, x.shape[1])
    L = ints[0][4]
    assert conv.steps == (x.shape[1] - 1) * (2 * L - 1) + 2 * L + 1 + (depth - 1) * L
    result = conv.run(x)
    names = ["h"] + [f"h{k + 1}" for k in range(1, depth)]
    for name, e in zip(names, expected):
        np.testing.assert_array_equal(conv.hidden_counts(result, name), e, err_msg=name)
    assert conv.stray_spikes(result) == 0
    rq, br = top.int_readout().numpy().astype(np.int64), top.int_readout_bias().numpy().astype(np.int64)
    np.testing.assert_array_equal(conv.activations(result), expected[-1] @ rq.T + br)


def test_quantize_rnn_stacks_num_layers():
    torch.manual_seed(0)
    rnn = nn.RNN(4, 6, num_layers=3, nonlinearity="relu", batch_first=True).double()
    x = torch.as_tensor(np.random.default_rng(0).integers(0, 9, size=(12, 4, 4)).astype(np.float64))
    model = quantize_rnn(rnn, nn.Linear(6, 3).double(), x, levels=3, input_range=(0, 8))
    assert isinstance(model, StackedIntGridRNN) and len(model.layers) == 3
    assert [m.readout is not None for m in model.layers] == [False, False, True]
    hs, y = model.integer_forward(x)
    assert all(np.unique(h.numpy()).size > 1 for h in hs)  # every layer really spikes
    conv = convert_rnn_to_chip(model, 4)
    result = conv.run(x)
    np.testing.assert_array_equal(conv.hidden_counts(result, "h3"), hs[2].numpy())
    np.testing.assert_array_equal(conv.activations(result), y.numpy())


def test_stack_errors_name_the_layer():
    a = IntGridRNN.from_integers(np.ones((2, 3)), np.zeros((2, 2)), [0, 0], 1, 2, input_range=(0, 4))
    b = IntGridRNN.from_integers(np.ones((2, 2)), np.zeros((2, 2)), [0, 0], 1, 3, input_range=(0, 3))
    with pytest.raises(ParameterError, match="layer 1.*same levels"):
        StackedIntGridRNN([a, b])
    with pytest.raises(UnsupportedNodeError, match=r"nn.RNN.bidirectional.*whole sequence"):
        quantize_rnn(nn.RNN(3, 4, nonlinearity="relu", batch_first=True, bidirectional=True), None,
                     torch.zeros(2, 3, 3), levels=2)


@pytest.mark.lava
def test_stacked_rnn_exact_on_lava():
    model, ints, x, top = _random_stack(2, 3)
    expected = _numpy_stack(ints, x[:2])
    conv = convert_rnn_to_chip(model, x.shape[1])
    lava = conv.run(x[:2], backend="lava")
    for name, e in zip(["h", "h2", "h3"], expected):
        np.testing.assert_array_equal(conv.hidden_counts(lava, name), e, err_msg=name)
    rq, br = top.int_readout().numpy().astype(np.int64), top.int_readout_bias().numpy().astype(np.int64)
    np.testing.assert_array_equal(conv.activations(lava), expected[-1] @ rq.T + br)


def _bi_case():
    """A bidirectional layer from integers and its last frame written out in numpy: h_f over all
    frames, the backward direction's first step (clamp(floor((Wb x_{T-1} + Bb) / Db), 0, L): it
    has seen nothing else), the logits Rq [h_f(T-1); h_b(T-1)] + Br."""
    from snnc.compiler.frontends.conversion.chip_rnn import BiIntGridRNN

    rng = np.random.default_rng(5)
    L, F, H = 3, 3, 4
    wf, uf, wb, ub = (rng.integers(-40, 41, size=s) for s in ((H, F), (H, H), (H, F), (H, H)))
    Bf, Bb = rng.integers(-60, 61, H), rng.integers(-60, 61, H)
    Df, Db = 90, 70
    rq, br = rng.integers(-50, 51, size=(3, 2 * H)), rng.integers(-30, 31, 3)
    fwd = IntGridRNN.from_integers(wf, uf, Bf, Df, L, input_range=(0, 8))
    bwd = IntGridRNN.from_integers(wb, ub, Bb, Db, L, input_range=(0, 8))
    model = BiIntGridRNN(fwd, bwd, rq, br)
    x = rng.integers(0, 9, size=(6, 4, F))
    h_f = _numpy_stack([(wf, uf, Bf, Df, L)], x)[0]
    h_b_last = np.clip(np.floor_divide(x[:, -1] @ wb.T + Bb, Db), 0, L)
    y = np.concatenate([h_f[:, -1], h_b_last], 1) @ rq.T + br
    return model, x, h_f, h_b_last, y, L


def test_bidirectional_last_frame_equals_numpy():
    """On sim; the backward recurrence plays no part in the last frame."""
    model, x, h_f, h_b_last, y, L = _bi_case()
    _, h_b, y_model = model.integer_forward(torch.as_tensor(x, dtype=torch.float64))
    np.testing.assert_array_equal(h_b[:, -1].numpy(), h_b_last)
    np.testing.assert_array_equal(y_model.numpy(), y)
    conv = convert_rnn_to_chip(model, x.shape[1])
    assert "hb->hb" not in conv.chip.projections and len(conv.readout_indices) == 1
    result = conv.run(x)
    np.testing.assert_array_equal(conv.hidden_counts(result, "h"), h_f)
    np.testing.assert_array_equal(conv.hidden_counts(result, "hb")[:, -1], h_b_last)
    np.testing.assert_array_equal(conv.activations(result)[:, -1], y)
    assert len(np.unique(y)) > 3 and np.any((h_b_last > 0) & (h_b_last < L))


def test_quantize_bidirectional_rnn_uses_both_directions():
    torch.manual_seed(1)
    rnn = nn.RNN(4, 5, nonlinearity="relu", batch_first=True, bidirectional=True).double()
    readout = nn.Linear(10, 3).double()
    x = torch.as_tensor(np.random.default_rng(1).integers(0, 9, size=(20, 4, 4)).astype(np.float64))
    model = quantize_rnn(rnn, readout, x, levels=2, input_range=(0, 8))
    conv = convert_rnn_to_chip(model, 4)
    result = conv.run(x)
    np.testing.assert_array_equal(conv.activations(result)[:, -1], model.integer_forward(x)[2].numpy())
    # each direction was quantized from its own torch weights (the backward one from *_reverse)
    torch.testing.assert_close(model.fwd.input.weight, rnn.weight_ih_l0.detach())
    torch.testing.assert_close(model.bwd.input.weight, rnn.weight_ih_l0_reverse.detach())
    torch.testing.assert_close(model.bwd.recurrent.weight, rnn.weight_hh_l0_reverse.detach())


@pytest.mark.lava
def test_bidirectional_exact_on_lava():
    model, x, h_f, h_b_last, y, _ = _bi_case()
    conv = convert_rnn_to_chip(model, x.shape[1])
    lava = conv.run(x[:2], backend="lava")
    np.testing.assert_array_equal(conv.hidden_counts(lava, "h"), h_f[:2])
    np.testing.assert_array_equal(conv.hidden_counts(lava, "hb")[:, -1], h_b_last[:2])
    np.testing.assert_array_equal(conv.activations(lava)[:, -1], y[:2])
