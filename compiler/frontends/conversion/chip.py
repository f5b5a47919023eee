"""Lossless ANN-to-SNN conversion that is exact ON THE CHIP (sim backend, hence Lava fixed_pt).

`conversion.py` converts a quantized ANN into an IF network that is exact on the float reference
but uses reset-by-subtraction and analog edges the chip cannot express. This module targets the
chip directly: every hidden neuron is a Loihi CUBA LIF compartment with reset to zero, and its
spike count over a window of L steps EQUALS the integer activation of the quantized ANN.

1. Integer-grid quantized ANN (`IntGridLayer`, `SumPool2d`, `IntGridNet`, `quantize_model`)
---------------------------------------------------------------------------------------------
Per layer: integer weights q (|q| <= 127 for 8 bits) on a grid s_w, an integer bias B on the grid
s_w * s_in, and the activation

    z_int = sum q * n_in + B,        n = clamp(floor(z_int / D), 0, L)

with an integer step D >= 1; the float model's activation scale is s_out = D * s_w * s_in, so the
float forward pass is s_out * n (straight-through estimators for training). The first layer's
input is on an integer grid (x = input_scale * n0, n0 integer; digits pixels: scale 1, 0..16).
Sum pooling (torch AvgPool times k^2) acts on counts. The last layer may have no activation: it
is the readout, its integer pre-activation z_int are the logits. `IntGridNet.integer_forward`
evaluates all of this in exact integer arithmetic (float64 holding integers). `quantize_model`
turns a trained float nn.Sequential (Conv1d / Conv2d / Linear / BatchNorm / ReLU / ReLU6 /
Hardtanh / AvgPool / MaxPool / Flatten) into this form with per-layer calibration of D.

Beyond that, each exact on sim and Lava (tests/compiler/test_conversion_coverage.py):
* signed activations (`signed=True`, from Hardtanh(-a, a); L = 1 is ternary): n = clamp(floor(z /
  D), -L, L), run as a split-sign pair per neuron (`_split_sign`): n+ with (q, B) and n- with
  (-q, -B + D - 1), n = n+ - n- exactly; the next layer reads both halves with weights (W, -W);
* max pooling (`MaxPoolCounts`): an OR neuron per pooled output, exact because counts are
  suffix-coded (see the class); one step of latency each; not after a signed layer (the max of
  differences is not an OR) and not on the graded input image;
* Conv1d / AvgPool1d / MaxPool1d on (C, W) maps: the (C, 1, W) view of the 2-D geometry; a Conv1d
  runs as its sparse matrix (the chip's conv projection is 2-D).
* residual blocks (`Residual` float, `IntResidual` integer: relu(body(x) + x)): the block input's
  spikes (or the image) reach the block's last layer through one more projection of weight k
  (z_int = q h + B + k n_in); they all arrive before its kick, so M covers them whole. The
  quantizer picks the last layer's grid so that k is an integer the chip holds in one synapse
  (`skip_weight`: m 2**e, m <= 255, carried with weight_exp +e, `exact_weights`).
`chip_rnn` converts Elman RNNs, stacked, and bidirectional ones classified on their last frame.

2. Two-phase gated IF on the chip (`convert_to_chip`)
-----------------------------------------------------
Units: "a-units" are what a projection delivers before Lava's `a << 6`; a neuron with du = 4095,
dv = 0, bias 0 has v = 64 * A where A is the sum of everything it has received, so everything
below is exact integer arithmetic on A (|A| <= 2**17 - 1, else v saturates).

Neuron: du = 4095, dv = 0, vth = 0 (spike iff A > 0), reset to zero. Hidden layer k has an
integrate phase (the spikes of layer k-1 arriving) and a fire window of L steps F_k .. F_k+L-1:

  * at the very start (step index 1) a per-neuron offset E_i = B_i - M_k arrives, M_k >= 0 chosen
    so that B_i + (every partial sum of the integrate phase) <= M_k: the neuron cannot fire early;
  * at F_k a kick M_k - (L+1) D + 1 arrives, and in each fire step a ramp D; so at fire step
    j = 1..L, A = z_int - (L+1-j) D + 1, which is > 0 iff z_int >= (L+1-j) D. The first spike is
    at j = L + 1 - floor(z_int / D); after it v = 0 and the next ramp D > 0 fires again: the
    neuron fires on every remaining step of the window, n = clamp(floor(z_int / D), 0, L) spikes.
    When the ramp stops, v stays 0 (no more spikes): no self-excitation and no gate are needed.
  * bias enters once through E (never through bias_mant, which would add it every step).

E, kick and ramp come from one graded input per layer, "clock_<layer>" (24-bit payloads):
channels 0..2 carry 1, 256, 65536 at index 0, and their weights are the balanced base-256 digits
c_d of E; channel 3 carries the kick + ramp payloads with weight 1. A flat layer gets a
(4,) clock and a dense projection (weights 2 w, weight_exp -1: exact, the weights are even); a
(C, H, W) layer gets a (4, H, W) clock and a 1x1 conv (E is per channel there). Per-layer clocks
keep every projection's target shape equal to its population's, so the NIR file type-checks.

Data: dense/sparse projections are programmed at the network's real width (`exact_weights`):
num_weight_bits n = the fewest bits holding the integers q in the projection's sign mode (a b-bit
network: n = b mixed, b - 1 single-sign), weights q * 2**k with weight_exp -k, where 2**k is the
grid Lava's truncation keeps at n bits (k = 9 - n mixed): nothing is truncated and the shift
restores sum q exactly. So the bit budget prices a b-bit network's synapses at b bits, and the
clock projections at the width of their own integers. Conv projections carry q (Lava's Conv
applies no exponent and no truncation); their num_weight_bits is q's signed width (memory).
A sum pool followed by a Linear is one matrix whose entries are the layer's own weights
(non-overlapping pools); a sum pool followed by a Conv is one conv with each tap repeated over a
k x k block and stride/padding times k (exact when the pool drops no rows). Pooling costs no
neurons. Other chains (pool -> pool -> conv, or a pool dropping rows before a conv) fall back to
a sparse matrix into a (C, H, W) population, which runs on sim/Lava but whose NIR file nir.read
cannot type-check. The image is sent ONCE (graded
payload = pixel integer n0) at input index 1, so layer 1 integrates in one step.

Timing (sim convention: input/spike index t reaches the target's u at index t+1):
E at index 1, image at 1 -> layer 1 at index 2 = F_1; F_k = 2 + (k-1) L (layer k-1's spikes in
F_{k-1}..F_{k-1}+L-1 arrive at F_{k-1}+1..F_k: the last one together with the kick).
Readout (last layer without activation): a population with vth = 2**17 - 1 that never fires;
OutputPort var "v"; z_int = v / 64 at index R = 2 + N L (N hidden layers). steps = R + 1, or
2 + N L when the last layer is a spiking layer (then outputs are its spikes, decoded as counts).

Every bound (v inside +-(2**17 - 1) a-units wherever a saturation could change the result, each
step's input inside u's 24 bits, weights in 8 bits) is checked; a model that cannot be expressed
exactly raises `QuantizationError` naming the layer.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Literal, Sequence, cast

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn
import torch.nn.functional as F

from snnc.ir.bits import SPECS, representable_weight_range, sign_mode
from snnc.ir.chip import (ChipGraph, ConvGeometry, ConvProjection, DenseProjection, InputPopulation, OutputPort, Population, Projection,
                          SparseProjection)
from snnc.ir.errors import ParameterError, QuantizationError, ShapeError, UnsupportedNodeError
from snnc.ir.shapes import conv_padding, pair

A_LIMIT = 2**17 - 1
"""Largest |A| (a-units) that v = 64 A holds without saturating (v is clipped to +-(2**23 - 1))."""
U_HI, U_LO = 2**17, -(2**17 - 1)
"""Per-step input a keeps u = a << 6 inside Lava's 24-bit wrap (u > 2**23 or u <= -2**23 wraps)."""
CLOCK_BITS = 24
DIGITS = 3  # balanced base-256 digits of the per-neuron offsets: |E| < 2**23
READOUT_VTH = 2**17 - 1


# =============================================================================================
# 1. integer-grid quantized ANN
# =============================================================================================
def _ste_round(x):
    return x + (torch.round(x) - x).detach()


