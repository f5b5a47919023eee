"""Energy and latency model: activity counters x per-operation costs, per layer and per inference.

Why: a spiking network's energy on Loihi depends on what it *does* (synaptic ops, neuron updates,
spikes and the mesh hops they travel), not on its size alone. The `sim` backend counts the
operations (`snnc.backends.base.Activity`), the mapping says where every block sits, and a
`CostTable` (compiler/targets.py) prices each operation with a published figure.

Per inference (every counter is divided by `Activity.batch`):
    synaptic   = synaptic_ops x E_syn(kind of projection)                  -> target layer
    neuron     = active_updates x E_active + (updates - active) x E_inactive
    spike_out  = spikes x E_spike_out                                       -> source layer
    message    = messages x E_message      (one message per spike per destination core)
    hop_ew/ns  = messages x hops x E_hop   (dimension-ordered route on the mesh)
    chip       = messages x chips crossed x E_chip_crossing
    static     = static power per chip x chips x run time per inference
Latency per step = the slowest core's work that step (its synaptic ops, neuron updates, spikes
and messages times their per-operation times) + the longest route in use (on steps where spikes
are sent or received) + the barrier sync of the tiles in use. Run time per inference = sum over steps.

Baselines, each labelled as such in every report: the literature's SynOps figure (SynOps x
0.9 pJ, a 45 nm fp32 add) and an ANN that runs the same layers once per inference on a GPU/CPU
(MACs x 4.6 pJ fp32 or 0.23 pJ int8; Horowitz 2014), compute only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np

from snnc.ir.errors import ParameterError
from snnc.ir.fixed_point import SIGMA_DELTA_KINDS

from ..mapping import Link, Mapping
from ..targets import (
    E_FP32_ADD,
    E_FP32_MAC,
    E_INT8_MAC,
    HOROWITZ_2014,
    CostTable,
    get_cost_table,
)

COST_TYPES = (
    "synaptic",
    "neuron_active",
    "neuron_inactive",
    "spike_out",
    "message",
    "hop_ew",
    "hop_ns",
    "chip_crossing",
)
UPDATE_COST_FACTOR = {"product": 2.0, "atrlif": 2.0, "delta": 1.0, "sigma_delta": 2.0, "sigma": 1.0, "lif_refractory": 1.0,
                      "rf": 2.0, "rf_iz": 2.0}
"""ASSUMPTION: a neuron update of these kinds (Loihi 2 microcode: ProdNeuron multiplies two inputs,
ATRLIF updates four states; a SigmaDelta accumulates sigma, applies its activation and
delta-encodes it, a Delta only encodes, a Sigma only accumulates; a refractory LIF is a CUBA update
whose v is held while a counter runs down, which Loihi's compartment does natively; RF / RF_IZ
rotate two states with four multiplies and take two inputs, where CUBA decays two states with
two) costs this many CUBA neuron updates; no per-kind figure is published."""


@dataclass
class LayerEnergy:
    """Counts and energy (J) of one layer (or host input) per inference, by cost type."""

    layer: str
    kind: str  # "population" or "input"
    synaptic_ops: float = 0.0
    neuron_updates: float = 0.0
    active_updates: float = 0.0
    spikes: float = 0.0
    messages: float = 0.0
    hops: float = 0.0  # messages x router hops
    energy: dict[str, float] = field(default_factory=lambda: {t: 0.0 for t in COST_TYPES})

    @property
    def total(self) -> float:
        return float(sum(self.energy.values()))

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "kind": self.kind,
            "synaptic_ops": self.synaptic_ops,
            "neuron_updates": self.neuron_updates,
            "active_updates": self.active_updates,
            "spikes": self.spikes,
            "messages": self.messages,
            "hops": self.hops,
            "energy_j": dict(self.energy),
            "total_j": self.total,
        }


@dataclass
class Latency:
    """Modelled time of every step (averaged over the batch) and per inference."""

    step_s: np.ndarray  # [T] total per step
    compute_s: np.ndarray  # [T] slowest core's work
    routing_s: np.ndarray  # [T] longest route used that step
    barrier_s: float
    slowest_block: np.ndarray  # [T] block id of the slowest core
    tiles: int

    @property
    def per_inference_s(self) -> float:
        return float(self.step_s.sum())

    @property
    def mean_step_s(self) -> float:
        return float(self.step_s.mean()) if self.step_s.size else 0.0

    def to_dict(self) -> dict:
        return {
            "per_inference_s": self.per_inference_s,
            "mean_step_s": self.mean_step_s,
            "max_step_s": float(self.step_s.max()) if self.step_s.size else 0.0,
            "barrier_s": self.barrier_s,
            "tiles": self.tiles,
            "step_s": self.step_s.tolist(),
            "compute_s": self.compute_s.tolist(),
            "routing_s": self.routing_s.tolist(),
            "slowest_block": self.slowest_block.tolist(),
        }


@dataclass
class Comparison:
    """A figure computed another way, for context (never mixed into the estimate)."""

    name: str
    label: str
    energy_j: float
    source: str

    def to_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "energy_j": self.energy_j, "source": self.source}


@dataclass
class EnergyReport:
    """Energy per inference by layer and by cost type, static energy, latency, baselines."""

    table: CostTable
    target: str
    batch: int
    steps: int
    layers: dict[str, LayerEnergy]
    static_power_w: float
    chips: int
    run_time_s: float
    run_time_source: str
    latency: Latency
    comparisons: list[Comparison]
    assumptions: list[str]

    @property
    def by_type(self) -> dict[str, float]:
        return {t: float(sum(l.energy[t] for l in self.layers.values())) for t in COST_TYPES}

    @property
    def dynamic_j(self) -> float:
        return float(sum(l.total for l in self.layers.values()))

    @property
    def static_j(self) -> float:
        return self.static_power_w * self.chips * self.run_time_s

    @property
    def total_j(self) -> float:
        return self.dynamic_j + self.static_j

    @property
    def synaptic_ops(self) -> float:
        return float(sum(l.synaptic_ops for l in self.layers.values()))

    def to_dict(self) -> dict:
        return {
            "cost_table": self.table.to_dict(),
            "target": self.target,
            "batch": self.batch,
            "steps": self.steps,
            "per_inference": True,
            "dynamic_j": self.dynamic_j,
            "static_j": self.static_j,
            "total_j": self.total_j,
            "static_power_w_per_chip": self.static_power_w,
            "chips": self.chips,
            "run_time_s": self.run_time_s,
            "run_time_source": self.run_time_source,
            "synaptic_ops": self.synaptic_ops,
            "by_type_j": self.by_type,
            "layers": {k: v.to_dict() for k, v in self.layers.items()},
            "latency": self.latency.to_dict(),
            "comparisons": [c.to_dict() for c in self.comparisons],
            "assumptions": list(self.assumptions),
        }


def _per_step(total: float, arr, steps: int, batch: int) -> np.ndarray:
    """A per-step series per inference: the recorded one, or the total spread evenly."""
    if arr is not None and np.size(arr) == steps:
        return np.asarray(arr, dtype=float).ravel() / batch
    return np.full(steps, float(total) / batch / max(steps, 1))


def link_messages(link: Link, mapping: Mapping, activity) -> float:
    """Messages per inference on one link: the spikes of its linked source neurons."""
    batch = max(int(activity.batch), 1)
    pops = activity.populations
    if link.src in pops:
        pa = pops[link.src]
        size = mapping.layers[link.src]["size"] if link.src in mapping.layers else mapping.inputs[link.src]["size"]
        counts = None if pa.spike_counts is None else np.asarray(pa.spike_counts).ravel()
        if counts is not None and counts.size == size:
            if link.ranges is not None:
                return float(sum(counts[a:b].sum() for a, b in link.ranges)) / batch
            if link.src_block is not None:
                blk = mapping.blocks[link.src_block]
                return float(counts[blk.start:blk.stop].sum()) * link.src_neurons / link.src_size / batch
        return float(pa.spikes) * link.src_neurons / size / batch
    if link.src in mapping.inputs:
        size = mapping.inputs[link.src]["size"]
        msgs = [activity.projections[p].messages_in for p in link.projections if p in activity.projections]
        return float(max(msgs, default=0)) * link.src_neurons / size / batch
    return 0.0


def _ann_macs(mapping: Mapping, steps: int) -> tuple[float, str]:
    """MACs of the equivalent ANN per inference, and how it was counted.

    A feed-forward network is one forward pass. A network with recurrent projections is an RNN:
    its equivalent runs every layer at every time step (the inputs are sequences), so MACs x T.
    """
    macs = float(sum(p["macs"] for p in mapping.projections.values()))
    if any(p.get("recurrent") for p in mapping.projections.values()):
        return macs * steps, f"an RNN evaluated at each of {steps} steps"
    return macs, "one forward pass"


def estimate_energy(
    activity,
    mapping: Mapping,
    *,
    costs: CostTable | str | None = None,
    run_time_s: float | None = None,
) -> EnergyReport:
    """Energy and latency per inference of a run (`activity`) on a mapped network.

    `costs` defaults to the mapping's target table; `run_time_s` (measured wall time per
    inference) replaces the modelled run time for the static energy when given.
    """
    table = get_cost_table(costs) if costs is not None else mapping.profile.costs
    batch = int(getattr(activity, "batch", 0) or 0)
    steps = int(getattr(activity, "steps", 0) or 0)
    if batch <= 0 or steps <= 0:
        raise ParameterError(
            "activity must have a positive batch and number of steps",
            where="estimate_energy(activity)",
            expected="batch >= 1 and steps >= 1",
            got=(batch, steps),
            hint="pass the Activity of a run (RunResult.activity)",
        )
    assumptions = list(table.assumptions)
    layers: dict[str, LayerEnergy] = {}
    for name in mapping.inputs:
        layers[name] = LayerEnergy(name, "input")
    for name in mapping.layers:
        layers[name] = LayerEnergy(name, "population")

    # Synaptic ops, attributed to the target layer.
    for name, proj in mapping.projections.items():
        pa = activity.projections.get(name)
        if pa is None:
            assumptions.append(f"no activity for projection {name!r}: counted 0 synaptic ops")
            continue
        ops = pa.synaptic_ops / batch
        le = layers[proj["dst"]]
        le.synaptic_ops += ops
        le.energy["synaptic"] += ops * table.e_syn(proj["kind"])

    # Neuron updates and spikes.
    for name, info in mapping.layers.items():
        le = layers[name]
        pa = activity.populations.get(name)
        if pa is None:
            assumptions.append(f"no activity for layer {name!r}: counted {info['size']} x {steps} inactive updates, no spikes")
            updates, active, spikes = info["size"] * steps, 0.0, 0.0
        else:
            updates, active, spikes = pa.neuron_updates / batch, pa.active_updates / batch, pa.spikes / batch
        le.neuron_updates, le.active_updates, le.spikes = updates, active, spikes
        factor = UPDATE_COST_FACTOR.get(info.get("model", "lif"), 1.0)
        if factor != 1.0 or info.get("model") in (*SIGMA_DELTA_KINDS, "lif_refractory"):
            assumptions.append(f"layer {name!r} ({info['model']}): one update assumed to cost {factor:g} CUBA updates (no published figure)")
        if info.get("model") in SIGMA_DELTA_KINDS:
            assumptions.append(f"layer {name!r} ({info['model']}): each nonzero graded message is priced as one spike "
                               "(spike_out, message, hops: a Loihi 2 spike message carries up to 24 payload bits)")
        le.energy["neuron_active"] += active * table.e_neuron_active * factor
        le.energy["neuron_inactive"] += (updates - active) * table.e_neuron_inactive * factor
        le.energy["spike_out"] += spikes * table.e_spike_out

    # Messages and hops, attributed to the sender.
    link_msgs = []
    for link in mapping.links:
        m = link_messages(link, mapping, activity)
        link_msgs.append(m)
        le = layers[link.src]
        le.messages += m
        le.hops += m * (link.hops_ew + link.hops_ns)
        le.energy["message"] += m * table.e_message
        le.energy["hop_ew"] += m * link.hops_ew * table.e_hop_ew
        le.energy["hop_ns"] += m * link.hops_ns * table.e_hop_ns
        le.energy["chip_crossing"] += m * link.chip_crossings * table.e_chip_crossing
    for name, le in layers.items():
        if le.kind == "input" and name in activity.populations:
            le.spikes = activity.populations[name].spikes / batch

    latency = _latency(activity, mapping, table, link_msgs, batch, steps)
    if run_time_s is None:
        run_time, run_src = latency.per_inference_s, "modelled (sum of step latencies)"
    else:
        if not run_time_s > 0:
            raise ParameterError("run time per inference must be positive", where="estimate_energy(run_time_s)", got=run_time_s)
        run_time, run_src = float(run_time_s), "given (measured wall time per inference)"
    assumptions.append("host I/O (injecting inputs, reading outputs) is not modelled: it costs neither energy nor time here")

    synops = float(sum(l.synaptic_ops for l in layers.values()))
    macs, ann_pass = _ann_macs(mapping, steps)
    comparisons = [
        Comparison(
            "synops_convention",
            "SynOps x 0.9 pJ (fp32 accumulate, 45 nm): the usual SNN-paper figure; no neurons, routing or static power",
            synops * E_FP32_ADD,
            HOROWITZ_2014,
        ),
        Comparison(
            "ann_fp32",
            f"ANN baseline (GPU/CPU proxy): {macs:.0f} MACs x 4.6 pJ (fp32 MAC, 45 nm), {ann_pass}, compute only",
            macs * E_FP32_MAC,
            HOROWITZ_2014,
        ),
        Comparison(
            "ann_int8",
            f"ANN baseline (int8 accelerator proxy): {macs:.0f} MACs x 0.23 pJ (8-bit MAC, 45 nm), {ann_pass}, compute only",
            macs * E_INT8_MAC,
            HOROWITZ_2014,
        ),
    ]
    return EnergyReport(
        table=table,
        target=mapping.profile.name,
        batch=batch,
        steps=steps,
        layers=layers,
        static_power_w=table.static_power_w,
        chips=mapping.chips_used,
        run_time_s=run_time,
        run_time_source=run_src,
        latency=latency,
        comparisons=comparisons,
        assumptions=assumptions,
    )


def _latency(activity, mapping: Mapping, table: CostTable, link_msgs: list[float], batch: int, steps: int) -> Latency:
    """Per step: max over cores of their work, + the longest route in use, + the barrier."""
    blocks = mapping.blocks
    work = np.zeros((len(blocks), steps))
    busy = np.zeros(steps, dtype=bool)  # steps on which spikes travel (sent or received)
    # Synaptic ops of each projection, shared among its target blocks by stored synapses.
    for name, proj in mapping.projections.items():
        pa = activity.projections.get(name)
        if pa is None:
            continue
        series = _per_step(pa.synaptic_ops, pa.synaptic_ops_per_step, steps, batch)
        busy |= series > 0
        targets = mapping.blocks_of(proj["dst"])
        weights = np.array([b.synapses.get(name, 0) for b in targets], dtype=float)
        if weights.sum() == 0:
            weights = np.array([b.neurons for b in targets], dtype=float)
        for b, w in zip(targets, weights / weights.sum()):
            work[b.id] += series * w * table.t_syn(proj["kind"])
    # Neuron updates (every compartment every step) and outgoing spikes/messages.
    msgs_by_block = np.zeros(len(blocks))
    for link, m in zip(mapping.links, link_msgs):
        if link.src_block is not None:
            msgs_by_block[link.src_block] += m
    for name, info in mapping.layers.items():
        pa = activity.populations.get(name)
        size = info["size"]
        if pa is None:
            frac_active, spikes_series, counts = 0.0, np.zeros(steps), None
        else:
            frac_active = pa.active_updates / pa.neuron_updates if pa.neuron_updates else 0.0
            spikes_series = _per_step(pa.spikes, pa.spikes_per_step, steps, batch)
            counts = None if pa.spike_counts is None else np.asarray(pa.spike_counts, dtype=float).ravel()
        busy |= spikes_series > 0
        t_neuron = table.t_neuron_inactive + frac_active * (table.t_neuron_active - table.t_neuron_inactive)
        total_spikes = spikes_series.sum()
        for b in mapping.blocks_of(name):
            if counts is not None and counts.size == size and counts.sum() > 0:
                share = counts[b.start:b.stop].sum() / counts.sum()
            else:
                share = b.neurons / size
            block_spikes = spikes_series * share
            fanout = msgs_by_block[b.id] / (total_spikes * share) if total_spikes * share > 0 else 0.0
            work[b.id] += b.neurons * t_neuron + block_spikes * (table.t_spike_out + fanout * table.t_message)
    routes = [
        l.hops_ew * table.t_hop_ew + l.hops_ns * table.t_hop_ns + l.chip_crossings * table.t_chip_crossing + table.t_message
        for l, m in zip(mapping.links, link_msgs) if m > 0
    ]
    longest = max(routes, default=0.0)
    routing = np.where(busy, longest, 0.0) if routes else np.zeros(steps)
    compute = work.max(axis=0) if len(blocks) else np.zeros(steps)
    slowest = work.argmax(axis=0) if len(blocks) else np.zeros(steps, dtype=int)
    barrier = table.barrier_time(mapping.tiles_used)
    return Latency(
        step_s=compute + routing + barrier,
        compute_s=compute,
        routing_s=routing,
        barrier_s=barrier,
        slowest_block=slowest.astype(int),
        tiles=mapping.tiles_used,
    )


# -- a published measurement to compare against -------------------------------------------------------
class Measurement(TypedDict):
    """A published chip measurement: where from, what network, its powers and rate."""

    source: str
    network: str
    idle_w: float
    running_w: float
    dynamic_w: float
    inferences_per_s: float
    dynamic_j_per_inference: float


BLOUW_2019: Measurement = {
    "source": (
        "P. Blouw, X. Choo, E. Hunsberger, C. Eliasmith, 'Benchmarking Keyword Spotting Efficiency on "
        "Neuromorphic Hardware', NICE 2019 (arXiv:1812.01739), Table 1"
    ),
    "network": "390 MFCC inputs -> 256 LIF -> 256 LIF -> 29 characters (read out on the host)",
    "idle_w": 0.029,
    "running_w": 0.110,
    "dynamic_w": 0.081,
    "inferences_per_s": 296.0,
    "dynamic_j_per_inference": 0.00027,
}


def kws_blouw2019(rate: float = 0.1, input_rate: float = 0.1, steps: int = 10, seed: int = 0):
    """The Blouw et al. 2019 keyword spotter rebuilt as a ChipGraph, with a hand-computed Activity.

    Returns (graph, activity, assumptions). The trained weights are not public in a form we can
    load offline, so weights are random nonzero 8-bit values (only the structure matters for the
    cost model: every weight is stored and every spike reaches all 256 targets).
    """
    from snnc.backends.base import Activity, PopulationActivity, ProjectionActivity
    from snnc.ir.chip import ChipGraph, InputPopulation, OutputPort, Population, Projection

    rng = np.random.default_rng(seed)
    n_in, n_hidden = 390, 256
    g = ChipGraph(meta={"dt": 1e-3, "source": BLOUW_2019["source"]})
    g.add(InputPopulation("mfcc", (n_in,)))
    g.add(Population("layer1", (n_hidden,), du=4095, dv=82, vth=1000))
    g.add(Population("layer2", (n_hidden,), du=4095, dv=82, vth=1000))

    def weights(rows, cols):
        w = rng.integers(1, 128, size=(rows, cols)) * rng.choice([-2, 2], size=(rows, cols))
        return w

    g.add(Projection("mfcc->layer1", "mfcc", "layer1", weights(n_hidden, n_in)))
    g.add(Projection("layer1->layer2", "layer1", "layer2", weights(n_hidden, n_hidden)))
    g.outputs["chars"] = OutputPort("layer2", "s")

    in_spikes = input_rate * n_in * steps
    l1_spikes = rate * n_hidden * steps
    l2_spikes = rate * n_hidden * steps
    act = Activity(batch=1, steps=steps)
    for name, spikes in (("layer1", l1_spikes), ("layer2", l2_spikes)):
        act.populations[name] = PopulationActivity(
            neurons=n_hidden,
            neuron_updates=n_hidden * steps,
            active_updates=n_hidden * steps,
            spikes=int(round(spikes)),
            spikes_per_step=np.full(steps, spikes / steps),
            spike_counts=np.full(n_hidden, spikes / n_hidden),
        )
    act.projections["mfcc->layer1"] = ProjectionActivity(
        synaptic_ops=int(round(in_spikes * n_hidden)), messages_in=int(round(in_spikes)),
        synaptic_ops_per_step=np.full(steps, in_spikes * n_hidden / steps),
    )
    act.projections["layer1->layer2"] = ProjectionActivity(
        synaptic_ops=int(round(l1_spikes * n_hidden)), messages_in=int(round(l1_spikes)),
        synaptic_ops_per_step=np.full(steps, l1_spikes * n_hidden / steps),
    )
    assumptions = [
        f"structure from the paper and nengo-loihi's keyword-spotting example: {BLOUW_2019['network']}",
        "both hidden layers on chip, inputs arrive as spikes from the host, the 29-way readout runs on the host",
        f"{steps} time steps of 1 ms per inference (the example presents each feature window for 10 steps)",
        f"mean firing rate {rate:g} spikes/neuron/step in both hidden layers ({rate * 1000:g} Hz), "
        f"{input_rate:g} spikes/input/step for the 390 inputs",
        "every hidden neuron is updated as active every step (driven by bias and input)",
        "dense 8-bit weights, all nonzero",
    ]
    return g, act, assumptions


def compare_kws(table: CostTable | str = "loihi1-davies2018", profile: str = "loihi1", **kw) -> dict:
    """Estimate the Blouw et al. keyword spotter and put it beside the measured figure."""
    from ..mapping import map_to_cores

    graph, act, assumptions = kws_blouw2019(**kw)
    mapping = map_to_cores(graph, profile, traffic=act)
    report = estimate_energy(act, mapping, costs=table)
    measured = BLOUW_2019["dynamic_j_per_inference"]
    return {
        "estimate_dynamic_j": report.dynamic_j,
        "measured_dynamic_j": measured,
        "ratio_measured_over_estimate": measured / report.dynamic_j,
        "modelled_time_per_inference_s": report.latency.per_inference_s,
        "measured_time_per_inference_s": 1.0 / BLOUW_2019["inferences_per_s"],
        "cores": mapping.cores_used,
        "cost_table": report.table.name,
        "assumptions": assumptions,
        "report": report,
        "mapping": mapping,
    }
