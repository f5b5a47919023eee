"""Lossless ANN-to-SNN conversion: quantized CNN/RNN -> integrate-and-fire SNN as a NIR graph.

The pipeline of Su et al. 2024 ("Obtaining optimal spiking neural network in sequence learning via
CRNN-SNN conversion"): train with a quantized activation (`QuantReLU`: clamp and floor to L levels,
straight-through gradients), then map the quantized network onto integrate-and-fire neurons so that
each neuron's spike count over a window of T = L steps EQUALS its quantized activation, with the
analog input presented as a constant current for T steps (the paper's s-analog encoding) and signed
activations carried by bipolar IF neurons (+1 and -1 spikes). The timing construction below is
snnc's own (derived, not copied: the paper's full text was not available); it guarantees the
paper's zero conversion error layer by layer.

Why counts are exact here. A quantized activation is n = clamp(floor(z / s), lo, L) with
z = W x + b. An IF neuron with reset by subtraction that has integrated V = L z before it fires,
and then fires at most one spike per step for L steps while V - theta * n >= theta (and, bipolar,
a -1 spike while V - theta * n < 0), with theta = L s, emits exactly clamp(floor(V / theta), lo, L)
= n spikes. Greedy firing while still integrating is not exact (early spikes of mixed-sign inputs
over-fire), so every layer works in two phases, a layer-wise delay of one window: layer k
integrates in window k-1 (the spikes of layer k-1, each worth theta_{k-1} W, or the input current
for k = 1) and fires in window k. Windows are L steps; frames (samples, sequence elements) start
every 2 windows, so layer k of frame tau fires in window 2 tau + k.

How that is written with standard NIR nodes (all run on snnc's float reference backend):
  * the integrator is `I` (v += x) holding A = -(input so far - theta * spikes so far); the bias is
    folded into per-neuron thresholds: +1 spike when A + L b >= theta, written exactly as
    1 - Threshold(L b - theta)(A) (NIR's Threshold is strict), -1 spike when Threshold(L b)(A);
    each spike feeds +-theta back into A over a recurrent edge (reset by subtraction, next step)
  * a clock (per neuron shape: `I` counters of a constant field, one wrapped every 2 windows) opens
    layer k's firing windows from window k on; outside them a gate adds +-2**100 to the threshold
    inputs. The synaptic path reaches every integrator before the clock reaches its thresholds, so
    the depth-first search that picks recurrent edges delays exactly the reset/relay feedback
    edges (checked: `convert` raises if the graph's recurrent edges are not the intended ones)
  * streams of frames (always for recurrent layers): A is never cleared, so each frame's
    contributions of the previous frame are cancelled exactly: relay neurons (two-phase IF with
    theta = 1 on integer counts, so they end every window at exactly 0) repeat a spike count one or
    two windows later; a layer receives W (n_tau - n_{tau-1}) from its input layer, undoes its own
    previous +-theta resets, and a recurrent layer receives U (n_{tau-1} - n_{tau-2}); the input is
    presented as x_tau - x_{tau-1} (`encode` does this)
  * a model ending in Linear/Conv without QuantReLU gets an `I` readout whose value at the end of
    its window is L z exactly (`decode` divides by L)

Only the first layer sees analog values; everything else is integer counts times weights. In exact
arithmetic every count equals the quantized ANN's; in float64 they agree whenever the ANN's own
float32/float64 evaluation of floor(z / s) is exact (e.g. weights and inputs on a binary grid).
Use `encode`/`decode` (or `conversion_info`) for the time layout.

Not for the chip: Lava's LIF resets to zero (no reset by subtraction) and compartments exchange only
spikes (no analog integrator -> threshold edges), so `snnc.compiler.compile` rejects these graphs;
the exact result runs on the `reference` backend.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import nir
import numpy as np
import torch
import torch.nn as nn

from snnc.ir.errors import GraphError, ParameterError, ShapeError, UnsupportedNodeError

GATE = 2.0**100
"""Offset that keeps a threshold closed outside its firing window (absorbs any membrane value)."""

META_KEY = "snnc_conversion"


# -- quantized ANN building blocks --------------------------------------------------------------
class QuantReLU(nn.Module):
    """y = s * clamp(floor(x / s), lo, L): L + 1 levels (lo = 0) or 2 L + 1 (signed, lo = -L).

    The forward pass is exact quantization; the backward pass is the straight-through estimator
    inside the clamp range (and an LSQ-like gradient for the scale `s` when `learn_scale`).
    `counts(x)` returns the integers clamp(floor(x / s), lo, L) that the converted SNN's spike
    counts reproduce.
    """

    def __init__(self, levels: int, scale: float = 1.0, *, signed: bool = False, learn_scale: bool = True):
        super().__init__()
        if not isinstance(levels, (int, np.integer)) or isinstance(levels, bool) or levels < 1:
            raise ParameterError("levels must be a positive integer", where="QuantReLU(levels=...)", got=levels)
        scale = float(scale)
        if not math.isfinite(scale) or scale <= 0:
            raise ParameterError("scale must be a positive number", where="QuantReLU(scale=...)", got=scale)
        self.levels = int(levels)
        self.signed = bool(signed)
        value = torch.tensor(scale)
        if learn_scale:
            self.scale = torch.nn.Parameter(value)
        else:
            self.register_buffer("scale", value)

    @property
    def low(self) -> int:
        return -self.levels if self.signed else 0

    def counts(self, x):
        """The integer levels of x (no gradient)."""
        with torch.no_grad():
            return torch.clamp(torch.floor(x / self.scale), self.low, self.levels)

    def forward(self, x):
        u = x / self.scale
        q = torch.clamp(torch.floor(u), self.low, self.levels)
        uc = torch.clamp(u, self.low, self.levels)
        return self.scale * (uc + (q - uc).detach())

    def extra_repr(self) -> str:
        return f"levels={self.levels}, scale={float(self.scale.detach()):.4g}, signed={self.signed}"


class QuantRNN(nn.Module):
    """Elman RNN layer h_t = Q(W x_t + b + U h_{t-1}) with a `QuantReLU` Q, for [batch, time, features].

    `input` (nn.Linear, with bias) is W and b, `recurrent` (nn.Linear, no bias) is U, `act` is Q.
    Returns all hidden states [batch, time, hidden]; `convert` turns it into a recurrent SNN.
    """

    def __init__(self, input_size: int, hidden_size: int, levels: int, scale: float = 1.0, *, signed: bool = False, bias: bool = True):
        super().__init__()
        self.input = nn.Linear(input_size, hidden_size, bias=bias)
        self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False)
        self.act = QuantReLU(levels, scale, signed=signed)

    def forward(self, x):
        if x.ndim != 3:
            raise ShapeError("QuantRNN takes [batch, time, features]", where="QuantRNN.forward", got=tuple(x.shape))
        h = x.new_zeros((x.shape[0], self.recurrent.in_features))
        out = []
        for t in range(x.shape[1]):
            h = self.act(self.input(x[:, t]) + self.recurrent(h))
            out.append(h)
        return torch.stack(out, 1)


def calibrate(model, data, *, percentile: float = 99.9) -> None:
    """Set every QuantReLU scale so that the `percentile` of its input's magnitude maps to L levels."""
    acts = [m for m in model.modules() if isinstance(m, QuantReLU)]
    if not acts:
        raise UnsupportedNodeError("the model has no QuantReLU to calibrate", where=type(model).__name__)
    seen: dict[int, list] = {id(m): [] for m in acts}
    hooks = [m.register_forward_pre_hook(lambda mod, args: seen[id(mod)].append(args[0].detach().abs().flatten())) for m in acts]
    try:
        with torch.no_grad():
            model(data)
    finally:
        for h in hooks:
            h.remove()
    with torch.no_grad():
        for m in acts:
            values = torch.cat(seen[id(m)]) if seen[id(m)] else torch.zeros(1)
            top = float(torch.quantile(values.double(), percentile / 100.0)) if values.numel() else 0.0
            m.scale.fill_(max(top, 1e-8) / m.levels)