class IntGridLayer(nn.Module):
    """A Conv2d or Linear on an integer grid, optionally followed by the quantized ReLU.

    Weights q = clamp(round(w / s_w), -qmax, qmax), bias B = round(b / (s_w * s_in)); the
    activation is n = clamp(floor(z_int / step), 0, levels) (`act=True`) or none (readout).
    `forward` is the float model with straight-through estimators (s_out * n); `integer` is the
    exact integer evaluation the chip reproduces.
    """

    in_scale: torch.Tensor  # buffers (register_buffer in __init__)
    weight_scale: torch.Tensor

    def __init__(self, op: nn.Module, *, in_scale: float, weight_scale: float, step: int = 1,
                 levels: int = 1, act: bool = True, weight_bits: int = 8, signed: bool = False):
        super().__init__()
        if not isinstance(op, _OPS):
            raise UnsupportedNodeError("IntGridLayer wraps nn.Conv1d, nn.Conv2d or nn.Linear", got=type(op).__name__)
        for name, value in (("in_scale", in_scale), ("weight_scale", weight_scale)):
            if not (math.isfinite(float(value)) and float(value) > 0):
                raise ParameterError(f"{name} must be a positive number", where="IntGridLayer", got=value)
        if int(step) != step or step < 1:
            raise ParameterError("step D must be a positive integer", where="IntGridLayer", got=step)
        if int(levels) != levels or levels < 1:
            raise ParameterError("levels must be a positive integer", where="IntGridLayer", got=levels)
        if not 2 <= int(weight_bits) <= 8:
            raise ParameterError("weight_bits must be 2..8 (signed)", where="IntGridLayer", got=weight_bits)
        self.op = op
        self.register_buffer("in_scale", torch.tensor(float(in_scale), dtype=torch.float64))
        self.register_buffer("weight_scale", torch.tensor(float(weight_scale), dtype=torch.float64))
        self.step = int(step)
        self.levels = int(levels)
        self.act = bool(act)
        self.signed = bool(signed) and self.act
        self.qmax = 2 ** (int(weight_bits) - 1) - 1

    @property
    def out_scale(self) -> float:
        """Float value of one count (act) or of one unit of z_int (readout)."""
        base = float(self.weight_scale * self.in_scale)
        return base * self.step if self.act else base

    def int_weight(self) -> torch.Tensor:
        with torch.no_grad():
            return torch.clamp(torch.round(self.op.weight.double() / self.weight_scale), -self.qmax, self.qmax)

    def int_bias(self) -> torch.Tensor:
        with torch.no_grad():
            out_ch = self.op.weight.shape[0]
            if self.op.bias is None:
                return torch.zeros(out_ch, dtype=torch.float64)
            return torch.round(self.op.bias.double() / (self.weight_scale * self.in_scale))

    def _op(self, x, w, b):
        o = self.op
        if isinstance(o, nn.Conv2d):
            return F.conv2d(x, w, b, o.stride, o.padding, o.dilation, o.groups)
        if isinstance(o, nn.Conv1d):
            return F.conv1d(x, w, b, o.stride, o.padding, o.dilation, o.groups)
        return F.linear(x, w, b)

    def forward(self, a, skip=None):
        """The float model; `skip` (a residual block's float term, already on z's scale) is added
        to the pre-activation."""
        ws, si = self.weight_scale.to(a.dtype), self.in_scale.to(a.dtype)
        w = torch.clamp(_ste_round(self.op.weight / ws), -self.qmax, self.qmax) * ws
        b = None if self.op.bias is None else _ste_round(self.op.bias / (ws * si)) * ws * si
        z = self._op(a, w, b)
        if skip is not None:
            z = z + skip
        if not self.act:
            return z
        s = self.step * ws * si
        u = z / s
        low = -self.levels if self.signed else 0
        q = torch.clamp(torch.floor(u), low, self.levels)
        uc = torch.clamp(u, low, self.levels)
        return s * (uc + (q - uc).detach())

    def integer(self, n, skip=None):
        """z_int (readout) or n = clamp(floor(z_int / D), 0, L) (signed: -L..L), exact (float64
        holding integers); `skip` (a residual block's integer term) is added to z_int."""
        z = self._op(n.double(), self.int_weight(), self.int_bias())
        if skip is not None:
            z = z + skip
        if not self.act:
            return z
        return torch.clamp(torch.div(z, self.step, rounding_mode="floor"), -self.levels if self.signed else 0,
                           self.levels)

    def pre_activation(self, n):
        return self._op(n.double(), self.int_weight(), self.int_bias())

    def extra_repr(self) -> str:
        return f"step={self.step}, levels={self.levels}, act={self.act}, signed={self.signed}, qmax={self.qmax}"


_OPS = (nn.Conv1d, nn.Conv2d, nn.Linear)
"""The weighted layers an integer-grid network holds (Conv1d runs on the chip as its matrix)."""


class SumPool2d(nn.Module):
    """Non-overlapping sum pooling (torch AvgPool2d times kernel area): counts stay integers."""

    def __init__(self, kernel_size):
        super().__init__()
        k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.kernel_size = tuple(int(v) for v in k)

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.kernel_size) * (self.kernel_size[0] * self.kernel_size[1])

    def integer(self, n):
        return torch.round(self.forward(n.double()))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


class SumPool1d(nn.Module):
    """Non-overlapping sum pooling over W of a (C, W) map (torch AvgPool1d times the kernel)."""

    def __init__(self, kernel_size):
        super().__init__()
        self.kernel_size = (1, int(kernel_size if isinstance(kernel_size, int) else kernel_size[0]))

    def forward(self, x):
        return F.avg_pool1d(x, self.kernel_size[1], self.kernel_size[1]) * self.kernel_size[1]

    def integer(self, n):
        return torch.round(self.forward(n.double()))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size[1]}"


