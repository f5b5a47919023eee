"""Chip-level IR: what a Loihi-class core executes.

A `ChipGraph` holds integer `InputPopulation`s (spike sources), `Population`s of CUBA neurons and
`Projection`s (dense/sparse synapses with delays, or convolutions) between them. Every integer
field is checked against its bit width (`snnc.ir.bits.SPECS`) when the object is built, so a value
the chip cannot hold is an error here, never a silent clip later.

Semantics are Lava 0.10.0's fixed-point models (see docs/loihi-fixed-point.md): a projection
delivers what it accumulated at step t to its target at step t+1+delay (a `direct` input
projection: at step t); several projections into one population are summed. Neuron arrays are
flattened in C order for dense/sparse projections; convolutions see their source and target as
(C, H, W).
"""
from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Iterator, Literal

import numpy as np
import scipy.sparse as sp

from .bits import SPECS, sign_mode, truncate_weights
from .errors import GraphError, ParameterError, ShapeError
from .fixed_point.prodneuron import PRODUCT_PORTS
from .fixed_point.resonator import RF_KINDS, RF_PORTS
from .fixed_point import ACT_MODES, NEURON_KINDS, RESET_MODES, SIGMA_DELTA_KINDS, ResetMode
from .order import component_order

NeuronModel = Literal["lif", "lif_reset", "ternary", "relay", "delta", "sigma_delta", "sigma", "product", "atrlif",
                      "lif_refractory", "rf", "rf_iz"]
OutputVar = Literal["s", "u", "v"]
PROGRAMMABLE_KINDS = ("product", "atrlif", "lif_refractory", *RF_KINDS)
"""Kinds Lava 0.10 runs as their own processes beyond LIF: `lava.proc.prodneuron.ProdNeuron`,
`lava.proc.atrlif.ATRLIF`, `LIFRefractory` and the resonators `lava.proc.rf.RF` / `lava.proc.rf_iz.RF_IZ`
(`snnc.ir.fixed_point.prodneuron` / `.atrlif` / `.refractory` / `.resonator` define them; Lava has
only a float LIFRefractory, so snnc emits its own process)."""
DEFAULT_PORT = "a_in"
KIND_PORTS = {"product": PRODUCT_PORTS, "rf": RF_PORTS, "rf_iz": RF_PORTS}
"""The input ports of the kinds with two (Lava's names); every other kind has `a_in`. A
projection into the second port lands in columns [n, 2n) of the sim's input buffer."""


def _shape(shape, where: str) -> tuple[int, ...]:
    try:
        out = tuple(int(d) for d in (shape if np.ndim(shape) else [shape]))
    except (TypeError, ValueError):
        raise ShapeError("shape must be a tuple of positive integers", where=where, got=shape) from None
    if not out or any(d <= 0 for d in out):
        raise ShapeError("shape must be a tuple of positive integers", where=where, got=out)
    return out


def _per_neuron(name: str, value, shape: tuple[int, ...], where: str):
    """Check a parameter that is either one value per layer or one per neuron."""
    checked = SPECS[name].check(value, f"{where}.{name}")
    if isinstance(checked, np.ndarray) and checked.shape != shape:
        if checked.size == math.prod(shape):
            checked = checked.reshape(shape)
        else:
            raise ShapeError(
                f"per-neuron {name} does not match the population",
                where=f"{where}.{name}",
                expected=f"a scalar or shape {shape}",
                got=checked.shape,
            )
    return checked