# -- model parsing ------------------------------------------------------------------------------
@dataclass
class _Stage:
    """Linear ops (Linear/Conv/AvgPool/Flatten/BatchNorm) then a QuantReLU (or none: readout)."""

    ops: list = field(default_factory=list)
    act: Any = None
    rnn: Any = None
    names: list = field(default_factory=list)
    in_shape: tuple = ()  # this field and the next two are set by _parse
    out_shape: tuple = ()
    bias: np.ndarray = field(default_factory=lambda: np.zeros(0))  # total bias of the affine chain, out_shape


_CHAIN = ("Linear", "Conv1d", "Conv2d", "AvgPool2d", "Flatten", "BatchNorm1d", "BatchNorm2d")
_SKIP = ("Identity", "Dropout", "Dropout1d", "Dropout2d")


def _modules(model, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(model, (QuantReLU, QuantRNN)):
        return [(prefix or type(model).__name__, model)]
    if isinstance(model, nn.Sequential):
        out = []
        for name, child in model.named_children():
            out.extend(_modules(child, f"{prefix}.{name}" if prefix else name))
        return out
    name = type(model).__name__
    if name in _CHAIN or name in _SKIP:
        return [(prefix or name, model)]
    hint = "replace it with QuantReLU(levels, scale) and fine-tune" if name in ("ReLU", "ReLU6", "Hardtanh", "LeakyReLU") else (
        "use AvgPool2d" if "MaxPool" in name else "convert supports nn.Sequential of Linear/Conv1d/Conv2d/AvgPool2d/Flatten/"
        "BatchNorm/Dropout with QuantReLU activations, and QuantRNN layers"
    )
    raise UnsupportedNodeError(f"module type {name} cannot be converted", where=f"module {prefix or name!r}", hint=hint)


def _parse(model, input_shape: tuple[int, ...]) -> list[_Stage]:
    stages: list[_Stage] = []
    cur = _Stage()
    for name, mod in _modules(model):
        tname = type(mod).__name__
        if tname in _SKIP:
            continue
        if isinstance(mod, QuantRNN):
            if cur.ops:
                raise UnsupportedNodeError(
                    "linear layers directly before a QuantRNN are not supported",
                    where=f"module {name!r}",
                    hint="put a QuantReLU between them (or fold them into the RNN's input layer)",
                )
            stages.append(_Stage(ops=[mod.input], act=mod.act, rnn=mod, names=[name]))
            continue
        if isinstance(mod, QuantReLU):
            cur.act = mod
            cur.names.append(name)
            stages.append(cur)
            cur = _Stage()
            continue
        cur.ops.append(mod)
        cur.names.append(name)
    if cur.ops:
        stages.append(cur)  # readout: affine output without activation
    if not stages or all(s.act is None for s in stages):
        raise UnsupportedNodeError(
            "the model has no QuantReLU activation", where=type(model).__name__, hint="quantize it: insert QuantReLU(levels, scale) after each layer"
        )
    levels = {s.act.levels for s in stages if s.act is not None}
    if len(levels) != 1:
        raise UnsupportedNodeError(
            "all QuantReLU layers must have the same number of levels",
            where=type(model).__name__,
            got=sorted(levels),
            hint="the SNN's window is T = L steps for every layer; use one L",
        )
    shape = tuple(input_shape)
    with torch.no_grad():
        for i, st in enumerate(stages):
            if st.act is None and i != len(stages) - 1:
                raise UnsupportedNodeError("only the last layer may lack a QuantReLU", where=f"module {st.names}")
            st.in_shape = shape
            zero = torch.zeros((1, *shape), dtype=torch.float64)  # BatchNorm: running statistics
            try:
                out = _run_chain(st.ops, zero)
            except Exception as exc:  # noqa: BLE001 - wrong shapes raise deep in torch
                raise ShapeError(
                    f"layers do not accept shape {shape} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                    where=f"modules {st.names}",
                ) from exc
            st.out_shape = tuple(out.shape[1:])
            st.bias = out[0].numpy().copy()
            shape = st.out_shape
    return stages


def _run_chain(ops, x):
    for op in ops:
        if isinstance(op, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if op.running_mean is None:
                raise UnsupportedNodeError("BatchNorm without running statistics cannot be folded", where=type(op).__name__)
            x = torch.nn.functional.batch_norm(
                x, op.running_mean.double(), op.running_var.double(),
                None if op.weight is None else op.weight.double(), None if op.bias is None else op.bias.double(),
                False, 0.0, op.eps,
            )
        else:
            x = _double(op)(x)
    return x


def _double(op):
    import copy

    return copy.deepcopy(op).double().eval()


# -- NIR building -------------------------------------------------------------------------------
class _Builder:
    def __init__(self, input_shape: tuple[int, ...], levels: int):
        self.L = levels
        self.P = 2 * levels
        self.input_shape = tuple(input_shape)
        self.nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
        self.edges: list[tuple[str, str]] = []
        self.cache: dict[Any, str] = {}  # node built once per key (ones, gates, offsets)
        self.clocks: dict[Any, dict[str, str]] = {}  # per shape: the clock's nodes (see `clock`)
        self.delayed: set[tuple[str, str]] = set()  # edges meant to deliver one step later

    def add(self, name: str, node: nir.NIRNode) -> str:
        base, i = name, 1
        while name in self.nodes:
            name, i = f"{base}_{i}", i + 1
        self.nodes[name] = node
        return name

    def edge(self, a: str, b: str) -> None:
        self.edges.append((a, b))

    # -- clocks -----------------------------------------------------------------------------------
    def ones(self, shape) -> str:
        """A node whose output is 1 everywhere, every step: a zero-weight layer's bias on the input."""
        key = ("ones", shape)
        if key in self.cache:
            return self.cache[key]
        ins = self.input_shape
        if len(shape) == 1:
            src = "input"
            if len(ins) != 1:
                src = self._flat_input()
            n_in = math.prod(ins)
            node = nir.Affine(weight=np.zeros((shape[0], n_in)), bias=np.ones(shape[0]))
        elif len(shape) == len(ins) and len(shape) in (2, 3):
            src = "input"
            k, p = [], []
            for want, have in zip(shape[1:], ins[1:]):
                pad = max(0, math.ceil((want - have) / 2))
                k.append(have + 2 * pad - want + 1)
                p.append(pad)
            w = np.zeros((shape[0], ins[0], *k))
            if len(shape) == 3:
                node = nir.Conv2d(input_shape=tuple(ins[1:]), weight=w, stride=1, padding=tuple(p), dilation=1, groups=1, bias=np.ones(shape[0]))
            else:
                node = nir.Conv1d(input_shape=ins[1], weight=w, stride=1, padding=p[0], dilation=1, groups=1, bias=np.ones(shape[0]))
        else:
            raise UnsupportedNodeError(
                f"cannot build the clock for layer shape {shape} from input shape {ins}",
                where="conversion clock",
                hint="layers must be 1-D, or have as many dimensions as the input",
            )
        name = self.add(f"clock_ones_{'x'.join(map(str, shape))}", node)
        self.edge(src, name)
        self.cache[key] = name
        return name

    def _flat_input(self) -> str:
        if "flat_input" not in self.cache:
            name = self.add("clock_flat_input", nir.Flatten(input_type={"input": np.array(self.input_shape)}, start_dim=0, end_dim=-1))
            self.edge("input", name)
            self.cache["flat_input"] = name
        return self.cache["flat_input"]

    def clock(self, shape) -> dict[str, str]:
        """Per shape: phase counter (t mod 2L) + 1, odd/even window indicators, global counter t + 1."""
        key = ("clock", shape)
        if key in self.clocks:
            return self.clocks[key]
        tag = "x".join(map(str, shape))
        one = self.ones(shape)
        phase = self.add(f"clock_phase_{tag}", nir.I(r=np.ones(shape)))
        wrap = self.add(f"clock_wrap_{tag}", nir.Threshold(threshold=np.full(shape, self.P - 0.5)))
        back = self.add(f"clock_wrap_back_{tag}", nir.Scale(scale=np.full(shape, -float(self.P))))
        odd = self.add(f"clock_odd_{tag}", nir.Threshold(threshold=np.full(shape, self.L + 0.5)))
        count = self.add(f"clock_count_{tag}", nir.I(r=np.ones(shape)))
        for a, b in ((one, phase), (phase, wrap), (wrap, back), (back, phase), (phase, odd), (one, count)):
            self.edge(a, b)
        self.delayed.add((back, phase))
        out = {"odd": odd, "count": count, "tag": tag}
        self.clocks[key] = out
        return out

    def even(self, shape) -> str:
        clk = self.clock(shape)
        if "even" not in clk:
            clk["even"] = self.add(f"clock_even_{clk['tag']}", _one_minus(shape))
            self.edge(clk["odd"], clk["even"])
        return clk["even"]

    def gate(self, shape, parity: int, start: int) -> str:
        """1 in windows w with w % 2 == parity and w >= start, else 0."""
        key = ("gate", shape, parity % 2, start)
        if key in self.cache:
            return self.cache[key]
        clk = self.clock(shape)
        tag = "x".join(map(str, shape))
        started = self.add(f"clock_after_w{start}_{tag}", nir.Threshold(threshold=np.full(shape, start * self.L + 0.5)))
        gate = self.add(f"clock_gate_p{parity % 2}_w{start}_{tag}", nir.Threshold(threshold=np.full(shape, 1.5)))
        self.edge(clk["count"], started)
        self.edge(clk["odd"] if parity % 2 else self.even(shape), gate)
        self.edge(started, gate)
        self.cache[key] = gate
        return gate

    def offset(self, gate: str, shape, sign: float) -> str:
        """sign * GATE where the gate is closed, exactly 0 where it is open."""
        key = ("offset", gate, sign)
        if key in self.cache:
            return self.cache[key]
        n = shape[-1]
        node = nir.Affine(weight=-sign * GATE * np.eye(n), bias=np.full(n, sign * GATE))
        name = self.add(f"{gate}_off{'p' if sign > 0 else 'n'}", node)
        self.edge(gate, name)
        self.cache[key] = name
        return name

    # -- neurons ----------------------------------------------------------------------------------
    def signed_sum(self, name: str, terms: list[tuple[str, float]], shape) -> str:
        """A node whose output is sum(sign * node) (values exact: spikes are 0/1)."""
        if len(terms) == 1 and terms[0][1] == 1:
            return terms[0][0]
        out = self.add(name, nir.Scale(scale=np.ones(shape)))
        for i, (src, sign) in enumerate(terms):
            if sign == 1:
                self.edge(src, out)
            else:
                neg = self.add(f"{name}_neg{i}", nir.Scale(scale=np.full(shape, float(sign))))
                self.edge(src, neg)
                self.edge(neg, out)
        return out

    def layer(self, prefix: str, shape, theta: float, bias_total: np.ndarray, signed: bool, parity: int, start: int) -> dict:
        """Two-phase (bipolar) IF layer; `acc` takes minus the input; returns its node names."""
        L = self.L
        acc = self.add(f"{prefix}_acc", nir.I(r=np.ones(shape)))
        gate = self.gate(shape, parity, start)
        shift = L * np.asarray(bias_total, dtype=np.float64)
        notpos = self.add(f"{prefix}_below", nir.Threshold(threshold=shift - theta))
        pos = self.add(f"{prefix}_pos", _one_minus(shape))
        up = self.add(f"{prefix}_reset_pos", nir.Scale(scale=np.full(shape, float(theta))))
        for a, b in ((acc, notpos), (self.offset(gate, shape, +1.0), notpos), (notpos, pos), (pos, up), (up, acc)):
            self.edge(a, b)
        self.delayed.add((up, acc))
        out = {"acc": acc, "pos": pos, "neg": None, "gate": gate}
        if signed:
            neg = self.add(f"{prefix}_neg", nir.Threshold(threshold=shift))
            down = self.add(f"{prefix}_reset_neg", nir.Scale(scale=np.full(shape, -float(theta))))
            for a, b in ((acc, neg), (self.offset(gate, shape, -1.0), neg), (neg, down), (down, acc)):
                self.edge(a, b)
            self.delayed.add((down, acc))
            out["neg"] = neg
        out["out"] = self.signed_sum(f"{prefix}_out", self.spike_terms(out), shape)
        return out

    def spike_terms(self, layer: dict) -> list[tuple[str, float]]:
        terms = [(layer["pos"], 1.0)]
        if layer.get("neg"):
            terms.append((layer["neg"], -1.0))
        return terms

    def relay(self, prefix: str, src: dict, shape, parity: int, start: int) -> dict:
        """Repeat the +1/-1 spike counts of `src` in the next window (theta = 1 on integers)."""
        out: dict[str, str | None] = {"pos": None, "neg": None}
        for key in ("pos", "neg"):
            if not src.get(key):
                continue
            acc = self.add(f"{prefix}_{key}_acc", nir.I(r=np.ones(shape)))
            fire = self.add(f"{prefix}_{key}", nir.Threshold(threshold=np.full(shape, 0.5)))
            back = self.add(f"{prefix}_{key}_reset", nir.Scale(scale=-np.ones(shape)))
            gate = self.gate(shape, parity, start)
            for a, b in ((src[key], acc), (acc, fire), (self.offset(gate, shape, -1.0), fire), (fire, back), (back, acc)):
                self.edge(a, b)
            self.delayed.add((back, acc))
            out[key] = fire
        out["out"] = self.signed_sum(f"{prefix}_out", self.spike_terms(out), shape)
        return out

    def chain(self, prefix: str, src: str, src_shape, scale: float, stage: _Stage, dst: str) -> None:
        """`src` * scale through the stage's ops (biases removed, BatchNorm folded) into `dst`."""
        cur = self.add(f"{prefix}_in", nir.Scale(scale=np.full(src_shape, float(scale))))
        self.edge(src, cur)
        shape = tuple(src_shape)
        ops = list(stage.ops)
        i = 0
        while i < len(ops):
            op = ops[i]
            bn = ops[i + 1] if i + 1 < len(ops) and isinstance(ops[i + 1], (nn.BatchNorm1d, nn.BatchNorm2d)) else None
            node, shape = _nir_op(op, shape, bn)
            name = self.add(f"{prefix}_{i}_{type(op).__name__.lower()}", node)
            self.edge(cur, name)
            cur = name
            i += 2 if bn is not None else 1
        self.edge(cur, dst)


def _one_minus(shape) -> nir.Affine:
    n = shape[-1]
    return nir.Affine(weight=-np.eye(n), bias=np.ones(n))


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy().copy()


def _nir_op(op, shape, bn=None):
    """A linear op (bias dropped) as a NIR node, with a following BatchNorm's scale folded in."""
    if isinstance(op, (nn.BatchNorm1d, nn.BatchNorm2d)):
        raise UnsupportedNodeError(
            "BatchNorm must follow a Linear or Conv layer", where=type(op).__name__, hint="it is folded into the layer before it"
        )
    scale = None
    if bn is not None:
        gamma = _np(bn.weight) if bn.weight is not None else np.ones(bn.num_features)
        scale = gamma / np.sqrt(_np(bn.running_var) + bn.eps)
    with torch.no_grad():
        out_shape = tuple(_double(op)(torch.zeros((1, *shape), dtype=torch.float64)).shape[1:])
    if isinstance(op, nn.Linear):
        w = _np(op.weight)
        if scale is not None:
            w = w * scale[:, None]
        return nir.Linear(weight=w), out_shape
    if isinstance(op, (nn.Conv1d, nn.Conv2d)):
        if op.padding_mode != "zeros":
            raise UnsupportedNodeError(f"padding_mode {op.padding_mode!r} is not supported", where=type(op).__name__, expected="'zeros'")
        w = _np(op.weight)
        if scale is not None:
            w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        pad = op.padding if isinstance(op.padding, str) else tuple(int(p) for p in op.padding)
        zeros = np.zeros(w.shape[0])
        if isinstance(op, nn.Conv1d):
            node = nir.Conv1d(
                input_shape=int(shape[1]), weight=w, stride=int(op.stride[0]), padding=pad if isinstance(pad, str) else pad[0],
                dilation=int(op.dilation[0]), groups=int(op.groups), bias=zeros,
            )
        else:
            node = nir.Conv2d(
                input_shape=tuple(int(s) for s in shape[1:]), weight=w, stride=tuple(int(s) for s in op.stride), padding=pad,
                dilation=tuple(int(d) for d in op.dilation), groups=int(op.groups), bias=zeros,
            )
        return node, out_shape
    if isinstance(op, nn.AvgPool2d):
        k = _pair(op.kernel_size)
        s = _pair(op.stride if op.stride is not None else op.kernel_size)
        p = _pair(op.padding)
        if op.ceil_mode or op.divisor_override is not None or (any(p) and not op.count_include_pad):
            raise UnsupportedNodeError(
                "AvgPool2d with ceil_mode, divisor_override or count_include_pad=False is not supported",
                where="AvgPool2d",
                hint="use the defaults (NIR's AvgPool2d counts the padding)",
            )
        return nir.AvgPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p)), out_shape
    if isinstance(op, nn.Flatten):
        nd = len(shape) + 1
        start = op.start_dim + nd if op.start_dim < 0 else op.start_dim
        end = op.end_dim + nd if op.end_dim < 0 else op.end_dim
        if start <= 0:
            raise UnsupportedNodeError("flattening the batch dimension is not supported", where="Flatten", hint="use nn.Flatten()")
        return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=start - 1, end_dim=end - 1), out_shape
    raise UnsupportedNodeError(f"module type {type(op).__name__} cannot be converted", where=type(op).__name__)


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[-1])
    return int(v), int(v)