class MaxPoolCounts(nn.Module):
    """Max pooling of spike counts (torch MaxPool2d / MaxPool1d semantics, no ceil mode).

    Exact on the chip without any arithmetic: a hidden neuron with count n fires on the LAST n
    steps of its window (a suffix), so the max of several counts is the count of the OR of their
    trains. An OR neuron (du = 4095, dv = 0, vth = 0, reset to zero, weights 1) fires one step
    after any input spiked: its train is the longest suffix, its count the max. It costs one step
    of latency and one neuron per pooled output, and needs no clock. Max commutes with the
    monotone quantized ReLU, so the pool may sit before or after it in the float model.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, dims: int = 2):
        super().__init__()

        def pair(v):
            return (int(v), int(v)) if isinstance(v, int) else tuple(int(x) for x in v)

        self.dims = int(dims)
        if self.dims == 1:  # a (C, W) map seen as (C, 1, W)
            def pair(v):  # noqa: F811 - the 1-d form of the same helper
                v = v if isinstance(v, int) else int(v[0])
                return 1, int(v)
            pad = (0, int(padding if isinstance(padding, int) else padding[0]))
            dil = (1, int(dilation if isinstance(dilation, int) else dilation[0]))
        else:
            pad, dil = pair(padding), pair(dilation)
        self.kernel_size = pair(kernel_size)
        self.stride = self.kernel_size if stride is None else pair(stride)
        self.padding, self.dilation = pad, dil

    def forward(self, x):
        if self.dims == 1:
            return F.max_pool1d(x, self.kernel_size[1], self.stride[1], self.padding[1], self.dilation[1])
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)

    def integer(self, n):
        return self.forward(n.double())

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, dims={self.dims}"


class Residual(nn.Module):
    """A float residual block relu(body(x) + x) (ResNet's identity skip) that `quantize_model`
    converts: `body` is an nn.Sequential of what quantize_model reads, ending with a Conv/Linear
    (no activation) whose output has x's shape."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return torch.relu(self.body(x) + x)


class IntResidual(nn.Module):
    """An identity skip over a chain of integer layers: the last layer's pre-activation gets
    `skip` x the block's input counts, z_int = q h + B + k n_in, then its quantized ReLU.

    Exact on the chip: the block's input spikes (an earlier window) reach the last layer through
    one more projection (weights k, diagonal) before its kick; its offset M covers them too.
    `quantize_model` picks the last layer's weight grid so that k is an integer (k s_w s_h = s_in).
    """

    def __init__(self, layers, skip: int, skip_scale: float = 1.0):
        super().__init__()
        layers = list(layers)
        ints = [m for m in layers if isinstance(m, IntGridLayer)]
        if not ints or not isinstance(layers[-1], IntGridLayer) or not layers[-1].act or layers[-1].signed:
            raise UnsupportedNodeError("a residual block must end with a Conv/Linear and its ReLU", where="IntResidual",
                                       hint="end the block's body with Conv/Linear; the block applies the ReLU")
        if int(skip) != skip or skip < 1:
            raise ParameterError("the skip weight must be a positive integer", where="IntResidual", got=skip)
        self.layers = nn.ModuleList(layers)
        self.skip = int(skip)
        self.skip_scale = float(skip_scale)  # float value of one skip unit on the last layer's z scale

    def _run(self, v, integer: bool):
        """The block's layers but the last (integer or float); also the counts of its IntGridLayers."""
        outs = []
        for layer in self.layers[:-1]:
            exact = getattr(layer, "integer", None) if integer else None
            v = exact(v) if exact is not None else layer(v)
            if isinstance(layer, IntGridLayer):
                outs.append(v)
        return v, outs

    def integer_all(self, n):
        """Counts of every IntGridLayer of the block (the last one with the skip added)."""
        h, outs = self._run(n, integer=True)
        last = self.layers[-1].integer(h, skip=self.skip * n.double())
        if last.shape != n.shape:
            raise ShapeError("a residual block's output must have its input's shape", where="IntResidual",
                             expected=list(n.shape[1:]), got=list(last.shape[1:]))
        return outs + [last]

    def forward(self, a):
        h, _ = self._run(a, integer=False)
        return self.layers[-1](h, skip=a * self.skip * self.skip_scale)


class IntGridNet(nn.Module):
    """A sequence of `IntGridLayer`, `SumPool2d`, `MaxPoolCounts` and `nn.Flatten` on an integer input grid.

    `forward(x)` is the float (trainable, STE) model; `integer_forward(x)` returns the exact
    integers per IntGridLayer (counts for hidden layers, z_int for a readout) as float64 tensors;
    `predict(x)` the argmax of the last layer's integers.
    """

    def __init__(self, layers: Sequence[nn.Module], *, input_scale: float = 1.0,
                 input_range: tuple[int, int] = (0, 255)):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.input_scale = float(input_scale)
        lo, hi = (int(v) for v in input_range)
        if lo > hi:
            raise ParameterError("input_range must be (lo, hi) with lo <= hi", where="IntGridNet", got=input_range)
        self.input_range = (lo, hi)

    def input_integers(self, x) -> torch.Tensor:
        """x / input_scale as integers; an error when x is off the grid or out of input_range."""
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).double()
        n = torch.round(x / self.input_scale)
        if torch.any(torch.abs(n * self.input_scale - x) > 1e-6 * max(1.0, self.input_scale)):
            raise QuantizationError(
                "input values are not on the integer grid", where="IntGridNet input",
                expected=f"multiples of input_scale={self.input_scale}",
                hint="round the input (the first layer sees integers)",
            )
        lo, hi = self.input_range
        if n.numel() and (n.min() < lo or n.max() > hi):
            raise QuantizationError(
                "input integers outside input_range", where="IntGridNet input",
                expected=f"{lo}..{hi}", got=(float(n.min()), float(n.max())),
                hint="clip the input or widen input_range",
            )
        return n

    def forward(self, x):
        lo, hi = self.input_range
        a = torch.clamp(torch.round(x / self.input_scale), lo, hi) * self.input_scale
        for layer in self.layers:
            a = layer(a)
        return a

    def integer_forward(self, x, *, pre_activation: bool = False) -> list[torch.Tensor]:
        """Exact integers after every IntGridLayer (with `pre_activation`, also z_int)."""
        n = self.input_integers(x)
        out = []
        with torch.no_grad():
            for layer in self.layers:
                if isinstance(layer, IntGridLayer):
                    if pre_activation:
                        out.append(layer.pre_activation(n))
                    n = layer.integer(n)
                    if not pre_activation:
                        out.append(n)
                elif isinstance(layer, (SumPool1d, SumPool2d, MaxPoolCounts)):
                    n = layer.integer(n)
                elif isinstance(layer, IntResidual) and not pre_activation:
                    block = layer.integer_all(n)
                    out.extend(block)
                    n = block[-1]
                elif isinstance(layer, nn.Flatten):
                    n = layer(n)
                else:
                    raise UnsupportedNodeError("IntGridNet holds IntGridLayer, SumPool2d and Flatten", got=type(layer).__name__)
        return out

    def predict(self, x) -> np.ndarray:
        return self.integer_forward(x)[-1].reshape(len(x), -1).argmax(1).numpy()


def _flat_modules(model) -> list[nn.Module]:
    if isinstance(model, nn.Sequential):
        out = []
        for m in model:
            out.extend(_flat_modules(m))
        return out
    return [model]


