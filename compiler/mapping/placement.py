"""Mapping pass: split populations into core-sized blocks and place the blocks on the chip mesh.

Why: a Loihi core holds a bounded number of neurons, synapses and axons; the compiler must cut
every layer into blocks that fit one core each, put the blocks on the mesh so that spikes travel
few hops, and spill onto more chips when one is full. The result (`Mapping`) is plain data:
reports and JSON read it, and the energy model prices the traffic between its blocks.

Cost model of one block (a contiguous range of a layer's neurons, C order) on one core:
- neurons: the block's size.
- input axons: one per distinct source neuron with at least one synapse into the block, per
  incoming projection (Loihi routes a spike to a core through one input axon).
- output axons: per neuron of the block, one per distinct destination core it reaches.
- synaptic memory, in bits, stored per input axon as a synapse list of whole words of
  `synapse_word_bits` (64 on Loihi):
  * dense: every axon's list holds a weight for *every* neuron of the block:
    `words(n_block * (w + d))`, with w = num_weight_bits (sign included, as Lava truncates) and
    d = bits of the largest delay (0 without delays);
  * sparse: a list holds only existing synapses, each with a target index of
    ceil(log2(n_block)) bits: `words(fan_out_j * (w + d + index_bits))` for axon j;
  * conv: with `shared_conv_kernels` (Loihi 2) the kernel slices of the output channels in the
    block are stored once per core: `words(channels * C_in/groups * kh * kw * w)`; otherwise
    (Loihi 1 default) the convolution is expanded into sparse synapses (one per connection).
A layer is split into the fewest equal blocks that all fit; a neuron that alone does not fit
raises `ResourceError` naming the layer, the resource, the need, the limit and a way out.

Placement: `greedy` fills cores in order (tile by tile, row by row, chip by chip) in topological
layer order; `locality` (default) builds a placement block by block (the block with most traffic
to what is already placed goes next, onto its cheapest free core), then moves and swaps blocks
while that lowers sum(traffic x hop energy) over all links, and keeps greedy if that is cheaper.
Traffic is what an `Activity` measured (spikes of the linked source neurons), a {projection:
messages per inference} dict, or, without either, one message per linked source neuron. Input populations are fed from the host through the
chip-0 corner tile (0, 0); they occupy no core. One block per core: small layers are not
packed together (as Lava places each process on its own cores).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Mapping as MappingT

import numpy as np
import scipy.sparse as sp

from snnc.ir.chip import ChipGraph, ConvProjection, DenseProjection, Population, Projection
from snnc.ir.conv import conv_pattern
from snnc.ir.errors import GraphError, ResourceError

from ..targets import ChipProfile, CostTable, get_profile
from ..passes.base import Pass, PassResult

RESOURCES = ("neurons", "synaptic_memory_bits", "input_axons", "output_axons")
_RESOURCE_TEXT = {
    "neurons": "neurons",
    "synaptic_memory_bits": "bits of synaptic memory",
    "input_axons": "input axons",
    "output_axons": "output axons",
    "cores": "cores",
}
_MAX_RANGES = 64


# -- result types -----------------------------------------------------------------------------------
@dataclass
class Block:
    """A contiguous range [start, stop) of one layer's neurons, mapped onto one core."""

    id: int
    layer: str
    index: int
    start: int
    stop: int
    neurons: int
    synaptic_memory_bits: int
    input_axons: int
    output_axons: int = 0
    synapses: dict[str, int] = field(default_factory=dict)  # stored connections per incoming projection
    chip: int = -1
    core: int = -1
    position: tuple[int, int] = (-1, -1)  # global (row, col) of the core's router tile

    def used(self) -> dict[str, int]:
        return {r: int(getattr(self, r)) for r in RESOURCES}


@dataclass
class Link:
    """Spike traffic from one source block (or a host input) to one destination block."""

    src: str  # source layer or input name
    src_block: int | None  # block id; None for an input fed from the host
    dst_block: int
    projections: list[str]
    src_neurons: int  # distinct source neurons with synapses into the destination block
    src_size: int  # neurons of the source block (or of the input)
    ranges: list[tuple[int, int]] | None  # those source neurons as [start, stop) ranges of the layer; None if too fragmented
    traffic: float = 0.0  # messages per inference used for placement
    hops_ew: int = 0
    hops_ns: int = 0
    chip_crossings: int = 0