# -- conversion ---------------------------------------------------------------------------------
def convert(model, input_shape: Sequence[int], *, stream: bool | None = None) -> nir.NIRGraph:
    """Turn a quantized network (QuantReLU activations, optional QuantRNN layers) into a NIR SNN.

    `input_shape`: one frame without batch, e.g. (1, 8, 8) for a CNN or (features,) for an RNN
    (whose input is [batch, time, features]; each time step is one frame). `stream`: build the
    frame-to-frame cancellation so that a sequence of frames can be presented one after the other
    (default: True for recurrent models, which need it, False otherwise: one frame per run).
    The spike counts / values of frame tau are read with `decode`; inputs are laid out by `encode`.
    """
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ShapeError("input_shape must be a sequence of positive integers", where="convert", got=input_shape) from None
    if not shape or any(d <= 0 for d in shape):
        raise ShapeError("input_shape must be a sequence of positive integers", where="convert", got=shape)
    stages = _parse(model, shape)
    recurrent = any(s.rnn is not None for s in stages)
    if stream is None:
        stream = recurrent
    if recurrent and not stream:
        raise ParameterError("recurrent layers need stream=True", where="convert(stream=False)", hint="omit stream for recurrent models")
    L = next(s.act.levels for s in stages if s.act is not None)
    b = _Builder(shape, L)
    layers: list[dict] = []
    prev: dict | None = None
    prev_theta = 1.0
    info_layers = []
    output_node = None
    readout = False
    n_spiking = sum(1 for s in stages if s.act is not None)
    for k, st in enumerate(stages, start=1):
        prefix = f"layer{k}"
        if st.act is None:  # readout: value L z at the end of window 2 tau + k - 1
            acc = b.add(f"{prefix}_value", nir.I(r=np.ones(st.out_shape)))
            src = _input_of(b, prev, prefix, stream) if prev is not None else "input"
            b.chain(f"{prefix}_syn", src, st.in_shape, prev_theta, st, acc)
            out = b.add("output", nir.Output(output_type={"output": np.array(st.out_shape)}))
            const = _constant(b, st.out_shape, L * st.bias, prefix)
            b.edge(acc, out)
            b.edge(const, out)
            output_node = out
            readout = True
            info_layers.append({"name": prefix, "kind": "readout", "window": k - 1, "node": acc, "modules": st.names})
            break
        theta = float(L * float(st.act.scale.detach()))
        if not math.isfinite(theta) or theta <= 0:
            raise ParameterError("QuantReLU scale must be positive", where=f"module {st.names[-1]!r}", got=float(st.act.scale))
        signed = bool(st.act.signed)
        lay = b.layer(prefix, st.out_shape, theta, st.bias, signed, parity=k % 2, start=k)
        src = _input_of(b, prev, prefix, stream) if prev is not None else "input"  # k > 1
        b.chain(f"{prefix}_syn", src, st.in_shape, -prev_theta if k > 1 else -1.0, st, lay["acc"])
        relays = []
        if stream:
            r1 = b.relay(f"{prefix}_relay1", lay, st.out_shape, parity=k + 1, start=k + 1)
            relays.append(r1)
            cancel = b.add(f"{prefix}_undo_resets", nir.Scale(scale=np.full(st.out_shape, -theta)))
            b.edge(r1["out"], cancel)
            b.edge(cancel, lay["acc"])
            b.delayed.add((cancel, lay["acc"]))
            if k < len(stages) or st.rnn is not None:
                r2 = b.relay(f"{prefix}_relay2", r1, st.out_shape, parity=k, start=k + 2)
                relays.append(r2)
            if st.rnn is not None:
                r3 = b.relay(f"{prefix}_relay3", r2, st.out_shape, parity=k + 1, start=k + 3)
                relays.append(r3)
                rec_src = b.signed_sum(f"{prefix}_rec_in", [(r1["out"], 1.0), (r3["out"], -1.0)], st.out_shape)
                scaled = b.add(f"{prefix}_rec_scale", nir.Scale(scale=np.full(st.out_shape, -theta)))
                rec = b.add(f"{prefix}_rec", nir.Linear(weight=_np(st.rnn.recurrent.weight)))
                b.edge(rec_src, scaled)
                b.edge(scaled, rec)
                b.edge(rec, lay["acc"])
                b.delayed.add((rec, lay["acc"]))
        lay["relays"] = relays
        lay["shape"] = st.out_shape
        layers.append(lay)
        info_layers.append(
            {
                "name": prefix, "kind": "spiking", "window": k, "pos": lay["pos"], "neg": lay["neg"], "out": lay["out"],
                "theta": theta, "scale": float(st.act.scale.detach()), "signed": signed, "modules": st.names,
                "recurrent": st.rnn is not None,
            }
        )
        prev, prev_theta = lay, theta
    if output_node is None:
        last = layers[-1]
        output_node = b.add("output", nir.Output(output_type={"output": np.array(last["shape"])}))
        b.edge(last["out"], output_node)
    info = {
        "levels": L,
        "window": L,
        "period": 2 * L,
        "stream": bool(stream),
        "recurrent": recurrent,
        "output": "value" if readout else "spikes",
        "output_window": len(info_layers) - 1 if readout else n_spiking,
        "input_shape": list(shape),
        "layers": info_layers,
    }
    # Depth-first search from the input decides which edge of a cycle is delayed (snnc.ir.Graph):
    # the synaptic path must reach every integrator before the clock reaches its threshold nodes.
    clock = {n for n in b.nodes if n.startswith("clock_")}
    edges = sorted(b.edges, key=lambda e: 0 if e[0] == "input" and e[1] not in clock else 1)
    graph = nir.NIRGraph(nodes=b.nodes, edges=edges, metadata={META_KEY: json.dumps(info)}, type_check=False)
    from snnc.ir.graph import Graph

    found = Graph.from_nir(graph).recurrent  # also validates shapes and edges
    if found != b.delayed:
        raise GraphError(
            "internal error: the converted graph's recurrent edges are not the intended ones",
            where="conversion.convert",
            expected=sorted(b.delayed)[:6],
            got=sorted(found ^ b.delayed)[:6],
            hint="please report this model",
        )
    return graph