@dataclass
class InputPopulation:
    """A spike source: the network's input port. Graded when `num_message_bits` > 0."""

    name: str
    shape: tuple[int, ...]
    num_message_bits: int = 0

    def __post_init__(self):
        self.shape = _shape(self.shape, f"input {self.name!r}")
        self.num_message_bits = SPECS["num_message_bits"].check(
            self.num_message_bits, f"input {self.name!r}.num_message_bits"
        )

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass
class Population:
    """A layer of CUBA compartments of one neuron kind (`snnc.ir.fixed_point.neuron` defines each).

    `model`: "lif" (Lava `LIF`), "lif_reset" (Lava `LIFReset`), "ternary" (Lava `TernaryLIF`) or
    "relay" (non-spiking: sends v >> relay_shift every step as a graded spike).
    `du`, `dv`, `vth`, `bias_mant`, `bias_exp`, `v_reset` are scalars (one per layer, what real
    silicon configurations want) or arrays of `shape` (per-neuron; costs compartment profiles).
    `reset_mode`: "zero" (v = v_reset at the spike; Lava's behaviour when v_reset = 0), "subtract"
    (vth << 6 is taken off v at the next step, snnTorch's default) or "none".
    For `ternary`, `vth_hi`/`vth_lo` replace `vth`. `meta` carries provenance (source NIR nodes,
    float scale chosen by the quantizer) and is never read by a simulator.
    "product" (Lava `ProdNeuron`, `snnc.ir.fixed_point.prodneuron`): no state; sends the graded
    (a1 * a2) >> prod_exp where its int32 magnitude exceeds `vth` (not shifted); its two inputs are
    the ports `a_in1`/`a_in2` that projections name in `Projection.port`. "atrlif" (Lava `ATRLIF`,
    `snnc.ir.fixed_point.atrlif`): du/dv/bias as the LIF, `vth` is theta_0 (12 bits), plus
    `theta_step`, `d_theta`, `d_r`; its `u` probe is Lava's current `i`. "lif_refractory" (Lava
    `LIFRefractory`, `snnc.ir.fixed_point.refractory`): the LIF whose v is held at 0 for
    `refractory_period` steps after each spike while u keeps integrating. "rf" / "rf_iz" (Lava
    `RF` / `RF_IZ`, `snnc.ir.fixed_point.resonator`): a complex state (real, imag: the `u`/`v`
    probes) rotated by `sin_decay`/`cos_decay` (12 bits, per layer or neuron, fractions of
    2**decay_bits) and driven through the ports `a_real_in`/`a_imag_in` shifted by `state_exp`;
    `vth` (per layer) is compared as vth << state_exp.
    Sigma-delta kinds (`snnc.ir.fixed_point.sigma_delta`: "delta", "sigma_delta", "sigma", Lava's
    `lava.proc.sdn` processes) send graded messages every step and use `vth` (per layer),
    `act_bias` (16 bits, per layer or neuron), `act_mode` ("relu" or "unit"), `cum_error`,
    `spike_exp` and `state_exp`; the CUBA fields keep their defaults. Their `u` probe is sigma,
    their `v` probe the activation (a Sigma's is sigma).
    """

    name: str
    shape: tuple[int, ...]
    du: int | np.ndarray = 0
    dv: int | np.ndarray = 0
    vth: int | np.ndarray = 1
    bias_mant: int | np.ndarray = 0
    bias_exp: int | np.ndarray = 0
    model: NeuronModel = "lif"
    reset_interval: int = 1
    reset_offset: int = 0
    vth_hi: int = 0
    vth_lo: int = 0
    reset_mode: ResetMode = "zero"
    v_reset: int | np.ndarray = 0
    relay_shift: int = 0
    prod_exp: int = 0
    theta_step: int = 0
    d_theta: int = 0
    d_r: int = 0
    refractory_period: int = 0
    sin_decay: int | np.ndarray = 0
    cos_decay: int | np.ndarray = 0
    decay_bits: int = 12
    act_bias: int | np.ndarray = 0
    act_mode: str = "relu"
    cum_error: bool = False
    spike_exp: int = 0
    state_exp: int = 0
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        where = f"population {self.name!r}"
        self.shape = _shape(self.shape, where)
        for name in ("du", "dv", "vth", "bias_mant", "bias_exp", "v_reset", "act_bias", "sin_decay", "cos_decay"):
            setattr(self, name, _per_neuron(name, getattr(self, name), self.shape, where))
        if self.model not in NEURON_KINDS + SIGMA_DELTA_KINDS + PROGRAMMABLE_KINDS:
            raise ParameterError("unknown neuron model", where=where, expected=", ".join(NEURON_KINDS + SIGMA_DELTA_KINDS + PROGRAMMABLE_KINDS), got=self.model)
        self._check_sigma_delta(where)
        if self.reset_mode not in RESET_MODES:
            raise ParameterError("unknown reset mode", where=f"{where}.reset_mode", expected=", ".join(RESET_MODES), got=self.reset_mode)
        if self.model == "ternary" and self.reset_mode == "subtract":
            raise ParameterError("a ternary population cannot reset by subtraction", where=f"{where}.reset_mode",
                                 expected="zero or none", got=self.reset_mode)
        self.relay_shift = SPECS["relay_shift"].check(self.relay_shift, f"{where}.relay_shift")
        self._check_programmable(where)
        if self.model != "relay" and self.relay_shift:
            raise ParameterError("relay_shift applies to relay populations only", where=f"{where}.relay_shift",
                                 got=self.relay_shift, hint="set model='relay' or relay_shift=0")
        if self.model == "lif_reset":
            self.reset_interval = SPECS["reset_interval"].check(self.reset_interval, f"{where}.reset_interval")
            self.reset_offset = SPECS["reset_offset"].check(self.reset_offset, f"{where}.reset_offset")
        if self.model == "ternary":
            # Lava's TernaryLIF compares v against vth_hi << 6 and vth_lo << 6 (signed thresholds).
            for name in ("vth_hi", "vth_lo"):
                value = getattr(self, name)
                if not isinstance(value, (int, np.integer)) or abs(int(value)) >= 2**17:
                    raise ParameterError(
                        f"{name} must be an integer of at most 17 bits plus sign",
                        where=f"{where}.{name}",
                        got=value,
                    )
            if self.vth_lo > self.vth_hi:
                raise ParameterError(
                    "vth_lo must not exceed vth_hi", where=where, got=(self.vth_lo, self.vth_hi)
                )

    def _check_sigma_delta(self, where: str) -> None:
        """Sigma-delta fields in range, and only where they mean something."""
        if self.model in RF_KINDS:
            self.state_exp = int(SPECS["state_exp"].check(self.state_exp, f"{where}.state_exp"))
        if self.model not in SIGMA_DELTA_KINDS:
            if np.any(self.act_bias) or self.cum_error or self.spike_exp or (self.state_exp and self.model not in RF_KINDS):
                raise ParameterError("act_bias, cum_error, spike_exp and state_exp apply to sigma-delta populations only",
                                     where=where, hint=f"set model to one of {SIGMA_DELTA_KINDS} or leave them at 0")
            return
        for name in ("spike_exp", "state_exp"):
            setattr(self, name, SPECS[name].check(getattr(self, name), f"{where}.{name}"))
        if self.act_mode not in ACT_MODES:
            raise ParameterError("unknown activation mode", where=f"{where}.act_mode", expected=", ".join(ACT_MODES), got=self.act_mode)
        if np.ndim(self.vth):
            raise ParameterError("a sigma-delta threshold is one value per layer (Lava's vth has shape (1,))",
                                 where=f"{where}.vth", got=np.shape(self.vth), hint="give vth as a scalar")
        self.cum_error = bool(self.cum_error)
        cuba = {"du": 0, "dv": 0, "bias_mant": 0, "bias_exp": 0, "v_reset": 0, "relay_shift": 0}
        for name, default in cuba.items():
            if np.any(getattr(self, name) != default):
                raise ParameterError(f"{name} does not apply to a {self.model} population", where=f"{where}.{name}",
                                     got=getattr(self, name), hint="sigma-delta neurons take act_bias, vth, spike_exp and state_exp")
        if self.reset_mode != "zero":
            raise ParameterError("sigma-delta neurons have no reset", where=f"{where}.reset_mode", expected="zero", got=self.reset_mode)

    def _check_programmable(self, where: str) -> None:
        """Fields of the product and adaptive-threshold kinds: in range, per layer where Lava's Var
        is one value, and only where they mean something."""
        mine = {"prod_exp": "product", "theta_step": "atrlif", "d_theta": "atrlif", "d_r": "atrlif",
                "refractory_period": "lif_refractory"}
        for name in ("sin_decay", "cos_decay"):
            if self.model not in RF_KINDS and np.any(getattr(self, name)):
                raise ParameterError(f"{name} applies to rf/rf_iz populations only", where=f"{where}.{name}",
                                     hint="set model='rf' or 'rf_iz', or leave it at 0")
        for name, kind in mine.items():
            setattr(self, name, SPECS[name].check(getattr(self, name), f"{where}.{name}"))
            if self.model != kind and getattr(self, name):
                raise ParameterError(f"{name} applies to {kind} populations only", where=f"{where}.{name}",
                                     got=getattr(self, name), hint=f"set model={kind!r} or {name}=0")
        if self.model not in PROGRAMMABLE_KINDS:
            return
        if self.reset_mode != "zero" or np.any(self.v_reset):
            raise ParameterError(f"a {self.model} population has no reset mode or reset voltage", where=f"{where}.reset_mode",
                                 expected="reset_mode='zero', v_reset=0", got=(self.reset_mode, self.v_reset))
        if self.model == "lif_refractory":
            return  # per-neuron du/dv/vth/bias like the LIF (snnc's own process takes arrays)
        if self.model in RF_KINDS:
            self._check_resonator(where)
            return
        per_layer = ("vth",) if self.model == "product" else ("du", "dv", "vth")
        for name in per_layer:
            if np.ndim(getattr(self, name)):
                raise ParameterError(f"a {self.model} population's {name} is one value per layer (Lava's Var has shape (1,))",
                                     where=f"{where}.{name}", got=np.shape(getattr(self, name)), hint=f"give {name} as a scalar")
        if self.model == "product":
            unused = {"du": 0, "dv": 0, "bias_mant": 0, "bias_exp": 0}
            for name, default in unused.items():
                if np.any(getattr(self, name) != default):
                    raise ParameterError(f"{name} does not apply to a product population (it keeps no state)",
                                         where=f"{where}.{name}", got=getattr(self, name),
                                         hint="a product neuron takes vth (compared with |a1 * a2 >> prod_exp|) and prod_exp")
        elif int(self.vth) > SPECS["theta_step"].hi:
            raise ParameterError("an atrlif threshold theta_0 (vth) has 12 bits in Lava's ATRLIF", where=f"{where}.vth",
                                 expected=f"0..{SPECS['theta_step'].hi}", got=int(self.vth),
                                 hint="rescale the layer's weights and bias so the threshold fits")

    def _check_resonator(self, where: str) -> None:
        """rf/rf_iz: decay_bits in range, vth per layer (Lava's Var has shape (1,)), no CUBA fields."""
        self.decay_bits = int(SPECS["decay_bits"].check(self.decay_bits, f"{where}.decay_bits"))
        if np.ndim(self.vth):
            raise ParameterError(f"a {self.model} population's vth is one value per layer (Lava's Var has shape (1,))",
                                 where=f"{where}.vth", got=np.shape(self.vth), hint="give vth as a scalar")
        for name in ("du", "dv", "bias_mant", "bias_exp"):
            if np.any(getattr(self, name)):
                raise ParameterError(f"{name} does not apply to a {self.model} population", where=f"{where}.{name}",
                                     got=getattr(self, name),
                                     hint="a resonator takes sin_decay, cos_decay, decay_bits, state_exp and vth (Lava's RF has no bias)")

    @property
    def ports(self) -> tuple[str, ...]:
        """The input ports projections may target (Lava's port names)."""
        return KIND_PORTS.get(self.model, (DEFAULT_PORT,))

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def per_layer(self) -> bool:
        """True when du, dv, vth are shared by the whole layer (one compartment profile)."""
        return all(np.ndim(getattr(self, n)) == 0 for n in ("du", "dv", "vth"))

    @property
    def lava_native(self) -> bool:
        """True when Lava 0.10's own LIF/LIFReset/TernaryLIF computes this population (reset to 0)."""
        return self.model != "relay" and self.reset_mode == "zero" and not np.any(self.v_reset)

    @property
    def spiking(self) -> bool:
        """False for relays and sigma-delta neurons, whose every message is a graded payload."""
        return self.model not in ("relay", "product") and self.model not in SIGMA_DELTA_KINDS

    @property
    def sigma_delta(self) -> bool:
        """True for Lava's sigma-delta processes (Delta, SigmaDelta, Sigma)."""
        return self.model in SIGMA_DELTA_KINDS