def quantize_model(model: nn.Module, data, *, levels: int, input_scale: float = 1.0,
                   input_range: tuple[int, int] = (0, 255), percentile: float = 99.9,
                   weight_bits: int = 8) -> IntGridNet:
    """Quantize a trained float nn.Sequential of Conv1d/Conv2d/Linear (+ BatchNorm), ReLU/ReLU6/
    Hardtanh, AvgPool1d/2d, MaxPool1d/2d, Flatten and `Residual` blocks.

    Layer by layer on the calibration `data` (already quantized upstream): s_w = max|w| / qmax,
    B = round(b / (s_w s_in)), and D = round(percentile of the positive z / (L s_w s_in)) so that
    the `percentile` of a layer's pre-activation maps to L levels. AvgPool2d becomes a
    SumPool2d whose 1/k^2 is folded into the next layer's weights. A ReLU must follow each
    Conv/Linear except the last (the readout); put pooling after the ReLU. A BatchNorm right
    after a Conv/Linear is folded into it (eval-mode statistics) before quantization. Hardtanh(0, a)
    and ReLU6 clamp at the float model's own ceiling a (D = a / (L s_w s_in)); Hardtanh(-a, a) is
    a signed activation (-L..L). A MaxPool keeps the scale (max commutes with the monotone
    activation, so MaxPool -> ReLU is read as ReLU -> MaxPool).
    """
    mods = [m for m in _flat_modules(model) if not isinstance(m, (nn.Dropout, nn.Identity))]
    for j in range(len(mods) - 1):  # MaxPool -> ReLU = ReLU -> MaxPool (max commutes with ReLU)
        if isinstance(mods[j], (nn.MaxPool1d, nn.MaxPool2d)) and isinstance(mods[j + 1], (nn.ReLU, nn.Hardtanh)):
            mods[j], mods[j + 1] = mods[j + 1], mods[j]
    x = torch.as_tensor(np.asarray(data) if not torch.is_tensor(data) else data).double()
    n = torch.clamp(torch.round(x / input_scale), *input_range)
    s_in = float(input_scale)
    fold = 1.0
    layers: list[nn.Module] = []
    qmax = 2 ** (int(weight_bits) - 1) - 1
    i = 0
    while i < len(mods):
        m = mods[i]
        where = f"module {i} ({type(m).__name__})"
        if isinstance(m, _OPS):
            bn = mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], _BATCHNORMS) else None
            if bn is not None:
                m = _fold_batchnorm(m, bn, where=f"module {i + 1} ({type(bn).__name__})")
                i += 1
            nxt_act = mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], (nn.ReLU, nn.Hardtanh)) else None
            act = nxt_act is not None
            ceiling = None  # Hardtanh(0, a) / ReLU6: the float model's own ceiling a fixes D
            signed = False
            if isinstance(nxt_act, nn.Hardtanh):
                lo_v, hi_v = float(nxt_act.min_val), float(nxt_act.max_val)
                if hi_v <= 0 or lo_v not in (0.0, -hi_v):
                    raise UnsupportedNodeError(
                        "Hardtanh must be Hardtanh(0, a) (a clamped ReLU) or Hardtanh(-a, a) (signed)",
                        where=f"module {i + 1} ({type(nxt_act).__name__})", got=(lo_v, hi_v),
                        hint="use symmetric bounds, or ReLU",
                    )
                ceiling, signed = hi_v, lo_v < 0
            if not act and any(isinstance(k, _OPS) for k in mods[i + 1:]):
                nxt = mods[i + 1]
                if not isinstance(nxt, (*_OPS, nn.AvgPool1d, nn.AvgPool2d, nn.Flatten, nn.MaxPool1d, nn.MaxPool2d)):
                    raise UnsupportedNodeError(  # name the offending module, not the layer before it
                        "module not supported by quantize_model", where=f"module {i + 1} ({type(nxt).__name__})",
                        expected="ReLU after each Conv2d/Linear but the last", got=type(nxt).__name__,
                        hint=_alternative(nxt),
                    )
                raise UnsupportedNodeError(
                    "every Conv2d/Linear but the last must be followed by a ReLU", where=where,
                    hint="put pooling after the ReLU; only the readout layer has no activation",
                )
            op = _copy_op(m, fold)
            fold = 1.0
            w = op.weight.detach().double()
            ws = float(w.abs().max()) / qmax if float(w.abs().max()) > 0 else 1.0
            layer = IntGridLayer(op, in_scale=s_in, weight_scale=ws, step=1, levels=levels, act=act, weight_bits=weight_bits,
                                 signed=signed)
            z = layer.pre_activation(n)
            if act and ceiling is not None:
                layer.step = max(1, int(round(ceiling / (levels * ws * s_in))))
            elif act:
                pos = z[z > 0]
                target = float(torch.quantile(pos.float(), percentile / 100.0)) if pos.numel() else 1.0
                layer.step = max(1, int(round(target / levels)))
            if act:
                n = layer.integer(n)
                s_in = layer.out_scale
                i += 2
            else:
                n = z
                i += 1
            layers.append(layer)
        elif isinstance(m, Residual):
            block = _quantize_residual(m, n, s_in * fold, levels=levels, percentile=percentile,
                                       weight_bits=weight_bits, where=where)
            n = block.integer_all(n)[-1]
            s_in, fold = cast(IntGridLayer, block.layers[-1]).out_scale, 1.0
            layers.append(block)
            i += 1
        elif isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)):
            if m.ceil_mode or m.return_indices:
                raise UnsupportedNodeError("MaxPool with ceil_mode or return_indices", where=where,
                                           hint="use ceil_mode=False, return_indices=False (pad explicitly instead)")
            if not any(isinstance(k, IntGridLayer) and k.act for k in layers):
                raise UnsupportedNodeError("MaxPool on the input image", where=where,
                                           hint="pool the input before it reaches the network (the image is sent "
                                           "once as graded values, not as spike trains an OR neuron can pool)")
            if [k for k in layers if isinstance(k, IntGridLayer)][-1].signed:
                raise UnsupportedNodeError("MaxPool after a signed activation (Hardtanh(-a, a))", where=where,
                                           hint="pool before the activation is not exact either: use ReLU before a "
                                           "MaxPool, or AvgPool (a sum pool is exact on signed counts)")
            if layers and isinstance(layers[-1], SumPool2d):
                raise UnsupportedNodeError("AvgPool directly before MaxPool", where=where,
                                           hint="put the MaxPool first (a sum pool folds into the next Conv/Linear)")
            max_pool = MaxPoolCounts(m.kernel_size, m.stride, m.padding, m.dilation,
                                     dims=1 if isinstance(m, nn.MaxPool1d) else 2)
            n = max_pool.integer(n)
            layers.append(max_pool)
            i += 1
        elif isinstance(m, nn.AvgPool1d):
            k, stride, pad = (int(v if isinstance(v, int) else v[0]) for v in (m.kernel_size, m.stride or m.kernel_size,
                                                                              m.padding))
            if stride != k or pad != 0 or m.ceil_mode:
                raise UnsupportedNodeError("only non-overlapping AvgPool1d (stride = kernel, no padding)", where=where,
                                           got=(k, stride), hint="use stride = kernel_size, padding 0")
            pool1 = SumPool1d(k)
            fold /= k
            n = pool1.integer(n)
            layers.append(pool1)
            i += 1
        elif isinstance(m, nn.AvgPool2d):
            size = m.kernel_size
            step = m.stride if m.stride is not None else size
            if step != size or getattr(m, "padding", 0) not in (0, (0, 0)):
                raise UnsupportedNodeError("only non-overlapping AvgPool2d (stride = kernel, no padding)", where=where, got=(size, step))
            pool = SumPool2d(size)
            fold /= pool.kernel_size[0] * pool.kernel_size[1]
            n = pool.integer(n)
            layers.append(pool)
            i += 1
        elif isinstance(m, nn.Flatten):
            n = m(n)
            layers.append(nn.Flatten())
            i += 1
        else:
            raise UnsupportedNodeError(
                "module not supported by quantize_model", where=where,
                expected="Conv2d, Linear, BatchNorm (right after Conv/Linear), ReLU (after Conv/Linear), AvgPool2d, Flatten",
                got=type(m).__name__, hint=_alternative(m),
            )
    if not layers or not isinstance(layers[-1], IntGridLayer):
        raise UnsupportedNodeError("the model must end with a Conv2d/Linear layer (optionally + ReLU)", where="quantize_model")
    net = IntGridNet(layers, input_scale=input_scale, input_range=input_range)
    return net


_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def skip_weight(ratio: float) -> int:
    """The largest integer k <= ratio (at least 1) the chip holds exactly in one synapse:
    m 2**e with m <= 255 (single sign) and e <= 7 (weight_exp); at most 255 x 128."""
    k = max(1, int(math.floor(ratio + 1e-9)))
    e = 0
    while k >> e > 255:
        e += 1
    e = min(e, SPECS["weight_exp"].hi)
    return min(k >> e, 255) << e


def _quantize_residual(m: Residual, n, s_block: float, *, levels: int, percentile: float, weight_bits: int,
                       where: str) -> IntResidual:
    """Quantize a Residual's body on the block's input counts n (float value s_block n), then give
    its last layer the weight grid s_w = s_block / (k s_h) with k = floor(s_block / (s_w0 s_h)) >= 1
    (never finer than max|w| / qmax: no weight clips), so that the skip is exactly k n."""
    lo, hi = int(min(0, float(n.min()))), int(max(1, float(n.max())))
    sub = quantize_model(m.body, n * s_block, levels=levels, input_scale=s_block, input_range=(lo, hi),
                         percentile=percentile, weight_bits=weight_bits)
    inner = list(sub.layers)
    last = cast(IntGridLayer, inner[-1])
    if last.act:
        raise UnsupportedNodeError("a Residual body must end with a Conv/Linear without activation", where=where,
                                   hint="drop the body's last ReLU: the block applies relu(body(x) + x)")
    h = n
    for layer in inner[:-1]:
        exact = getattr(layer, "integer", None)
        h = exact(h) if exact is not None else layer(h)
    s_h, ws0 = float(last.in_scale), float(last.weight_scale)
    k = skip_weight(s_block / (ws0 * s_h))
    ws = s_block / (k * s_h)
    with torch.no_grad():
        last.weight_scale.fill_(ws)
    last.act = True
    z = last.pre_activation(h) + k * n.double()
    if z.shape != n.shape:
        raise ShapeError("a Residual body must keep its input's shape", where=where, expected=list(n.shape[1:]),
                         got=list(z.shape[1:]), hint="use padding so the body's output matches x (no projection skips)")
    pos = z[z > 0]
    target = float(torch.quantile(pos.float(), percentile / 100.0)) if pos.numel() else 1.0
    last.step = max(1, int(round(target / levels)))
    return IntResidual(inner, k, skip_scale=ws * s_h / s_block)

# The nearest supported alternative for modules quantize_model rejects (named in the error).
_ALTERNATIVES = {
    nn.AdaptiveAvgPool2d: "use AvgPool2d with an explicit kernel = stride dividing the map",
    nn.LeakyReLU: "use ReLU, or Hardtanh(-a, a) for signed activations (a split-sign pair of neurons)",
    nn.Tanh: "use Hardtanh(-a, a) (signed counts -L..L, exact as a split-sign pair of neurons)",
    nn.Sigmoid: "use Hardtanh(0, a) or ReLU (activations are unsigned counts 0..L)",
    nn.RNN: "use IntGridRNN / quantize_rnn in conversion.chip_rnn (single-layer Elman RNN)",
}


def _alternative(m: nn.Module) -> str:
    for kind, hint in _ALTERNATIVES.items():
        if isinstance(m, kind):
            return hint
    return "rewrite the model with Conv2d/Linear + ReLU, AvgPool2d (stride = kernel) and Flatten"


