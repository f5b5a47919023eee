"""Timing: delays that keep every path into a population in step with the float model.

Why: the float reference delivers a feed-forward spike within the same step and a recurrent one
a step later (`backends/reference`), while on Loihi every projection adds one step (a spike
emitted at step t reaches the target's current at t+1+delay). Naively mapped, a recurrent
layer's input arrives a step late but its own feedback does not, and a skip connection arrives
earlier than the deep branch it is summed with: a different network.

So each population P gets a latency L(P) >= 1: the chip's step t + L(P) computes the float model's
step t (inputs have L = 0). A projection src -> dst whose float path has delay f (recurrent
edges 1 step, Delay nodes their length) then needs the synaptic delay

    d = L(dst) - L(src) - 1 + f      (0 <= d <= 62)

The smallest consistent latencies are longest paths with arc weights 1 - f; a loop whose float
delay is shorter than its number of projections has no solution (the chip needs a step per
projection) and is an error naming the loop. All output populations are then brought to one
common latency, the graph's `time_shift`: the chip's outputs lag the float model by exactly that
many steps (`RunResult.time_shift` / `aligned()` undo it).

On a NIR-level graph the pass writes `snnc_latency` into each neuron node's metadata and
`snnc_time_shift` into the graph metadata (the quantizer turns them into projection delays); on a
ChipGraph it sets `Projection.delay` from each projection's `meta["float_delay"]` and
`meta["time_shift"]` directly (a conv projection that needs a delay becomes sparse: Lava's Conv
has none).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from snnc.ir.bits import SPECS
from snnc.ir.chip import ChipGraph, ConvProjection, DenseProjection, Projection, SparseProjection
from snnc.ir.errors import GraphError, QuantizationError

from .base import Pass, PassResult
from .netlist import META_EXTRA_DELAY, META_LATENCY, META_TIME_SHIFT, conv_matrix, lower

MAX_DELAY = SPECS["delay"].hi


@dataclass
class Arc:
    name: str
    src: str
    dst: str
    min_f: int
    max_f: int


def solve_latencies(
    fixed: dict[str, int], neurons: list[str], arcs: list[Arc], outputs: list[str], max_delay: int = MAX_DELAY,
    extra: dict[str, int] | None = None,
) -> tuple[dict[str, int], int, dict[str, int]]:
    """(latency per population, time shift, delay per arc). See the module docstring.

    `extra`: when given, a loop that is too fast for the chip is not an error: the steps it lacks
    are added to its slowest arc (recorded here by arc name), the closest the chip can do."""
    if extra is not None:
        while True:
            try:
                return solve_latencies(fixed, neurons, arcs, outputs, max_delay)
            except LoopTooFast as err:
                arc = max(err.arcs, key=lambda a: (a.min_f, a.name))
                extra[arc.name] = extra.get(arc.name, 0) + err.deficit
                arcs = [Arc(a.name, a.src, a.dst, a.min_f + err.deficit, a.max_f + err.deficit) if a is arc else a for a in arcs]
    lower_bound = {n: 1 for n in neurons}

    def solve() -> dict[str, int]:
        lat = dict(fixed)
        lat.update(lower_bound)
        for _ in range(len(lat) + 1):
            changed = False
            for a in arcs:
                need = lat[a.src] + 1 - a.min_f
                if a.dst in fixed:
                    raise GraphError("a projection targets an input", where=a.name)
                if need > lat[a.dst]:
                    lat[a.dst] = need
                    changed = True
            if not changed:
                return lat
        raise _loop_error(lat, arcs)

    lat = solve()
    if outputs:
        shift = max(lat[o] for o in outputs)
        free = dict(lat)
        for o in outputs:
            lower_bound[o] = max(lower_bound.get(o, 1), shift)
        lat = solve()
        if any(lat[o] != shift for o in outputs):
            # one output population feeds another: no common lag exists. Keep each output at its own
            # latency (exact per port; CompileResult.output_shifts / RunResult.aligned(output=...))
            for o in outputs:
                lower_bound[o] = 1
            lat = free
            shift = max(lat[o] for o in outputs)
    else:
        shift = 0
    delays = {}
    for a in arcs:
        d_max = lat[a.dst] - lat[a.src] - 1 + a.max_f
        if d_max > max_delay:
            raise QuantizationError(
                "aligning this projection with the float model needs a longer synaptic delay than the chip has",
                where=f"projection {a.name!r} ({a.src} -> {a.dst})",
                expected=f"delay <= {max_delay} steps",
                got=d_max,
                hint="shorten Delay nodes or the depth difference of skip connections, or compile with a larger dt",
            )
        delays[a.name] = lat[a.dst] - lat[a.src] - 1
    return lat, shift, delays


class LoopTooFast(GraphError):
    """A loop takes more chip steps (one per projection) than float steps; `arcs` are its projections."""

    def __init__(self, *args, arcs: list[Arc], deficit: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.arcs, self.deficit = arcs, deficit


def _loop_error(lat: dict[str, int], arcs: list[Arc]) -> GraphError:
    import networkx as nx

    g = nx.DiGraph()
    by_name = {a.name: a for a in arcs}
    for a in arcs:
        if g.has_edge(a.src, a.dst) and g.edges[a.src, a.dst]["w"] >= 1 - a.min_f:
            continue  # parallel projections: the fastest one decides
        g.add_edge(a.src, a.dst, w=1 - a.min_f, name=a.name)
    for cycle in nx.simple_cycles(g):
        pairs = list(zip(cycle, cycle[1:] + cycle[:1]))
        if sum(g.edges[p]["w"] for p in pairs) > 0:
            names = [g.edges[p]["name"] for p in pairs]
            float_delay = sum(1 - g.edges[p]["w"] for p in pairs)
            return LoopTooFast(
                f"loop {' -> '.join(cycle + cycle[:1])} takes {len(pairs)} chip steps (one per projection) "
                f"but only {float_delay} step(s) in the float model",
                where=f"projections {names}",
                hint="add a Delay node on the loop (one step per extra projection), fold the loop into one layer, "
                "or compile with Timing(approximate_loops=True) to add the missing steps (reported)",
                arcs=[by_name[n] for n in names], deficit=len(pairs) - float_delay,
            )
    return GraphError("inconsistent loop latencies", hint="a bug: no positive loop found")


@dataclass(frozen=True)
class Timing(Pass):
    """Compute population latencies and projection delays (see module docstring)."""

    max_delay: int = MAX_DELAY
    approximate_loops: bool = True

    name: ClassVar[str] = "timing"
    level: ClassVar[str] = "any"

    def run(self, graph: Any) -> PassResult:
        if isinstance(graph, ChipGraph):
            return self._run_chip(graph)
        self.check_level(graph)
        net = lower(graph)
        fixed = {n: 0 for n, p in net.pops.items() if p.kind == "input"}
        neurons = [n for n, p in net.pops.items() if p.kind == "neuron"]
        arcs = [Arc(p.name, p.src, p.dst, p.min_delay, p.max_delay) for p in net.projs]
        outputs = [pop for pop, _ in net.outputs.values()]
        extra: dict[str, int] | None = {} if self.approximate_loops else None
        lat, shift, delays = solve_latencies(fixed, neurons, arcs, outputs, self.max_delay, extra)
        g = graph.copy()
        if extra:
            g.metadata = dict(g.metadata)
            g.metadata[META_EXTRA_DELAY] = {k: int(v) for k, v in extra.items()}
        for n in neurons:
            node = g.nodes[n]
            node.metadata = dict(node.metadata or {})
            node.metadata[META_LATENCY] = int(lat[n])
        g.metadata = dict(g.metadata)
        g.metadata[META_TIME_SHIFT] = int(shift)
        report = self._report(lat, shift, delays, arcs, fixed, outputs)
        for name, steps in (extra or {}).items():
            report["notes"].append(
                f"timing changed: the loop through projection {name!r} is faster in the float model than the chip can run it "
                f"(one step per projection); compiled with {steps} extra step(s) of delay on it, an approximation"
            )
        report["extra_delay"] = dict(extra or {})
        return PassResult(g, report)

    def _run_chip(self, graph: ChipGraph) -> PassResult:
        fixed = {n: 0 for n in graph.inputs}
        fixed.update({n: 0 for n, p in graph.populations.items() if p.meta.get("role") == "bias"})
        neurons = [n for n in graph.populations if n not in fixed]
        arcs = []
        for p in graph.projections.values():
            f = p.meta.get("float_delay")
            if f is None:
                raise GraphError(
                    "projection has no meta['float_delay'] (its delay in the float model)",
                    where=f"projection {p.name!r}",
                    hint="chip graphs built by snnc's quantize pass carry it; set it for hand-built graphs",
                )
            arcs.append(Arc(p.name, p.src, p.dst, int(np.min(f)), int(np.max(f))))
        outputs = [o.population for o in graph.outputs.values()]
        lat, shift, delays = solve_latencies(fixed, neurons, arcs, outputs, self.max_delay)
        g = ChipGraph(dict(graph.inputs), dict(graph.populations), {}, dict(graph.outputs), dict(graph.meta))
        for p in graph.projections.values():
            f = p.meta["float_delay"]
            d = delays[p.name] + (np.asarray(f, dtype=np.int64) if np.ndim(f) else int(f))
            g.add(with_delay(p, d))
        for n, L in lat.items():
            if n in g.populations:
                g.populations[n].meta["latency"] = int(L)
        g.meta["time_shift"] = int(shift)
        return PassResult(g, self._report(lat, shift, delays, arcs, fixed, outputs))

    @staticmethod
    def _report(lat, shift, delays, arcs, fixed, outputs=()) -> dict:
        per_port = {o: int(lat[o]) for o in outputs}
        notes = []
        if len(set(per_port.values())) > 1:
            notes.append("outputs lag the float model by different numbers of steps (an output feeds another): "
                         + ", ".join(f"{o} {v}" for o, v in per_port.items()) + "; each port is aligned by its own shift")
        return {
            "notes": notes,
            "output_latency": per_port,
            "time_shift": int(shift),
            "latency": {n: int(v) for n, v in lat.items() if n not in fixed},
            "delay": {a.name: int(delays[a.name] + a.min_f) for a in arcs},
            # steps added beyond the naive mapping (recurrent edge = the chip's own step)
            "added_delay": {
                a.name: int(delays[a.name] + a.min_f - max(a.min_f - 1, 0))
                for a in arcs
                if delays[a.name] + a.min_f != max(a.min_f - 1, 0)
            },
        }


def with_delay(p: Projection, delay) -> Projection:
    """A copy of `p` with `delay` (a conv projection that needs one becomes sparse)."""
    cls: type[Projection] = type(p)
    weights = p.weights
    if isinstance(p, ConvProjection) and np.any(np.asarray(delay) != 0):
        weights = sp.csr_matrix(conv_matrix(np.asarray(p.weights, dtype=np.float64), p.conv).astype(np.int64))
        weights.eliminate_zeros()
        cls = SparseProjection
    if np.ndim(delay):
        cls = DenseProjection  # per-synapse delays need dense weights: DenseProjection densifies sparse ones
    if np.ndim(delay) and np.all(delay == np.ravel(delay)[0]):
        delay = int(np.ravel(delay)[0])
    return cls(
        name=p.name, src=p.src, dst=p.dst, weights=weights, weight_exp=p.weight_exp, num_weight_bits=p.num_weight_bits,
        num_message_bits=p.num_message_bits, delay=delay, conv=p.conv if cls is ConvProjection else None, meta=dict(p.meta),
    )
