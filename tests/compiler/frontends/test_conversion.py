"""Lossless conversion: the SNN's spike counts on the reference backend equal the quantized ANN's
activations, every layer, every frame.

Weights, biases, inputs and scales lie on binary grids (multiples of 1/8, 1/16, powers of two),
so the ANN's floor(z / s) and the SNN's float64 sums are both exact: ties z = k s happen often and
must land on the same side. The expected counts come from the torch model (QuantReLU.counts on each
activation's input, via forward hooks), never from the converter.
"""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.backends.base import get_backend
from snnc.compiler.frontends.conversion import (
    QuantReLU,
    QuantRNN,
    calibrate,
    conversion_info,
    convert,
    decode,
    encode,
    num_steps,
)
from snnc.ir.errors import ParameterError, ShapeError, SnncError, UnsupportedNodeError

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def on_grid(model: nn.Module, rng, step=1 / 8, lim=1.0):
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 0:
                continue  # QuantReLU scales are set explicitly
            k = int(lim / step)
            p.copy_(torch.from_numpy(rng.integers(-k, k + 1, size=tuple(p.shape)) * step))
    return model


def ann_counts(model: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, list[np.ndarray]]:
    """The model output and, per QuantReLU in module order, its integer activations (per call)."""
    seen: dict[str, list] = {}
    hooks = [
        m.register_forward_hook(lambda mod, i, o, n=n: seen.setdefault(n, []).append(mod.counts(i[0]).numpy()))
        for n, m in model.named_modules()
        if isinstance(m, QuantReLU)
    ]
    try:
        with torch.no_grad():
            y = model(x).numpy()
    finally:
        for h in hooks:
            h.remove()
    acts = [np.stack(v, 1) if len(v) > 1 else v[0] for v in seen.values()]
    return y, acts


def snn_counts(graph: nir.NIRGraph, frames_input: np.ndarray, frames: int = 1):
    info = conversion_info(graph)
    spiking = [l for l in info["layers"] if l["kind"] == "spiking"]
    res = get_backend("reference").build(graph).run(encode(graph, frames_input), probes=[l["out"] for l in spiking])
    per_layer = [decode(info, res.probes[l["out"]], frames, window_of=l["window"]) for l in spiking]
    return decode(graph, res.output, frames), per_layer