def _fold_batchnorm(m, bn, *, where: str):
    """Conv/Linear followed by eval-mode BatchNorm -> one Conv/Linear (w * g, (b - mu) * g + beta),
    g = gamma / sqrt(var + eps): the quantizer then sees a single affine op, as the chip does."""
    channels = m.out_features if isinstance(m, nn.Linear) else m.out_channels
    if bn.num_features != channels:
        raise ShapeError("BatchNorm features differ from the preceding layer's outputs", where=where,
                         expected=channels, got=bn.num_features)
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedNodeError("BatchNorm without running statistics cannot be folded", where=where,
                                   hint="use track_running_stats=True (the default) and train the model first")
    if bn.training:
        warnings.warn(f"snnc: {where} is in training mode; folding its running statistics (eval-mode behaviour)",
                      stacklevel=3)
    mean = bn.running_mean.detach().double()
    g = 1.0 / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    if bn.affine:
        g = g * bn.weight.detach().double()
    beta = bn.bias.detach().double() if bn.affine else torch.zeros_like(mean)
    b = m.bias.detach().double() if m.bias is not None else torch.zeros_like(mean)
    op = _new_op(m, bias=True)  # the folded op always carries a bias
    shape = (-1,) + (1,) * (m.weight.dim() - 1)
    with torch.no_grad():
        op.weight.copy_(m.weight.detach().double() * g.reshape(shape))
        op.bias.copy_((b - mean) * g + beta)
    return op


def _new_op(m, *, bias: bool):
    """A float64 layer of the same kind and geometry as `m` (fresh parameters)."""
    if isinstance(m, (nn.Conv1d, nn.Conv2d)):
        kind: Any = type(m)
        return kind(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                    bias=bias).double()
    return nn.Linear(m.in_features, m.out_features, bias=bias).double()


def _copy_op(m, fold: float):
    op = _new_op(m, bias=m.bias is not None)
    with torch.no_grad():
        op.weight.copy_(m.weight.detach().double() * fold)
        if m.bias is not None:
            op.bias.copy_(m.bias.detach().double())
    return op