@dataclass
class Mapping:
    """Where every block of every layer sits, what it uses, and the links between blocks."""

    profile: ChipProfile
    blocks: list[Block]
    links: list[Link]
    layers: dict[str, dict]
    projections: dict[str, dict]
    inputs: dict[str, dict]
    placement: str
    traffic_source: str
    chips_used: int
    cores_used: int
    placement_cost: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # -- queries --------------------------------------------------------------------------------
    def blocks_of(self, layer: str) -> list[Block]:
        return [b for b in self.blocks if b.layer == layer]

    @property
    def tiles_used(self) -> int:
        return len({(b.chip, b.core // self.profile.cores_per_tile) for b in self.blocks})

    def core_table(self) -> list[dict]:
        """One row per used core: placement, use and utilization (0..1) of each resource."""
        limits = self.profile.limits()
        rows = []
        for b in sorted(self.blocks, key=lambda b: (b.chip, b.core)):
            used = b.used()
            rows.append(
                {
                    "chip": b.chip,
                    "core": b.core,
                    "tile": list(b.position),
                    "layer": b.layer,
                    "block": b.index,
                    "neuron_range": [b.start, b.stop],
                    **used,
                    "utilization": {r: used[r] / limits[r] for r in RESOURCES},
                }
            )
        return rows

    def utilization(self) -> dict[str, dict]:
        """Per resource: total used, capacity of the used cores, mean and max fraction per core."""
        limits = self.profile.limits()
        out = {}
        for r in RESOURCES:
            used = np.array([getattr(b, r) for b in self.blocks], dtype=float)
            frac = used / limits[r]
            worst = int(np.argmax(frac)) if len(frac) else 0
            out[r] = {
                "used": int(used.sum()),
                "limit_per_core": limits[r],
                "capacity": limits[r] * self.cores_used,
                "mean": float(frac.mean()) if len(frac) else 0.0,
                "max": float(frac.max()) if len(frac) else 0.0,
                "max_core": (
                    {"chip": self.blocks[worst].chip, "core": self.blocks[worst].core, "layer": self.blocks[worst].layer}
                    if len(frac) else None
                ),
            }
        out["cores"] = {
            "used": self.cores_used,
            "capacity": self.chips_used * self.profile.cores_per_chip,
            "mean": self.cores_used / max(self.chips_used * self.profile.cores_per_chip, 1),
        }
        return out

    def message_hops(self) -> float:
        """Sum over links of traffic x router hops (messages x hops per inference)."""
        return float(sum(l.traffic * (l.hops_ew + l.hops_ns) for l in self.links))

    # -- serialization --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "profile": self.profile.to_dict(),
            "placement": self.placement,
            "traffic_source": self.traffic_source,
            "chips_used": self.chips_used,
            "cores_used": self.cores_used,
            "tiles_used": self.tiles_used,
            "placement_cost": dict(self.placement_cost),
            "message_hops": self.message_hops(),
            "utilization": self.utilization(),
            "layers": self.layers,
            "projections": self.projections,
            "inputs": self.inputs,
            "cores": self.core_table(),
            "blocks": [_block_dict(b) for b in self.blocks],
            "links": [_link_dict(l) for l in self.links],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Mapping":
        """Rebuild a Mapping from `to_dict()` output (e.g. a report.json)."""
        from ..targets import profile_from_dict

        blocks = [
            Block(**{**b, "position": tuple(b["position"])}) for b in d["blocks"]
        ]
        links = [
            Link(**{**l, "ranges": None if l["ranges"] is None else [tuple(r) for r in l["ranges"]]})
            for l in d["links"]
        ]
        return cls(
            profile=profile_from_dict(d["profile"]),
            blocks=blocks,
            links=links,
            layers=d["layers"],
            projections=d["projections"],
            inputs=d["inputs"],
            placement=d["placement"],
            traffic_source=d["traffic_source"],
            chips_used=d["chips_used"],
            cores_used=d["cores_used"],
            placement_cost=d.get("placement_cost", {}),
            notes=d.get("notes", []),
        )


def _block_dict(b: Block) -> dict:
    d = asdict(b)
    d["position"] = list(b.position)
    return d


def _link_dict(l: Link) -> dict:
    d = asdict(l)
    d["ranges"] = None if l.ranges is None else [list(r) for r in l.ranges]
    return d


# -- connectivity -----------------------------------------------------------------------------------
class _Conn:
    """Which source neurons reach which target neurons through one projection."""

    def __init__(self, proj: Projection, src_size: int, dst_size: int):
        self.proj = proj
        self.kind = proj.kind
        self.src_size = src_size
        self.dst_size = dst_size
        self.weight_bits = int(proj.num_weight_bits)
        self.delay_bits = int(proj.max_delay).bit_length()
        self.geometry = proj.conv if isinstance(proj, ConvProjection) else None
        if isinstance(proj, DenseProjection):
            self.dense = np.asarray(proj.weights) != 0
            self.csr = None
        else:
            self.dense = None
            self.csr = conv_pattern(proj.weights, proj.conv) if isinstance(proj, ConvProjection) else _sparse_pattern(proj.weights)

    @property
    def pattern(self) -> sp.csr_matrix:
        """The CSR pattern of a sparse or conv projection (a dense one keeps `dense` instead)."""
        if self.csr is None:
            raise TypeError(f"projection {self.proj.name!r} is dense: it has no CSR pattern")
        return self.csr

    def col_counts(self, a: int, b: int) -> np.ndarray:
        """Synapses from each source neuron into target neurons [a, b)."""
        if self.dense is not None:
            return self.dense[a:b].sum(axis=0)
        m = self.pattern  # the rows' column indices in place (a row slice would build a new matrix)
        return np.bincount(m.indices[m.indptr[a]:m.indptr[b]], minlength=self.src_size)

    def stored_synapses(self, a: int, b: int) -> int:
        if self.dense is not None:
            return int(self.dense[a:b].sum())
        indptr = self.pattern.indptr
        return int(indptr[b] - indptr[a])

    def memory_bits(self, a: int, b: int, counts: np.ndarray, word: int, shared_conv: bool) -> int:
        """Synaptic memory of target neurons [a, b) for this projection (see the module doc)."""
        n = b - a
        syn = self.weight_bits + self.delay_bits
        if self.kind == "dense":
            axons = int(np.count_nonzero(counts))
            return axons * _words(n * syn, word)
        g = self.geometry
        if g is not None and shared_conv:
            plane = g.out_shape[1] * g.out_shape[2]
            channels = (b - 1) // plane - a // plane + 1
            per_channel = (g.in_shape[0] // g.groups) * g.kernel[0] * g.kernel[1]
            return _words(channels * per_channel * self.weight_bits, word)
        index_bits = max(1, math.ceil(math.log2(max(n, 2))))
        c = counts[counts > 0].astype(np.int64)
        return int(np.sum(-(-(c * (syn + index_bits)) // word)) * word)

    def single_neuron_need(self, word: int, shared_conv: bool) -> tuple[np.ndarray, np.ndarray]:
        """(input axons, memory bits) each target neuron would need alone on a core."""
        if self.dense is not None:
            fan_in = self.dense.sum(axis=1)
        else:
            fan_in = np.diff(self.pattern.indptr)
        syn = self.weight_bits + self.delay_bits
        if self.kind == "dense":
            mem = fan_in * _words(syn, word)
        elif self.geometry is not None and shared_conv:
            g = self.geometry
            per_channel = (g.in_shape[0] // g.groups) * g.kernel[0] * g.kernel[1]
            mem = np.full(self.dst_size, _words(per_channel * self.weight_bits, word))
        else:
            mem = fan_in * _words(syn + 1, word)
        return fan_in.astype(np.int64), mem.astype(np.int64)


def _words(bits: int, word: int) -> int:
    return -(-int(bits) // word) * word


def _sparse_pattern(w) -> sp.csr_matrix:
    m = sp.csr_matrix(w, copy=True)
    m.eliminate_zeros()
    m.data = np.ones_like(m.data, dtype=np.int8)
    return m


def _ranges(mask: np.ndarray, offset: int = 0) -> list[tuple[int, int]] | None:
    """Runs of True in `mask` as [start, stop) ranges; None when more than _MAX_RANGES."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1)
    if breaks.size + 1 > _MAX_RANGES:
        return None
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    stops = np.concatenate([idx[breaks] + 1, [idx[-1] + 1]])
    return [(int(a) + offset, int(b) + offset) for a, b in zip(starts, stops)]


# -- splitting ----------------------------------------------------------------------------------------
@dataclass
class _Split:
    layer: str
    bounds: list[tuple[int, int]]
    memory: list[int]
    in_axons: list[int]
    synapses: list[dict[str, int]]


def _block_bounds(n: int, k: int) -> list[tuple[int, int]]:
    size = -(-n // k)
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def _evaluate(layer: str, n: int, k: int, conns: list[_Conn], profile: ChipProfile, out_need: np.ndarray | None):
    """Resources of the k-way split of a layer: (split, first violation or None)."""
    bounds = _block_bounds(n, k)
    limits = profile.limits()
    memory, in_axons, synapses = [], [], []
    for a, b in bounds:
        mem = axons = 0
        syn = {}
        for c in conns:
            counts = c.col_counts(a, b)
            axons += int(np.count_nonzero(counts))
            mem += c.memory_bits(a, b, counts, profile.synapse_word_bits, profile.shared_conv_kernels)
            syn[c.proj.name] = c.stored_synapses(a, b)
        used = {
            "neurons": b - a,
            "synaptic_memory_bits": mem,
            "input_axons": axons,
            "output_axons": int(out_need[a:b].sum()) if out_need is not None else 0,
        }
        for r in RESOURCES:
            if used[r] > limits[r]:
                return None, (r, used[r], limits[r], (a, b))
        memory.append(mem)
        in_axons.append(axons)
        synapses.append(syn)
    return _Split(layer, bounds, memory, in_axons, synapses), None


def _split_layer(layer: Population, conns: list[_Conn], profile: ChipProfile, out_need: np.ndarray | None) -> _Split:
    """Fewest equal contiguous blocks of `layer` that each fit one core (doubling, then bisection)."""
    n = layer.size
    k = max(1, -(-n // profile.neurons_per_core))
    split, _ = _evaluate(layer.name, n, k, conns, profile, out_need)
    if split is not None:
        return split
    bad = k
    while True:
        if bad >= n:
            raise _single_neuron_error(layer, conns, profile, out_need)
        k = min(n, bad * 2)
        split, _ = _evaluate(layer.name, n, k, conns, profile, out_need)
        if split is not None:
            break
        bad = k
    good, best = k, split
    lo = bad + 1
    while lo < good:
        mid = (lo + good) // 2
        cand, _ = _evaluate(layer.name, n, mid, conns, profile, out_need)
        if cand is not None:
            best, good = cand, mid
        else:
            lo = mid + 1
    return best


def _single_neuron_error(layer: Population, conns: list[_Conn], profile: ChipProfile, out_need) -> ResourceError:
    """Explain why one neuron of `layer` alone does not fit a core, with a way out."""
    word = profile.synapse_word_bits
    axons = np.zeros(layer.size, dtype=np.int64)
    mem = np.zeros(layer.size, dtype=np.int64)
    for c in conns:
        a, m = c.single_neuron_need(word, profile.shared_conv_kernels)
        axons += a
        mem += m
    limits = profile.limits()
    needs = {"input_axons": axons, "synaptic_memory_bits": mem}
    if out_need is not None:
        needs["output_axons"] = out_need.astype(np.int64)
    ratios = {r: needs[r].max() / limits[r] for r in needs}
    resource = max(ratios, key=ratios.__getitem__)
    worst = int(np.argmax(needs[resource]))
    need = int(needs[resource][worst])
    limit = limits[resource]
    names = [c.proj.name for c in conns]
    other = [f"{_RESOURCE_TEXT[r]} {int(needs[r][worst])} > {limits[r]}" for r in needs if r != resource and needs[r][worst] > limits[r]]
    if resource == "input_axons":
        hint = (
            f"reduce this layer's fan-in to at most {limit} source neurons per neuron (e.g. pool or split the "
            f"input into several layers whose outputs are summed), or target a chip with more input axons per core"
        )
    elif resource == "synaptic_memory_bits":
        bits = max(c.weight_bits for c in conns)
        fit = [b for b in range(bits - 1, 0, -1)
               if sum(int(_Conn_need_bits(c, worst, b, word, profile)) for c in conns) <= limit]
        lower = f"lower num_weight_bits from {bits} to {fit[0]}, " if fit else ""
        hint = (
            f"every input axon's synapse list takes at least one {word}-bit word, so one neuron needs "
            f"fan-in x {word} bits: {lower}reduce the fan-in (prune, pool or split the layer's input), "
            f"drop the delays, or target a chip with more synaptic memory per core"
        )
    else:
        hint = (
            f"neuron fans out to {need} cores; reduce its fan-out (fewer or larger target blocks, e.g. merge "
            f"target layers), or target a chip with more output axons per core"
        )
    err = ResourceError(
        f"layer does not fit one core, even one neuron at a time: needs {need} {_RESOURCE_TEXT[resource]}, "
        f"a core has {limit}" + (f" (also {', '.join(other)})" if other else ""),
        where=f"layer {layer.name!r} (neuron {worst}, fed by {', '.join(names) or 'nothing'}) on {profile.name}",
        expected=f"<= {limit} {_RESOURCE_TEXT[resource]} per core",
        got=need,
        hint=hint,
    )
    err.layer, err.resource, err.need, err.limit = layer.name, resource, need, limit
    return err


def _Conn_need_bits(c: _Conn, neuron: int, weight_bits: int, word: int, profile: ChipProfile) -> int:
    """Memory one neuron would need alone with `weight_bits` weights (for the hint)."""
    saved = c.weight_bits
    c.weight_bits = weight_bits
    try:
        _, mem = c.single_neuron_need(word, profile.shared_conv_kernels)
    finally:
        c.weight_bits = saved
    return int(mem[neuron])


# -- checks ---------------------------------------------------------------------------------------------
def _check_features(graph: ChipGraph, profile: ChipProfile) -> None:
    """Per-projection features the target must support (weight bits, delays, graded spikes)."""
    for p in graph.projections.values():
        where = f"projection {p.name!r} ({p.src} -> {p.dst}) on {profile.name}"
        if p.num_weight_bits > profile.max_weight_bits:
            raise ResourceError(
                f"weights need {p.num_weight_bits} bits, the target stores at most {profile.max_weight_bits}",
                where=where, expected=f"num_weight_bits <= {profile.max_weight_bits}", got=p.num_weight_bits,
                hint=f"quantize this projection to {profile.max_weight_bits} bits",
            )
        if p.max_delay > profile.max_delay:
            raise ResourceError(
                f"synaptic delay {p.max_delay} exceeds the target's {profile.max_delay}",
                where=where, expected=f"delay <= {profile.max_delay}", got=p.max_delay,
                hint="chain relay neurons to build longer delays",
            )
        src = graph.source(p.src)
        bits = max(p.num_message_bits, getattr(src, "num_message_bits", 0) or 0)
        if bits > profile.max_message_bits:
            raise ResourceError(
                f"graded spikes of {bits} bits, the target carries {profile.max_message_bits}"
                + (" (binary spikes only)" if profile.max_message_bits == 0 else ""),
                where=where, expected=f"num_message_bits <= {profile.max_message_bits}", got=bits,
                hint="rate-code the graded values into binary spikes, or target Loihi 2",
            )


def _layer_order(graph: ChipGraph) -> list[str]:
    try:
        return [name for comp in graph.population_order() for name in comp]
    except Exception:  # pragma: no cover - population_order only fails on malformed graphs
        return list(graph.populations)


# -- traffic ---------------------------------------------------------------------------------------------
def _traffic_fn(graph: ChipGraph, traffic: Any):
    """A function (src name, src neuron mask, projections, src_neurons) -> messages per inference."""
    if traffic is None:
        return "uniform (one message per linked source neuron)", lambda src, mask, projs, n: float(n)
    if isinstance(traffic, MappingT):
        per_proj = {str(k): float(v) for k, v in traffic.items()}
        unknown = set(per_proj) - set(graph.projections)
        if unknown:
            raise GraphError("traffic names unknown projections", where="map_to_cores(traffic=...)",
                             expected=sorted(graph.projections), got=sorted(unknown))

        def from_dict(src, mask, projs, n):
            size = graph.source(src).size
            return sum(per_proj.get(p, 0.0) * n / size for p in projs)

        return "given per projection", from_dict
    # An Activity (duck-typed: batch, populations, projections).
    act = traffic
    batch = max(int(getattr(act, "batch", 1) or 1), 1)
    pops = getattr(act, "populations", {}) or {}
    projs_act = getattr(act, "projections", {}) or {}
    known = [(pops[n].spikes, graph.populations[n].size) for n in pops if n in graph.populations]
    mean_rate = sum(s for s, _ in known) / max(sum(z for _, z in known), 1) / batch

    def from_activity(src, mask, projs, n):
        if src in pops:
            pa = pops[src]
            if pa.spike_counts is not None and np.size(pa.spike_counts) == mask.size:
                return float(np.asarray(pa.spike_counts).ravel()[mask].sum()) / batch
            return float(pa.spikes) * n / mask.size / batch
        size = graph.source(src).size
        msgs = [projs_act[p].messages_in for p in projs if p in projs_act]
        if msgs:
            return float(max(msgs)) * n / size / batch
        return mean_rate * n

    return "measured (Activity)", from_activity


# -- placement ---------------------------------------------------------------------------------------------
def _hop_weights(costs: CostTable) -> tuple[float, float, float]:
    w = (costs.e_hop_ew, costs.e_hop_ns, costs.e_chip_crossing)
    return w if any(w) else (1.0, 1.0, 1.0)


def _slot_positions(profile: ChipProfile, chips: int) -> list[tuple[int, int]]:
    """(chip, core) slots in greedy fill order: core order within a chip, chip by chip."""
    return [(chip, core) for chip in range(chips) for core in range(profile.cores_per_chip)]


def _place(blocks: list[Block], links: list[Link], profile: ChipProfile, chips: int, method: str) -> dict[str, float]:
    """Assign (chip, core) to every block; returns the placement cost of greedy and of the result.

    Cost = sum over links of traffic x hop energy (E-W, N-S, chip crossings) between the two
    cores (or from the host entry tile). `locality`: constructive placement (the block with most
    traffic to already placed blocks goes next, onto the free core that is cheapest for it;
    ties go to the block touched most recently, so chains stay together), then pairwise swaps
    while they lower the cost; never worse than greedy, which it falls back to.
    """
    weights = _hop_weights(profile.costs)
    scale = max(weights)
    w_ew, w_ns, w_chip = (w / scale for w in weights)  # relative, so tolerances are in hop units
    slots = _slot_positions(profile, chips)
    n_slots = len(slots)
    pos = np.array([profile.core_position(ch, co) for ch, co in slots], dtype=float)
    cpos = np.array([profile.chip_position(ch) for ch, _ in slots], dtype=float)
    entry = np.array(profile.core_position(0, 0), dtype=float)
    entry_chip = np.array(profile.chip_position(0), dtype=float)

    def dist_from(p, c):
        """Hop cost from a position (row, col) on chip-grid cell c to every slot."""
        return (w_ew * np.abs(pos[:, 1] - p[1]) + w_ns * np.abs(pos[:, 0] - p[0])
                + w_chip * (np.abs(cpos[:, 0] - c[0]) + np.abs(cpos[:, 1] - c[1])))

    dist = np.stack([dist_from(pos[j], cpos[j]) for j in range(n_slots)]) if n_slots <= 2048 else None
    d_entry = dist_from(entry, entry_chip)

    def drow(j):
        return dist[j] if dist is not None else dist_from(pos[j], cpos[j])

    # Adjacency: block -> {other block or -1 (host entry): traffic}.
    adj: list[dict[int, float]] = [dict() for _ in blocks]
    for l in links:
        if l.traffic <= 0:
            continue
        if l.src_block is None:
            adj[l.dst_block][-1] = adj[l.dst_block].get(-1, 0.0) + l.traffic
        elif l.src_block != l.dst_block:
            adj[l.dst_block][l.src_block] = adj[l.dst_block].get(l.src_block, 0.0) + l.traffic
            adj[l.src_block][l.dst_block] = adj[l.src_block].get(l.dst_block, 0.0) + l.traffic

    def total(slot_of: np.ndarray) -> float:
        t = 0.0
        for b, nbrs in enumerate(adj):
            for o, tr in nbrs.items():
                if o == -1:
                    t += tr * d_entry[slot_of[b]]
                elif o > b:
                    t += tr * drow(slot_of[b])[slot_of[o]]
        return float(t)

    greedy = np.arange(len(blocks))  # topological block order onto cores in row-major order
    costs = {"greedy": total(greedy) * scale}
    slot_of = greedy
    if method == "locality" and len(blocks) > 1:
        best = _constructive(adj, d_entry, drow, n_slots, len(blocks))
        best = _swap_refine(best, adj, d_entry, drow, pos, entry)
        if total(best) * scale < costs["greedy"]:
            slot_of = best
        else:
            slot_of = _swap_refine(greedy.copy(), adj, d_entry, drow, pos, entry)
    costs[method] = total(slot_of) * scale
    for b in blocks:
        chip, core = slots[int(slot_of[b.id])]
        b.chip, b.core = chip, core
        b.position = profile.core_position(chip, core)
    return costs


def _constructive(adj, d_entry, drow, n_slots: int, n_blocks: int) -> np.ndarray:
    """Place blocks one by one: most-connected to what is placed first, on its cheapest free core."""
    slot_of = np.full(n_blocks, -1)
    free = np.ones(n_slots, dtype=bool)
    score = np.array([nbrs.get(-1, 0.0) for nbrs in adj])  # traffic to placed blocks (+ host)
    touched = np.full(n_blocks, -1.0)
    touched[score > 0] = 0.0
    for step in range(n_blocks):
        unplaced = slot_of < 0
        key = np.where(unplaced, score, -np.inf)
        top = np.flatnonzero(key == key.max())
        b = int(top[np.argmax(touched[top])]) if key.max() > 0 else int(np.flatnonzero(unplaced)[0])
        cost = np.zeros(n_slots)
        for o, tr in adj[b].items():
            if o == -1:
                cost += tr * d_entry
            elif slot_of[o] >= 0:
                cost += tr * drow(slot_of[o])
        cost = np.where(free, cost, np.inf)
        s = int(np.argmin(cost))  # first (row-major) of the cheapest free cores
        slot_of[b], free[s] = s, False
        for o, tr in adj[b].items():
            if o >= 0 and slot_of[o] < 0:
                score[o] += tr
                touched[o] = step + 1
    return slot_of


def _swap_refine(slot_of: np.ndarray, adj, d_entry, drow, pos, entry, passes: int = 30) -> np.ndarray:
    """Move or swap blocks (onto cores near their neighbours) while the total cost drops."""
    slot_of = slot_of.copy()
    occupant = np.full(len(pos), -1)
    occupant[slot_of] = np.arange(len(slot_of))

    def cost_at(b, s, moved):
        c = 0.0
        for o, tr in adj[b].items():
            if o == -1:
                c += tr * d_entry[s]
            else:
                c += tr * drow(s)[moved.get(o, slot_of[o])]
        return c

    order = sorted(range(len(adj)), key=lambda b: -sum(adj[b].values()))
    for _ in range(passes):
        improved = False
        for b in order:
            if not adj[b]:
                continue
            s1 = int(slot_of[b])
            wsum = sum(adj[b].values())
            cen = sum(tr * (pos[slot_of[o]] if o != -1 else entry) for o, tr in adj[b].items()) / wsum
            cands = np.argsort(np.abs(pos - cen).sum(axis=1), kind="stable")[:24]
            best_delta, best_s = -1e-9 * wsum, None
            for s2 in cands:
                s2 = int(s2)
                if s2 == s1:
                    continue
                other = int(occupant[s2])
                moved = {b: s2} if other < 0 else {b: s2, other: s1}
                before = cost_at(b, s1, {}) + (cost_at(other, s2, {}) if other >= 0 else 0.0)
                after = cost_at(b, s2, moved) + (cost_at(other, s1, moved) if other >= 0 else 0.0)
                if after - before < best_delta:
                    best_delta, best_s = after - before, s2
            if best_s is not None:
                other = int(occupant[best_s])
                occupant[best_s], occupant[s1] = b, other
                slot_of[b] = best_s
                if other >= 0:
                    slot_of[other] = s1
                improved = True
        if not improved:
            break
    return slot_of


# -- the pass ------------------------------------------------------------------------------------------------
def map_to_cores(
    graph: ChipGraph,
    profile: ChipProfile | str = "loihi2",
    traffic: Any = None,
    *,
    placement: str = "locality",
) -> Mapping:
    """Split every population into core-sized blocks and place them on the mesh of `profile`.

    `traffic` weighs the links for placement: an `Activity` (measured), a dict
    {projection name: messages per inference}, or None (one message per linked neuron).
    `placement` is 'locality' (default) or 'greedy'. Raises ResourceError when a layer cannot
    fit (naming layer, resource, need and limit) or the network needs more chips than allowed.
    """
    profile = get_profile(profile)
    if placement not in ("locality", "greedy"):
        raise ResourceError("unknown placement method", where="map_to_cores", expected="'locality' or 'greedy'", got=placement)
    graph.validate()
    _check_features(graph, profile)
    order = _layer_order(graph)
    conns: dict[str, list[_Conn]] = {name: [] for name in graph.populations}
    for p in graph.projections.values():
        conns[p.dst].append(_Conn(p, graph.source(p.src).size, graph.populations[p.dst].size))

    # 1. Split by neurons, synaptic memory and input axons; then add the output-axon constraint
    #    (it depends on how the targets were split) until nothing changes.
    splits = {name: _split_layer(graph.populations[name], conns[name], profile, None) for name in order}
    out_need: dict[str, np.ndarray] = {}
    for _ in range(10):
        out_need = _output_needs(graph, conns, splits)
        changed = False
        for name in order:
            need = out_need[name]
            if any(need[a:b].sum() > profile.output_axons_per_core for a, b in splits[name].bounds):
                new = _split_layer(graph.populations[name], conns[name], profile, need)
                if new.bounds != splits[name].bounds:
                    splits[name] = new
                    changed = True
        if not changed:
            break
    else:  # pragma: no cover - needs a pathological recurrent fan-out
        raise ResourceError("output-axon split does not converge", where="map_to_cores", hint="reduce recurrent fan-out")

    # 2. Blocks in topological order.
    blocks: list[Block] = []
    layer_blocks: dict[str, list[Block]] = {}
    for name in order:
        s = splits[name]
        axon_need = out_need.get(name)
        layer_blocks[name] = []
        for i, (a, b) in enumerate(s.bounds):
            blk = Block(
                id=len(blocks), layer=name, index=i, start=a, stop=b, neurons=b - a,
                synaptic_memory_bits=s.memory[i], input_axons=s.in_axons[i],
                output_axons=int(axon_need[a:b].sum()) if axon_need is not None else 0,
                synapses=s.synapses[i],
            )
            blocks.append(blk)
            layer_blocks[name].append(blk)

    chips = max(1, -(-len(blocks) // profile.cores_per_chip))
    if profile.max_chips is not None and chips > profile.max_chips:
        biggest = max(layer_blocks, key=lambda n: len(layer_blocks[n]))
        err = ResourceError(
            f"network needs {len(blocks)} cores = {chips} chips, the target allows {profile.max_chips} "
            f"({profile.max_chips * profile.cores_per_chip} cores)",
            where=f"network on {profile.name} (largest layer {biggest!r}: {len(layer_blocks[biggest])} cores)",
            expected=f"<= {profile.max_chips * profile.cores_per_chip} cores",
            got=len(blocks),
            hint="shrink the largest layers, lower num_weight_bits, use sparse projections, or allow more chips (max_chips)",
        )
        err.layer, err.resource, err.need, err.limit = biggest, "cores", len(blocks), profile.max_chips * profile.cores_per_chip
        raise err

    # 3. Links between blocks, with their traffic.
    traffic_source, traffic_of = _traffic_fn(graph, traffic)
    links = _links(graph, conns, layer_blocks, traffic_of)

    # 4. Placement.
    costs = _place(blocks, links, profile, chips, placement)
    entry = profile.core_position(0, 0)
    for l in links:
        dst = blocks[l.dst_block]
        if l.src_block is None:
            src_pos, src_chip = entry, 0
        else:
            src_pos, src_chip = blocks[l.src_block].position, blocks[l.src_block].chip
        l.hops_ew = abs(dst.position[1] - src_pos[1])
        l.hops_ns = abs(dst.position[0] - src_pos[0])
        (r0, c0), (r1, c1) = profile.chip_position(src_chip), profile.chip_position(dst.chip)
        l.chip_crossings = abs(r1 - r0) + abs(c1 - c0)

    layers = {
        name: {
            "size": graph.populations[name].size,
            "model": graph.populations[name].model,
            "shape": list(graph.populations[name].shape),
            "blocks": [b.id for b in layer_blocks[name]],
            "cores": len(layer_blocks[name]),
            "block_size": layer_blocks[name][0].neurons,
            "incoming": [c.proj.name for c in conns[name]],
            "synaptic_memory_bits": sum(b.synaptic_memory_bits for b in layer_blocks[name]),
        }
        for name in order
    }
    component = {pop: i for i, comp in enumerate(graph.population_order()) for pop in comp}
    projections = {p.name: _projection_summary(p, graph, component) for p in graph.projections.values()}
    inputs = {
        name: {"size": inp.size, "shape": list(inp.shape), "entry_tile": list(entry), "num_message_bits": inp.num_message_bits}
        for name, inp in graph.inputs.items()
    }
    notes = [
        "one block per core; input populations are fed from the host through tile (0, 0) of chip 0 and use no core",
        f"synaptic memory: {profile.synapse_word_bits}-bit words per input-axon synapse list; "
        f"conv kernels {'shared per core' if profile.shared_conv_kernels else 'expanded into sparse synapses'}",
    ]
    return Mapping(
        profile=profile, blocks=blocks, links=links, layers=layers, projections=projections, inputs=inputs,
        placement=placement, traffic_source=traffic_source, chips_used=chips, cores_used=len(blocks),
        placement_cost=costs, notes=notes,
    )


def _output_needs(graph: ChipGraph, conns: dict[str, list[_Conn]], splits: dict[str, _Split]) -> dict[str, np.ndarray]:
    """Per source neuron: the number of distinct destination blocks (cores) it reaches."""
    need = {name: np.zeros(pop.size, dtype=np.int64) for name, pop in graph.populations.items()}
    for dst, cs in conns.items():
        by_src: dict[str, list[_Conn]] = {}
        for c in cs:
            by_src.setdefault(c.proj.src, []).append(c)
        for src, group in by_src.items():
            if src not in need:
                continue
            for a, b in splits[dst].bounds:
                mask = np.zeros(need[src].size, dtype=bool)
                for c in group:
                    mask |= c.col_counts(a, b) > 0
                need[src] += mask
    return need


def _links(graph, conns, layer_blocks, traffic_of) -> list[Link]:
    """One link per (source block or input, destination block) pair joined by any synapse."""
    links: list[Link] = []
    for dst, cs in conns.items():
        by_src: dict[str, list[_Conn]] = {}
        for c in cs:
            by_src.setdefault(c.proj.src, []).append(c)
        for src, group in by_src.items():
            names = [c.proj.name for c in group]
            src_blocks = layer_blocks.get(src)
            starts = np.array([b.start for b in src_blocks or ()], np.int64)  # used with src_blocks only
            for blk in layer_blocks[dst]:
                mask = np.zeros(graph.source(src).size, dtype=bool)
                for c in group:
                    mask |= c.col_counts(blk.start, blk.stop) > 0
                if src_blocks is None:  # an input population, fed from the host
                    n = int(mask.sum())
                    if n:
                        links.append(Link(
                            src=src, src_block=None, dst_block=blk.id, projections=names, src_neurons=n,
                            src_size=mask.size, ranges=_ranges(mask), traffic=traffic_of(src, mask, names, n),
                        ))
                    continue
                per_block = np.add.reduceat(mask.astype(np.int64), starts)
                for sblk, n in zip(src_blocks, per_block):
                    if not n:
                        continue
                    sub = np.zeros_like(mask)
                    sub[sblk.start:sblk.stop] = mask[sblk.start:sblk.stop]
                    links.append(Link(
                        src=src, src_block=sblk.id, dst_block=blk.id, projections=names, src_neurons=int(n),
                        src_size=sblk.neurons, ranges=_ranges(sub), traffic=traffic_of(src, sub, names, int(n)),
                    ))
    return links


def _projection_summary(p: Projection, graph: ChipGraph, component: dict[str, int]) -> dict:
    """What the energy model and reports need about a projection, as plain data.

    `recurrent`: source and target lie in one strongly connected component, so an equivalent ANN
    (an RNN) must evaluate this projection at every time step, not once per inference.
    """
    src, dst = graph.source(p.src), graph.populations[p.dst]
    if isinstance(p, ConvProjection):
        g = p.conv
        macs = dst.size * (g.in_shape[0] // g.groups) * g.kernel[0] * g.kernel[1]
    else:
        macs = dst.size * src.size
    return {
        "src": p.src,
        "dst": p.dst,
        "kind": p.kind,
        "synapses": p.num_synapses,
        "macs": int(macs),
        "recurrent": p.src in component and component[p.src] == component.get(p.dst),
        "num_weight_bits": int(p.num_weight_bits),
        "num_message_bits": int(p.num_message_bits),
        "max_delay": p.max_delay,
    }


@dataclass(frozen=True)
class MapToCores(Pass):
    """The mapping as a pass: the graph is returned unchanged, the mapping goes in the report
    (`report["mapping"]` is `Mapping.to_dict()`; `Mapping.from_dict` rebuilds it)."""

    name: ClassVar[str] = "map"
    level: ClassVar[str] = "chip"
    profile: Any = "loihi2"
    placement: str = "locality"

    def run(self, graph: ChipGraph) -> PassResult:
        self.check_level(graph)
        mapping = map_to_cores(graph, self.profile, placement=self.placement)
        summary = {
            "target": mapping.profile.name,
            "chips": mapping.chips_used,
            "cores": mapping.cores_used,
            "cores_per_layer": {n: l["cores"] for n, l in mapping.layers.items()},
        }
        return PassResult(graph, {**summary, "mapping": mapping.to_dict()})