def _input_of(b: _Builder, prev: dict, prefix: str, stream: bool) -> str:
    """The previous layer's +-1 spikes, minus its previous frame's (relay 2) in stream mode."""
    if not stream:
        return prev["out"]
    r2 = prev["relays"][1]
    return b.signed_sum(f"{prefix}_delta_in", [(prev["out"], 1.0), (r2["out"], -1.0)], prev["shape"])


def _constant(b: _Builder, shape, value: np.ndarray, prefix: str) -> str:
    """A node that outputs `value` (shape `shape`) at every step."""
    value = np.asarray(value, dtype=np.float64)
    if len(shape) == 1:
        ins = b.input_shape
        src = "input" if len(ins) == 1 else b._flat_input()
        node = nir.Affine(weight=np.zeros((shape[0], math.prod(ins))), bias=value.reshape(-1))
        name = b.add(f"{prefix}_bias", node)
        b.edge(src, name)
        return name
    per_channel = value.reshape(shape[0], -1)
    if not np.all(per_channel == per_channel[:, :1]):
        raise UnsupportedNodeError(
            "a convolutional readout whose bias varies over positions is not supported",
            where=f"{prefix} readout",
            hint="end the model with a Linear layer (after Flatten) or a QuantReLU",
        )
    one = b.ones(shape)
    node = nir.Scale(scale=np.broadcast_to(per_channel[:, :1].reshape((shape[0],) + (1,) * (len(shape) - 1)), shape).copy())
    name = b.add(f"{prefix}_bias", node)
    b.edge(one, name)
    return name