# =============================================================================================
# 2. the chip graph
# =============================================================================================
def _pool_matrix(shape, k) -> sp.csr_matrix:
    """Sum pool (C, H, W) -> (C, H//kh, W//kw) as a [out, in] 0/1 matrix (remainders dropped)."""
    c, h, w = shape
    kh, kw = k
    ho, wo = h // kh, w // kw
    cc, yy, xx = np.meshgrid(np.arange(c), np.arange(ho * kh), np.arange(wo * kw), indexing="ij")
    src = (cc * h * w + yy * w + xx).ravel()
    dst = (cc * ho * wo + (yy // kh) * wo + (xx // kw)).ravel()
    return sp.csr_matrix((np.ones(src.size, np.int64), (dst, src)), shape=(c * ho * wo, c * h * w))


def _conv_padding(op: nn.Conv1d | nn.Conv2d, where: str) -> tuple[int, ...]:
    """torch's padding as explicit numbers: 'valid' and 'same' resolved as for a NIR conv (the chip's
    conv pads symmetrically, so 'same' with an even kernel is refused)."""
    if not isinstance(op.padding, str):
        return tuple(int(p) for p in op.padding)
    spec = SimpleNamespace(weight=np.empty((0, 0, *op.kernel_size)), stride=op.stride, dilation=op.dilation, padding=op.padding)
    return conv_padding(spec, op.kernel_size, where)


def _conv_geometry(op: nn.Conv2d, in_shape) -> ConvGeometry:
    c, h, w = in_shape
    where = "convert_to_chip: Conv2d"
    kernel, stride, dilation = (pair(v, name, where) for v, name in ((op.kernel_size, "kernel_size"), (op.stride, "stride"),
                                                                     (op.dilation, "dilation")))
    padding = pair(_conv_padding(op, where), "padding", where)
    hw = ConvGeometry.output_hw((h, w), kernel, stride, padding, dilation)
    return ConvGeometry(in_shape=(c, h, w), out_shape=(op.out_channels, *hw), kernel=kernel,
                        stride=stride, padding=padding, dilation=dilation, groups=op.groups)


def _conv_as_matrix(q: np.ndarray, geom: ConvGeometry) -> sp.csr_matrix:
    from snnc.backends.sim.plan import conv_matrix

    proj = ConvProjection("tmp", "a", "b", q.astype(np.int64), conv=geom)
    return conv_matrix(proj).tocsr()


@dataclass
class _Link:
    """The integer linear map from a source (input or population) onto one layer."""

    matrix: sp.csr_matrix  # [n_dst, n_src] integer weights q (the exact composite)
    conv: tuple[np.ndarray, ConvGeometry] | None  # when the map is a single conv
    out_shape: tuple[int, ...]
    bias: np.ndarray  # [n_dst] integer B
    extra: list[tuple[int, sp.csr_matrix]] = field(default_factory=list)  # (source link index, -1: input; weights)


def _pooled_conv(q: np.ndarray, op: nn.Conv2d, in_shape, k) -> tuple[np.ndarray, ConvGeometry] | None:
    """conv(sumpool_k(n)) as ONE conv on n: kernel entries repeated over k x k blocks, stride and
    padding times k (exact when the pool drops no rows/columns); None when not applicable."""
    c, h, w = in_shape
    kh, kw = k
    if h % kh or w % kw:
        return None
    co, ci, qh, qw = q.shape
    dh, dw = op.dilation
    ph, pw = _conv_padding(op, "convert_to_chip: Conv2d")
    big = np.zeros((co, ci, ((qh - 1) * dh + 1) * kh, ((qw - 1) * dw + 1) * kw), np.int64)
    for y in range(qh):
        for x in range(qw):
            big[:, :, y * dh * kh:(y * dh + 1) * kh, x * dw * kw:(x * dw + 1) * kw] = q[:, :, y:y + 1, x:x + 1]
    geom = ConvGeometry(
        in_shape=(c, h, w), out_shape=(co, *ConvGeometry.output_hw((h // kh, w // kw), op.kernel_size, op.stride, (ph, pw), op.dilation)),
        kernel=(big.shape[2], big.shape[3]), stride=(op.stride[0] * kh, op.stride[1] * kw),
        padding=(ph * kh, pw * kw), groups=op.groups,
    )
    if geom.out_shape[1:] != ConvGeometry.output_hw((h, w), geom.kernel, geom.stride, geom.padding, (1, 1)):
        return None
    return big, geom


def _max_pool_matrix(pool: MaxPoolCounts, shape, where: str) -> tuple[sp.csr_matrix, tuple[int, ...]]:
    """Which inputs each pooled output ORs: a depthwise all-ones conv's in-bounds taps (the one
    convolution geometry, ir.conv), and the output shape ((C, H', W'), or (C, W') in 1-d)."""
    from snnc.ir.conv import conv_matrix

    if len(shape) != pool.dims + 1:
        raise ShapeError(f"MaxPool{pool.dims}d needs a (C, {'H, W' if pool.dims == 2 else 'W'}) input", where=where,
                         got=shape)
    c, h, w = shape if pool.dims == 2 else (shape[0], 1, shape[1])
    hw = ConvGeometry.output_hw((h, w), pool.kernel_size, pool.stride, pool.padding, pool.dilation)
    geom = ConvGeometry((c, h, w), (c, *hw), pool.kernel_size, pool.stride, pool.padding, pool.dilation, groups=c)
    mat = conv_matrix(np.ones((c, 1, *pool.kernel_size), np.int64), geom)
    return mat.tocsr(), ((c, *hw) if pool.dims == 2 else (c, hw[1]))


def _split_sign(mat, bias, step: int, shape):
    """A signed layer n = clamp(floor(z / D), -L, L) as two halves of unsigned neurons:
    n+ = clamp(floor(z / D), 0, L) (weights q, bias B) and n- = clamp(floor((-z + D - 1) / D), 0, L)
    = clamp(-floor(z / D), 0, L) (weights -q, bias -B + D - 1); n = n+ - n- exactly. Returns the
    stacked matrix, bias and the population shape (channels, or the flat size, doubled)."""
    return (sp.vstack([mat, -mat]).tocsr(), np.concatenate([bias, -bias + step - 1]),
            (2 * shape[0], *shape[1:]))


def _split_sign_conv(conv, axis: int):
    """The conv of a split-sign source (axis 1: input channels [q, -q]) or target (axis 0: output
    channels [q; -q]); None (the matrix form is used) for grouped convs, whose channel order differs."""
    if conv is None or conv[1].groups != 1:
        return None
    k, g = conv
    in_shape = (2 * g.in_shape[0], *g.in_shape[1:]) if axis == 1 else g.in_shape
    out_shape = (2 * g.out_shape[0], *g.out_shape[1:]) if axis == 0 else g.out_shape
    return (np.concatenate([k, -k], axis), ConvGeometry(in_shape, out_shape, g.kernel, g.stride, g.padding, g.dilation))


def _expanded(layers):
    """The layers in order, each residual block as its marker followed by its own layers."""
    for mod in layers:
        if isinstance(mod, IntResidual):
            yield mod
            yield from mod.layers
        else:
            yield mod


def _links(net: IntGridNet, input_shape) -> list[tuple[nn.Module, _Link]]:
    shape = tuple(int(d) for d in input_shape)
    pending: list = []
    out: list[tuple[nn.Module, _Link]] = []
    src_signed = False  # the source population holds [positive; negative] halves (split sign)
    skips: dict[int, tuple[int, sp.csr_matrix]] = {}  # id(last layer of a residual block) -> its skip
    for mod in _expanded(net.layers):
        if isinstance(mod, IntResidual):  # the block starts here: its input is the current map
            if src_signed:
                raise UnsupportedNodeError("a residual block after a signed activation", where="convert_to_chip",
                                           hint="use ReLU before a residual block")
            size = math.prod(shape)
            view = sp.identity(size, dtype=np.int64, format="csr")
            for _, p, *_ in reversed(pending):
                view = (view @ p).tocsr()
            skips[id(mod.layers[-1])] = (len(out) - 1, (mod.skip * view).tocsr())
            continue
        if isinstance(mod, MaxPoolCounts):
            if src_signed:
                raise UnsupportedNodeError("MaxPool after a signed activation", where="convert_to_chip",
                                           hint="use ReLU before a MaxPool, or AvgPool (exact on signed counts)")
            if pending:
                raise UnsupportedNodeError("AvgPool directly before MaxPool", where="convert_to_chip",
                                           hint="put the MaxPool first (a sum pool folds into the next Conv/Linear)")
            mat, shape = _max_pool_matrix(mod, shape, "convert_to_chip")
            out.append((mod, _Link(mat, None, shape, np.zeros(mat.shape[0], np.int64))))
        elif isinstance(mod, SumPool1d):
            if len(shape) != 2:
                raise ShapeError("SumPool1d needs a (C, W) input", where="convert_to_chip", got=shape)
            view = (shape[0], 1, shape[1])
            pending.append(("pool1d", _pool_matrix(view, mod.kernel_size), view, mod.kernel_size))
            shape = (shape[0], shape[1] // mod.kernel_size[1])
        elif isinstance(mod, SumPool2d):
            if len(shape) != 3:
                raise ShapeError("SumPool2d needs a (C, H, W) input", where="convert_to_chip", got=shape)
            pending.append(("pool", _pool_matrix(shape, mod.kernel_size), shape, mod.kernel_size))
            shape = (shape[0], shape[1] // mod.kernel_size[0], shape[2] // mod.kernel_size[1])
        elif isinstance(mod, nn.Flatten):
            shape = (math.prod(shape),)
        elif isinstance(mod, IntGridLayer):
            q = mod.int_weight().numpy().astype(np.int64)
            if isinstance(mod.op, nn.Conv1d):
                if len(shape) != 2:
                    raise ShapeError("Conv1d needs a (C, W) input", where="convert_to_chip", got=shape)
                o = mod.op
                pad = _conv_padding(o, "convert_to_chip: Conv1d")[0]
                geom = ConvGeometry((shape[0], 1, shape[1]),
                                    (o.out_channels, 1, (shape[1] + 2 * pad - o.dilation[0] * (o.kernel_size[0] - 1) - 1)
                                     // o.stride[0] + 1),
                                    (1, o.kernel_size[0]), (1, o.stride[0]), (0, pad), (1, o.dilation[0]), o.groups)
                mat = _conv_as_matrix(q[:, :, None, :], geom)  # the (C, 1, W) view: a chip runs it as its matrix
                out_shape: tuple[int, ...] = (geom.out_shape[0], geom.out_shape[2])
                bias = np.repeat(mod.int_bias().numpy().astype(np.int64), out_shape[1])
                conv = None
            elif isinstance(mod.op, nn.Conv2d):
                if len(shape) != 3:
                    raise ShapeError("Conv2d needs a (C, H, W) input", where="convert_to_chip", got=shape)
                geom = _conv_geometry(mod.op, shape)
                mat = _conv_as_matrix(q, geom)
                out_shape = geom.out_shape
                bias = np.repeat(mod.int_bias().numpy().astype(np.int64), math.prod(out_shape[1:]))
                conv = (q, geom) if not pending else None
                if len(pending) == 1 and pending[0][0] == "pool":
                    conv = _pooled_conv(q, mod.op, pending[0][2], pending[0][3])
            else:
                if math.prod(shape) != q.shape[1]:
                    raise ShapeError("Linear input size does not match", where="convert_to_chip", expected=q.shape[1], got=shape)
                mat = sp.csr_matrix(q)
                out_shape = (q.shape[0],)
                bias = mod.int_bias().numpy().astype(np.int64)
                conv = None
            for _, p, *_ in reversed(pending):
                mat = (mat @ p).tocsr()
            pop_shape = out_shape
            if src_signed:  # n = n+ - n-: the weights onto the negative half are negated
                mat = sp.hstack([mat, -mat]).tocsr()
                conv = _split_sign_conv(conv, axis=1)
            if mod.signed:
                mat, bias, pop_shape = _split_sign(mat, bias, mod.step, out_shape)
                conv = _split_sign_conv(conv, axis=0)
            mat.sum_duplicates()
            mat.eliminate_zeros()
            extra = [skips.pop(id(mod))] if id(mod) in skips else []
            if extra and extra[0][1].shape[0] != mat.shape[0]:
                raise ShapeError("a residual block's output must have its input's shape", where="convert_to_chip",
                                 expected=extra[0][1].shape[0], got=mat.shape[0])
            out.append((mod, _Link(mat, conv, pop_shape, bias, extra)))
            shape = out_shape
            src_signed = mod.signed
            pending = []
        else:
            raise UnsupportedNodeError("IntGridNet holds IntGridLayer, SumPool2d and Flatten", got=type(mod).__name__)
    if pending or not out or not isinstance(out[-1][0], IntGridLayer):
        raise UnsupportedNodeError("the network must end with an IntGridLayer", where="convert_to_chip")
    for k, (mod, _) in enumerate(out[:-1]):
        if isinstance(mod, IntGridLayer) and not mod.act:
            raise UnsupportedNodeError("only the last layer may lack an activation", where=f"layer {k + 1}")
    return out


def _digits(values: np.ndarray) -> np.ndarray:
    """Balanced base-256 digits c_d in [-128, 127] with values = sum c_d 256**d, shape [n, DIGITS]."""
    v = np.asarray(values, np.int64).copy()
    out = np.zeros((v.size, DIGITS), np.int64)
    for d in range(DIGITS):
        c = ((v + 128) % 256) - 128
        out[:, d] = c
        v = (v - c) // 256
    if np.any(v != 0):
        raise QuantizationError("offset too large for the clock digits", expected=f"|E| < 2**{8 * DIGITS - 1}")
    return out


def _input_range_sums(mat: sp.csr_matrix, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the largest and smallest sum of mat @ n over input integers n in lo..hi."""
    ones = np.ones(mat.shape[1])
    top = (mat.maximum(0) * hi + mat.minimum(0) * lo) @ ones
    low = (mat.maximum(0) * lo + mat.minimum(0) * hi) @ ones
    return np.asarray(top).astype(np.int64), np.asarray(low).astype(np.int64)


def _row_sums(mat: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    pos = mat.maximum(0).sum(axis=1).A.ravel().astype(np.int64)
    neg = (-mat.minimum(0)).sum(axis=1).A.ravel().astype(np.int64)
    return pos, neg


def exact_weights(q, layer: str, what: str = "weights"):
    """Integer weights q -> (weights handed to Lava, num_weight_bits, weight_exp), exact at the
    fewest bits: for the projection's sign mode, the smallest n whose representable grid
    (`bits.representable_weight_range`, step 2**k) holds q * 2**k; Lava truncates nothing and
    `acc >> k` restores the sum of q exactly. So a b-bit network costs b bits per weight on the
    chip (a single-sign projection one less: its sign is shared). Works on arrays and CSR."""
    data = q.data if sp.issparse(q) else np.asarray(q, np.int64)
    mode = sign_mode(data)
    for n in range(1, SPECS["num_weight_bits"].hi + 1):
        lo, hi, step = representable_weight_range(n, mode)
        if not data.size or (data.min() * step >= lo and data.max() * step <= hi):
            k = step.bit_length() - 1
            return (q * step).astype(np.int64) if not sp.issparse(q) else (q * step).tocsr(), n, -k
    # larger integers that share a factor 2**e (a residual skip weight): q = m 2**e, weight_exp + e
    common = int(np.bitwise_or.reduce(np.abs(data).astype(np.int64))) if data.size else 0
    e = (common & -common).bit_length() - 1 if common else 0
    if 0 < e <= SPECS["weight_exp"].hi:
        if sp.issparse(q):
            reduced = q.copy().tocsr()
            reduced.data = reduced.data // (1 << e)
        else:
            reduced = np.asarray(q, np.int64) // (1 << e)
        w, n, exp = exact_weights(reduced, layer, what)
        if exp + e <= SPECS["weight_exp"].hi:
            return w, n, exp + e
    _fail(layer, f"{what} exceed the chip's 8-bit synapses ({mode} sign mode)", (int(data.min()), int(data.max())),
          "-128..127 (mixed), 0..255 (excitatory)", "quantize with weight_bits <= 8 (overlapping pools sum weights)")


def conv_weight_bits(q: np.ndarray) -> int:
    """Bits a conv kernel's integers take in memory (Lava's Conv applies them as given, signed)."""
    q = np.asarray(q, np.int64)
    top = int(max(-q.min(), q.max(), 0)) if q.size else 0
    return max(1, min(SPECS["num_weight_bits"].hi, top.bit_length() + (1 if q.size and q.min() < 0 else 0)))


def _fail(layer: str, what: str, got, limit, hint: str):
    raise QuantizationError(what, where=f"layer {layer!r}", expected=limit, got=got, hint=hint)


@dataclass
class ChipConversion:
    """The chip graph of a converted IntGridNet and its time layout.

    `encode(x)` -> {"x": [B, steps, *input_shape], "clock_<layer>": [B, steps, *clock shape]};
    `decode(result)` -> predictions (argmax); `activations(result)` -> readout z_int [B, n] or
    the last layer's spike counts; `layer_counts(result)` -> {layer: counts [B, *shape]} from the
    probes `probes`; `to_nir()` -> the chip graph as a NIR file (chip_to_nir).
    """

    chip: ChipGraph
    steps: int
    levels: int
    input_shape: tuple[int, ...]
    input_scale: float
    input_range: tuple[int, int]
    layers: list[dict] = field(default_factory=list)
    readout: str | None = None
    clocks: dict[str, np.ndarray] = field(default_factory=dict)  # input name -> [steps, *shape] int64
    input_index: int = 1
    readout_index: int | None = None

    @property
    def probes(self) -> list[str]:
        return [f"{layer['name']}/s" for layer in self.layers if layer["act"]]

    @property
    def output_name(self) -> str:
        return next(iter(self.chip.outputs))

    def encode(self, x) -> dict[str, np.ndarray]:
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).double()
        if tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError("input batch has the wrong shape", where="ChipConversion.encode",
                             expected=f"[batch, {', '.join(map(str, self.input_shape))}]", got=list(x.shape))
        n = IntGridNet([], input_scale=self.input_scale, input_range=self.input_range).input_integers(x).numpy()
        n = n.astype(np.int64)
        batch = n.shape[0]
        xs = np.zeros((batch, self.steps, *self.input_shape), np.int64)
        xs[:, self.input_index] = n
        out = {"x": xs}
        for cname, arr in self.clocks.items():
            out[cname] = np.broadcast_to(arr, (batch, *arr.shape)).copy()
        return out

    def activations(self, result) -> np.ndarray:
        out = result.outputs[self.output_name]
        batch = out.shape[0]
        if self.readout is not None:
            v = np.asarray(out[:, self.readout_index], np.int64).reshape(batch, -1)
            if np.any(v % 64):
                raise QuantizationError("readout voltage is not a multiple of 64", where=f"layer {self.readout!r}")
            return v // 64
        return self._signed(self.layers[-1], np.asarray(out, np.int64).sum(1)).reshape(batch, -1)

    @staticmethod
    def _signed(layer: dict, counts: np.ndarray) -> np.ndarray:
        """A split-sign layer's counts [B, 2 x ...] -> n = n+ - n- [B, ...]; others as they are."""
        if not layer.get("signed"):
            return counts
        halves = counts.reshape(counts.shape[0], 2, -1)
        shape = (layer["shape"][0] // 2, *layer["shape"][1:])
        return (halves[:, 0] - halves[:, 1]).reshape(counts.shape[0], *shape)

    def decode(self, result) -> np.ndarray:
        return self.activations(result).argmax(1)

    def layer_counts(self, result) -> dict[str, np.ndarray]:
        out = {}
        for layer in self.layers:
            if not layer["act"]:
                continue
            key = f"{layer['name']}/s"
            src = result.probes.get(key) if key in result.probes else None
            if src is None and self.readout is None and layer["name"] == self.layers[-1]["name"]:
                src = result.outputs[self.output_name]
            if src is None:
                raise ShapeError("run without the layer probes", where="ChipConversion.layer_counts", expected=self.probes)
            out[layer["name"]] = self._signed(layer, np.asarray(src, np.int64).sum(1))
        return out

    def run(self, x, backend: str = "sim", probes: bool = True, **options):
        """Encode, build on `backend`, run: returns the RunResult."""
        from snnc.backends.program_cache import build_cached

        program = build_cached(self.chip, backend, **options)  # built once, reused while the chip is unchanged
        return program.run(self.encode(x), steps=self.steps, probes=self.probes if probes else ())

    def to_nir(self):
        from snnc.ir.chip_nir import chip_to_nir

        return chip_to_nir(self.chip)


def _add_clock(chip: ChipGraph, clocks: dict, name: str, pop: Population, E: np.ndarray, ramp, steps: int) -> None:
    """Layer `name`'s clock input: channels 0..DIGITS-1 carry 256**d at index 0 (the digits of the
    per-neuron offset E are the weights), channel DIGITS the kick + ramp payloads (weight 1).

    A (C, H, W) layer gets a (DIGITS + 1, H, W) clock and a 1x1 conv (E is per channel there);
    a flat layer a (DIGITS + 1,) clock and a dense projection of weights 2 w, weight_exp -1.
    """
    cname = f"clock_{name}"
    nch = DIGITS + 1
    if len(pop.shape) == 3:
        c, h, w = pop.shape
        per_channel = E.reshape(c, h * w)
        if np.any(per_channel != per_channel[:, :1]):
            raise QuantizationError("conv layer offsets differ inside a channel", where=f"layer {name!r}")
        wts = np.zeros((c, nch), np.int64)
        wts[:, :DIGITS] = _digits(per_channel[:, 0])
        if ramp is not None:
            wts[:, DIGITS] = 1
        shape: tuple[int, ...] = (nch, h, w)
        proj: Projection = ConvProjection(f"{cname}->{name}", cname, name, wts[:, :, None, None],
                                          conv=ConvGeometry((nch, h, w), (c, h, w), (1, 1)), num_message_bits=CLOCK_BITS,
                                          num_weight_bits=conv_weight_bits(wts))
    else:
        wts = np.zeros((pop.size, nch), np.int64)
        wts[:, :DIGITS] = _digits(E)
        if ramp is not None:
            wts[:, DIGITS] = 1
        shape = (nch,)
        w, bits, exp = exact_weights(wts, name, "clock weights")
        proj = DenseProjection(f"{cname}->{name}", cname, name, w, weight_exp=exp, num_weight_bits=bits,
                               num_message_bits=CLOCK_BITS)
    arr = np.zeros((steps, *shape), np.int64)
    for d in range(DIGITS):
        arr[0, d] = 256**d
    if ramp is not None:
        arr[:, DIGITS] = ramp.reshape(steps, *([1] * (len(shape) - 1)))
    chip.add(InputPopulation(cname, shape, num_message_bits=CLOCK_BITS))
    chip.add(proj)
    clocks[cname] = arr


def convert_to_chip(qmodel: IntGridNet, input_shape: Sequence[int], levels: int | None = None) -> ChipConversion:
    """Build the exact chip graph of an IntGridNet (see the module docstring for the scheme)."""
    if not isinstance(qmodel, IntGridNet):
        raise UnsupportedNodeError("convert_to_chip takes an IntGridNet (see quantize_model)", got=type(qmodel).__name__)
    input_shape = tuple(int(d) for d in input_shape)
    links = _links(qmodel, input_shape)
    layers = [m for m, _ in links if isinstance(m, IntGridLayer)]
    L = {m.levels for m in layers if m.act} or {layers[-1].levels}
    if levels is None:
        levels = next(iter(L)) if len(L) == 1 else None
    if levels is None or any(lv != levels for lv in L):
        raise ParameterError("all layers must share one number of levels", where="convert_to_chip",
                             expected=levels, got=sorted({m.levels for m in layers if m.act}))
    levels = int(levels)
    has_readout = not layers[-1].act
    n_hidden = sum(1 for m in layers if m.act)
    n_or = len(links) - len(layers)  # max pools: one step each
    steps = 2 + n_hidden * levels + n_or + (1 if has_readout else 0)
    lo, hi = qmodel.input_range
    in_bits = max(1, int(max(abs(lo), abs(hi))).bit_length())
    if in_bits > 24:
        raise QuantizationError("input integers exceed the 24-bit graded payload", where="input",
                                expected="|x| < 2**24", got=(lo, hi))

    chip = ChipGraph(meta={"conversion": "snnc.conversion_chip", "levels": levels})
    chip.add(InputPopulation("x", input_shape, num_message_bits=in_bits))
    clocks: dict[str, np.ndarray] = {}

    layers_info = []
    src, src_is_input = "x", True
    k_hidden = n_pools = 0
    names: list[str] = []  # population of each link, by index (skips name their source by it)
    for idx, (mod, link) in enumerate(links):
        if isinstance(mod, MaxPoolCounts):
            name = f"maxpool{idx + 1}"
            names.append(name)
            if src_is_input:
                raise UnsupportedNodeError("MaxPool on the input image", where=f"layer {name!r}",
                                           hint="pool the input before it reaches the network")
            n_pools += 1
            w, bits, exp = exact_weights(link.matrix, name)
            chip.add(Population(name, link.out_shape, du=4095, dv=0, vth=0, model="lif", meta={"role": "max_or"}))
            chip.add(SparseProjection(f"{src}->{name}", src, name, w, weight_exp=exp, num_weight_bits=bits))
            layers_info.append({"name": name, "act": False, "kind": "maxpool", "shape": link.out_shape})
            src = name
            continue
        mod = cast(IntGridLayer, mod)
        name = f"h{idx + 1}" if mod.act else "readout"
        names.append(name)
        mat, bias = link.matrix, link.bias
        pos, neg = _row_sums(mat)
        if src_is_input:
            lin_max, lin_min = _input_range_sums(mat, lo, hi)
            step_hi, step_lo = lin_max, lin_min
        else:
            lin_max, lin_min = levels * pos, -levels * neg
            step_hi, step_lo = pos, -neg
        # a residual skip: the block input's spikes (an earlier window, or the image) all arrive
        # before this layer's kick; its sums widen every bound and the offset M covers them whole
        skip_partial = np.zeros(mat.shape[0], np.int64)
        skip_projs = []
        for src_idx, S in link.extra:
            s_name = names[src_idx] if src_idx >= 0 else "x"
            if src_idx < 0:
                s_max, s_min = _input_range_sums(S, lo, hi)
                s_step_hi, s_step_lo = s_max, s_min
            else:
                s_pos, s_neg = _row_sums(S)
                s_max, s_min, s_step_hi, s_step_lo = levels * s_pos, -levels * s_neg, s_pos, -s_neg
            lin_max, lin_min = lin_max + s_max, lin_min + s_min
            step_hi, step_lo = step_hi + s_step_hi, step_lo + s_step_lo
            skip_partial = skip_partial + s_max
            w, bits, exp = exact_weights(S, name, "skip weights")
            skip_projs.append(SparseProjection(f"{s_name}->{name}/skip", s_name, name, w, weight_exp=exp,
                                               num_weight_bits=bits, num_message_bits=in_bits if src_idx < 0 else 0))
        # weights in the chip's formats
        if link.conv is not None:
            q, geom = link.conv
            if q.min() < -128 or q.max() > 127:
                _fail(name, "conv weights exceed 8 bits + sign", (int(q.min()), int(q.max())), "-128..127",
                      "quantize with weight_bits <= 8")
            data: Projection = ConvProjection(f"{src}->{name}", src, name, q, conv=geom,
                                              num_weight_bits=conv_weight_bits(q), num_message_bits=in_bits if src_is_input else 0)
        else:
            density = mat.nnz / max(1, mat.shape[0] * mat.shape[1])
            w, bits, exp = exact_weights(mat.tocsr(), name, "weights (pools folded in)")
            kind: Literal["dense", "sparse"] = "dense" if density > 0.25 else "sparse"
            data = Projection(f"{src}->{name}", src, name, w.toarray() if kind == "dense" else w, kind=kind,
                              weight_exp=exp, num_weight_bits=bits, num_message_bits=in_bits if src_is_input else 0)
        if mod.act:
            k_hidden += 1
            D = int(mod.step)
            fire = 2 + (k_hidden - 1) * levels + n_pools
            partial = (0 if src_is_input else (levels - 1) * pos) + skip_partial  # integrate-phase partial sums (max)
            M = int(max(0, np.max(bias + partial)))
            E = bias - M
            kick = M - (levels + 1) * D + 1
            # bounds (a-units)
            low_v = E - (-lin_min) + min(0, kick + D)
            if np.min(low_v) < -A_LIMIT:
                _fail(name, "membrane voltage would saturate below -(2**23-1) (24-bit v)", int(np.min(low_v)) * 64,
                      f">= -{A_LIMIT * 64}", "reduce weights/bias (weight_bits) or the step D / levels")
            a_hi = np.maximum(step_hi + kick + D, np.maximum(step_hi + D, E))
            a_lo = np.minimum(step_lo + min(kick + D, D), E)
            if np.max(a_hi) > U_HI or np.min(a_lo) < U_LO:
                _fail(name, "one step's synaptic input exceeds the 24-bit current u",
                      (int(np.min(a_lo)) * 64, int(np.max(a_hi)) * 64), f"{U_LO * 64}..{U_HI * 64}",
                      "reduce weights/bias (weight_bits) or the step D / levels")
            if abs(kick + D) >= 2**CLOCK_BITS or D >= 2**CLOCK_BITS:
                _fail(name, "clock payload exceeds 24 bits", kick + D, f"< 2**{CLOCK_BITS}", "reduce D or the bias")
            pop = Population(name, link.out_shape, du=4095, dv=0, vth=0, model="lif",
                             meta={"step_D": D, "levels": levels, "fire_start": fire, "M": M})
            ramp = np.zeros(steps, np.int64)
            ramp[fire - 1] = kick + D
            ramp[fire: fire + levels - 1] = D
        else:
            E = bias
            lo_v = E + lin_min
            hi_v = E + lin_max
            if np.min(lo_v) < -A_LIMIT or np.max(hi_v) > A_LIMIT:
                _fail(name, "readout voltage would leave the 24-bit v (z_int * 64)",
                      (int(np.min(lo_v)) * 64, int(np.max(hi_v)) * 64), f"|v| <= {A_LIMIT * 64}",
                      "reduce weights/bias of the readout (weight_bits) or of the layer before")
            a_hi = np.maximum(step_hi, E)
            a_lo = np.minimum(step_lo, E)
            if np.max(a_hi) > U_HI or np.min(a_lo) < U_LO:
                _fail(name, "one step's synaptic input exceeds the 24-bit current u",
                      (int(np.min(a_lo)) * 64, int(np.max(a_hi)) * 64), f"{U_LO * 64}..{U_HI * 64}",
                      "reduce weights/bias")
            pop = Population(name, link.out_shape, du=4095, dv=0, vth=READOUT_VTH, model="lif",
                             meta={"readout": True})
            ramp = None
        if np.min(E) < -A_LIMIT or np.max(E) > A_LIMIT:
            _fail(name, "bias offset exceeds the 24-bit v", (int(np.min(E)), int(np.max(E))), f"|E| <= {A_LIMIT}",
                  "reduce the bias")
        chip.add(pop)
        chip.add(data)
        for proj in skip_projs:
            chip.add(proj)
        _add_clock(chip, clocks, name, pop, E, ramp, steps)
        layers_info.append({"name": name, "act": mod.act, "shape": link.out_shape,
                            "fire_start": fire if mod.act else None, "signed": mod.signed})
        src, src_is_input = name, False
    last = str(layers_info[-1]["name"])
    chip.outputs["out"] = OutputPort(last, "v" if has_readout else "s")
    chip.validate()
    return ChipConversion(
        chip=chip, steps=steps, levels=levels, input_shape=input_shape, input_scale=qmodel.input_scale,
        input_range=(lo, hi), layers=layers_info, readout=last if has_readout else None, clocks=clocks,
        input_index=1, readout_index=steps - 1 if has_readout else None,
    )
