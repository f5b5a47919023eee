"""Chip-exact conversion of an integer-grid Elman RNN (sequences of frames) onto Loihi CUBA neurons.

The recurrent counterpart of `conversion_chip.py` (read its docstring first: du = 4095, dv = 0,
vth = 0 neurons, an offset E = B - M, a kick and a ramp D from a graded clock, n spikes in a fire
window of L steps with n = clamp(floor(z / D), 0, L)).

1. Integer-grid Elman RNN (`IntGridRNN`, `quantize_rnn`)
--------------------------------------------------------
Over frames tau = 0 .. T-1 (digits: the 8 rows of an image, 8 pixels each) with h_{-1} = 0:

    z_tau = Wq x_tau + Uq h_{tau-1} + B,      h_tau = clamp(floor(z_tau / D), 0, L)
    y_tau = Rq h_tau + Br                     (integer logits of every frame; classify y_{T-1})

Wq, Uq, Rq are integers (|q| <= 127 for 8 bits), B, Br integers, D >= 1, x_tau the input integers
(x = input_scale * n0). The float model (trainable, straight-through estimators) has hidden value
s_h * h with s_h = D s_w s_in; the recurrent weight's grid is then fixed at 1 / D (U_float = Uq / D)
so that W x and U h land on the same integer grid. `quantize_rnn` takes a trained `nn.RNN`
(relu, one layer, batch_first) and an optional readout `nn.Linear`; it calibrates D on data
(percentile of the positive pre-activations -> L levels) and, if needed, coarsens s_w so that
max|U| D <= qmax (no recurrent weight clips). `pow2_step=True` restricts D to powers of two:
then U_float = Uq / D is exact in binary floating point and the float equivalent
(`float_equivalent_rnn`, a `conversion.QuantRNN` + Linear) reproduces the integers exactly on the
float `reference` backend too.

2. Frames on the chip (`convert_rnn_to_chip`)
---------------------------------------------
One population "h" (H neurons, model lif_reset, du = 4095, dv = 0, vth = 0) and, with a readout,
one population "readout" (lif_reset, vth = 2**17 - 1: never fires; read through v). Frame period
P = 2 L - 1 steps. Indices below are sim step indices (an input sent at index t reaches u at
t + 1); "relative k of frame tau" means arrival index 1 + tau P + k.

  relative 0        : h resets (LIFReset: u = v = 0 when (index + 1) % P == 2 % P, applied before
                      this step's input), the offset E = B - M arrives (clock digits), and the
                      first of the previous frame's recurrent spikes arrives;
  relative 0..L-1   : the L steps of frame tau-1's fire window arrive over the recurrent projection
                      h -> h (weights 2 Uq, weight_exp -1, synaptic DELAY d = L - 1: a spike
                      emitted at index t arrives at t + 1 + d);
  relative L-1 = f  : x_tau (graded, sent once), the last recurrent spikes and the kick
                      M - (L + 1) D + 1 arrive: A = z_tau - L D + 1;
  relative f..f+L-1 : the fire window: a ramp D per step; n = clamp(floor(z_tau / D), 0, L) spikes
                      (after the first spike v = 0 and the ramp re-fires it every step);
  relative P        : the next frame's reset: whatever v holds is cleared.

Check of the recurrent timing: the fire window of frame tau-1 emits at indices
(tau-1) P + L + j (j = 0..L-1); with d = L - 1 they arrive at (tau-1) P + 2L + j = 1 + tau P + j,
i.e. relative j = 0..L-1 of frame tau: after its reset, the last one with the kick. Before the
kick, A = E + B-free partial sums <= B + (L - 1) sum(Uq^+) - M <= 0 by the choice of M (the
neuron cannot fire early); the fire window ends at relative 2L - 2 = P - 1, before the next reset.
The offset is sent for frame T too, so the last frame's recurrent spikes cannot fire h after the
last window (every spike of h lies inside a fire window; for L = 1, where all of U h arrives in
that one step, M covers B + sum(Uq^+)).

Readout: h's spikes of frame tau reach "readout" at relative L..2L-1; the readout resets at
relative L ((index + 1) % P == (L + 2) % P), where its offset Br arrives (its own clock), and at
relative 2L - 1 (index tau P + 2L) its v = 64 y_tau exactly; every frame's logits are read.
Steps: (T - 1) P + 2L + 1. L = 1 gives P = 1: one step per frame.

Stacked layers (`StackedIntGridRNN`, from nn.RNN num_layers = K): layer k ("h", "h2", ...) is the
same neuron scheme with its frames shifted by k L steps (reset offset, clock and windows): the
spikes of layer k - 1's window of frame tau (emitted at tau P + L + (k-1) L + j) arrive at relative
j = 0..L-1 of layer k's frame tau, the last with its kick, like its own recurrent spikes (the same
delay L - 1). M then also covers the (L - 1) sum(W+) of those input spikes before the kick, and
all L recurrent spikes of the last frame (the run goes on after it: no stray spike). The readout
follows the last layer's shift. Steps: (T - 1) P + 2L + 1 + (K - 1) L.

Bidirectional (`BiIntGridRNN`, from nn.RNN bidirectional=True with a readout over both
directions, one layer): classified on the last frame, whose backward state h_b(T-1) has seen
x_{T-1} only. So "hb" is the same neuron scheme without the recurrent projection, fed the same x
at the same times; at frame T-1 its counts are h_b(T-1), and the readout (from "h" and "hb")
holds the last frame's logits exactly. Earlier frames' logits would need the backward pass over
future frames: they are not produced (a stacked or frame-by-frame bidirectional output is a named
error).

All weights are exact at the network's real width (`chip.exact_weights`: q * 2**k, weight_exp -k,
num_weight_bits the fewest bits that hold q in the projection's sign mode); every bound
(v inside +-(2**17 - 1) a-units where a saturation could change the result, each step's input
inside u's 24 bits, 8-bit weights, 24-bit clock payloads, delay <= 62) is checked and a violation
raises `QuantizationError` naming the layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import torch
import torch.nn as nn

from snnc.ir.chip import ChipGraph, DenseProjection, InputPopulation, OutputPort, Population, Projection
from snnc.ir.errors import ParameterError, QuantizationError, ShapeError, UnsupportedNodeError

from .chip import (
    A_LIMIT,
    CLOCK_BITS,
    DIGITS,
    READOUT_VTH,
    U_HI,
    U_LO,
    IntGridNet,
    _add_clock,
    _fail,
    exact_weights,
    _ste_round,
)

MAX_DELAY = 62


# =============================================================================================
# 1. integer-grid Elman RNN
# =============================================================================================
def _ste_floor_clamp(u, levels: int):
    q = torch.clamp(torch.floor(u), 0, levels)
    uc = torch.clamp(u, 0, levels)
    return uc + (q - uc).detach()


class IntGridRNN(nn.Module):
    """An Elman RNN layer (relu, L levels) plus an optional linear readout on an integer grid.

    `input` (nn.Linear with bias) holds W and b, `recurrent` (nn.Linear, no bias) U, `readout`
    (nn.Linear or None) R and br, all as floats; the integers are
    Wq = clamp(round(W / s_w)), B = round(b / (s_w s_in)), Uq = clamp(round(U D)),
    Rq = clamp(round(R / s_r)), Br = round(br / (s_r s_h)) with s_h = D s_w s_in.
    `forward(x)` ([batch, T, F] floats) is the trainable float model (straight-through estimators)
    returning the last frame's logits (or its hidden values without a readout);
    `integer_forward(x)` the exact integers (h [batch, T, H], y [batch, T, C] or None);
    `predict(x)` the argmax of the last frame's integer logits.
    """

    # declared so that type checkers see plain attributes, not nn.Module's Tensor | Module lookup
    input: nn.Linear
    recurrent: nn.Linear
    readout: nn.Linear | None
    input_scale: float
    input_range: tuple[int, int]
    weight_scale: float
    readout_scale: float
    step: int
    levels: int
    qmax: int

    def __init__(self, input: nn.Linear, recurrent: nn.Linear, readout: nn.Linear | None = None, *,
                 input_scale: float = 1.0, input_range: tuple[int, int] = (0, 255), weight_scale: float = 1.0,
                 readout_scale: float = 1.0, step: int = 1, levels: int = 1, weight_bits: int = 8):
        super().__init__()
        where = "IntGridRNN"
        if not isinstance(input, nn.Linear) or not isinstance(recurrent, nn.Linear):
            raise UnsupportedNodeError("IntGridRNN takes nn.Linear input and recurrent maps", where=where,
                                       got=(type(input).__name__, type(recurrent).__name__))
        hidden = input.out_features
        if recurrent.in_features != hidden or recurrent.out_features != hidden or recurrent.bias is not None:
            raise ShapeError("recurrent must be nn.Linear(hidden, hidden, bias=False)", where=where,
                             expected=(hidden, hidden), got=(recurrent.out_features, recurrent.in_features))
        if readout is not None and (not isinstance(readout, nn.Linear) or readout.in_features != hidden):
            raise ShapeError("readout must be nn.Linear(hidden, classes)", where=where, expected=hidden,
                             got=getattr(readout, "in_features", type(readout).__name__))
        for name, value in (("input_scale", input_scale), ("weight_scale", weight_scale), ("readout_scale", readout_scale)):
            if not (math.isfinite(float(value)) and float(value) > 0):
                raise ParameterError(f"{name} must be a positive number", where=where, got=value)
        if int(step) != step or step < 1:
            raise ParameterError("step D must be a positive integer", where=where, got=step)
        if int(levels) != levels or levels < 1:
            raise ParameterError("levels must be a positive integer", where=where, got=levels)
        if not 2 <= int(weight_bits) <= 8:
            raise ParameterError("weight_bits must be 2..8 (signed)", where=where, got=weight_bits)
        lo, hi = (int(v) for v in input_range)
        if lo > hi:
            raise ParameterError("input_range must be (lo, hi) with lo <= hi", where=where, got=input_range)
        self.input = input
        self.recurrent = recurrent
        self.readout = readout
        self.input_scale = float(input_scale)
        self.input_range = (lo, hi)
        self.weight_scale = float(weight_scale)
        self.readout_scale = float(readout_scale)
        self.step = int(step)
        self.levels = int(levels)
        self.qmax = 2 ** (int(weight_bits) - 1) - 1

    @classmethod
    def from_integers(cls, wq, uq, bias, step: int, levels: int, rq=None, rbias=None, *,
                      input_range: tuple[int, int] = (0, 255), weight_bits: int = 8) -> "IntGridRNN":
        """An IntGridRNN holding exactly these integers (unit scales: input_scale = s_w = 1)."""
        wq, uq = np.asarray(wq), np.asarray(uq)
        hidden, feats = wq.shape
        inp = nn.Linear(feats, hidden).double()
        rec = nn.Linear(hidden, hidden, bias=False).double()
        with torch.no_grad():
            inp.weight.copy_(torch.as_tensor(wq, dtype=torch.float64))
            inp.bias.copy_(torch.as_tensor(np.asarray(bias), dtype=torch.float64))
            rec.weight.copy_(torch.as_tensor(uq, dtype=torch.float64) / step)
        ro = None
        if rq is not None:
            rq = np.asarray(rq)
            ro = nn.Linear(hidden, rq.shape[0]).double()
            with torch.no_grad():
                ro.weight.copy_(torch.as_tensor(rq, dtype=torch.float64))
                rb = np.zeros(rq.shape[0]) if rbias is None else np.asarray(rbias)
                ro.bias.copy_(torch.as_tensor(rb, dtype=torch.float64) * step)  # s_r s_h = D
        return cls(inp, rec, ro, input_scale=1.0, input_range=input_range, weight_scale=1.0, readout_scale=1.0,
                   step=step, levels=levels, weight_bits=weight_bits)

    # -- scales and integers ------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.input.out_features

    @property
    def hidden_scale(self) -> float:
        """Float value of one spike (one count of h)."""
        return self.step * self.weight_scale * self.input_scale

    @property
    def logit_scale(self) -> float:
        """Float value of one unit of the integer logits."""
        return self.readout_scale * self.hidden_scale

    def int_weight(self) -> torch.Tensor:
        with torch.no_grad():
            return torch.clamp(torch.round(self.input.weight.double() / self.weight_scale), -self.qmax, self.qmax)

    def int_bias(self) -> torch.Tensor:
        with torch.no_grad():
            if self.input.bias is None:
                return torch.zeros(self.hidden_size, dtype=torch.float64)
            return torch.round(self.input.bias.double() / (self.weight_scale * self.input_scale))

    def int_recurrent(self) -> torch.Tensor:
        with torch.no_grad():
            return torch.clamp(torch.round(self.recurrent.weight.double() * self.step), -self.qmax, self.qmax)

    def int_readout(self) -> torch.Tensor | None:
        if self.readout is None:
            return None
        with torch.no_grad():
            return torch.clamp(torch.round(self.readout.weight.double() / self.readout_scale), -self.qmax, self.qmax)

    def int_readout_bias(self) -> torch.Tensor | None:
        if self.readout is None:
            return None
        with torch.no_grad():
            if self.readout.bias is None:
                return torch.zeros(self.readout.out_features, dtype=torch.float64)
            return torch.round(self.readout.bias.double() / self.logit_scale)

    def input_integers(self, x) -> torch.Tensor:
        """x / input_scale as integers [batch, T, F]; an error off the grid or out of input_range."""
        n = IntGridNet([], input_scale=self.input_scale, input_range=self.input_range).input_integers(x)
        if n.ndim != 3 or n.shape[2] != self.input.in_features:
            raise ShapeError("IntGridRNN takes [batch, frames, features]", where="IntGridRNN input",
                             expected=f"[batch, T, {self.input.in_features}]", got=list(n.shape))
        return n

    # -- float (trainable) model --------------------------------------------------------------
    def forward(self, x, *, all_frames: bool = False):
        if x.ndim != 3:
            raise ShapeError("IntGridRNN takes [batch, frames, features]", where="IntGridRNN.forward", got=tuple(x.shape))
        lo, hi = self.input_range
        si, ws, D, L = self.input_scale, self.weight_scale, self.step, self.levels
        a = torch.clamp(torch.round(x / si), lo, hi) * si
        w = torch.clamp(_ste_round(self.input.weight / ws), -self.qmax, self.qmax) * ws
        b = None if self.input.bias is None else _ste_round(self.input.bias / (ws * si)) * (ws * si)
        u = torch.clamp(_ste_round(self.recurrent.weight * D), -self.qmax, self.qmax) / D
        s = self.hidden_scale
        h = a.new_zeros((x.shape[0], self.hidden_size))
        hs = []
        for t in range(x.shape[1]):
            z = nn.functional.linear(a[:, t], w, b) + nn.functional.linear(h, u)
            h = s * _ste_floor_clamp(z / s, L)
            hs.append(h)
        out = torch.stack(hs, 1)
        if self.readout is not None:
            rs = self.readout_scale
            r = torch.clamp(_ste_round(self.readout.weight / rs), -self.qmax, self.qmax) * rs
            rb = None if self.readout.bias is None else _ste_round(self.readout.bias / (rs * s)) * (rs * s)
            out = nn.functional.linear(out, r, rb)
        return out if all_frames else out[:, -1]

    # -- exact integer model ------------------------------------------------------------------
    def integer_forward(self, x, *, pre_activation: bool = False):
        """(h [batch, T, H], y [batch, T, C] or None) as float64 tensors holding integers;
        with `pre_activation`, (z, h, y) where z are the hidden pre-activations z_tau."""
        n0 = self.input_integers(x)
        wq, uq, B = self.int_weight(), self.int_recurrent(), self.int_bias()
        h = torch.zeros((n0.shape[0], self.hidden_size), dtype=torch.float64)
        zs, hs = [], []
        with torch.no_grad():
            for t in range(n0.shape[1]):
                z = n0[:, t] @ wq.T + B + h @ uq.T
                h = torch.clamp(torch.div(z, self.step, rounding_mode="floor"), 0, self.levels)
                zs.append(z)
                hs.append(h)
            hs_t = torch.stack(hs, 1)
            y = None
            rq, rb = self.int_readout(), self.int_readout_bias()
            if rq is not None and rb is not None:  # with a readout
                y = hs_t @ rq.T + rb
        if pre_activation:
            return torch.stack(zs, 1), hs_t, y
        return hs_t, y

    def predict(self, x) -> np.ndarray:
        h, y = self.integer_forward(x)
        last = (y if y is not None else h)[:, -1]
        return last.argmax(1).numpy()

    def extra_repr(self) -> str:
        return f"step={self.step}, levels={self.levels}, qmax={self.qmax}, input_range={self.input_range}"


class StackedIntGridRNN(nn.Module):
    """Elman layers stacked as nn.RNN(num_layers=K) stacks them: layer k reads the counts of layer
    k - 1 (frame by frame); only the last may have a readout, all share L (one frame period).

    `integer_forward(x)` -> (h of every layer [batch, T, H_k], y [batch, T, C] or None); the
    counts of layer k - 1 enter layer k as its input integers (input_scale = layer k-1's s_h).
    """

    def __init__(self, layers):
        super().__init__()
        layers = list(layers)
        if not layers or not all(isinstance(m, IntGridRNN) for m in layers):
            raise UnsupportedNodeError("StackedIntGridRNN stacks IntGridRNN layers", where="StackedIntGridRNN",
                                       got=[type(m).__name__ for m in layers])
        for k, m in enumerate(layers):
            where = f"StackedIntGridRNN layer {k}"
            if m.levels != layers[0].levels:
                raise ParameterError("every layer must have the same levels (one frame period)", where=where,
                                     expected=layers[0].levels, got=m.levels)
            if k < len(layers) - 1 and m.readout is not None:
                raise ShapeError("only the last layer may have a readout", where=where)
            if k and m.input.in_features != layers[k - 1].hidden_size:
                raise ShapeError("layer input size differs from the hidden size below", where=where,
                                 expected=layers[k - 1].hidden_size, got=m.input.in_features)
            if k and (m.input_range[0] > 0 or m.input_range[1] < m.levels):
                raise ParameterError("a stacked layer's input range must hold the counts 0..L", where=where,
                                     expected=(0, m.levels), got=m.input_range)
        self.layers = nn.ModuleList(layers)

    def integer_forward(self, x):
        hs, y = [], None
        with torch.no_grad():
            for k, layer in enumerate(self.layers):
                inp = x if k == 0 else hs[-1] * layer.input_scale
                h, y = layer.integer_forward(inp)
                hs.append(h)
        return hs, y

    def predict(self, x) -> np.ndarray:
        hs, y = self.integer_forward(x)
        return (y if y is not None else hs[-1])[:, -1].argmax(1).numpy()


def _layer_rnn(rnn: nn.RNN, k: int, suffix: str = "") -> nn.RNN:
    """Layer k of a stacked nn.RNN (suffix "_reverse": its backward direction) as a one-layer nn.RNN."""
    one = nn.RNN(rnn.hidden_size if k else rnn.input_size, rnn.hidden_size, nonlinearity=rnn.nonlinearity,
                 bias=rnn.bias, batch_first=True).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if rnn.bias else ()):
            getattr(one, f"{name}_l0").copy_(getattr(rnn, f"{name}_l{k}{suffix}").detach().double())
    return one


class BiIntGridRNN(nn.Module):
    """A bidirectional Elman layer classified on its LAST frame: y = Rq [h_f(T-1); h_b(T-1)] + Br.

    h_f is the forward IntGridRNN over frames 0..T-1; h_b(T-1) is the backward direction's first
    step, which has seen x_{T-1} only: clamp(floor((Wb x_{T-1} + Bb) / Db), 0, L), a feed-forward
    layer on the last frame. That is why the chip can run it in the forward pass's time: the
    logits of the last frame are exact; earlier frames' y (which need the backward pass over the
    future frames) are not produced. `integer_forward(x)` -> (h_f [B, T, H], h_b [B, T, H], y [B, C]).
    """

    def __init__(self, forward_rnn: IntGridRNN, backward_rnn: IntGridRNN, readout_q, readout_b):
        super().__init__()
        where = "BiIntGridRNN"
        for m in (forward_rnn, backward_rnn):
            if not isinstance(m, IntGridRNN) or m.readout is not None:
                raise UnsupportedNodeError("both directions are IntGridRNN without a readout", where=where)
        if forward_rnn.levels != backward_rnn.levels or forward_rnn.input_range != backward_rnn.input_range:
            raise ParameterError("both directions need the same levels and input range", where=where,
                                 got=((forward_rnn.levels, forward_rnn.input_range),
                                      (backward_rnn.levels, backward_rnn.input_range)))
        rq = np.asarray(readout_q, np.int64)
        if rq.ndim != 2 or rq.shape[1] != forward_rnn.hidden_size + backward_rnn.hidden_size:
            raise ShapeError("readout weights must be [classes, H_forward + H_backward]", where=where, got=rq.shape)
        self.fwd, self.bwd = forward_rnn, backward_rnn
        self.readout_q = rq
        self.readout_b = np.asarray(readout_b, np.int64).reshape(rq.shape[0])

    def integer_forward(self, x):
        h_f, _ = self.fwd.integer_forward(x)
        n0 = self.fwd.input_integers(x)
        h_b, _ = self.bwd.integer_forward(torch.flip(n0, (1,)) * self.bwd.input_scale)
        h_b = torch.flip(h_b, (1,))
        last = torch.cat([h_f[:, -1], h_b[:, -1]], 1)
        y = last @ torch.as_tensor(self.readout_q, dtype=torch.float64).T + torch.as_tensor(self.readout_b,
                                                                                             dtype=torch.float64)
        return h_f, h_b, y

    def predict(self, x) -> np.ndarray:
        return self.integer_forward(x)[2].argmax(1).numpy()


def quantize_rnn(rnn: nn.RNN, readout: nn.Linear | None, data, *, levels: int, input_scale: float = 1.0,
                 input_range: tuple[int, int] = (0, 255), percentile: float = 99.9, weight_bits: int = 8,
                 pow2_step: bool = False, round_to_nearest: bool = True) -> IntGridRNN | StackedIntGridRNN | BiIntGridRNN:
    """Quantize a trained float `nn.RNN` (nonlinearity='relu', batch_first=True, unidirectional)
    and an optional readout `nn.Linear` into an `IntGridRNN` (a `StackedIntGridRNN` for
    num_layers > 1: each layer quantized on the integer counts of the one below).

    Calibration on `data` ([batch, T, F] floats; the input is put on its integer grid first): the
    `percentile` of the positive pre-activations of all frames maps to L levels (s_h), s_w starts
    at max|W| / qmax, D = floor(s_h / (s_w s_in)) (a power of two with `pow2_step`), capped so that
    max|U| D <= qmax, and s_w = s_h / (D s_in) then (never finer than max|W| / qmax: no input
    weight clips). The readout gets s_r = max|R| / qmax. With `round_to_nearest` half a step is
    added to the bias (B += D / 2 in float): floor((z + D/2) / D) rounds the float ReLU values to
    the nearest level instead of truncating them (the integer model itself still floors).
    """
    where = "quantize_rnn"
    if not isinstance(rnn, nn.RNN):
        raise UnsupportedNodeError("quantize_rnn takes an nn.RNN", where=where, got=type(rnn).__name__)
    # one error per unsupported setting, each naming the setting and the nearest supported form
    for bad, setting, got, hint in (
        (rnn.nonlinearity != "relu", "nonlinearity", rnn.nonlinearity,
         "use nonlinearity='relu' (counts are unsigned 0..L; tanh's negative half has no spikes)"),
        (rnn.bidirectional and (rnn.num_layers > 1 or readout is None), "bidirectional", rnn.bidirectional,
         "converted for one layer classified on its last frame (give the readout over both directions): "
         "a stacked or frame-by-frame bidirectional output needs the whole sequence before its first output"),
        (not rnn.batch_first, "batch_first", rnn.batch_first, "build the RNN with batch_first=True"),
    ):
        if bad:
            raise UnsupportedNodeError(f"nn.RNN {setting}={got!r} is not supported", where=f"{where}: nn.RNN.{setting}",
                                       expected="nn.RNN(F, H, nonlinearity='relu', batch_first=True)", got=got, hint=hint)
    if int(levels) != levels or levels < 1:
        raise ParameterError("levels must be a positive integer", where=where, got=levels)
    if rnn.bidirectional:  # the last frame's logits: forward pass + the backward pass's first step
        x_in = torch.as_tensor(np.asarray(data) if not torch.is_tensor(data) else data).double()
        fwd, bwd = (
            cast(IntGridRNN, quantize_rnn(_layer_rnn(rnn, 0, suffix), None, xs, levels=levels, input_scale=input_scale,
                                          input_range=input_range, percentile=percentile, weight_bits=weight_bits,
                                          pow2_step=pow2_step, round_to_nearest=round_to_nearest))
            for suffix, xs in (("", x_in), ("_reverse", torch.flip(x_in, (1,)))))
        H = rnn.hidden_size
        if not isinstance(readout, nn.Linear) or readout.in_features != 2 * H:
            raise ShapeError("a bidirectional RNN's readout must be nn.Linear(2 hidden, classes)", where=where,
                             expected=2 * H, got=getattr(readout, "in_features", type(readout).__name__))
        qmax = 2 ** (int(weight_bits) - 1) - 1
        R = readout.weight.detach().double()
        scaled = torch.cat([R[:, :H] * fwd.hidden_scale, R[:, H:] * bwd.hidden_scale], 1)  # per count
        unit = float(scaled.abs().max()) / qmax if float(scaled.abs().max()) > 0 else 1.0  # one logit unit
        rb = readout.bias.detach().double() if readout.bias is not None else torch.zeros(R.shape[0], dtype=torch.float64)
        return BiIntGridRNN(fwd, bwd, torch.clamp(torch.round(scaled / unit), -qmax, qmax).numpy(),
                            torch.round(rb / unit).numpy())
    if rnn.num_layers > 1:  # layer by layer, each calibrated on the integer counts of the one below
        layers: list[IntGridRNN] = []
        inp, scale, rng = data, input_scale, input_range
        for k in range(rnn.num_layers):
            top = k == rnn.num_layers - 1
            layer = cast(IntGridRNN, quantize_rnn(_layer_rnn(rnn, k), readout if top else None, inp, levels=levels, input_scale=scale,
                                                  input_range=rng, percentile=percentile, weight_bits=weight_bits, pow2_step=pow2_step,
                                                  round_to_nearest=round_to_nearest))  # one unidirectional layer
            layers.append(layer)
            h, _ = layer.integer_forward(inp)
            inp, scale, rng = h * layer.hidden_scale, layer.hidden_scale, (0, levels)
        return StackedIntGridRNN(layers)
    qmax = 2 ** (int(weight_bits) - 1) - 1
    W = rnn.get_parameter("weight_ih_l0").detach().double()
    U = rnn.get_parameter("weight_hh_l0").detach().double()
    b = torch.zeros(W.shape[0], dtype=torch.float64)
    if rnn.bias:
        b = (rnn.get_parameter("bias_ih_l0").detach() + rnn.get_parameter("bias_hh_l0").detach()).double()
    x = torch.as_tensor(np.asarray(data) if not torch.is_tensor(data) else data).double()
    lo, hi = (int(v) for v in input_range)
    xq = torch.clamp(torch.round(x / input_scale), lo, hi) * input_scale
    with torch.no_grad():
        h = torch.zeros((x.shape[0], W.shape[0]), dtype=torch.float64)
        zs = []
        for t in range(x.shape[1]):
            z = xq[:, t] @ W.T + b + h @ U.T
            h = torch.relu(z)
            zs.append(z)
        z = torch.stack(zs)
    pos = z[z > 0]
    target = float(torch.quantile(pos.float(), percentile / 100.0)) if pos.numel() else 1.0
    s_h = target / levels
    s_in = float(input_scale)
    wmax, umax = float(W.abs().max()), float(U.abs().max())
    s_w0 = wmax / qmax if wmax > 0 else 1.0
    d_real = s_h / (s_w0 * s_in)
    if umax > 0:
        d_real = min(d_real, qmax / umax)
    if d_real < 1:
        D, s_w = 1, s_w0
    else:
        D = 2 ** int(math.floor(math.log2(d_real))) if pow2_step else int(math.floor(d_real))
        s_w = max(s_h / (D * s_in), s_w0)
    inp = nn.Linear(W.shape[1], W.shape[0]).double()
    rec = nn.Linear(W.shape[0], W.shape[0], bias=False).double()
    with torch.no_grad():
        inp.weight.copy_(W)
        inp.bias.copy_(b + (0.5 * D * s_w * s_in if round_to_nearest else 0.0))
        rec.weight.copy_(U)
    ro, s_r = None, 1.0
    if readout is not None:
        if not isinstance(readout, nn.Linear) or readout.in_features != W.shape[0]:
            raise ShapeError("readout must be nn.Linear(hidden, classes)", where=where, expected=W.shape[0],
                             got=getattr(readout, "in_features", type(readout).__name__))
        ro = nn.Linear(readout.in_features, readout.out_features, bias=readout.bias is not None).double()
        with torch.no_grad():
            ro.weight.copy_(readout.weight.detach().double())
            if readout.bias is not None:
                ro.bias.copy_(readout.bias.detach().double())
        rmax = float(ro.weight.detach().abs().max())
        s_r = rmax / qmax if rmax > 0 else 1.0
    return IntGridRNN(inp, rec, ro, input_scale=input_scale, input_range=(lo, hi), weight_scale=s_w,
                      readout_scale=s_r, step=D, levels=levels, weight_bits=weight_bits)


def float_equivalent_rnn(qrnn: IntGridRNN) -> nn.Sequential:
    """The integer RNN as `nn.Sequential(conversion.QuantRNN, nn.Linear)` for `conversion.convert`.

    Fed the input integers n0: QuantRNN(input weights Wq, bias B, recurrent weights Uq / D,
    QuantReLU scale D) computes hidden values D h exactly, the readout (weights Rq, bias D Br)
    gives D y. Exact in float64 only when D is a power of two (Uq / D is then a binary fraction);
    otherwise a QuantizationError (quantize with pow2_step=True).
    """
    from .float_model import QuantRNN

    D = qrnn.step
    if D & (D - 1):
        raise QuantizationError(
            "the float equivalent is exact only for a power-of-two step D (recurrent weights Uq / D)",
            where="float_equivalent_rnn", expected="D = 2**k", got=D, hint="quantize_rnn(..., pow2_step=True)",
        )
    H, F_ = qrnn.hidden_size, qrnn.input.in_features
    q = QuantRNN(F_, H, qrnn.levels, float(D)).double()
    with torch.no_grad():
        q.input.weight.copy_(qrnn.int_weight())
        q.input.bias.copy_(qrnn.int_bias())
        q.recurrent.weight.copy_(qrnn.int_recurrent() / D)
    mods: list[nn.Module] = [q]
    rq, rb = qrnn.int_readout(), qrnn.int_readout_bias()
    if rq is not None and rb is not None:  # with a readout
        lin = nn.Linear(H, rq.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(rq)
            lin.bias.copy_(rb * D)
        mods.append(lin)
    return nn.Sequential(*mods).double()


# =============================================================================================
# 2. the chip graph
# =============================================================================================
@dataclass
class RNNChipConversion:
    """The chip graph of a converted IntGridRNN for sequences of `frames` frames.

    `encode(x)` -> {"x": [B, steps, F], "clock_h": ..., "clock_readout": ...};
    `hidden_counts(result)` -> h per frame [B, T, H] (needs the "h/s" probe, or `run(probes=True)`);
    `activations(result)` -> integer logits of every frame [B, T, C] (readout v / 64);
    `decode(result)` -> argmax of the last frame's logits (or of its counts without a readout).
    """

    chip: ChipGraph
    steps: int
    frames: int
    period: int
    levels: int
    input_size: int
    input_scale: float
    input_range: tuple[int, int]
    input_indices: list[int] = field(default_factory=list)  # send index of frame tau's x
    fire_windows: list[tuple[int, int]] = field(default_factory=list)  # h spike indices [lo, hi) per frame
    readout_indices: list[int] = field(default_factory=list)  # readout v index per frame
    clocks: dict[str, np.ndarray] = field(default_factory=dict)
    readout: str | None = None
    layer_windows: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # per hidden layer
    probes: tuple[str, ...] = ("h/s",)

    @property
    def output_name(self) -> str:
        return "out"

    def encode(self, x) -> dict[str, np.ndarray]:
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).double()
        if x.ndim != 3 or tuple(x.shape[1:]) != (self.frames, self.input_size):
            raise ShapeError("input batch has the wrong shape", where="RNNChipConversion.encode",
                             expected=f"[batch, {self.frames}, {self.input_size}]", got=list(x.shape),
                             hint="the chip graph is built for a fixed number of frames (convert_rnn_to_chip(frames=...))")
        n = IntGridNet([], input_scale=self.input_scale, input_range=self.input_range).input_integers(x).numpy()
        n = n.astype(np.int64)
        batch = n.shape[0]
        xs = np.zeros((batch, self.steps, self.input_size), np.int64)
        for tau, idx in enumerate(self.input_indices):
            xs[:, idx] = n[:, tau]
        out = {"x": xs}
        for cname, arr in self.clocks.items():
            out[cname] = np.broadcast_to(arr, (batch, *arr.shape)).copy()
        return out

    def _spikes(self, result, name: str = "h") -> np.ndarray:
        if f"{name}/s" in result.probes:
            return np.asarray(result.probes[f"{name}/s"], np.int64)
        if self.readout is None and self.chip.outputs[self.output_name].population == name:
            return np.asarray(result.outputs[self.output_name], np.int64)
        raise ShapeError("run without the hidden probe", where="RNNChipConversion.hidden_counts", expected=list(self.probes))

    def hidden_counts(self, result, name: str = "h") -> np.ndarray:
        """Counts per frame [B, T, H] of hidden layer `name` ("h" the first, "h2", ... stacked)."""
        s = self._spikes(result, name)
        s = s.reshape(s.shape[0], s.shape[1], -1)
        windows = self.layer_windows.get(name, self.fire_windows)
        return np.stack([s[:, lo:hi].sum(1) for lo, hi in windows], 1)

    def stray_spikes(self, result) -> int:
        """Spikes of the hidden layers outside every fire window (0 when the scheme works)."""
        names = list(self.layer_windows) or ["h"]
        return sum(int(self._spikes(result, n).sum() - self.hidden_counts(result, n).sum()) for n in names)

    def activations(self, result) -> np.ndarray:
        if self.readout is None:
            return self.hidden_counts(result, self.chip.outputs[self.output_name].population)
        out = np.asarray(result.outputs[self.output_name], np.int64)
        v = out[:, self.readout_indices].reshape(out.shape[0], len(self.readout_indices), -1)
        if np.any(v % 64):
            raise QuantizationError("readout voltage is not a multiple of 64", where=f"layer {self.readout!r}")
        return v // 64

    def decode(self, result) -> np.ndarray:
        return self.activations(result)[:, -1].argmax(1)

    def run(self, x, backend: str = "sim", probes: bool = True, **options):
        """Encode, build on `backend`, run: returns the RunResult."""
        from snnc.backends.program_cache import build_cached

        program = build_cached(self.chip, backend, **options)  # built once, reused while the chip is unchanged
        return program.run(self.encode(x), steps=self.steps, probes=self.probes if probes else ())

    def to_nir(self):
        from snnc.ir.chip_nir import chip_to_nir

        return chip_to_nir(self.chip)


def _input_bounds(wq: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    pos, neg = np.maximum(wq, 0), np.minimum(wq, 0)
    return (pos * hi + neg * lo).sum(1), (pos * lo + neg * hi).sum(1)


def _dense(name: str, src: str, dst: str, q: np.ndarray, what: str, **kw) -> Projection:
    """A dense projection carrying the integers q exactly at their real width (`exact_weights`)."""
    w, bits, exp = exact_weights(q, dst, f"{what} weights")
    return DenseProjection(name, src, dst, w, weight_exp=exp, num_weight_bits=bits, **kw)


def _hidden_layer(chip: ChipGraph, clocks: dict, name: str, src: str, layer: IntGridRNN, *, frames: int, steps: int,
                  shift: int, graded: tuple[int, int, int] | None, stacked: bool,
                  recurrent: bool = True) -> list[tuple[int, int]]:
    """Add hidden layer `name` (fed by `src`: the graded input, graded = (lo, hi, bits), or the
    spikes of the layer below) whose frames lag the first layer's by `shift` steps; returns its
    fire windows (spike indices [lo, hi) per frame). See the module docstring for the layout."""
    T, L, D = frames, layer.levels, layer.step
    P, d = 2 * L - 1, L - 1
    if d > MAX_DELAY:
        _fail(name, "the recurrent delay L - 1 exceeds the chip's 6-bit synaptic delay", d, f"<= {MAX_DELAY}",
              f"use at most {MAX_DELAY + 1} levels")
    wq = layer.int_weight().numpy().astype(np.int64)
    uq = layer.int_recurrent().numpy().astype(np.int64)
    if not recurrent:  # a backward direction's first step: no history
        uq = np.zeros_like(uq)
    B = layer.int_bias().numpy().astype(np.int64)
    H = wq.shape[0]
    w_pos, w_neg = np.maximum(wq, 0).sum(1), -np.minimum(wq, 0).sum(1)
    u_pos, u_neg = np.maximum(uq, 0).sum(1), -np.minimum(uq, 0).sum(1)
    if graded is not None:  # x arrives once, with the kick
        x_hi, x_lo = _input_bounds(wq, graded[0], graded[1])
        x_part_hi, x_part_lo, x_all_lo, x_other_hi, x_other_lo = 0, 0, x_lo, 0, 0
    else:  # the spikes of the layer below arrive over relative 0..L-1, the last with the kick
        x_hi, x_lo = w_pos, -w_neg
        x_part_hi, x_part_lo, x_all_lo, x_other_hi, x_other_lo = (L - 1) * w_pos, -(L - 1) * w_neg, -L * w_neg, w_pos, -w_neg
    # M: no spike before the kick. L = 1: the whole U h of the last frame arrives in one step after
    # the last window, with the offset but no kick. Stacked: the next frame's offset arrives while
    # the run goes on, so M covers all L recurrent spikes of the last frame (no stray spike at all).
    M = int(max(0, np.max(B + (L if stacked else max(L - 1, 1)) * u_pos + x_part_hi)))
    E = B - M
    kick = M - (L + 1) * D + 1
    if np.min(E) < -A_LIMIT:
        _fail(name, "bias offset exceeds the 24-bit v", int(np.min(E)), f"|E| <= {A_LIMIT}",
              "reduce the bias or the recurrent weights (M covers (L-1) sum(U+))")
    low_v = np.minimum(E - (L - 1) * u_neg + x_part_lo, B + x_all_lo - L * u_neg - L * D + 1)
    if np.min(low_v) < -A_LIMIT:
        _fail(name, "membrane voltage would saturate below -(2**23-1) (24-bit v)", int(np.min(low_v)) * 64,
              f">= -{A_LIMIT * 64}", "reduce weights/bias (weight_bits) or the step D / levels")
    kick_step_hi = x_hi + u_pos + kick + D + (E if L == 1 else 0)
    kick_step_lo = x_lo - u_neg + kick + D + (E if L == 1 else 0)
    a_hi = np.max([kick_step_hi, E + u_pos + x_other_hi, u_pos + x_other_hi, np.full(H, D)], axis=0)
    a_lo = np.min([kick_step_lo, E - u_neg + x_other_lo, -u_neg + x_other_lo, np.full(H, D)], axis=0)
    if np.max(a_hi) > U_HI or np.min(a_lo) < U_LO:
        _fail(name, "one step's synaptic input exceeds the 24-bit current u",
              (int(np.min(a_lo)) * 64, int(np.max(a_hi)) * 64), f"{U_LO * 64}..{U_HI * 64}",
              "reduce weights/bias (weight_bits) or the step D / levels")
    if abs(kick + D) >= 2 ** (CLOCK_BITS - 1) or D >= 2 ** (CLOCK_BITS - 1):
        _fail(name, "clock payload exceeds 24 bits", kick + D, f"|payload| < 2**{CLOCK_BITS - 1}", "reduce D or the bias")
    pop = Population(name, (H,), du=4095, dv=0, vth=0, model="lif_reset", reset_interval=P,
                     reset_offset=(2 + shift) % P,
                     meta={"step_D": D, "levels": L, "period": P, "M": M, "recurrent_delay": d, "frame_shift": shift})
    chip.add(pop)
    extra = {"num_message_bits": graded[2]} if graded is not None else {}
    chip.add(_dense(f"{src}->{name}", src, name, wq, "input", **extra))
    if recurrent:
        chip.add(_dense(f"{name}->{name}", name, name, uq, "recurrent", delay=d))
    ramp = np.zeros(steps, np.int64)
    windows = []
    for tau in range(T):
        base = tau * P + shift  # send index of relative 0
        ramp[base + L - 1] = kick + D
        ramp[base + L: base + 2 * L - 1] = D
        windows.append((base + L, base + 2 * L))
    _add_clock(chip, clocks, name, pop, E, ramp, steps)
    arr = clocks[f"clock_{name}"]
    for tau in range(T + 1):  # the offset of every frame (and of frame T: no stray spikes after)
        if tau * P + shift < steps:
            arr[tau * P + shift, :DIGITS] = [256**k for k in range(DIGITS)]
    return windows


def convert_rnn_to_chip(qrnn, frames: int) -> RNNChipConversion:
    """Build the exact chip graph of an IntGridRNN (or a StackedIntGridRNN) for sequences of
    `frames` frames (see the module docstring for the time layout)."""
    bi = qrnn if isinstance(qrnn, BiIntGridRNN) else None
    if bi is not None:
        stack = [bi.fwd]
    elif isinstance(qrnn, StackedIntGridRNN):
        stack = list(qrnn.layers)
    elif isinstance(qrnn, IntGridRNN):
        stack = [qrnn]
    else:
        raise UnsupportedNodeError("convert_rnn_to_chip takes an IntGridRNN or StackedIntGridRNN (see quantize_rnn)",
                                   got=type(qrnn).__name__)
    if int(frames) != frames or frames < 1:
        raise ParameterError("frames must be a positive integer", where="convert_rnn_to_chip", got=frames)
    T = int(frames)
    first, last = stack[0], stack[-1]
    L = first.levels
    P = 2 * L - 1
    lo, hi = first.input_range
    in_bits = max(1, int(max(abs(lo), abs(hi))).bit_length())
    if in_bits > 24:
        raise QuantizationError("input integers exceed the 24-bit graded payload", where="input",
                                expected="|x| < 2**24", got=(lo, hi))
    shift = (len(stack) - 1) * L  # layer k's frames lag layer 1's by k L steps
    steps = (T - 1) * P + 2 * L + 1 + shift
    F_ = first.input.in_features
    chip = ChipGraph(meta={"conversion": "snnc.conversion_chip_rnn", "levels": L, "frames": T, "period": P,
                           "layers": len(stack)})
    chip.add(InputPopulation("x", (F_,), num_message_bits=in_bits))
    clocks: dict[str, np.ndarray] = {}
    names = ["h"] + [f"h{k + 1}" for k in range(1, len(stack))]
    layer_windows = {}
    for k, (name, layer) in enumerate(zip(names, stack)):
        layer_windows[name] = _hidden_layer(
            chip, clocks, name, "x" if k == 0 else names[k - 1], layer, frames=T, steps=steps, shift=k * L,
            graded=(lo, hi, in_bits) if k == 0 else None, stacked=len(stack) > 1)
    if bi is not None:  # the backward direction's first step, computed on every frame, read on the last
        layer_windows["hb"] = _hidden_layer(chip, clocks, "hb", "x", bi.bwd, frames=T, steps=steps, shift=0,
                                            graded=(lo, hi, in_bits), stacked=False, recurrent=False)
    name, qrnn = names[-1], last
    windows = layer_windows["h"]
    input_indices = [tau * P + L - 1 for tau in range(T)]

    # -- readout --------------------------------------------------------------------------------
    readout = None
    readout_indices: list[int] = []
    if qrnn.readout is not None or bi is not None:
        readout = "readout"
        if bi is not None:
            H = bi.fwd.hidden_size
            rq, Br = bi.readout_q, bi.readout_b
            r_projs = [_dense(f"{name}->{readout}", name, readout, rq[:, :H], "readout"),
                       _dense(f"hb->{readout}", "hb", readout, rq[:, H:], "readout")]
        else:
            rq = qrnn.int_readout().numpy().astype(np.int64)
            Br = qrnn.int_readout_bias().numpy().astype(np.int64)
            r_projs = [_dense(f"{name}->{readout}", name, readout, rq, "readout")]
        r_pos, r_neg = np.maximum(rq, 0).sum(1), -np.minimum(rq, 0).sum(1)
        lo_v, hi_v = Br - L * r_neg, Br + L * r_pos
        if np.min(lo_v) < -A_LIMIT or np.max(hi_v) > A_LIMIT or np.min(Br) < -A_LIMIT or np.max(Br) > A_LIMIT:
            _fail(readout, "readout voltage would leave the 24-bit v (y * 64)",
                  (int(min(np.min(lo_v), np.min(Br))) * 64, int(max(np.max(hi_v), np.max(Br))) * 64),
                  f"|v| <= {A_LIMIT * 64}", "reduce weights/bias of the readout (weight_bits)")
        if np.max(np.maximum(Br, 0) + r_pos) > U_HI or np.min(np.minimum(Br, 0) - r_neg) < U_LO:
            _fail(readout, "one step's synaptic input exceeds the 24-bit current u", None,
                  f"{U_LO * 64}..{U_HI * 64}", "reduce weights/bias of the readout")
        rpop = Population(readout, (rq.shape[0],), du=4095, dv=0, vth=READOUT_VTH, model="lif_reset",
                          reset_interval=P, reset_offset=(L + 2 + shift) % P, meta={"readout": True})
        chip.add(rpop)
        for r_proj in r_projs:
            chip.add(r_proj)
        _add_clock(chip, clocks, readout, rpop, Br, None, steps)
        rarr = clocks[f"clock_{readout}"]
        rarr[:] = 0
        for tau in range(T):
            rarr[tau * P + L + shift, :DIGITS] = [256**k for k in range(DIGITS)]
            if bi is None or tau == T - 1:  # bidirectional: only the last frame's logits are exact
                readout_indices.append(tau * P + 2 * L + shift)
        chip.outputs["out"] = OutputPort(readout, "v")
    else:
        chip.outputs["out"] = OutputPort(name, "s")
    chip.validate()
    return RNNChipConversion(
        chip=chip, steps=steps, frames=T, period=P, levels=L, input_size=F_, input_scale=first.input_scale,
        input_range=(lo, hi), input_indices=input_indices, fire_windows=windows, readout_indices=readout_indices,
        clocks=clocks, readout=readout, layer_windows=layer_windows, probes=tuple(f"{n}/s" for n in layer_windows),
    )
