"""Split heterogeneous layers into sub-populations of equal chip parameters.

Why: a Loihi compartment profile (and Lava's LIF, `Var(shape=(1,))`) holds one du, dv and vth
per population, but trained models learn a time constant and a threshold per neuron (snnTorch's
`learn_beta`, Rockpool). Instead of refusing such a layer, its neurons are grouped so that each
group's decay factors and thresholds lie within `tolerance` of each other (0: exactly equal), and
each group becomes its own population `<layer>#<k>` with the same inputs (rows of every incoming
projection) and the same targets (columns of every outgoing projection). Neuron dynamics and
synaptic arithmetic are unchanged, so the split is exact; `Legalize` then collapses each group's
values to one (reporting any approximation, as for an unsplit layer).

Outputs are recombined by a merge population under the layer's own name: one neuron per original
neuron, fed by its group's spike through an identity synapse, that fires exactly when its source
fired (u = v = the one input, vth = 0, reset to zero). It lags one step, so its latency (and the
port's time shift) is one more than the layer's. Only spike outputs can be merged this way: a
heterogeneous layer read out by voltage or current is refused with a hint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from snnc.ir.chip import ChipGraph, ConvProjection, DenseProjection, OutputPort, Population, Projection, SparseProjection
from snnc.ir.errors import QuantizationError

from ..data.encoding import META_KEY
from ..data.encoding import record as record_encoding
from .base import Pass, PassResult
from .legalize import FACTOR
from .netlist import conv_matrix
from .registry import register_pass

_PER_NEURON = ("du", "dv", "vth", "bias_mant", "bias_exp", "v_reset")


def group_labels(values: np.ndarray, tolerance: float) -> np.ndarray:
    """Greedy 1-D clusters: sorted values join a group while within `tolerance` (relative) of the
    group's first value; returns a label per value, groups numbered in ascending value."""
    order = np.argsort(values, kind="stable")
    labels = np.empty(values.size, np.int64)
    label, start = -1, None
    for i in order:
        v = values[i]
        if start is None or abs(v - start) > tolerance * max(abs(start), 1e-12):
            label, start = label + 1, v
        labels[i] = label
    return labels


def neuron_groups(pop: Population, shared, tolerance: float) -> list[np.ndarray] | None:
    """Flat neuron indices per group, or None when the layer needs no split."""
    keys = []
    for param in shared:
        value = getattr(pop, param)
        if np.ndim(value) == 0:
            continue
        f = np.asarray(FACTOR[param](np.asarray(value).ravel()))
        ref = float(np.median(f))
        if np.max(np.abs(f - ref)) <= tolerance * max(abs(ref), 1e-12):
            continue  # Legalize collapses it within tolerance
        keys.append(group_labels(f, tolerance))
    if not keys:
        return None
    _, combo = np.unique(np.stack(keys, axis=1), axis=0, return_inverse=True)
    combo = np.asarray(combo).ravel()
    return [np.flatnonzero(combo == k) for k in range(combo.max() + 1)]


def split_heterogeneous(graph: ChipGraph, shared=("du", "dv", "vth"), tolerance: float = 0.01) -> tuple[ChipGraph, dict]:
    """(graph with heterogeneous layers split, report {layer: {groups, sizes, merged_output}})."""
    plans = {}
    for name, pop in graph.populations.items():
        if pop.model == "ternary":
            continue
        groups = neuron_groups(pop, shared, tolerance)
        if groups is not None and len(groups) > 1:
            plans[name] = groups
    if not plans:
        return graph, {}
    for port_name, port in graph.outputs.items():
        if port.population in plans and port.var != "s":
            raise QuantizationError(
                "a layer whose neurons have different time constants or thresholds is read out by "
                f"its {'voltage' if port.var == 'v' else 'current'}; split sub-populations can only be merged for spikes",
                where=f"output {port_name!r} (layer {port.population!r})",
                got=f"{len(plans[port.population])} parameter groups",
                hint="give the read-out layer one time constant, raise legalize's tolerance, or keep per-neuron "
                     "values with shared=() on a simulator target",
            )
    out = ChipGraph(dict(graph.inputs), {}, {}, {}, dict(graph.meta))
    parts: dict[str, list[tuple[str, Any]]] = {}  # layer -> [(sub name, flat neuron indices)]
    report: dict[str, dict] = {}
    for name, pop in graph.populations.items():
        if name not in plans:
            out.add(pop)
            continue
        parts[name] = []
        for k, idx in enumerate(plans[name]):
            sub = f"{name}#{k}"
            fields = {f: (np.asarray(getattr(pop, f)).ravel()[idx] if np.ndim(getattr(pop, f)) else getattr(pop, f))
                      for f in _PER_NEURON}
            out.add(Population(
                sub, (idx.size,), model=pop.model, reset_interval=pop.reset_interval, reset_offset=pop.reset_offset,
                reset_mode=pop.reset_mode, relay_shift=pop.relay_shift,
                meta={**pop.meta, "split_of": name, "neurons": idx.tolist()}, **fields,
            ))
            parts[name].append((sub, idx))
        report[name] = {"groups": len(plans[name]), "sizes": [int(i.size) for i in plans[name]]}

    for p in graph.projections.values():
        srcs = parts.get(p.src, [(p.src, None)])
        dsts = parts.get(p.dst, [(p.dst, None)])
        if len(srcs) == 1 and len(dsts) == 1:
            out.add(p)
            continue
        w = p.effective_weights()
        if isinstance(p, ConvProjection):
            w = conv_matrix(np.asarray(w, dtype=np.float64), p.conv).astype(np.int64)
        w = np.asarray(w) if isinstance(p, DenseProjection) else sp.csr_matrix(w)
        for s_name, s_idx in srcs:
            for d_name, d_idx in dsts:
                sub_w = w if d_idx is None else w[d_idx]
                sub_w = sub_w if s_idx is None else sub_w[:, s_idx]
                delay = p.delay
                if np.ndim(delay):
                    delay = np.asarray(delay)
                    delay = delay if d_idx is None else delay[d_idx]
                    delay = delay if s_idx is None else delay[:, s_idx]
                block = _sub_projection(p, f"{p.name}#{s_name}>{d_name}", s_name, d_name, sub_w, delay)
                if block is not None:
                    out.add(block)

    for port_name, port in graph.outputs.items():
        if port.population not in parts:
            out.outputs[port_name] = port
            continue
        name = port.population
        merged = _merge(out, graph.populations[name], parts[name])
        report[name]["merged_output"] = merged
        out.outputs[port_name] = OutputPort(merged, "s")
    shifts = [int(out.populations[o.population].meta.get("latency") or 0) for o in out.outputs.values()]
    if shifts:
        out.meta["time_shift"] = max([int(out.meta.get("time_shift") or 0), *shifts])
    if META_KEY in out.meta:  # the float <-> chip contract: a merged port lags one step more
        record_encoding(out)
    return out.validate(), report


