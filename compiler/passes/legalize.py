"""Legalize: make a ChipGraph fit what the target chip can configure, or say exactly why not.

Why: Lava's LIF process (and a Loihi compartment profile) holds ONE du, dv and vth per layer
(`Var(shape=(1,))`); per-neuron values only work in simulators. The quantizer computes decays
per neuron from per-neuron time constants, which are usually all equal (NIR exports store one
value per neuron); this pass collapses equal arrays to scalars, collapses arrays that differ
within `tolerance` (relative, on the decay factor or threshold) to their median and reports the
approximation, and refuses arrays that differ more, naming the layer, the parameter and the
spread. It also checks the target's limits: synaptic delays (0..max_delay), weight bits,
graded-spike payload bits, and per-neuron fan-in against the input axons one core has (fan-out,
which costs output axons per destination core, is reported; the mapping pass places it).
Limits come from `snnc.compiler.targets` (chip profiles).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from snnc.ir.chip import ChipGraph, ConvProjection, DenseProjection, Projection, SparseProjection
from snnc.ir.errors import ParameterError, QuantizationError, ResourceError
from snnc.ir.fixed_point.units import alpha_from_du, beta_from_dv

from ..targets import get_profile
from .base import Pass, PassResult

FACTOR = {
    "du": alpha_from_du,  # the decay factors the chip applies (snnc.ir.fixed_point)
    "dv": beta_from_dv,
    "vth": lambda x: np.asarray(x, dtype=np.float64),
}
"""Each shared parameter as the float it stands for, so that a relative tolerance means the same
wherever layers are compared (here and in the split pass)."""


@dataclass(frozen=True)
class Legalize(Pass):
    """Shared per-layer parameters and target limits (see module docstring)."""

    target: str = "loihi2"
    shared: tuple[str, ...] = ("du", "dv", "vth")
    tolerance: float = 0.01
    check_fan_in: bool = True

    name: ClassVar[str] = "legalize"
    level: ClassVar[str] = "chip"

    def run(self, graph: ChipGraph) -> PassResult:
        self.check_level(graph)
        unknown = set(self.shared) - set(FACTOR)
        if unknown:
            raise ParameterError("shared parameters must be among du, dv, vth", where="legalize option shared", got=sorted(unknown))
        profile = get_profile(self.target)
        g = _copy(graph)
        collapsed: dict[str, list[str]] = {}  # layer -> parameters whose equal values became one
        per_neuron: dict[str, list[str]] = {}  # layer -> parameters kept per neuron
        approximated: dict[str, dict[str, dict[str, float]]] = {}  # layer -> parameter -> value, spread

        for name, pop in g.populations.items():
            for param in ("du", "dv", "vth"):
                value = getattr(pop, param)
                if np.ndim(value) == 0:
                    continue
                arr = np.asarray(value)
                if np.all(arr == arr.ravel()[0]):
                    setattr(pop, param, int(arr.ravel()[0]))
                    collapsed.setdefault(name, []).append(param)
                    continue
                if param not in self.shared:
                    per_neuron.setdefault(name, []).append(param)
                    continue
                f = FACTOR[param](arr)
                chosen = int(np.sort(arr.ravel())[arr.size // 2])
                ref = float(FACTOR[param](np.asarray(chosen)))
                spread = float(np.max(np.abs(f - ref)) / max(abs(ref), 1e-12))
                if spread > self.tolerance:
                    raise QuantizationError(
                        f"{param} differs between the neurons of one layer, but target {profile.name!r} holds one "
                        f"{param} per layer",
                        where=f"layer {name!r}.{param}",
                        expected=f"values within {self.tolerance:.1%} of each other",
                        got=f"{int(arr.min())}..{int(arr.max())} (spread {spread:.1%})",
                        hint=(
                            "split the layer by time constant/threshold, compile with per_channel=False, or "
                            f"allow per-neuron values with shared=({', '.join(repr(s) for s in self.shared if s != param)}) "
                            "on a simulator target"
                        ),
                    )
                setattr(pop, param, chosen)
                approximated.setdefault(name, {})[param] = {"value": chosen, "relative_spread": spread}

        limits = profile
        max_delay = 0
        for p in g.projections.values():
            where = f"projection {p.name!r} ({p.src} -> {p.dst})"
            if p.num_weight_bits > limits.max_weight_bits:
                raise QuantizationError("more weight bits than the target stores", where=where,
                                        expected=f"<= {limits.max_weight_bits}", got=int(p.num_weight_bits))
            if p.max_delay > limits.max_delay:
                raise QuantizationError(
                    "synaptic delay beyond the target's range", where=where, expected=f"<= {limits.max_delay}",
                    got=p.max_delay, hint="shorten Delay nodes or skip-connection depth differences, or use a larger dt",
                )
            max_delay = max(max_delay, p.max_delay)
        for name, inp in g.inputs.items():
            if inp.num_message_bits > limits.max_message_bits:
                raise QuantizationError(
                    "graded (multi-bit) input spikes are not supported by the target",
                    where=f"input {name!r}",
                    expected=f"num_message_bits <= {limits.max_message_bits}",
                    got=int(inp.num_message_bits),
                    hint="encode the input as binary spikes (input_encoding='spikes') or choose target 'loihi2'",
                )
        fan_in = {name: np.zeros(pop.size, np.int64) for name, pop in g.populations.items()}
        fan_out = {src.name: np.zeros(src.size, np.int64) for src in g.iter_nodes()}
        for p in g.projections.values():
            counts = _fan_in(p, axis=1)
            fan_in[p.dst] = fan_in[p.dst] + counts
            fan_out[p.src] = fan_out[p.src] + _fan_in(p, axis=0)
        max_fan_out = int(max((f.max(initial=0) for f in fan_out.values()), default=0))
        max_fan_in = 0
        for name, f in fan_in.items():
            worst = int(f.max(initial=0))
            max_fan_in = max(max_fan_in, worst)
            if self.check_fan_in and worst > limits.input_axons_per_core:
                raise ResourceError(
                    "a neuron receives synapses from more source neurons than one core has input axons",
                    where=f"layer {name!r}",
                    expected=f"fan-in <= {limits.input_axons_per_core} ({limits.name} input axons per core)",
                    got=worst,
                    hint="sparsify or split the incoming layer (e.g. a narrower dense layer or a convolution)",
                )
        g.validate()
        report = {
            "target": profile.name, "collapsed": collapsed, "approximated": approximated, "per_neuron": per_neuron,
            "max_fan_in": max_fan_in, "max_delay": max_delay, "max_fan_out": max_fan_out,
        }
        return PassResult(g, report)


def _copy(graph: ChipGraph) -> ChipGraph:
    """The graph with its own populations, projections and metadata to change, sharing the weight
    and parameter arrays (no pass writes into them): a deep copy would copy every synapse."""
    def own(x):
        x = copy.copy(x)
        if isinstance(getattr(x, "meta", None), dict):
            x.meta = copy.deepcopy(x.meta)
        return x
    g = copy.copy(graph)
    g.inputs, g.populations = {n: own(x) for n, x in graph.inputs.items()}, {n: own(x) for n, x in graph.populations.items()}
    g.projections, g.outputs = {n: own(x) for n, x in graph.projections.items()}, {n: own(x) for n, x in graph.outputs.items()}
    g.meta = copy.deepcopy(graph.meta)
    return g


def _fan_in(p: Projection, axis: int = 1) -> np.ndarray:
    """Synapses per target neuron (axis=1: fan-in) or per source neuron (axis=0: fan-out)."""
    if isinstance(p, DenseProjection):
        return np.count_nonzero(p.weights, axis=axis)
    m: Any = p.weights
    if isinstance(p, SparseProjection) and np.count_nonzero(m.data) == m.nnz:  # every stored weight is a synapse: count them in place
        if axis == 1:
            return np.diff(m.indptr)
        step = 1 << 16  # column counts a piece at a time: bincount would copy every index to intp
        return sum((np.bincount(m.indices[i:i + step], minlength=m.shape[1]) for i in range(0, m.nnz, step)),
                   np.zeros(m.shape[1], np.int64))
    if isinstance(p, ConvProjection):
        from .netlist import conv_matrix

        m = conv_matrix(np.where(p.weights != 0, 1.0, 0.0), p.conv).tocsr()
    else:
        m = sp.csr_matrix(p.weights, copy=True)
    m.eliminate_zeros()
    return np.diff(m.indptr) if axis == 1 else np.diff(m.tocsc().indptr)
