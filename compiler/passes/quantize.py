"""Quantize: lower the canonical NIR graph to an integer ChipGraph.

Why here and how: each canonical population (see `canonicalize`) runs

    i[t] = alpha i[t-1] + sum_k W_k x_k[t - f_k] + b(t);   v[t] = beta v[t-1] + i[t];   v > thr

and a Lava/Loihi compartment runs (docs/loihi-fixed-point.md)

    u = u (4095 - du) / 4096 + (sum_j w_q x_j  shifted by weight_exp) << 6;  v = v (4096 - dv) / 4096 + u;  v > vth << 6

One float-to-chip factor K per layer (chip units of u and v per float unit) makes them the same
network: w_q << (6 + e) = K W, vth << 6 = K thr, du = round(4096 (1 - alpha)) - 1,
dv = round(4096 (1 - beta)).

Weights. Each weight is rounded onto the grid Lava really applies for its sign mode and
`num_weight_bits` (`bits.representable_weight_range`; mixed-sign weights are even because Lava
drops their lowest bit). By default (`split_sign`) positive and negative weights of a projection go
to separate excitatory / inhibitory projections, so both keep all their magnitude bits, and each
sign part is cut into up to `exponent_groups` projections with consecutive weight exponents, every
weight in the finest group that holds it: a block-floating-point code (Loihi's synapse formats
carry their own exponent; in Lava each group is one Sparse process). The synapse count does not
change, and every synapse still stores `weight_bits` bits. With one group the exponent is searched
for the smallest error, not taken as the first that fits. Exponents below `min_weight_exp` (0) are
not used: with weight_exp < 0 Lava floors the accumulated sum, a systematic bias a larger K avoids.
Lava's fixed-point Conv applies no weight_exp and keeps one kernel: conv projections use e = 0 and
are not split, so their K is set by the kernel.

The chip factor K. Larger K means finer thresholds, biases and state (one synaptic input unit is
64/K in float units) until the 24-bit current u would wrap. K is searched over the values where a
projection's largest weight lands on the top of its grid and the largest K the headroom allows,
keeping the smallest error of W/thr as the chip applies it. Headroom: |i| is bounded by the worst
case (every input active every step: (sum |W| + |b|) / (1 - alpha)) or, with `calibrate` (sample
inputs), by a float run of the canonical network; K keeps |i| K below 2**23 / headroom. Negative v
saturating at -2**23 is allowed for leaky neurons (they recover towards rest as in the float model;
reported) but not for neurons without leak (IF), whose range is then taken from calibration.
With calibration data the quantizer also refines K (`refine`): among a fine grid of K it keeps the
one whose integer layer, fed the float run's own input spikes, takes the same spike decisions as
the float layer most often. Recurrent spiking networks are chaotic (one flipped decision changes
all later spikes), and which weights round up or down depends on K. `per_channel` gives dense/
sparse layers one K per neuron (per-neuron vth, which Lava's LIF cannot hold: see `legalize`).

Constant drive (Affine/Conv biases, which NIR adds to the synaptic current every step from step
0) becomes, with `bias="neuron"` (default, exact), projections from one always-firing bias neuron
(population "snnc.bias") whose delay makes them start at the population's first float step, with
up to `bias_groups` exponent groups (one synapse per neuron); `bias="mant"` uses Loihi's bias_mant
instead (at a fixed `bias_exp` when given: lava-dl netx holds 6), which acts from the chip's first
step, `latency` steps early, and on v (the steady-state value b / (1 - alpha) for CUBA layers): exact
only for layers without state whose bias alone stays below threshold; each layer's report names its
approximations (`bias_approximation`).

Inputs: binary spike inputs become InputPopulation(num_message_bits=0). Non-binary inputs
(analog values, e.g. a constant-current encoding, or event counts per bin) become graded:
`num_message_bits = input_bits`, and the host sends round(x * meta["input_scale"][name])
(integer data is sent as it is, scale 1); `input_encoding` chooses: "spikes", "graded", or
"auto" (graded when the calibration data is not all 0/1).

Outputs: a spiking population is read as spikes ("s"); a non-spiking readout (canonical CubaLI)
as its voltage ("v"), with vth at the maximum so it never fires, `meta["output_scale"][port]`
(float per chip unit) and `meta["output_offset"][port]` (v_leak) to convert back.

Reported per layer: K, vth, du, dv, relative RMS weight error (and of W/thr as applied), the
error of the membrane input sum_k W_k x_k + b over the calibration run (when given), decay and
bias errors, the calibration refinement, and every approximation made.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict

import numpy as np
import scipy.sparse as sp

from snnc.ir.bits import SPECS, representable_weight_range, sign_mode
from snnc.ir.fixed_point import V_MAX, NeuronState, neuron_step
from snnc.ir.fixed_point.units import STATE_UNIT, threshold_value
from snnc.ir.chip import (ChipGraph, ConvProjection, DenseProjection, InputPopulation, NeuronModel, OutputPort, Population, Projection,
                          ResetMode, SparseProjection)
from snnc.ir.errors import ParameterError, QuantizationError, ShapeError
from snnc.ir.graph import Graph

from .base import Pass, PassResult
from ..data.encoding import record as record_encoding
from .netlist import ConvOp, DenseOp, FloatNet, FloatPop, FloatProj, FloatRun, IdentityOp, conv_matrix, lower, simulate

E_RANGE = range(SPECS["weight_exp"].lo, SPECS["weight_exp"].hi + 1)
RELAY_BITS = 16
"""Payload bits of a relay (a non-spiking layer's v sent on as a graded spike): int32 synaptic
sums of 8-bit weights times 16-bit payloads stay exact for fan-ins up to 2**7."""
STATE_MAX = 2**23
VTH_MAX = SPECS["vth"].hi
BIAS_POP = "snnc.bias"
HANDOFF_SAMPLE_STEPS = 512  # a calibration run of at most this many sample-steps is handed to the fidelity guard


CHUNK = 1 << 16
"""Elements per piece of a long weight array: the quantizer works a piece at a time so its
temporaries stay in cache and are reused, instead of a fresh array of the layer's size per step."""


class _Widths(TypedDict):
    """The bit widths every projection of one float projection shares."""

    num_weight_bits: int
    num_message_bits: int


@dataclass
class _Weights:
    """Float weights of one projection, per message unit, in a form the quantizer can vectorize."""

    proj: FloatProj
    values: np.ndarray  # dense [n_out, n_in], sparse data, or conv kernel
    rows: np.ndarray | None  # target neuron of each value (dense/sparse), None for conv
    kind: str  # "dense", "sparse", "conv"
    msg_scale: float  # payload units per float unit of the source (graded inputs), else 1
    bits: int

    def _cached(self, key: str, compute):
        if key not in self.__dict__:
            self.__dict__[key] = compute()
        return self.__dict__[key]

    @property
    def norm2(self) -> float:
        """sum of squared values, computed once (every chip factor trial divides by it)."""
        def compute() -> float:
            total = _Sum()
            for a, b in self.spans():
                v = self.piece(a, b)[0]
                total.add(v * v)
            return total.value
        return self._cached("_norm2", compute)

    @property
    def extremes(self) -> tuple[float, float]:
        """(largest positive value, largest magnitude of a negative one), 0 where there is none."""
        v = self.values
        return self._cached("_extremes", lambda: (float(np.max(v, initial=0.0)), -float(np.min(v, initial=0.0))))

    @property
    def mode(self) -> str:
        def compute() -> str:
            v = self.values
            if v.size == 0 or np.min(v) >= 0:
                return "excitatory"
            return "inhibitory" if np.max(v) <= 0 else "mixed"
        return self._cached("_mode", compute)

    def spans(self) -> list[tuple[int, int]]:
        """Flat element ranges to work on: CHUNK-sized pieces of a C-ordered array (a multiple of
        numpy's summation block, see `_Sum`), else the whole array as one piece."""
        n = self.values.size
        if n <= CHUNK or not self.values.flags.c_contiguous or self.rows is None:
            return [(0, n)]
        return [(a, min(a + CHUNK, n)) for a in range(0, n, CHUNK)]

    def piece(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Values a..b of the flattened array and the target neuron of each (the whole array, in its
        own shape, when that is the piece)."""
        if (a, b) == (0, self.values.size):
            return self.values, self.rows
        if self.rows is None:
            raise ValueError("conv weights are quantized whole")
        rows = self.rows[a:b] if self.rows.ndim == 1 else np.arange(a, b) // self.values.shape[1]
        return self.values.reshape(-1)[a:b], rows


class _Sum:
    """np.sum of a long array added up a piece at a time, bit for bit. numpy sums a contiguous
    float64 array as a running total over blocks of np.getbufsize() elements, each block pairwise;
    pieces that are whole multiples of that block (the last excepted) keep exactly that order, so
    the errors and the chosen chip factor do not depend on how the weights were cut up."""

    def __init__(self) -> None:
        self.value = 0.0

    def add(self, x: np.ndarray) -> None:
        if not x.flags.c_contiguous:  # only ever the whole array: numpy's own order
            self.value += float(np.sum(x))
            return
        block = np.getbufsize()
        m = x.size - x.size % block
        total = self.value
        if m:
            for s in x.reshape(-1)[:m].reshape(-1, block).sum(axis=1).tolist():
                total += s
        if x.size > m:
            total += float(np.sum(x.reshape(-1)[m:]))
        self.value = total


def quantize_values(values: np.ndarray, scale, e, bits: int, mode: str) -> np.ndarray:
    """Integer weights on Lava's grid for `mode`: round(values * scale / 2**(6+e)), clipped."""
    return _round_to_grid(values, scale, e, *representable_weight_range(bits, mode))


def _round_to_grid(values: np.ndarray, scale, e, lo: int, hi: int, step: int, exps=None) -> np.ndarray:
    """round(values * scale / 2**(6+e) / step) * step clipped to [lo, hi], by exact power-of-two
    scaling instead of exp2 and a division (multiplying by 2.0**-k is exactly ldexp(x, -k)). `exps`:
    the exponents an array `e` holds for the nonzero values (default: all it holds)."""
    shift = int(step).bit_length() - 1
    down = 2.0 ** (-(6 + int(e)) - shift) if np.ndim(e) == 0 else _pow2(e, -6 - shift, -1, exps)
    return _grid(values, scale, down, lo, hi, step).astype(np.int64)


def _grid(values: np.ndarray, scale, down, lo: int, hi: int, step: int) -> np.ndarray:
    """round(values * scale * down) * step clipped to [lo, hi], in float64 (down = 2**-(6 + e) / step)."""
    t = values * scale
    t *= down
    np.rint(t, out=t)
    if step != 1:
        t *= step
    return np.clip(t, lo, hi, out=t)


def _pow2(e: np.ndarray, offset: int, sign: int, exps=None) -> np.ndarray:
    """2.0 ** (offset + sign * e) for each element of the exponent array `e`, looked up in a table
    of the exponents it holds (`exps`: those of the elements that matter, default all): the same
    exact power of two per element as a multiply per exponent, in one pass."""
    span = range(min(exps), max(exps) + 1) if exps else _exponents_in(e)
    table = np.ldexp(1.0, [offset + sign * x for x in span])
    return np.take(table, np.subtract(e, span.start, dtype=np.intp), mode="clip")


def _exponents_in(e: np.ndarray) -> range:
    """The weight exponents `e` may hold: its min..max (an exponent it lacks selects no element)."""
    e = np.asarray(e)
    return range(int(e.min(initial=0)), int(e.max(initial=0)) + 1)


def _dequantize(q: np.ndarray, e: np.ndarray, scale) -> np.ndarray:
    """q * 2**(6+e) / scale in float64 (the same values as q * np.exp2(6 + e) / scale: each element
    is multiplied by the same exact power of two)."""
    deq = q.astype(np.float64)
    if np.ndim(e) == 0:
        deq *= np.exp2(6 + float(e))
    else:
        deq *= _pow2(e, 6, 1)
    deq /= scale
    return deq


def _sq_error(values, scale, q, e) -> float:
    return float(np.sum((np.ldexp(q.astype(np.float64), 6 + np.asarray(e, dtype=np.int64)) / scale - values) ** 2))


def _best_exponent(values, scale, bits: int, mode: str, exps) -> tuple[int, np.ndarray, float]:
    """The exponent with the smallest squared error at chip factor `scale` (not the first that fits)."""
    best = None
    for e in exps:
        q = quantize_values(values, scale, e, bits, mode)
        err = _sq_error(values, scale, q, e)
        if best is None or err < best[2] * (1 - 1e-12):
            best = (e, q, err)
    if best is None:
        raise ValueError("_best_exponent needs at least one exponent to try")
    return best


def quantize_weights(values: np.ndarray, scale, bits: int, mode: str, groups: int, split_sign: bool, fixed_e: int | None = None,
                     e_min: int = E_RANGE.start, e_max: int = E_RANGE.stop - 1):
    """Integer mantissas q and exponents e (arrays like `values`) for one projection.

    One group: one exponent per sign part, searched for the smallest error. Several groups: each
    weight takes the smallest exponent (finest step) among `groups` consecutive exponents that
    holds it without clipping, the top one set by the largest weight: a shared-exponent
    ("block floating point") code per synapse group, as Loihi's synapse formats allow.
    `split_sign` gives positive and negative weights their own (excitatory / inhibitory) parts,
    so they keep all `bits` of magnitude (Lava drops the lowest bit of mixed-sign weights).
    Exponents below `e_min` are not used: with weight_exp < 0 Lava shifts the accumulated sum right
    (floor), a systematic error of up to one unit per step that a larger chip factor avoids.
    Exponents above `e_max` are not used either (`Quantize.max_weight_exp`).
    """
    q = np.zeros(values.shape, np.int64)
    e = np.zeros(values.shape, np.int64)
    if fixed_e is not None:
        return quantize_values(values, scale, fixed_e, bits, mode), np.full(values.shape, fixed_e, np.int64)
    if groups > 1:
        return _block_exponents(values, scale, bits, mode, groups, split_sign, e_min, e_max)
    sides = [(values > 0, "excitatory"), (values < 0, "inhibitory")] if (split_sign and mode == "mixed") else [(values != 0, mode)]
    scalar = np.ndim(scale) == 0
    scale_arr = float(scale) if scalar else np.broadcast_to(np.asarray(scale, dtype=np.float64), values.shape)
    for mask, side_mode in sides:
        if not np.any(mask):
            continue
        v, sc = values[mask], (scale_arr if isinstance(scale_arr, float) else scale_arr[mask])
        ei, qi, _ = _best_exponent(v, sc, bits, side_mode, range(e_min, e_max + 1))
        q[mask], e[mask] = qi, ei
    return q, e


def _block_exponents(values: np.ndarray, scale, bits: int, mode: str, groups: int, split_sign: bool, e_min: int, e_max: int):
    """`quantize_weights` with several exponent groups, on whole arrays (no per-side copies).

    Each sign part's top exponent is set by its largest weight; a weight takes the smallest of the
    `groups` exponents below that which holds it. Excitatory and inhibitory parts share their step
    and magnitude limit, so one rounding pass serves both."""
    code = _BlockCode.make(*_largest(values, scale), bits, mode, groups, split_sign, e_min, e_max)
    q, e = code.apply(values, scale)
    return q, e.astype(np.int64)


@dataclass(frozen=True)
class _BlockCode:
    """The block-floating-point code of one projection at one chip scale: each sign part's exponent
    range (`sides`: which weights, lowest and top exponent) and the weight grid. It depends on the
    weights only through each part's largest |w| * scale, so a long array is coded a piece at a
    time with the same result as whole."""

    sides: tuple[tuple[str, int, int], ...]
    lo: int
    hi: int
    step: int
    top: int

    @staticmethod
    def make(top_pos: float | None, top_neg: float | None, bits: int, mode: str, groups: int, split_sign: bool, e_min: int,
             e_max: int) -> "_BlockCode":
        """top_pos / top_neg: the largest |w| * scale of the positive / negative weights (None: none)."""
        split = split_sign and mode == "mixed"
        present = [x for x in (top_pos, top_neg) if x is not None]
        both = max(present) if present else None
        parts = [("pos", top_pos, "excitatory"), ("neg", top_neg, "inhibitory")] if split else [("nonzero", both, mode)]
        lo, hi, step = representable_weight_range(bits, parts[0][2])
        top = max(abs(lo), abs(hi))
        sides = []
        for side, largest, _ in parts:
            if largest is not None:
                e_top = int(min(max(int(_need(np.array([largest]), top)[0]), e_min), e_max))
                sides.append((side, max(e_top - groups + 1, e_min), e_top))
        if split:
            lo = -hi  # the inhibitory part's range mirrors the excitatory one; a weight's sign picks its side
        return _BlockCode(tuple(sides), lo, hi, step, top)

    @property
    def exps(self) -> list[int]:
        return sorted({e for _, e_lo, e_top in self.sides for e in range(e_lo, e_top + 1)})

    def apply(self, values: np.ndarray, scale) -> tuple[np.ndarray, np.ndarray]:
        """Integer weights (int64) and exponents (int8) of `values` (any piece of the projection)."""
        e, t, _ = self.quantize(values, scale)
        return t.astype(np.int64), e.astype(np.int8)

    def quantize(self, values: np.ndarray, scale) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each weight's exponent e, integer weight q and 2**(6 + e), all float64 (exact): what
        `apply` returns, plus the factor that dequantizes q, without a pass per exponent."""
        e = self.exponents(values, scale)
        span = range(min(self.exps + [0]), max(self.exps + [0]) + 1)
        index = e.astype(np.intp)
        index -= span.start
        shift = self.step.bit_length() - 1
        down = np.take(np.ldexp(1.0, [-(6 + x) - shift for x in span]), index)
        t = _grid(values, scale, down, self.lo, self.hi, self.step)
        return e, t, np.take(np.ldexp(1.0, [6 + x for x in span]), index)

    def exponents(self, values: np.ndarray, scale) -> np.ndarray:
        """Each weight's exponent (float64): the smallest of its part's exponents that holds it, 0
        for a zero weight. Arithmetic on whole pieces instead of masked writes per part."""
        e = _need(np.abs(values) * scale, self.top)
        ranges = [(e_lo, e_top) for _, e_lo, e_top in self.sides]
        if len(set(ranges)) == 2:  # the two sign parts differ: e = e_neg + (w > 0) (e_pos - e_neg)
            (lo_p, top_p), (lo_n, top_n) = ranges
            e_neg = np.minimum(np.maximum(e, lo_n), top_n)
            np.minimum(np.maximum(e, lo_p, out=e), top_p, out=e)
            e -= e_neg
            e *= values > 0
            e += e_neg
        elif ranges:
            np.minimum(np.maximum(e, ranges[0][0], out=e), ranges[0][1], out=e)
        e *= values != 0
        return e


def _largest(values: np.ndarray, scale) -> tuple[float | None, float | None]:
    """The largest |w| * scale of the positive and of the negative weights (None: there are none)."""
    a = np.abs(values) * scale
    tops = (float(np.max(a, where=values > 0, initial=-1.0)), float(np.max(a, where=values < 0, initial=-1.0)))
    return tops[0] if tops[0] >= 0 else None, tops[1] if tops[1] >= 0 else None


def _need(x: np.ndarray, top: int) -> np.ndarray:
    """ceil(log2(x / 64 / top)) in place, x = |w| * scale: the exponent a weight needs to fit the grid."""
    x /= 64.0
    np.maximum(x, 1e-300, out=x)
    x /= top
    return np.ceil(np.log2(x, out=x), out=x)


@dataclass(frozen=True)
class Quantize(Pass):
    """NIR canonical graph -> integer ChipGraph (see module docstring for every option)."""

    weight_bits: int = 8
    per_channel: bool = False
    calibrate: Any = field(default=None, compare=False, repr=False)
    input_encoding: str = "auto"
    input_bits: int = 8
    input_range: float | None = None
    headroom: float = 2.0
    bias: str = "neuron"
    bias_exp: int | None = None
    bias_bits: int = 8
    exponent_groups: int = 4
    split_sign: bool = True
    bias_groups: int = 16
    refine: bool = True
    min_weight_exp: int = 0
    max_weight_exp: int | None = None
    refine_budget: float = 3e8

    name: ClassVar[str] = "quantize"

    def run(self, graph: Graph) -> PassResult:
        self.check_level(graph)
        SPECS["num_weight_bits"].check(self.weight_bits, "compile option weight_bits")
        if self.input_encoding not in ("auto", "spikes", "graded"):
            raise ParameterError("input_encoding must be 'auto', 'spikes' or 'graded'", where="quantize option", got=self.input_encoding)
        if self.bias not in ("neuron", "mant"):
            raise ParameterError("bias must be 'neuron' or 'mant'", where="quantize option", got=self.bias)
        if self.bias_exp is not None:
            SPECS["bias_exp"].check(self.bias_exp, "quantize option bias_exp")
            if self.bias != "mant":
                raise ParameterError("bias_exp fixes the exponent of bias_mant", where="quantize option bias_exp",
                                     got=self.bias_exp, hint="use it with bias='mant' (lava-dl netx files: bias='mant', bias_exp=6)")
        if self.max_weight_exp is not None and not (isinstance(self.max_weight_exp, int)
                                                    and self.min_weight_exp <= self.max_weight_exp < E_RANGE.stop):
            raise ParameterError("max_weight_exp must be an integer from min_weight_exp to the largest weight exponent",
                                 where="quantize option max_weight_exp", expected=f"{self.min_weight_exp}..{E_RANGE.stop - 1}",
                                 got=self.max_weight_exp, hint="e.g. quantize(max_weight_exp=0) for lava-dl netx files")
        if not self.headroom >= 1.0:
            raise ParameterError("headroom must be >= 1", where="quantize option", got=self.headroom)
        net = lower(graph)
        notes: list[str] = []
        timed = all(p.latency is not None for p in net.pops.values() if p.kind == "neuron") and net.time_shift is not None
        if not timed:
            notes.append("timing pass not run: delays only model the float graph's delays, outputs are not aligned")
        calib = self._calibration_inputs(net)
        run = simulate(net, calib) if calib is not None else None

        chip = ChipGraph(meta={"dt": net.dt, "time_shift": int(net.time_shift or 0), "weight_bits": int(self.weight_bits)})
        msg_scale: dict[str, float] = {}
        input_report = {}
        for name, pop in net.pops.items():
            if pop.kind != "input":
                continue
            graded, s_in, info = self._input_encoding(name, pop, calib)
            chip.add(InputPopulation(name, pop.shape, num_message_bits=self.input_bits if graded else 0))
            msg_scale[name] = s_in
            input_report[name] = info
            if graded:
                chip.meta.setdefault("input_scale", {})[name] = s_in
                if calib is not None or self.input_range is not None:  # the range the scale was sized on
                    chip.meta.setdefault("input_range", {})[name] = float(info["range"])
        need_bias_pop = self.bias == "neuron" and any(net.biases.values())
        if need_bias_pop:
            chip.add(Population(BIAS_POP, (1,), du=4095, dv=0, vth=0, bias_mant=1, bias_exp=0, meta={"role": "bias", "latency": 0}))

        relays = _relays(net)
        layers = {}
        for name in net.neuron_order():  # a relay's payload scale is known before its receivers
            pop = net.pops[name]
            early = [p.dst for p in net.projs if p.src == name and p.dst in layers]
            if name in relays and early:
                raise QuantizationError(
                    "a leaky integrator that feeds a layer earlier in a recurrent loop cannot be relayed yet",
                    where=f"layer {name!r} -> {early}", hint="feed its state forward only, or make the layer spiking",
                )
            fixed = None
            if name in relays and any(p.src == name for p in net.incoming(name)):
                # a relay that feeds itself (LMU-style memory): its payload scale must be known before
                # its own weights are quantized, so its chip factor comes from the calibrated range
                if run is None:
                    raise QuantizationError("a leaky integrator that feeds itself needs calibration data to size its relay",
                                            where=f"layer {name!r}", hint="compile with calibrate=... (--calibrate IN.npy)")
                bound = float(max(np.max(run.i_absmax[name], initial=0.0), np.max(np.abs(run.v_max[name]), initial=0.0),
                                  np.max(np.abs(run.v_min[name]), initial=0.0), 1e-12))
                k_fixed = STATE_MAX / (self.headroom * bound)
                fixed = (k_fixed, _relay_shift(k_fixed * bound * self.headroom))
                msg_scale[name] = fixed[0] / 2.0 ** fixed[1]
            layers[name] = self._layer(chip, net, pop, msg_scale, run, timed, notes, relay=name in relays, fixed=fixed)

        for port, (pop_name, var) in net.outputs.items():
            chip.outputs[port] = OutputPort(pop_name, var)
            if var == "v":
                p = chip.populations[pop_name]
                chip.meta.setdefault("output_scale", {})[port] = _jsonable_scale(1.0 / np.asarray(p.meta["scale"]))
                off = np.asarray(net.pops[pop_name].neuron.offset)
                chip.meta.setdefault("output_offset", {})[port] = float(off.ravel()[0]) if np.all(off == off.ravel()[0]) else off.tolist()
        record_encoding(chip)  # the float <-> chip contract of every port (snnc.compiler.data.encoding)
        chip.validate()
        report = {
            "weight_bits": int(self.weight_bits),
            "per_channel": bool(self.per_channel),
            "calibrated": run is not None,
            "inputs": input_report,
            "layers": layers,
            "time_shift": chip.meta["time_shift"],
            "bias_population": BIAS_POP if need_bias_pop else None,
            "notes": notes,
        }
        handoff: dict[str, Any] = {"net": net}
        if run is not None and calib is not None and math.prod(next(iter(calib.values())).shape[:2]) <= HANDOFF_SAMPLE_STEPS:
            handoff["float_run"] = (calib, run)
        return PassResult(chip, report, handoff)

    # -- inputs -----------------------------------------------------------------------------------
    def _calibration_inputs(self, net: FloatNet) -> dict[str, np.ndarray] | None:
        if self.calibrate is None:
            return None
        names = [n for n, p in net.pops.items() if p.kind == "input"]
        data = self.calibrate if isinstance(self.calibrate, dict) else {names[0]: self.calibrate} if len(names) == 1 else None
        if data is None:
            raise ShapeError("the network has several inputs; pass calibrate as a dict", where="compile option calibrate", expected=names)
        out = {}
        length = None
        for name in names:
            if name not in data:
                raise ShapeError("calibration data misses an input", where="compile option calibrate", expected=names, got=sorted(data))
            arr = np.asarray(data[name], dtype=np.float64)
            shape = net.pops[name].shape
            if arr.shape[1:] == shape:
                arr = arr[None]
            if arr.ndim != len(shape) + 2 or arr.shape[2:] != shape:
                raise ShapeError(
                    "calibration data has the wrong shape",
                    where=f"compile option calibrate[{name!r}]",
                    expected=f"[T, {', '.join(map(str, shape))}] or [batch, T, ...]",
                    got=list(arr.shape),
                )
            if not np.all(np.isfinite(arr)):
                raise ShapeError("calibration data holds NaN or inf", where=f"compile option calibrate[{name!r}]")
            if length is not None and arr.shape[:2] != length:
                raise ShapeError("calibration inputs disagree on batch/time", where="compile option calibrate")
            length = arr.shape[:2]
            out[name] = arr
        return out

    def _input_encoding(self, name: str, pop: FloatPop, calib) -> tuple[bool, float, dict]:
        arr = None if calib is None else calib[name]
        binary = arr is None or bool(np.all((arr == 0) | (arr == 1)))
        graded = self.input_encoding == "graded" or (self.input_encoding == "auto" and not binary)
        if not graded:
            return False, 1.0, {"encoding": "spikes", "num_message_bits": 0}
        SPECS["num_message_bits"].check(self.input_bits, "compile option input_bits")
        if self.input_bits < 1:
            raise ParameterError("graded inputs need input_bits >= 1", where="compile option input_bits", got=self.input_bits)
        if self.input_range is not None:
            xmax, signed = float(self.input_range), True
        elif arr is not None:
            xmax, signed = float(np.max(np.abs(arr))), bool(np.any(arr < 0))
        else:
            xmax, signed = 1.0, True
        xmax = xmax if xmax > 0 else 1.0
        levels = 2 ** (self.input_bits - 1) - 1 if signed else 2**self.input_bits - 1
        if arr is not None and self.input_range is None and np.all(arr == np.rint(arr)) and xmax <= levels:
            s_in = 1.0  # integer data (e.g. event counts) is sent as it is: exact
        else:
            s_in = levels / xmax
        return True, s_in, {"encoding": "graded", "num_message_bits": int(self.input_bits), "input_scale": s_in, "range": xmax}

    # -- one layer ----------------------------------------------------------------------------------
    def _layer(self, chip: ChipGraph, net: FloatNet, pop: FloatPop, msg_scale, run: FloatRun | None, timed: bool, notes: list,
               relay: bool = False, fixed: tuple[float, int] | None = None) -> dict:
        """`fixed`: (chip factor, relay shift) decided before the layer (a relay that feeds itself)."""
        name, c, n = pop.name, pop.neuron, pop.size
        fixed_k = None if fixed is None else fixed[0]
        where = f"layer {name!r}"
        alpha, beta = c.alpha.ravel(), c.beta.ravel()
        thr = None if c.thr is None else c.thr.ravel()
        projs = net.incoming(name)
        weights = [self._weights(p, msg_scale) for p in projs]
        biases = net.biases.get(name, {})
        bias_total = np.asarray(sum(biases.values()), np.float64) if biases else np.zeros(n)
        layer_notes: list[str] = []

        # -- headroom: bound on |i| and |v| in float units --------------------------------------------
        if run is not None:
            u_bound = run.i_absmax[name]
            v_bound = np.maximum(np.abs(run.v_max[name]), np.abs(run.v_min[name]))
            if thr is not None:
                # Below threshold, a leaky v that saturates recovers towards rest as in the float
                # model; a neuron without leak (IF) would keep the clipped value, so it needs room.
                v_bound = np.where(beta >= 1.0, np.maximum(thr, np.abs(run.v_min[name])), thr)
        else:
            drive = np.abs(bias_total).astype(np.float64)
            for p in projs:
                drive = drive + _abs_row_sum(p) * self._src_max(p, net, msg_scale)
            u_bound = drive / np.maximum(1.0 - alpha, 1.0 / 4096)
            if thr is not None:
                v_bound = thr
            else:
                leak = 1.0 - beta
                v_bound = np.where(leak > 0, u_bound / np.maximum(leak, 1e-12), 256.0 * u_bound)
                if np.any(leak <= 0):
                    layer_notes.append("no-leak readout without calibration: assumed |v| <= 256 x the per-step input bound")
        row_bound = np.maximum(np.maximum(u_bound, v_bound), 1e-12)
        bound = float(np.max(row_bound, initial=1e-12))
        k_max = STATE_MAX / (self.headroom * bound)
        if thr is not None and np.any(thr > 0):
            k_max = min(k_max, VTH_MAX * 64.0 / float(np.max(thr)))
        if self.bias == "mant" and np.any(bias_total != 0):
            steady = np.abs(bias_total) / np.where(alpha > 0, 1.0 - alpha, 1.0)
            k_max = min(k_max, (2**12 - 1) * 2.0 ** (7 if self.bias_exp is None else self.bias_exp) / float(np.max(steady)))
        k_min = 32.0 / float(np.min(thr[thr > 0])) if thr is not None and np.any(thr > 0) else 0.0
        k_cap = self._k_cap(weights, bias_total)
        if k_cap < k_max:
            if k_cap < k_min:
                raise QuantizationError(
                    f"with max_weight_exp={self.max_weight_exp} the largest weight does not fit the weight grid at any chip "
                    "scale that keeps the threshold representable", where=where,
                    expected=f"chip scale >= {k_min:.3g} (vth >= 1)", got=f"at most {k_cap:.3g}",
                    hint="raise max_weight_exp (lava-dl netx files need 0), or lower the weights relative to the threshold",
                )
            k_max = k_cap
            layer_notes.append(f"max_weight_exp={self.max_weight_exp} caps the chip scale at {k_cap:.4g} (coarser thresholds)")
        if k_max < k_min:
            raise QuantizationError(
                "the layer's input range is too large for its threshold in 24-bit state",
                where=where,
                expected=f"chip scale >= {k_min:.3g} (vth >= 1)",
                got=f"at most {k_max:.3g}",
                hint="lower the weights relative to the threshold, or calibrate with real inputs",
            )

        # -- decays (independent of K) ------------------------------------------------------------------
        du = np.rint(4096.0 * (1.0 - alpha)).astype(np.int64) - 1
        if np.any(du < 0):
            layer_notes.append("tau_syn longer than 8192 dt: du = 0 (Loihi still decays u by 1/4096 per step)")
            du = np.maximum(du, 0)
        dv = np.rint(4096.0 * (1.0 - beta)).astype(np.int64)
        model: NeuronModel = "lif"
        if np.any(dv >= 4096):
            if np.all(dv >= 4096) and np.all(alpha == 0):
                model, dv, du = "lif_reset", np.zeros(n, np.int64), np.full(n, 4095)
                layer_notes.append("no voltage memory (beta = 0): LIFReset with reset_interval 1 (exact)")
            else:
                dv = np.minimum(dv, 4095)
                layer_notes.append("beta = 0 with a synaptic current: dv = 4095 keeps v/4096 of the previous step")
        decay_err = {
            "alpha": float(np.max(np.abs((4095 - du) / 4096.0 - alpha))) if model == "lif" else 0.0,
            "beta": float(np.max(np.abs((4096 - dv) / 4096.0 - beta))) if model == "lif" else 0.0,
        }
        # -- search the chip factor K (and, inside, each projection's exponents) ---------------------
        candidates = {k_max} if fixed_k is None else {fixed_k}
        for w in weights if fixed_k is None else []:
            vmax = max(w.extremes)
            if vmax == 0:
                continue
            top = max(abs(x) for x in representable_weight_range(w.bits, w.mode)[:2])
            for e in ([0] if w.kind == "conv" else range(self._e_min(w), self.e_max + 1)):
                for frac in (1.0, 0.875, 0.75, 0.625, 0.5):
                    k = top * 2.0 ** (6 + e) / vmax * frac
                    if k_min <= k <= k_max:
                        candidates.add(k)
        # Larger K also refines state, threshold and every synaptic unit (64/K): keep the largest K
        # whose error is within 10% of the smallest.
        # The search keeps the weights of the largest K only (the usual choice); another choice is
        # quantized once more.
        trials = [self._evaluate(k, weights, thr, bias_total, keep=i == 0) for i, k in enumerate(sorted(candidates, reverse=True))]
        floor = min(t["error"] for t in trials)
        best = next(t for t in trials if t["error"] <= floor * 1.1 + 1e-15)
        if best["q"] is None:
            best = self._evaluate(best["k"], weights, thr, bias_total)
        k = best["k"]
        refine_info = None
        if run is not None and thr is not None and self.refine and fixed_k is None:
            best, refine_info = self._refine(name, projs, weights, best, thr, du, dv, model, biases, bias_total, run, msg_scale,
                                             k_min, k_max, layer_notes)
            k = best["k"]

        # -- per-channel refinement (dense/sparse layers): one K per neuron ---------------------------
        k_rows = np.full(n, float(k))
        if self.per_channel and not relay and weights and all(w.kind != "conv" for w in weights):
            limit = STATE_MAX / (self.headroom * row_bound)
            if thr is not None:
                limit = np.minimum(limit, np.where(thr > 0, VTH_MAX * 64.0 / np.where(thr > 0, thr, 1.0), np.inf))
            # grow each neuron's K until its largest weight needs the largest exponent the layer uses
            for w, e in zip(weights, best["e"]):
                top = max(abs(x) for x in representable_weight_range(w.bits, w.mode)[:2])
                rowmax = np.zeros(n)
                assert w.rows is not None  # dense and sparse weights know their rows (no conv here)
                np.maximum.at(rowmax, w.rows.ravel(), np.abs(w.values).ravel())
                e_top = int(np.max(e)) if np.size(e) else 0
                with np.errstate(divide="ignore"):
                    limit = np.minimum(limit, np.where(rowmax > 0, top * 2.0 ** (6 + e_top) / rowmax, np.inf))
            k_rows = np.where(np.isfinite(limit), np.maximum(limit, k), k)
            best = self._evaluate(k_rows, weights, thr, bias_total)

        if thr is not None:
            floor_v = -(2**23 - 1) / k_rows
            if run is not None:
                low = run.v_min[name]
                if np.any(low < floor_v):
                    layer_notes.append(
                        f"v saturates at {float(np.max(floor_v)):.3g} (float units) where the float model reaches "
                        f"{float(low.min()):.3g}; only deeply inhibited neurons are affected"
                    )
            else:
                neg = np.maximum(-bias_total, 0.0)
                for p in projs:
                    neg = neg + _neg_row_sum(p) * self._src_max(p, net, msg_scale)
                with np.errstate(divide="ignore", invalid="ignore"):
                    low = np.where(neg > 0, -neg / np.maximum(1.0 - alpha, 1.0 / 4096) / (1.0 - beta), 0.0)
                if np.any(low < floor_v):
                    layer_notes.append(f"v below {float(np.max(floor_v)):.3g} (float units) saturates and strong inhibition could "
                                       "reach it; calibrate to check")
        # -- neuron parameters -----------------------------------------------------------------------
        if thr is not None:
            vth = vth_mantissa(k_rows, thr)
        else:
            vth = np.full(n, VTH_MAX, np.int64)
        bias_mant = np.zeros(n, np.int64)
        bias_exp = np.zeros(n, np.int64)
        bias_err, bias_approx = None, []
        if biases and self.bias == "mant":
            steady = bias_total / np.where(alpha > 0, 1.0 - alpha, 1.0)
            target = steady * k_rows
            if self.bias_exp is None:
                bias_exp = np.clip(np.ceil(np.log2(np.maximum(np.abs(target), 1e-300) / (2**12 - 1))), 0, 7).astype(np.int64)
            else:
                bias_exp = np.full(n, self.bias_exp, np.int64)
            bias_mant = np.clip(np.rint(target / 2.0**bias_exp), -(2**12), 2**12 - 1).astype(np.int64)
            bias_err = _rel(float(np.sum((bias_mant * 2.0**bias_exp - target) ** 2)), float(np.sum(target**2)))
            bias_approx = _mant_bias_approximations(alpha, model == "lif_reset" and not relay, bias_mant << bias_exp, vth, pop.latency,
                                                    sorted(biases))
            layer_notes += [f"bias_mant: {m}" for m in bias_approx]
        latency = pop.latency if timed else None
        relay_shift = 0
        if relay:
            # a non-spiking layer feeding others sends its v each step as a RELAY_BITS graded payload
            if model == "lif_reset":
                model, dv = "lif", np.full(n, 4095)
                layer_notes.append("relay with beta = 0: dv = 4095 keeps v/4096 of the previous step")
            if fixed is None:
                relay_shift = _relay_shift(float(k) * float(np.max(np.broadcast_to(v_bound, (n,)), initial=0.0)) * self.headroom)
                msg_scale[name] = float(k) / 2.0**relay_shift
            else:
                relay_shift = fixed[1]
            layer_notes.append(f"relay: sends v >> {relay_shift} as a {RELAY_BITS}-bit graded spike every step "
                               f"({msg_scale[name]:.4g} payload units per float unit)")
            model = "relay"
        reset_mode: ResetMode = c.reset_mode if thr is not None else "zero"
        v_reset = np.zeros(n, np.int64)
        if thr is not None and reset_mode == "zero" and np.any(c.v_reset):
            # v' after a spike in chip units (v = k v'); saturating it would change the model
            v_reset = np.rint(k_rows * np.broadcast_to(np.asarray(c.v_reset, np.float64), pop.shape).ravel()).astype(np.int64)
            if np.any(np.abs(v_reset) > V_MAX):
                raise QuantizationError(
                    "reset voltage beyond the 24-bit v range at this layer's scale", where=f"layer {name!r}.v_reset",
                    expected=f"|v_reset - v_leak| * scale <= {V_MAX}", got=int(np.max(np.abs(v_reset))),
                    hint="a reset voltage far below the threshold is not representable; check v_reset against v_threshold",
                )
            layer_notes.append(f"reset to v_reset - v_leak = {float(np.ravel(c.v_reset)[0]):g} (threshold units), exactly")
        chip.add(
            Population(
                name, pop.shape, du=_collapse(du, pop.shape), dv=_collapse(dv, pop.shape), vth=_collapse(vth, pop.shape),
                bias_mant=_collapse(bias_mant, pop.shape), bias_exp=_collapse(bias_exp, pop.shape), model=model,
                reset_interval=1, reset_offset=0, reset_mode=reset_mode, v_reset=_collapse(v_reset, pop.shape), relay_shift=relay_shift,
                meta={
                    "role": "relay" if pop.relay else "neuron",
                    "scale": _jsonable_scale(k_rows),
                    **({"latency": int(latency)} if latency is not None else {}),
                    "spiking": thr is not None,
                    "nir_node": name,
                },
            )
        )

        # -- projections -----------------------------------------------------------------------------
        proj_report = {}
        synapses = 0
        for p, w, q, e, werr2 in zip(projs, weights, best["q"], best["e"], best["weight_error2"]):
            src_lat = 0 if net.pops[p.src].kind == "input" else (net.pops[p.src].latency if timed else None)
            delay = self._chip_delay(p, latency, src_lat) + net.extra_delay.get(p.name, 0)
            if p.src in chip.inputs:
                nmb = int(chip.inputs[p.src].num_message_bits)
            else:
                nmb = RELAY_BITS if not net.pops[p.src].neuron.spiking else 0  # a relay's graded payload
            parts = self._projections(p, w, q, e, delay, nmb)
            for part in parts:
                chip.add(part)
                synapses += part.num_synapses
            proj_report[p.name] = {
                "src": p.src,
                "kind": p.op.kind if len(parts) == 1 else "split",
                "parts": {pp.name: {"kind": pp.kind, "weight_exp": int(pp.weight_exp), "sign_mode": pp.sign_mode,
                                    "synapses": int(pp.num_synapses)} for pp in parts},
                "num_weight_bits": int(w.bits),
                "delay": _delay_summary(parts[0].delay) if parts else 0,
                "float_delay": _delay_summary(p.delay),
                "synapses": int(sum(pp.num_synapses for pp in parts)),
                "weight_error": _rel(werr2, w.norm2),
                "from": list(p.nodes),
            }
        if self.bias == "neuron":
            for start, vec in sorted(biases.items()):
                column = DenseOp(1, n, vec.reshape(n, 1).astype(np.float64))
                bp = FloatProj(_unique(chip, f"{name}.bias" if start == 0 else f"{name}.bias@{start}"), BIAS_POP, name, column, int(start), [])
                bw = _Weights(bp, column.data, np.broadcast_to(np.arange(n)[:, None], (n, 1)), "dense", 1.0, self.bias_bits)
                scale = k_rows[:, None]
                bq, be = quantize_weights(bw.values, scale, bw.bits, bw.mode, self.bias_groups, self.split_sign, e_min=self.min_weight_exp, e_max=self.e_max)
                d = start + (latency if latency is not None else 1) - 1
                parts = self._projections(bp, bw, bq, be, d, 0)
                for part in parts:
                    part.meta["role"] = "bias"
                    chip.add(part)
                bias_err = _rel(_sq_error(bw.values, scale, bq, be), float(np.sum(bw.values**2)))
                proj_report[bp.name] = {
                    "src": BIAS_POP, "kind": "dense" if len(parts) == 1 else "split",
                    "parts": {pp.name: {"weight_exp": int(pp.weight_exp), "sign_mode": pp.sign_mode} for pp in parts},
                    "num_weight_bits": self.bias_bits, "delay": int(d), "float_delay": int(start),
                    "synapses": int(sum(pp.num_synapses for pp in parts)), "weight_error": bias_err,
                }
        out = {
            "neurons": int(n),
            "synapses": int(synapses),
            "weight_bits": int(max((w.bits for w in weights), default=0)),
            "scale": float(k) if not self.per_channel else {"min": float(k_rows.min()), "max": float(k_rows.max())},
            "vth": _collapse_report(vth),
            "du": _collapse_report(du),
            "dv": _collapse_report(dv),
            "model": model,
            "latency": latency,
            "weight_error": best["weight_error"],
            "threshold_error": best["threshold_error"],
            "effective_error": best["error"],
            "bias_error": bias_err,
            "bias_approximation": bias_approx,
            "decay_error": decay_err,
            "headroom_bound": bound,
            "calibration_refinement": refine_info,
            "projections": proj_report,
            "notes": layer_notes,
        }
        if run is not None:
            out["membrane_input_error"] = self._membrane_error(pop, projs, weights, best, k_rows, run, msg_scale)
            out["float_spikes"] = int(run.outputs[name].sum()) if thr is not None else None
        notes.extend(f"{where}: {m}" for m in layer_notes if "worst case" not in m)
        return out

    def _refine(self, name, projs, weights, best, thr, du, dv, model, biases, bias_total, run, msg_scale, k_min, k_max, notes):
        """With calibration data: among chip factors K in a fine grid, keep the one whose integer
        layer, fed the float model's own input spikes (teacher forcing), takes the same spike
        decisions as the float layer most often (ties: smallest voltage error near threshold).

        Why: spiking networks with recurrence are chaotic; one flipped threshold decision changes
        every later spike. The RMS weight error barely depends on K (each projection has its own
        exponents), but which individual weights and thresholds round which way does."""
        steps, batch = run.outputs[name].shape[:2]
        nnz = sum(p.op.nnz() for p in projs) + pop_size(run, name)
        has_conv = any(w.kind == "conv" for w in weights)
        grid = [best["k"] * 2.0 ** (j / 64) for j in range(-16, 17)] if has_conv else [k_max * 2.0 ** (-j / 32) for j in range(33)]
        grid = sorted({float(np.clip(x, k_min, k_max)) for x in grid} | {float(best["k"])}, reverse=True)
        if steps * batch * nnz * len(grid) > self.refine_budget or any(np.ndim(p.delay) for p in projs):
            notes.append("calibration refinement skipped (layer too large for the refine_budget, or per-synapse delays)")
            return best, None
        float_terms = self._float_drive(name, projs, biases, run, steps, batch)
        v_float = _teacher_float(run, name, float_terms, steps)
        scored = []
        for k in grid:
            trial = best if k == best["k"] else self._evaluate(k, weights, thr, bias_total)
            flips, near = self._teacher_chip(name, projs, weights, trial, k, thr, du, dv, model, biases, run, msg_scale, v_float)
            scored.append((flips, near, -k, trial))
        base = next(sc for sc in scored if sc[3] is best)
        flips, near, _, chosen = min(scored, key=lambda sc: (sc[0], sc[1], sc[2]))
        info = {"candidates": len(grid), "flips_before": int(base[0]), "flips": int(flips), "near_threshold_error": float(near),
                "decisions": int(steps * batch * pop_size(run, name))}
        return chosen, info

    @staticmethod
    def _float_drive(name, projs, biases, run, steps, batch):
        n = pop_size(run, name)
        drive = np.zeros((steps, batch, n))
        for p in projs:
            m = p.op.sparse()
            src = run.outputs[p.src]
            d = int(p.delay)
            flat = src.reshape(steps * batch, -1)
            acc = np.asarray((m @ flat.T).T).reshape(steps, batch, n)
            if d < steps:
                drive[d:] += acc[: steps - d]
        for start, vec in biases.items():
            drive[start:] += vec
        return drive

    def _teacher_chip(self, name, projs, weights, trial, k, thr, du, dv, model, biases, run, msg_scale, v_float):
        """Integer emulation of one layer (Lava fixed-point LIF, docs/loihi-fixed-point.md) driven
        by the float run's spikes and reset where the float layer spiked."""
        teacher = run.outputs[name]
        steps, batch, n = teacher.shape
        contrib = np.zeros((steps, batch, n), np.int64)
        for p, w, q, e in zip(projs, weights, trial["q"], trial["e"]):
            src = run.outputs[p.src]
            s = msg_scale.get(p.src, 1.0)
            x = (np.rint(src * s) if s != 1.0 else src).reshape(steps * batch, -1)
            d = int(p.delay)
            for ee in np.unique(e[q != 0]) if np.any(q != 0) else []:
                qe = np.where(e == ee, q, 0).astype(np.float64)
                if w.kind == "conv":
                    m = conv_matrix(qe, p.op.geom)
                elif w.kind == "sparse":
                    mm = p.op.sparse().tocsr()
                    mm.sum_duplicates()
                    m = sp.csr_matrix((qe, mm.indices, mm.indptr), shape=mm.shape)
                else:
                    m = qe
                acc = np.rint(np.asarray((m @ x.T).T)).astype(np.int64).reshape(steps, batch, n)
                acc = acc << int(ee) if ee > 0 else acc >> int(-ee)
                if d < steps:
                    contrib[d:] += acc[: steps - d]
        k_rows = np.full(n, float(k))
        for start, vec in biases.items():
            values = vec.reshape(n, 1)
            bq, be = quantize_weights(values, k_rows[:, None], self.bias_bits, sign_mode(values), self.bias_groups, self.split_sign,
                                      e_min=self.min_weight_exp, e_max=self.e_max)
            bq, be = bq.ravel(), be.ravel()
            add = np.where(be > 0, bq << np.maximum(be, 0), bq >> np.maximum(-be, 0))
            contrib[start:] += add
        vth_e = threshold_value(vth_mantissa(k, thr))
        mode, v_reset_f, _ = run.resets.get(name, ("zero", 0.0, None))
        v_reset = np.rint(k * np.broadcast_to(np.asarray(v_reset_f, np.float64), (n,))).astype(np.int64)
        state = NeuronState.zeros(batch, n)
        flips = 0
        near = 0.0
        for t in range(steps):
            # the chip's own step (snnc.ir.fixed_point), but reset where the FLOAT layer spiked
            spikes = neuron_step(
                state, contrib[t], du=du, dv=dv, bias=0, vth_e=vth_e, kind="lif_reset" if model == "lif_reset" else "lif",
                reset_mode="subtract" if mode == "subtract" else "none",
            )
            fired = teacher[t] > 0
            flips += int(np.count_nonzero((spikes != 0) != fired))
            close = np.abs(v_float[t] - thr) < 0.05 * np.maximum(thr, 1e-12)
            if np.any(close):
                near = max(near, float(np.max(np.abs(state.v[close] / k - v_float[t][close]))))
            state.spiked = fired
            if mode == "zero":
                state.v = np.where(fired, v_reset, state.v)
        return flips, near

    @property
    def e_max(self) -> int:
        """Largest weight exponent used: the chip's, or `max_weight_exp` (lava-dl netx refits a
        file's weights with exponents <= 0, so `.net` output needs max_weight_exp=0)."""
        return E_RANGE.stop - 1 if self.max_weight_exp is None else int(self.max_weight_exp)

    def _k_cap(self, weights: list[_Weights], bias_total: np.ndarray) -> float:
        """Largest chip factor at which every dense/sparse weight (and bias synapse) fits its grid
        with exponents <= `max_weight_exp` (inf without a cap): beyond it weights would be clipped."""
        if self.max_weight_exp is None:
            return math.inf
        parts = [(w.values, w.bits, w.mode) for w in weights if w.kind != "conv"]
        if self.bias == "neuron":
            values = np.asarray(bias_total, np.float64).reshape(-1, 1)
            parts.append((values, self.bias_bits, sign_mode(values)))
        cap = math.inf
        for values, bits, mode in parts:
            for side, sign in (("excitatory", 1.0), ("inhibitory", -1.0)):
                vmax = float(np.max(values * sign, initial=0.0))
                if vmax > 0:
                    lo, hi = representable_weight_range(bits, side if (self.split_sign or mode != "mixed") else "mixed")[:2]
                    cap = min(cap, (hi if sign > 0 else -lo) * 2.0 ** (6 + self.e_max) / vmax)
        return cap

    def _e_min(self, w: _Weights) -> int:
        """Smallest weight exponent for a projection: graded payloads of s units per float unit
        make the accumulated sum s times larger, so its floor after a right shift of up to
        log2(s) bits costs nothing."""
        extra = int(np.floor(np.log2(w.msg_scale))) if w.msg_scale > 1 else 0
        return max(E_RANGE.start, self.min_weight_exp - extra)

    def _src_max(self, p: FloatProj, net: FloatNet, msg_scale) -> float:
        """Largest message a source sends, in float units (spikes: 1; graded inputs: their range)."""
        s = msg_scale.get(p.src, 1.0)
        if net.pops[p.src].kind == "neuron":
            return 1.0 if s == 1.0 else 2.0 ** (RELAY_BITS - 1) / s  # a relay's payload range
        return 1.0 if s == 1.0 else (2**self.input_bits - 1) / s

    def _weights(self, p: FloatProj, msg_scale) -> _Weights:
        s = msg_scale.get(p.src, 1.0)
        op = p.op
        if isinstance(op, ConvOp) and not np.ndim(p.delay):
            return _Weights(p, _per_unit(op.data, s), None, "conv", s, self.weight_bits)
        dense_rows = lambda m: np.broadcast_to(np.arange(m.shape[0])[:, None], m.shape)  # noqa: E731
        if isinstance(op, DenseOp) or np.ndim(p.delay) or (isinstance(op, IdentityOp) and op.n_in <= 1024):
            m = _per_unit(op.dense(), s)
            return _Weights(p, m, dense_rows(m), "dense", s, self.weight_bits)
        m = op.sparse().tocsr()
        m.sum_duplicates()
        if m.nnz > 0.25 * m.shape[0] * m.shape[1]:
            d = _per_unit(m.toarray(), s)
            return _Weights(p, d, dense_rows(d), "dense", s, self.weight_bits)
        return _Weights(p, _per_unit(m.data, s), np.repeat(np.arange(m.shape[0]), np.diff(m.indptr)), "sparse", s, self.weight_bits)

    def _evaluate(self, k, weights: list[_Weights], thr, bias: np.ndarray | None = None, keep: bool = True) -> dict:
        """The layer at chip factor k (scalar or per neuron): integer weights, and the error of the
        weights (and constant drive) as the chip applies them relative to the threshold it applies.
        keep=False: only the error the chip factor search compares (q, e and the weight errors None)."""
        k_arr = np.asarray(k, dtype=np.float64)
        if thr is not None:
            vth = vth_mantissa(k_arr, thr)
            ratio = np.where(thr > 0, thr * k_arr / np.where(vth > 0, vth * 64.0, 1.0), 1.0)  # true / applied threshold
            thr_err = float(np.max(np.abs(ratio - 1.0)))
        else:
            ratio, thr_err = np.ones(1), 0.0
        err2 = norm2 = 0.0
        qs, es, werrs = [], [], []
        for w in weights:
            if w.kind == "conv" or self.exponent_groups <= 1:
                q, e, e2, we2 = self._quantize_whole(w, k_arr, ratio)
            else:
                q, e, e2, we2 = self._quantize_blocks(w, k_arr, ratio, keep)
            err2 += e2
            norm2 += w.norm2
            qs.append(q)
            es.append(e)
            werrs.append(we2)
        if bias is not None and self.bias == "neuron" and np.any(bias != 0):
            values = bias.reshape(-1, 1)
            scale = np.broadcast_to(k_arr, values.shape[:1])[:, None] if k_arr.ndim else float(k_arr)
            bq, be = quantize_weights(values, scale, self.bias_bits, sign_mode(values), self.bias_groups, self.split_sign,
                                      e_min=self.min_weight_exp, e_max=self.e_max)
            deq = bq * np.exp2(6 + be.astype(np.float64)) / scale
            r = ratio.reshape(-1, 1) if np.size(ratio) > 1 else float(ratio.ravel()[0])
            err2 += float(np.sum((deq * r - values) ** 2))
            norm2 += float(np.sum(values**2))
        return {
            "k": k, "q": qs if keep else None, "e": es if keep else None, "weight_error2": werrs,
            "error": math.sqrt(err2 / norm2) if norm2 > 0 else thr_err,
            "weight_error": None if None in werrs else math.sqrt(sum(werrs) / norm2) if norm2 > 0 else 0.0,
            "threshold_error": thr_err,
        }

    def _quantize_whole(self, w: _Weights, k_arr: np.ndarray, ratio: np.ndarray):
        """q, e and the squared errors (as applied, and of the weights alone) of one projection,
        quantized as one array (conv kernels; the single-exponent search)."""
        scale = _row_scale(w, k_arr)
        if w.kind == "conv":
            q, e = quantize_weights(w.values, scale, w.bits, w.mode, 1, False, fixed_e=0)
        else:
            q, e = quantize_weights(w.values, scale, w.bits, w.mode, self.exponent_groups, self.split_sign, e_min=self._e_min(w), e_max=self.e_max)
        err2, werr2 = _Sum(), _Sum()
        _errors(w.values, scale, q, e, _row_scale(w, ratio) if np.size(ratio) > 1 else float(ratio.ravel()[0]), err2, werr2)
        return q, e, err2.value, werr2.value

    def _quantize_blocks(self, w: _Weights, k_arr: np.ndarray, ratio: np.ndarray, keep: bool):
        """`_quantize_whole` with several exponent groups, a piece (`_Weights.spans`) at a time: the
        same integers and, summed in numpy's order (`_Sum`), the same errors, without a temporary
        of the layer's size. keep: also return q (int16) and e (int8) for the whole array."""
        scale = _uniform(k_arr)
        if scale is not None:
            pos, neg = w.extremes
            tops = (pos * scale if pos > 0 else None, neg * scale if neg > 0 else None)
        else:
            pos_found, neg_found = [], []
            for a, b in w.spans():
                v, rows = w.piece(a, b)
                top_pos, top_neg = _largest(v, _at(k_arr, rows, v.shape))
                pos_found += [] if top_pos is None else [top_pos]
                neg_found += [] if top_neg is None else [top_neg]
            tops = (max(pos_found) if pos_found else None, max(neg_found) if neg_found else None)
        code = _BlockCode.make(*tops, w.bits, w.mode, self.exponent_groups, self.split_sign, self._e_min(w), self.e_max)
        r_uniform = float(ratio.ravel()[0]) if np.size(ratio) == 1 else _uniform(ratio)
        q_all = np.empty(w.values.shape, np.int16) if keep else None
        e_all = np.empty(w.values.shape, np.int8) if keep else None
        err2, werr2 = _Sum(), (_Sum() if keep else None)
        for a, b in w.spans():
            v, rows = w.piece(a, b)
            sc = scale if scale is not None else _at(k_arr, rows, v.shape)
            e, t, up = code.quantize(v, sc)
            if q_all is not None and e_all is not None:
                q_all.reshape(-1)[a:b] = t.reshape(-1)
                e_all.reshape(-1)[a:b] = e.reshape(-1)
            t *= up  # dequantized: q * 2**(6 + e) / scale, as _dequantize
            t /= sc
            _error_sums(t, v, r_uniform if r_uniform is not None else _at(ratio, rows, v.shape), err2, werr2)
        return q_all, e_all, err2.value, None if werr2 is None else werr2.value

    @staticmethod
    def _chip_delay(p: FloatProj, dst_lat, src_lat):
        f = p.delay
        if dst_lat is None or src_lat is None:
            return np.maximum(np.asarray(f) - 1, 0) if np.ndim(f) else max(int(f) - 1, 0)
        base = int(dst_lat) - int(src_lat) - 1
        return base + (np.asarray(f, dtype=np.int64) if np.ndim(f) else int(f))

    def _projections(self, p: FloatProj, w: _Weights, q: np.ndarray, e: np.ndarray, delay, nmb: int) -> list[Projection]:
        """The chip projection(s) of one float projection: one per (sign part, exponent) group."""
        where = f"projection {p.name!r} ({p.src} -> {p.dst})"
        if np.any(np.asarray(delay) < 0):
            raise QuantizationError("negative synaptic delay (timing pass inconsistent)", where=where)
        if np.any(np.asarray(delay) > SPECS["delay"].hi):
            raise QuantizationError(
                "synaptic delay beyond the chip's range", where=where, expected=f"<= {SPECS['delay'].hi}",
                got=int(np.max(delay)), hint="shorten Delay nodes, or compile with a larger dt",
            )
        meta = {"float_delay": p.delay if not np.ndim(p.delay) else np.asarray(p.delay), "nir_nodes": list(p.nodes), "part_of": p.name}
        common = _Widths(num_weight_bits=w.bits, num_message_bits=nmb)
        if isinstance(p.op, ConvOp) and w.kind == "conv":  # a kernel (_weights): not with per-synapse delays
            geom = p.op.geom
            if np.any(np.asarray(delay) != 0):
                m = conv_matrix(q.astype(np.float64), geom).astype(np.int64).tocsr()
                m.eliminate_zeros()
                return [SparseProjection(p.name, p.src, p.dst, m, weight_exp=0, delay=int(delay), meta=meta, **common)]
            return [ConvProjection(p.name, p.src, p.dst, q, weight_exp=0, delay=0, conv=geom, meta=meta, **common)]
        # one code per stored synapse: (sign, exponent) -> (sign + 1) * 32 + exponent + 16; 0: no synapse
        pieces = _row_pieces(p, w, q, e)
        hist = np.zeros(96, np.int64)
        for _, _, _, qv, ev in pieces:
            hist += np.bincount(self._codes(qv, ev), minlength=96)
        keys = sorted(((int(c // 32) - 1, int(c % 32) - 16) for c in np.flatnonzero(hist[1:]) + 1), key=lambda t: (-t[0], -t[1]))
        exps = sorted({k[1] for k in keys})
        if len(exps) <= 1 and not (self.split_sign and len({k[0] for k in keys}) > 1):
            e0 = exps[0] if exps else 0
            if w.kind == "dense":
                return [DenseProjection(p.name, p.src, p.dst, q, weight_exp=e0, delay=delay, meta=meta, **common)]
            return [SparseProjection(p.name, p.src, p.dst, _sparse_like(p, q), weight_exp=e0, delay=int(delay), meta=meta, **common)]
        # several parts: each a sparse projection holding only its own synapses, filled a piece of
        # rows at a time in row-major order (a stable sort of each piece by code keeps it)
        top = max(exps)
        shape = (p.op.n_out, p.op.n_in)
        codes = {key: (key[0] + 1) * 32 + key[1] + 16 if self.split_sign else 32 + key[1] + 16 for key in keys}
        if np.ndim(delay):
            code = self._codes(q, e)
            parts = {key: np.where(code == c, q, 0).astype(np.int64) for key, c in codes.items()}
        else:
            index = np.int32 if max(*shape, int(hist[1:].sum())) < 2**31 else np.int64
            data = {key: np.empty(int(hist[c]), np.int64) for key, c in codes.items()}
            cols = {key: np.empty(int(hist[c]), index) for key, c in codes.items()}
            counts = {key: np.zeros(shape[0], np.int64) for key in keys}
            filled = dict.fromkeys(keys, 0)
            for r0, local, col, qv, ev in pieces:
                code = self._codes(qv, ev)
                order = np.argsort(code, kind="stable")  # radix sort of int8: row-major within each code
                bounds = np.concatenate(([0], np.cumsum(np.bincount(code, minlength=96))))
                for key, c in codes.items():
                    sel = order[bounds[c]:bounds[c + 1]]
                    at = filled[key]
                    data[key][at:at + sel.size] = qv[sel]
                    cols[key][at:at + sel.size] = col[sel]
                    filled[key] = at + sel.size
                    rows = local[sel]
                    counts[key][r0:r0 + (int(rows[-1]) + 1 if rows.size else 0)] += np.bincount(rows)
        out: list[Projection] = []
        for key in keys:
            sgn, ee = key
            label = ("exc" if sgn > 0 else "inh") if self.split_sign else "w"
            pname = f"{p.name}.{label}{top - ee}"
            if np.ndim(delay):
                dense = parts[key]
                out.append(DenseProjection(pname, p.src, p.dst, dense, weight_exp=ee, delay=np.where(dense != 0, delay, 0),
                                           meta=dict(meta), **common))
            else:
                indptr = np.zeros(shape[0] + 1, np.int64)
                np.cumsum(counts[key], out=indptr[1:])
                m = sp.csr_matrix((data[key], cols[key], indptr), shape=shape)
                out.append(SparseProjection(pname, p.src, p.dst, m, weight_exp=ee, delay=int(delay), meta=dict(meta), **common))
        return out

    def _codes(self, q: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Each weight's part: (sign + 1) * 32 + exponent + 16 (int8; sign 0 without split_sign), 0 where q is 0."""
        code = np.asarray(e).astype(np.int8)
        code += 16
        if self.split_sign:
            code += (q > 0).view(np.int8) * np.int8(64)
        else:
            code += 32
        code[q == 0] = 0
        return code

    def _membrane_error(self, pop, projs, weights, best, k_rows, run: FloatRun, msg_scale) -> float:
        """||m_chip - m_float|| / ||m_float|| of the layer's summed synaptic input over the calibration
        run (same source activity for both; graded inputs rounded as the host would send them)."""
        n = pop.size
        steps, batch = next(iter(run.outputs.values())).shape[:2]
        diff2 = norm2 = 0.0
        terms = []
        for p, w, q, e in zip(projs, weights, best["q"], best["e"]):
            deq = q * np.exp2(6 + e.astype(np.float64)) / _row_scale(w, k_rows) * w.msg_scale
            if w.kind == "conv":
                dq, df = conv_matrix(deq, p.op.geom), p.op.sparse()
            elif w.kind == "sparse":
                m = p.op.sparse().tocsr()
                m.sum_duplicates()
                dq, df = sp.csr_matrix((deq, m.indices, m.indptr), shape=m.shape), m
            else:
                dq, df = deq, p.op.dense()
            src = run.outputs[p.src]
            s = msg_scale.get(p.src, 1.0)
            src_q = np.rint(src * s) / s if s != 1.0 else src
            delays = [(int(d), np.asarray(p.delay) == d) for d in np.unique(p.delay)] if np.ndim(p.delay) else [(int(p.delay), None)]
            for d, mask in delays:
                a = dq if mask is None else np.where(mask, dq, 0)
                b = df if mask is None else np.where(mask, df, 0)
                terms.append((d, a, b, src, src_q))
        for t in range(steps):
            mf = np.zeros((batch, n))
            mq = np.zeros((batch, n))
            for d, a, b, src, src_q in terms:
                if t - d >= 0:
                    mf += np.asarray(b @ src[t - d].T).T
                    mq += np.asarray(a @ src_q[t - d].T).T
            diff2 += float(np.sum((mq - mf) ** 2))
            norm2 += float(np.sum(mf**2))
        return math.sqrt(diff2 / norm2) if norm2 > 0 else 0.0


def vth_mantissa(k, thr) -> np.ndarray:
    """The threshold mantissa at chip factor `k`: round(k thr / 64), at least 1 where thr > 0."""
    return np.where(thr > 0, np.maximum(np.rint(k * thr / STATE_UNIT), 1), 0).astype(np.int64)


def _relay_shift(v_top: float) -> int:
    """Right shift that fits a relay's largest |v| (chip units) into a RELAY_BITS signed payload."""
    return int(min(max(0, math.ceil(math.log2(max(v_top, 1.0))) - (RELAY_BITS - 1)), SPECS["relay_shift"].hi))


def _mant_bias_approximations(alpha: np.ndarray, stateless: bool, value: np.ndarray, vth: np.ndarray, latency: int | None,
                               starts: list[int]) -> list[str]:
    """How a bias held in bias_mant (added to v from the chip's first step) differs from the float
    model's (added to the current from the layer's first step); [] where it is exact.

    Exact only for a layer without state (LIFReset every step: u and v cleared, so alpha = 0 and
    the steps before its first input leave nothing) whose bias alone never reaches the threshold (no
    spike before its first input). du = 4095 alone is not enough: v keeps what the bias added
    during the `latency` steps before the layer's first input."""
    out = []
    if np.any(alpha > 0):
        out.append("on a layer with synaptic current (alpha > 0) it is added to v at the current's steady state "
                   "b/(1-alpha) from the first step, where the float model's current ramps up to it")
    late = [s for s in starts if s]
    if late:
        out.append(f"the float model adds part of it only from step {min(late)} on, bias_mant all of it from the first step")
    early = latency is None or latency > 0
    if early and not (stateless and np.all(value <= np.broadcast_to(vth, value.shape).astype(np.int64) << 6)):
        lead = "before the layer's first input" if latency is None else f"{latency} step(s) before the layer's first input"
        out.append(f"it acts from the chip's first step, {lead}, so the layer starts from the state its bias alone "
                   "built up by then (a start-up transient)")
    return out


def _relays(net: FloatNet) -> set[str]:
    """Non-spiking layers whose voltage feeds another layer (sent as graded relays)."""
    return {p.src for p in net.projs if net.pops[p.src].kind == "neuron" and not net.pops[p.src].neuron.spiking}


def pop_size(run: FloatRun, name: str) -> int:
    return int(run.outputs[name].shape[2])


def _teacher_float(run: FloatRun, name: str, drive: np.ndarray, steps: int) -> np.ndarray:
    """The float layer's voltage (before reset) when fed its recorded inputs and reset at its own spikes."""
    alpha, beta = run.params[name]
    mode, v_reset, thr = run.resets.get(name, ("zero", 0.0, 1.0))
    teacher = run.outputs[name]
    i = np.zeros(teacher.shape[1:])
    v = np.zeros(teacher.shape[1:])
    out = np.zeros(teacher.shape)
    fired = np.zeros(teacher.shape[1:], bool)
    for t in range(steps):
        i = alpha * i + drive[t]
        v = beta * v + i
        if mode == "subtract":
            v = v - thr * fired
        out[t] = v
        fired = teacher[t] > 0
        if mode == "zero":
            v = np.where(fired, v_reset, v)
    return out


def _row_pieces(p: FloatProj, w: _Weights, q: np.ndarray, e: np.ndarray) -> list:
    """A dense/sparse projection's weights a piece of rows at a time, in row-major order: (first
    row, row of each weight within the piece, its column, q, e), zeros included."""
    n_out, n_in = p.op.n_out, p.op.n_in
    if w.kind == "dense":
        per = max(1, CHUNK // max(n_in, 1))
        local = np.repeat(np.arange(per), n_in)
        col = np.tile(np.arange(n_in, dtype=np.int32 if n_in < 2**31 else np.int64), per)
        return [(r0, local[:(min(r0 + per, n_out) - r0) * n_in], col[:(min(r0 + per, n_out) - r0) * n_in],
                 q[r0:r0 + per].reshape(-1), e[r0:r0 + per].reshape(-1)) for r0 in range(0, n_out, per)]
    m = p.op.sparse().tocsr()
    m.sum_duplicates()
    per = max(1, CHUNK * n_out // max(m.nnz, 1))
    out = []
    for r0 in range(0, n_out, per):
        lo, hi = int(m.indptr[r0]), int(m.indptr[min(r0 + per, n_out)])
        out.append((r0, np.repeat(np.arange(min(per, n_out - r0)), np.diff(m.indptr[r0:r0 + per + 1])), m.indices[lo:hi], q[lo:hi], e[lo:hi]))
    return out


def _sparse_like(p: FloatProj, q: np.ndarray) -> sp.csr_matrix:
    m = p.op.sparse().tocsr()
    m.sum_duplicates()
    out = sp.csr_matrix((q.astype(np.int64), m.indices.copy(), m.indptr.copy()), shape=m.shape)
    out.eliminate_zeros()
    return out


def _per_unit(w: np.ndarray, s: float) -> np.ndarray:
    """w / s (weights per payload unit), without a copy where s is 1 and w already float64 (the
    quantizer only reads its weights)."""
    return w if s == 1.0 and isinstance(w, np.ndarray) and w.dtype == np.float64 else w / s


def _uniform(k: np.ndarray) -> float | None:
    """k as one float when it holds one value (a layer-wide chip factor), else None."""
    k = np.asarray(k, dtype=np.float64)
    return float(k.ravel()[0]) if k.ndim == 0 or np.all(k == k.ravel()[0]) else None


def _at(k: np.ndarray, rows: np.ndarray | None, shape) -> np.ndarray:
    """Per-neuron values `k` at each weight's target neuron (`rows`), shaped like the weights."""
    if rows is None:
        raise QuantizationError("per-neuron scales on a conv projection", where="quantize")
    return np.asarray(k, dtype=np.float64)[rows].reshape(shape)


def _errors(values: np.ndarray, scale, q: np.ndarray, e: np.ndarray, r, err2: "_Sum", werr2: "_Sum | None") -> None:
    """Add the squared error of the weights as the chip applies them relative to its threshold (r:
    true / applied threshold) to err2, and that of the weights alone to werr2 (None: not needed)."""
    _error_sums(_dequantize(q, e, scale), values, r, err2, werr2)


def _error_sums(deq: np.ndarray, values: np.ndarray, r, err2: "_Sum", werr2: "_Sum | None") -> None:
    """`_errors` from the dequantized weights (overwritten)."""
    diff = deq * r
    diff -= values
    err2.add(np.square(diff, out=diff))
    if werr2 is not None:
        np.subtract(deq, values, out=deq)
        werr2.add(np.square(deq, out=deq))


def _row_scale(w: _Weights, k) -> Any:
    """The chip factor for each weight value of `w` (k scalar or per target neuron)."""
    k = np.asarray(k, dtype=np.float64)
    if k.ndim == 0:
        return float(k)
    if np.all(k == k.ravel()[0]):
        return float(k.ravel()[0])
    if w.rows is None:
        raise QuantizationError("per-neuron scales on a conv projection", where=f"projection {w.proj.name!r}")
    return k[w.rows]


def _neg_row_sum(p: FloatProj) -> np.ndarray:
    """-(sum of min(w, 0)) over each row: the inhibition a neuron can receive per unit input."""
    return -_row_sum(p, lambda m: np.minimum(m, 0.0))


def _abs_row_sum(p: FloatProj) -> np.ndarray:
    """sum of |w| over each row."""
    return _row_sum(p, abs)


def _row_sum(p: FloatProj, f) -> np.ndarray:
    """sum of f(w) over each row (f elementwise, f(0) = 0); a dense matrix in row blocks that stay in
    cache, each row summed as numpy sums it whole."""
    m = p.op.matrix()
    if not isinstance(m, np.ndarray):  # sparse
        m = m.tocsr().copy()
        m.data = f(m.data)
        return np.asarray(m.sum(axis=1)).ravel()
    m = np.asarray(m)
    if m.dtype.kind != "f" or not m.flags.c_contiguous or m.ndim != 2:
        return f(m).sum(axis=1)
    out = np.empty(m.shape[0], m.dtype)
    step = max(1, (1 << 20) // max(m.shape[1], 1))
    for i in range(0, m.shape[0], step):
        out[i:i + step] = f(m[i:i + step]).sum(axis=1)
    return out


def _rel(err2: float, norm2: float) -> float:
    return math.sqrt(err2 / norm2) if norm2 > 0 else 0.0


def _collapse(a: np.ndarray, shape) -> Any:
    a = np.asarray(a)
    if a.size and np.all(a == a.ravel()[0]):
        return int(a.ravel()[0])
    return a.reshape(shape)


def _collapse_report(a: np.ndarray) -> Any:
    a = np.asarray(a)
    if a.size and np.all(a == a.ravel()[0]):
        return int(a.ravel()[0])
    return {"min": int(a.min()), "max": int(a.max())}


def _jsonable_scale(k) -> Any:
    k = np.asarray(k, dtype=np.float64)
    if k.ndim == 0 or np.all(k == k.ravel()[0]):
        return float(k.ravel()[0])
    return k.tolist()


def _delay_summary(d) -> Any:
    if np.ndim(d):
        return {"min": int(np.min(d)), "max": int(np.max(d))}
    return int(d)


def _unique(chip: ChipGraph, base: str) -> str:
    name, i = base, 1
    while name in chip.inputs or name in chip.populations or name in chip.projections:
        name, i = f"{base}_{i}", i + 1
    return name