def _sub_projection(p: Projection, name, src, dst, weights, delay) -> Projection | None:
    """The block of `p` between two (sub-)populations, applying exactly the same synapses."""
    dense = not sp.issparse(weights)
    if (np.count_nonzero(weights) if dense else weights.nnz) == 0:
        return None
    candidates = [(weights, p.weight_exp)]
    values = weights if dense else weights.data
    if np.all(values % 2 == 0):  # a one-signed block clips -256 differently: halve at exponent + 1
        if dense:
            halved = weights // 2
        else:
            halved = weights.copy()
            halved.data = halved.data // 2
        candidates.append((halved, p.weight_exp + 1))
    for w, exp in candidates:
        kind = DenseProjection if dense else SparseProjection
        q = kind(name, src, dst, w, weight_exp=exp, num_weight_bits=p.num_weight_bits, num_message_bits=p.num_message_bits, delay=delay, meta=dict(p.meta))
        got = q.effective_weights()
        if (np.array_equal(got, w) if dense else (got != w).nnz == 0):
            return q
    raise QuantizationError(
        "a block of a split layer's projection cannot keep its weights exactly", where=f"projection {p.name!r}",
        hint="compile with shared=() on a simulator target",
    )


def _merge(g: ChipGraph, pop: Population, parts) -> str:
    """A population that re-emits the groups' spikes in the original neuron order (one step later)."""
    name = f"{pop.name}#out"
    latency = int(pop.meta.get("latency") or 0) + 1
    g.add(Population(name, pop.shape, du=4095, dv=4095, vth=0, meta={"role": "merge", "merge_of": pop.name, "latency": latency}))
    for sub, idx in parts:
        eye = sp.csr_matrix((np.ones(idx.size, np.int64), (idx, np.arange(idx.size))), shape=(math.prod(pop.shape), idx.size))
        g.add(SparseProjection(f"{sub}>{name}", sub, name, eye, num_weight_bits=8, meta={"float_delay": 0, "role": "merge"}))
    return name


@dataclass(frozen=True)
class Split(Pass):
    """Heterogeneous layers as sub-populations of equal parameters (see module docstring); run it
    right before `legalize`, with the same `shared` and `tolerance`."""

    shared: tuple[str, ...] = ("du", "dv", "vth")
    tolerance: float = 0.01

    name: ClassVar[str] = "split"
    level: ClassVar[str] = "chip"

    def run(self, graph: ChipGraph) -> PassResult:
        self.check_level(graph)
        g, split = split_heterogeneous(graph, tuple(self.shared), self.tolerance)
        cost = {"populations": [len(graph.populations), len(g.populations)], "projections": [len(graph.projections), len(g.projections)]}
        notes = [
            f"layer {name!r}: {s['groups']} groups of per-neuron time constants/thresholds "
            f"({'+'.join(map(str, s['sizes']))} neurons) run as populations {name}#0..{name}#{s['groups'] - 1}"
            + (f"; its output is re-emitted in order by {s['merged_output']!r}, one step later (port time shift + 1)"
               if "merged_output" in s else "")
            for name, s in split.items()
        ]
        if split:  # every block between two groups is its own projection: g x g' for a split recurrent layer
            notes.append(f"splitting took the graph from {cost['populations'][0]} to {cost['populations'][1]} populations and "
                         f"{cost['projections'][0]} to {cost['projections'][1]} projections (raise tolerance for fewer groups)")
        return PassResult(g, {"split": split, "notes": notes, "cost": cost if split else {}})


register_pass(Split)