@dataclass
class ConvGeometry:
    """A 2-D convolution from a (C, H, W) source onto a (C', H', W') target, torch conventions:
    `kernel`, `stride`, `padding` and `dilation` are (height, width) pairs. Any sequences of
    integers of those lengths are accepted (NIR shapes are numpy arrays) and stored as tuples."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...] = (1, 1)
    padding: tuple[int, ...] = (0, 0)
    dilation: tuple[int, ...] = (1, 1)
    groups: int = 1

    def __post_init__(self) -> None:
        for name, length in (("in_shape", 3), ("out_shape", 3), ("kernel", 2), ("stride", 2), ("padding", 2), ("dilation", 2)):
            value = tuple(int(x) for x in getattr(self, name))
            if len(value) != length:
                raise ShapeError(f"conv geometry {name} must have {length} entries", where=f"ConvGeometry.{name}",
                                 expected="(C, H, W)" if length == 3 else "(height, width)", got=value)
            setattr(self, name, value)
        self.groups = int(self.groups)

    @staticmethod
    def output_hw(in_hw, kernel, stride, padding, dilation) -> tuple[int, int]:
        return tuple(
            (in_hw[i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(2)
        )


ProjectionKind = Literal["dense", "sparse", "conv"]


def _argument(args: tuple, kwargs: dict, name: str, index: int, default=None):
    """One constructor argument of a Projection, given by position or keyword."""
    return args[index] if len(args) > index else kwargs.get(name, default)


@dataclass
class Projection:
    """Synapses from `src` (input or population) onto population `dst`: the base of the three
    kinds, `DenseProjection` (weights [dst.size, src.size]), `SparseProjection` (a scipy CSR
    matrix of that shape) and `ConvProjection` (weights [C_out, C_in/groups, kh, kw] with its
    `conv` geometry). `Projection(..., kind=...)` builds the subclass `kind` names (default
    "dense"), and `kind` reads it back, so `dataclasses.replace(p, kind="sparse", weights=m)`
    changes the class too. Code that needs one kind's fields tests `isinstance(p, ConvProjection)`
    (which also tells a type checker that `p.conv` is set).

    Weights are the integers handed to Lava (range -256..255); Dense/Sparse truncate them to
    `num_weight_bits` for their sign mode exactly as Lava does (`effective_weights`). Lava's
    fixed-point Conv applies neither `weight_exp` nor truncation, so a conv projection must have
    weight_exp 0 and uses its weights as given (any value in -256..255; num_weight_bits only
    counts memory). `delay` (0..62) is a scalar or, for dense, one per synapse.
    `num_message_bits` > 0 means the source sends graded spikes (the payload is multiplied).
    `direct`: no synapse at all, the input's values reach the target's `a_in` in the same step
    (zero latency, one-to-one, weight 1): how lava-dl netx wires `net.inp` to an input layer's
    neurons. Only an `InputPopulation` can be a direct source; it costs no synaptic memory or ops.
    `conv`, `meta`, `port` and `direct` are keyword-only.
    """

    name: str
    src: str
    dst: str
    weights: np.ndarray | sp.csr_matrix
    kind: ProjectionKind = "dense"
    weight_exp: int = 0
    num_weight_bits: int = 8
    num_message_bits: int = 0
    delay: int | np.ndarray = 0
    _: KW_ONLY
    conv: ConvGeometry | None = None
    meta: dict = field(default_factory=dict)
    port: str = DEFAULT_PORT
    direct: bool = False

    def __new__(cls, *args: Any, **kwargs: Any):
        """The subclass `kind` names. `cls.__new__(cls)` (pickle, copy) gives `cls` itself."""
        kind = _argument(args, kwargs, "kind", 4, cls.__dataclass_fields__["kind"].default)
        target = _PROJECTION_KINDS.get(kind) if isinstance(kind, str) else None
        if target is None or (target is ConvProjection and (args or kwargs) and kwargs.get("conv") is None):
            name, src, dst = (_argument(args, kwargs, key, i) for i, key in enumerate(("name", "src", "dst")))
            where = f"projection {name!r} ({src} -> {dst})"
            if target is None:
                raise ParameterError("unknown projection kind", where=where, expected="dense, sparse or conv", got=kind)
            raise ParameterError("conv projection without geometry", where=where, hint="pass conv=ConvGeometry(...)")
        obj = object.__new__(target)
        if not issubclass(target, cls):  # replace(conv_proj, kind="sparse", ...): Python only initialises instances of cls
            target.__init__(obj, *args, **kwargs)
        return obj

    def __post_init__(self) -> None:
        where = f"projection {self.name!r} ({self.src} -> {self.dst})"
        for name in ("weight_exp", "num_weight_bits", "num_message_bits"):
            setattr(self, name, SPECS[name].check(getattr(self, name), f"{where}.{name}"))
        self._check(where)
        if self.direct:
            self._check_direct(where)

    def _check(self, where: str) -> None:
        """The invariants of one kind: weights, delay, geometry."""
        raise NotImplementedError

    def _weight_array(self, where: str) -> np.ndarray:
        """The weights as a checked int64 array (a sparse matrix given is densified)."""
        w: Any = self.weights
        return np.asarray(SPECS["weight"].check(w.toarray() if sp.issparse(w) else w, f"{where}.weights"))

    def _check_ndim(self, want: int, where: str) -> None:
        if self.weights.ndim != want:
            raise ShapeError(f"{self.kind} weights must have {want} dimensions", where=where, got=self.weights.shape)

    def _checked_delay(self, where: str, per_synapse: bool = False) -> int | np.ndarray:
        """`delay` in range; an array only where the kind allows one per synapse, shaped like the weights."""
        delay = SPECS["delay"].check(self.delay, f"{where}.delay")
        if isinstance(delay, np.ndarray) and (not per_synapse or delay.shape != self.weights.shape):
            raise ShapeError(
                "per-synapse delays must be a dense array shaped like the weights",
                where=f"{where}.delay",
                expected=self.weights.shape,
                got=np.shape(delay),
            )
        return delay

    def _check_direct(self, where: str) -> None:
        """A direct projection is the identity: one-to-one, weight 1, no exponent, no delay."""
        self.direct = bool(self.direct)
        w = self.weights
        square = not isinstance(self, ConvProjection) and w.shape[0] == w.shape[1]
        identity = square and (
            (w != sp.identity(w.shape[0], dtype=np.int64, format="csr")).nnz == 0 if sp.issparse(w)
            else np.array_equal(w, np.eye(w.shape[0], dtype=np.int64))
        )
        if not identity or self.weight_exp != 0 or np.any(self.delay):
            raise ParameterError(
                "a direct projection must be the identity (one-to-one, weight 1, weight_exp 0, delay 0)",
                where=f"{where}.direct",
                got=(self.kind, w.shape, self.weight_exp, self.max_delay),
                hint="use an ordinary projection (one step of latency) for anything else",
            )

    @property
    def sign_mode(self) -> str:
        return sign_mode(self.weights)

    @property
    def num_synapses(self) -> int:
        """Stored synapses: nonzero weights (dense, sparse) or kernel entries (conv, shared); a
        direct projection has none."""
        return 0 if self.direct else self._stored_synapses()

    def _stored_synapses(self) -> int:
        raise NotImplementedError

    @property
    def max_delay(self) -> int:
        return int(np.max(self.delay)) if np.ndim(self.delay) else int(self.delay)

    def effective_weights(self):
        """Weights as the chip applies them (Lava's clip + truncation for dense/sparse)."""
        raise NotImplementedError


@dataclass
class DenseProjection(Projection):
    """Weights [dst.size, src.size] as an int64 array; `delay` one per projection or one per synapse
    (an array shaped like the weights). It has no geometry: a `conv` given (say by
    `dataclasses.replace` of a conv projection) is dropped."""

    weights: np.ndarray
    kind: ProjectionKind = "dense"

    def _check(self, where: str) -> None:
        self.conv = None
        self.weights = self._weight_array(where)
        self._check_ndim(2, where)
        self.delay = self._checked_delay(where, per_synapse=True)

    def _stored_synapses(self) -> int:
        return int(np.count_nonzero(self.weights))

    def effective_weights(self) -> np.ndarray:
        return truncate_weights(self.weights, self.num_weight_bits)


@dataclass
class SparseProjection(Projection):
    """Weights [dst.size, src.size] as a CSR matrix of int64 (a dense array given is converted);
    one `delay` for every synapse. A `conv` given is dropped, as for `DenseProjection`."""

    weights: sp.csr_matrix
    kind: ProjectionKind = "sparse"
    delay: int = 0

    def _check(self, where: str) -> None:
        self.conv = None
        w: Any = self.weights
        self.weights = sp.csr_matrix(w if sp.issparse(w) else np.asarray(w))
        self.weights.data = np.asarray(SPECS["weight"].check(self.weights.data, f"{where}.weights")).reshape(-1)
        self.weights.data = self.weights.data.astype(np.int64, copy=False)
        self._check_ndim(2, where)
        self.delay = int(self._checked_delay(where))

    def _stored_synapses(self) -> int:
        return int(self.weights.nnz)

    def effective_weights(self) -> sp.csr_matrix:
        # truncate_weights returns new data: only the index arrays are copied
        w = self.weights
        return sp.csr_matrix((truncate_weights(w.data, self.num_weight_bits, self.sign_mode), w.indices.copy(), w.indptr.copy()),
                             shape=w.shape)


@dataclass
class ConvProjection(Projection):
    """A 2-D convolution: the kernel [C_out, C_in/groups, kh, kw] (int64) slid over the source as
    `conv` says. Lava's fixed-point Conv has no weight exponent and no delay: both must be 0."""

    weights: np.ndarray
    kind: ProjectionKind = "conv"
    delay: int = 0
    conv: ConvGeometry = field(kw_only=True)

    def _check(self, where: str) -> None:
        self.weights = self._weight_array(where)
        self._check_ndim(4, where)
        self.delay = int(self._checked_delay(where))
        if self.weight_exp != 0 or self.delay:
            raise ParameterError(
                "Lava's fixed-point Conv applies no weight_exp and no delay",
                where=where,
                expected="weight_exp=0, delay=0",
                got=(self.weight_exp, self.delay),
                hint="fold the exponent into the weights and the target's threshold, or use a dense projection",
            )
        c_out = self.conv.out_shape[0]
        c_in = self.conv.in_shape[0]
        expect = (c_out, c_in // self.conv.groups, *self.conv.kernel)
        if self.weights.shape != expect or c_in % self.conv.groups or c_out % self.conv.groups:
            raise ShapeError("conv kernel does not match its geometry", where=where, expected=expect, got=self.weights.shape)

    def _stored_synapses(self) -> int:
        return int(self.weights.size)

    def effective_weights(self) -> np.ndarray:
        return self.weights


_PROJECTION_KINDS: dict[str, type[Projection]] = {"dense": DenseProjection, "sparse": SparseProjection, "conv": ConvProjection}


@dataclass
class OutputPort:
    """A network output: a population's spikes ('s'), current ('u') or voltage ('v')."""

    population: str
    var: OutputVar = "s"


def _where(p: "Projection") -> str:
    """How an error names a projection (made only when there is an error: validate runs often)."""
    return f"projection {p.name!r} ({p.src} -> {p.dst})"


@dataclass
class ChipGraph:
    """A whole chip-level network. `meta` holds dt, the target, and `time_shift`: how many steps
    the chip's outputs lag the float reference (set by the timing pass)."""

    inputs: dict[str, InputPopulation] = field(default_factory=dict)
    populations: dict[str, Population] = field(default_factory=dict)
    projections: dict[str, Projection] = field(default_factory=dict)
    outputs: dict[str, OutputPort] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    # -- building ---------------------------------------------------------------------------------
    def add(self, item):
        """Add an input, population or projection; names are unique across the graph."""
        table = (self.inputs if isinstance(item, InputPopulation) else self.populations if isinstance(item, Population)
                 else self.projections if isinstance(item, Projection) else None)
        if table is None:
            raise TypeError(f"cannot add {type(item).__name__} to a ChipGraph")
        if item.name in self.inputs or item.name in self.populations or item.name in self.projections:
            raise GraphError("duplicate name", where=f"chip graph: {item.name!r}", hint="names must be unique")
        table[item.name] = item
        return item

    # -- queries ----------------------------------------------------------------------------------
    def source(self, name: str) -> InputPopulation | Population:
        if name in self.inputs:
            return self.inputs[name]
        if name in self.populations:
            return self.populations[name]
        raise GraphError("unknown source", where=f"chip graph: {name!r}", expected=sorted([*self.inputs, *self.populations]))

    def incoming(self, population: str) -> list[Projection]:
        return [p for p in self.projections.values() if p.dst == population]

    def outgoing(self, source: str) -> list[Projection]:
        return [p for p in self.projections.values() if p.src == source]

    def iter_nodes(self) -> Iterator[InputPopulation | Population]:
        yield from self.inputs.values()
        yield from self.populations.values()

    @property
    def num_neurons(self) -> int:
        return sum(p.size for p in self.populations.values())

    @property
    def num_synapses(self) -> int:
        return sum(p.num_synapses for p in self.projections.values())

    def population_order(self) -> list[list[str]]:
        """Populations grouped into strongly connected components, in topological order.

        A component of more than one population, or one with a self-projection, is recurrent and
        must be stepped one time step at a time; the others can be evaluated layer by layer.
        """
        # remembered for the same populations and edges (a build, its checks and the fidelity guard
        # each ask; the answer depends on nothing else)
        key = (tuple(self.populations), tuple((p.src, p.dst) for p in self.projections.values()))
        known = self.__dict__.get("_population_order")
        if known is not None and known[0] == key:
            return [list(c) for c in known[1]]
        # members and ties between components in insertion order (`snnc.ir.order.component_order`)
        components = component_order(list(self.populations), [(p.src, p.dst) for p in self.projections.values() if p.src in self.populations])
        self.__dict__["_population_order"] = (key, components)
        return [list(c) for c in components]

    def is_recurrent(self, component: list[str]) -> bool:
        members = set(component)
        return len(component) > 1 or any(
            p.src in members and p.dst in members for p in self.projections.values()
        )

    # -- checks -----------------------------------------------------------------------------------
    def validate(self) -> "ChipGraph":
        """Check that every projection connects existing nodes with matching sizes."""
        for p in self.projections.values():
            src = self.source(p.src)
            if p.dst not in self.populations:
                raise GraphError("projection target is not a population", where=_where(p), expected=sorted(self.populations), got=p.dst)
            dst = self.populations[p.dst]
            if isinstance(p, ConvProjection):
                if tuple(src.shape) != p.conv.in_shape or tuple(dst.shape) != p.conv.out_shape:
                    raise ShapeError(
                        "conv geometry does not match its source/target shapes",
                        where=_where(p),
                        expected=(p.conv.in_shape, p.conv.out_shape),
                        got=(src.shape, dst.shape),
                    )
            elif p.weights.shape != (dst.size, src.size):
                raise ShapeError("weight matrix does not match source/target sizes", where=_where(p), expected=(dst.size, src.size), got=p.weights.shape)
            if p.direct and not isinstance(src, InputPopulation):
                raise GraphError(
                    "only an input can feed a population directly", where=_where(p), got=p.src,
                    hint="a population's spikes reach other populations through synapses (one step later)",
                )
            if p.num_message_bits == 0 and isinstance(src, Population) and not src.spiking:
                raise ParameterError(
                    f"a {src.model} population sends graded payloads, but this projection is binary",
                    where=_where(p),
                    hint="set num_message_bits on the projection to the source's payload bits (relay: 24 - relay_shift; sigma-delta: its message bits)",
                )
            if p.num_message_bits == 0 and isinstance(src, InputPopulation) and src.num_message_bits:
                raise ParameterError(
                    "graded input feeds a binary projection",
                    where=_where(p),
                    hint="set num_message_bits on the projection to the input's payload bits",
                )
            if p.port not in dst.ports:
                raise GraphError(
                    f"projection targets a port its {dst.model} population does not have", where=f"{_where(p)}.port",
                    expected=", ".join(dst.ports), got=p.port,
                    hint="a product population has two inputs, a_in1 and a_in2, an rf/rf_iz one a_real_in and a_imag_in; every other kind has a_in",
                )
        for pop in self.populations.values():
            for port_name in pop.ports if pop.model == "product" else ():
                if not any(p.port == port_name for p in self.incoming(pop.name)):
                    raise GraphError(
                        f"product population has no projection into its port {port_name}", where=f"population {pop.name!r}",
                        hint="its output would be 0 at every step; connect both a_in1 and a_in2",
                    )
        for name, port in self.outputs.items():
            if port.population not in self.populations:
                raise GraphError("output names an unknown population", where=f"output {name!r}", expected=sorted(self.populations), got=port.population)
            if port.var not in ("s", "u", "v"):
                raise GraphError("output variable must be s, u or v", where=f"output {name!r}", got=port.var)
        return self