# -- time layout --------------------------------------------------------------------------------
def conversion_info(graph: nir.NIRGraph) -> dict:
    """The time layout `convert` stored in the graph's metadata."""
    meta = getattr(graph, "metadata", None) or {}
    raw = meta.get(META_KEY)
    if raw is None:
        raise ParameterError("graph was not made by conversion.convert", where="graph metadata", hint=f"missing key {META_KEY!r}")
    if isinstance(raw, (bytes, np.bytes_)):
        raw = bytes(raw).decode()
    return json.loads(str(raw)) if not isinstance(raw, dict) else raw


def num_steps(info: dict, frames: int = 1) -> int:
    """Steps to simulate so that the last of `frames` frames has left the output window."""
    return (2 * (int(frames) - 1) + int(info["output_window"]) + 1) * int(info["window"])


def encode(graph_or_info, x) -> np.ndarray:
    """Input time series [batch, T, *input_shape] for frames x: [batch, *input_shape] (one frame)
    or [batch, frames, *input_shape]. Frame tau is a constant current over window 2 tau (its
    difference to the previous frame in stream mode), zero elsewhere."""
    info = graph_or_info if isinstance(graph_or_info, dict) else conversion_info(graph_or_info)
    x = np.asarray(x, dtype=np.float64)
    shape = tuple(info["input_shape"])
    if x.shape[1:] == shape:
        x = x[:, None]
    if x.ndim != len(shape) + 2 or x.shape[2:] != shape:
        raise ShapeError("input frames have the wrong shape", where="conversion.encode", expected=f"[batch, (frames,) {shape}]", got=x.shape)
    frames = x.shape[1]
    if frames > 1 and not info["stream"]:
        raise ShapeError(
            "this SNN takes one frame per run", where="conversion.encode", got=frames, hint="convert(..., stream=True) for frame sequences"
        )
    L = int(info["window"])
    out = np.zeros((x.shape[0], num_steps(info, frames), *shape))
    prev = np.zeros_like(x[:, 0])
    for tau in range(frames):
        cur = x[:, tau]
        out[:, 2 * tau * L : (2 * tau + 1) * L] = (cur - prev)[:, None] if info["stream"] else cur[:, None]
        prev = cur
    return out


def decode(graph_or_info, output: np.ndarray, frames: int = 1, *, window_of: int | None = None) -> np.ndarray:
    """[batch, frames, *shape] from a run's output [batch, T, *shape]: the spike count (net +1/-1)
    in each frame's output window, or for a readout the value at the window's end divided by L."""
    info = graph_or_info if isinstance(graph_or_info, dict) else conversion_info(graph_or_info)
    L = int(info["window"])
    w0 = int(info["output_window"] if window_of is None else window_of)
    out = np.asarray(output)
    res = []
    for tau in range(frames):
        lo, hi = (2 * tau + w0) * L, (2 * tau + w0 + 1) * L
        if hi > out.shape[1]:
            raise ShapeError("the run is too short for this frame", where="conversion.decode", expected=f">= {hi} steps", got=out.shape[1])
        if info["output"] == "value" and window_of is None:
            res.append(out[:, hi - 1] / L)
        else:
            res.append(out[:, lo:hi].sum(axis=1))
    return np.stack(res, axis=1)