@settings(max_examples=14, **SETTINGS)
@given(
    levels=st.sampled_from([1, 2, 3, 4, 8]),
    signed=st.booleans(),
    kernel=st.sampled_from([1, 3]),
    stride=st.sampled_from([1, 2]),
    pool=st.booleans(),
    bn=st.booleans(),
    readout=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_cnn_counts_equal_quantized_activations(levels, signed, kernel, stride, pool, bn, readout, seed):
    rng = np.random.default_rng(seed)
    c1 = 3
    layers = [nn.Conv2d(2, c1, kernel, stride=stride, padding=kernel // 2)]
    if bn:
        layers.append(nn.BatchNorm2d(c1, eps=0.0))
    layers.append(QuantReLU(levels, 2.0**-int(rng.integers(1, 3)), signed=signed))
    hw = 8 // stride
    if pool:
        layers.append(nn.AvgPool2d(2))
        hw //= 2
    layers += [nn.Flatten(), nn.Linear(c1 * hw * hw, 5), QuantReLU(levels, 2.0**-int(rng.integers(0, 2)), signed=signed)]
    if readout:
        layers.append(nn.Linear(5, 3))
    model = on_grid(nn.Sequential(*layers).double(), rng)
    if bn:
        with torch.no_grad():  # dyadic folding: gamma / sqrt(var) with var in {1/4, 1, 4}
            layers[1].running_var.copy_(torch.from_numpy(4.0 ** rng.integers(-1, 2, size=c1)))
            layers[1].running_mean.copy_(torch.from_numpy(rng.integers(-4, 5, size=c1) / 8))
            layers[1].weight.copy_(torch.from_numpy(rng.integers(1, 5, size=c1) / 4))
    model.eval()
    x = torch.from_numpy(rng.integers(-8 if signed else 0, 17, size=(5, 2, 8, 8)) / 16)
    y, acts = ann_counts(model, x)
    graph = convert(model, (2, 8, 8))
    out, per_layer = snn_counts(graph, x.numpy())
    assert len(per_layer) == len(acts) == 2
    for got, want in zip(per_layer, acts):
        np.testing.assert_array_equal(got[:, 0], want)
    expect_out = y if readout else acts[-1]
    np.testing.assert_array_equal(out[:, 0], expect_out)
    assert any(np.any((a != 0) & (np.abs(a) != levels)) for a in acts) or levels == 1, "no graded activity"


@settings(max_examples=12, **SETTINGS)
@given(
    levels=st.sampled_from([2, 3, 4]),
    signed=st.booleans(),
    second=st.booleans(),
    readout=st.booleans(),
    frames=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_rnn_counts_equal_quantized_activations(levels, signed, second, readout, frames, seed):
    rng = np.random.default_rng(seed)
    mods = [QuantRNN(3, 6, levels, 0.25, signed=signed)]
    if second:
        mods += [nn.Linear(6, 4), QuantReLU(levels, 0.5, signed=signed)]
    if readout:
        mods.append(nn.Linear(4 if second else 6, 2))
    model = on_grid(nn.Sequential(*mods).double(), rng)
    x = torch.from_numpy(rng.integers(-16, 17, size=(4, frames, 3)) / 16)
    y, acts = ann_counts(model, x)
    graph = convert(model, (3,))
    out, per_layer = snn_counts(graph, x.numpy(), frames)
    for got, want in zip(per_layer, acts):
        np.testing.assert_array_equal(got, want.reshape(got.shape))
    if readout:
        np.testing.assert_array_equal(out, y)
    else:
        np.testing.assert_array_equal(out, acts[-1].reshape(out.shape))


def test_feedforward_stream_of_frames():
    """stream=True: frames presented back to back, every frame exact (previous frame cancelled)."""
    rng = np.random.default_rng(5)
    model = on_grid(nn.Sequential(nn.Linear(4, 6), QuantReLU(4, 0.25), nn.Linear(6, 3), QuantReLU(4, 0.25, signed=True)).double(), rng)
    x = torch.from_numpy(rng.integers(-16, 17, size=(3, 6, 4)) / 16)
    _, acts = ann_counts(model, x.reshape(-1, 4))
    graph = convert(model, (4,), stream=True)
    out, per_layer = snn_counts(graph, x.numpy(), frames=6)
    for got, want in zip(per_layer, acts):
        np.testing.assert_array_equal(got, want.reshape(got.shape))
    # without the cancellation the same frames are wrong after the first one
    single = convert(model, (4,))
    with pytest.raises(ShapeError, match="one frame per run"):
        encode(single, x.numpy())


def test_time_layout_and_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    model = on_grid(nn.Sequential(nn.Linear(3, 4), QuantReLU(3, 0.5), nn.Linear(4, 2)).double(), rng)
    graph = convert(model, (3,))
    info = conversion_info(graph)
    assert (info["levels"], info["period"], info["output"], info["output_window"]) == (3, 6, "value", 1)
    assert num_steps(info, 1) == 6 and num_steps(info, 3) == 18
    series = encode(graph, np.ones((2, 3)))
    assert series.shape == (2, 6, 3)
    np.testing.assert_array_equal(series[:, :3], 1.0)  # constant current over window 0
    np.testing.assert_array_equal(series[:, 3:], 0.0)
    nir.write(str(tmp_path / "snn.nir"), graph)
    back = nir.read(str(tmp_path / "snn.nir"))
    x = torch.from_numpy(rng.integers(0, 9, size=(4, 3)) / 8)
    res = get_backend("reference").build(back).run(encode(conversion_info(back), x.numpy()))
    with torch.no_grad():
        np.testing.assert_array_equal(decode(conversion_info(back), res.output)[:, 0], model(x).numpy())


# -- QuantReLU --------------------------------------------------------------------------------------
def test_quantrelu_forward_and_straight_through_gradient():
    q = QuantReLU(4, 0.5)
    x = torch.tensor([-1.0, 0.01, 0.49, 0.5, 1.26, 1.99, 2.0, 3.7], requires_grad=True)
    y = q(x)
    np.testing.assert_array_equal(y.detach().numpy(), [0, 0, 0, 0.5, 1.0, 1.5, 2.0, 2.0])
    np.testing.assert_array_equal(q.counts(x.detach()).numpy(), [0, 0, 0, 1, 2, 3, 4, 4])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 1, 1, 1, 0, 0])  # STE inside (0, L s)
    assert q.scale.grad is not None and float(q.scale.grad) != 0.0
    qs = QuantReLU(2, 1.0, signed=True, learn_scale=False)
    np.testing.assert_array_equal(qs(torch.tensor([-5.0, -1.5, -0.2, 0.7, 1.0, 9.0])).numpy(), [-2, -2, -1, 0, 1, 2])
    assert "scale" not in dict(qs.named_parameters())


def test_quantized_model_trains_and_calibrates():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), QuantReLU(4, 1.0), nn.Linear(8, 1))
    calibrate(model, torch.randn(256, 4), percentile=99.0)
    assert 0.05 < float(model[1].scale.detach()) < 2.0
    x = torch.randn(256, 4)
    target = x[:, :1].clamp(min=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    first = None
    for _ in range(60):
        loss = ((model(x) - target) ** 2).mean()
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


# -- errors -----------------------------------------------------------------------------------------
def test_unconvertible_models_are_clear_errors():
    with pytest.raises(UnsupportedNodeError, match="QuantReLU"):
        convert(nn.Sequential(nn.Linear(3, 3), nn.ReLU()), (3,))
    with pytest.raises(UnsupportedNodeError, match="AvgPool2d"):
        convert(nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), QuantReLU(2)), (1, 6, 6))
    with pytest.raises(UnsupportedNodeError, match="same number of levels"):
        convert(nn.Sequential(nn.Linear(3, 3), QuantReLU(2), nn.Linear(3, 3), QuantReLU(4)), (3,))
    with pytest.raises(UnsupportedNodeError, match="before a QuantRNN"):
        convert(nn.Sequential(nn.Linear(3, 3), QuantRNN(3, 2, 2)), (3,))
    with pytest.raises(UnsupportedNodeError, match="no QuantReLU"):
        convert(nn.Sequential(nn.Linear(3, 3)), (3,))
    with pytest.raises(ShapeError):
        convert(nn.Sequential(nn.Linear(3, 3), QuantReLU(2)), (4,))
    with pytest.raises(ParameterError):
        convert(nn.Sequential(QuantRNN(3, 2, 2)), (3,), stream=False)
    with pytest.raises(ParameterError):
        QuantReLU(0)
    with pytest.raises(ParameterError):
        QuantReLU(2, scale=-1.0)
    with pytest.raises(SnncError):
        convert(nn.Sequential(nn.Linear(3, 3), QuantReLU(2)), ("x",))
