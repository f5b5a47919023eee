"""The bit budget of a chip-level network: where its bits go, and whether `u` can overflow.

Shen et al. argue that an SNN's cost is better counted in bits spent on weights, activations
(spikes) and time steps than in synaptic operations ("Bit Budget"; G. Shen, D. Zhao, T. Li, J. Li,
Y. Zeng, "Are Conventional SNNs Really Efficient? A Perspective from Network Quantization",
CVPR 2024, arXiv:2311.10802). `bit_budget` counts those bits for a `ChipGraph`, layer by layer,
from the bit widths the IR carries (`snnc.ir.bits.SPECS`), so a reader can redo every number:

Synaptic memory, per projection (all in bits):
  bits per weight   = num_weight_bits. Lava's truncation keeps exactly num_weight_bits bits in
                      every sign mode: mixed weights drop 8 - n + 1 low bits of a 9-bit signed
                      value (the sign is one of the n bits); single-sign projections drop 8 - n
                      bits of an 8-bit magnitude and share one sign per projection.
  stored entries    = dense: every entry of the [dst, src] matrix (the dense format has no index,
                      so zeros are stored too); sparse: the nonzero synapses (nnz); conv: the
                      kernel entries C_out x C_in/groups x kh x kw (shared by all positions).
  weight bits       = bits per weight x stored entries.
  index bits        = sparse only: ceil(log2(source size)) x nnz (the source index of each
                      synapse; CSR row pointers are not counted).
  delay bits        = per-synapse delays with any nonzero: 6 x stored entries; one scalar delay
                      > 0: 6 (one register); no delay: 0.
  memory bits       = weight bits + index bits + delay bits.
State, per population:
  state bits        = STATE_BITS (u and v, 24 + 24) x neurons.
  parameter bits    = for du (12), dv (12), vth (17), bias_mant (13), bias_exp (3): the field's
                      bits x neurons when it is per-neuron, x 1 when shared by the layer (one
                      compartment profile); plus 16 + 16 for lif_reset's reset_interval/offset
                      and 18 + 18 for ternary's signed vth_hi/vth_lo (shared), 6 for
                      lif_refractory's refractory_period (shared; its state adds a 6-bit counter).
Spikes (needs the `Activity` of a simulated or calibration run; an input's spikes are its
`Activity.populations` entry if any, else the `messages_in` of its first outgoing projection):
  payload bits      = max(1, num_message_bits) per spike: a binary spike costs 1 bit, a graded
                      one its message bits. A population's payload is the largest
                      num_message_bits among its outgoing projections (1 if it has none); an
                      input's is its own num_message_bits.
  spike bits        = payload bits x spikes, where spikes are summed over all time steps and the
                      whole batch; per sample = spike bits / batch; per step = per sample / steps.
Compute (needs the `Activity` too):
  bit ops           = sum over projections of synaptic ops x num_weight_bits (each operation
                      fetches and accumulates one weight of that width), over the run; per sample
                      = bit ops / batch.
Accumulator headroom, per population (worst case over all spike patterns, one step):
  For each incoming projection and target neuron i, with the effective weights w (after Lava's
  clip and truncation to num_weight_bits):
    binary spikes     pos_i = sum_j max(w_ij, 0),  neg_i = sum_j max(-w_ij, 0)
    graded spikes     pos_i = neg_i = (2**num_message_bits - 1) x sum_j |w_ij|
                      (the sim accepts graded payloads with |value| <= 2**n - 1)
    weight_exp e      pos_i << e, neg_i << e for e >= 0; floor(pos_i / 2**-e), ceil(neg_i / 2**-e)
                      for e < 0 (the synapse floors; the most negative sum rounds away from 0).
  Summed over the incoming projections: A_i = max(sum pos_i, sum neg_i); the input into u is
  a << 6, so max input = 64 x max_i A_i. It needs input bits = bit_length(max input) + 1 (sign);
  margin bits = 24 - input bits. A negative margin means one step of input can wrap the 24-bit u:
  the layer is named in `warnings` and an `AccumulatorOverflowWarning` is issued.
  Sigma-delta populations: their input enters sigma unshifted and Lava keeps it in int32, so
  max input = max_i A_i against 32 bits; sigma integrates without decay, so no sustained bound.
  Their state bits are 24 per Lava state (Delta: act, residue, error; SigmaDelta: sigma too;
  Sigma: sigma), their parameters vth (and act_bias) plus spike_exp, state_exp, cum_error,
  act_mode; their graded messages cost their payload bits like any graded spike.
  Because u also keeps (4095 - du)/4096 of itself each step, the sustained bound is
  max_u = max_i ceil(64 x A_i x 4096 / (du_i + 1)) with its own margin. It assumes every input
  spikes every step, which trained networks rarely do, so it is reported but does not warn.
  Two-port kinds sum per port (A_i is the larger port's bound: a product's ports are separate
  int32 inputs, a resonator's feed separate states). Resonators (rf, rf_iz): the input is shifted
  by state_exp instead of 6 into real and imag, which saturate at 24 bits; their state bits are
  2 x 24, their parameters vth, sin_decay, cos_decay (12 each, per layer or neuron), decay_bits (4)
  and state_exp (3); the sustained bound is sqrt(2) (max input + 1) / (1 - g), g the largest
  |cos_decay + i sin_decay| / 2**decay_bits (each step rotates and shrinks z by g, and rounding
  toward zero adds under 1 per component), 2**24 when g >= 1 (no bound).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp

from snnc.ir.bits import SPECS, STATE_BITS
from snnc.ir.chip import ChipGraph, ConvProjection, Population, Projection, SparseProjection
from snnc.ir.fixed_point.resonator import RF_KINDS
from snnc.ir.errors import GraphError

U_BITS = SPECS["u"].bits
U_MAX = SPECS["u"].hi
INPUT_SHIFT = 6  # Lava's LIF adds `a << 6` to u
DECAY_ONE = 4096  # du = 4095 clears u every step
PARAM_FIELDS = ("du", "dv", "vth", "bias_mant", "bias_exp")
_SIGMA_DELTA_PARAM_FIELDS = {"delta": ("vth",), "sigma_delta": ("vth", "act_bias"), "sigma": ()}
_RF_PARAM_FIELDS = ("vth", "sin_decay", "cos_decay")
SIGMA_DELTA_STATE_BITS = 32
"""Lava keeps sigma-delta states in int32 (they wrap there), and their input is not shifted."""
_MODEL_EXTRA_BITS = {
    "lif": 0,
    "lif_reset": SPECS["reset_interval"].bits + SPECS["reset_offset"].bits,
    "ternary": 2 * (SPECS["vth"].bits + 1),  # vth_hi, vth_lo: 17-bit magnitude + sign each
    "product": SPECS["prod_exp"].bits,
    "delta": SPECS["spike_exp"].bits + SPECS["state_exp"].bits + 1,  # + cum_error
    "sigma_delta": SPECS["spike_exp"].bits + SPECS["state_exp"].bits + 1 + 1,  # + cum_error, act_mode
    "sigma": 0,
    "atrlif": SPECS["theta_step"].bits + SPECS["d_theta"].bits + SPECS["d_r"].bits,
    "lif_refractory": SPECS["refractory_period"].bits,
    "rf": SPECS["decay_bits"].bits + SPECS["state_exp"].bits,
    "rf_iz": SPECS["decay_bits"].bits + SPECS["state_exp"].bits,
}
_STATE_BITS_PER_NEURON = {
    "delta": 3 * SPECS["u"].bits,  # act, residue, error: Lava's Delta declares 24 bits each
    "sigma_delta": 4 * SPECS["u"].bits,  # sigma, act, residue, error
    "sigma": SPECS["u"].bits,  # sigma
    "product": 0,  # Lava's ProdNeuron keeps nothing between steps
    "atrlif": 4 * SPECS["u"].bits,  # i, v, theta, r: 24 bits each in Lava's ATRLIF
    "lif_refractory": STATE_BITS + SPECS["refractory_period"].bits,  # u, v and the refractory down-counter
    "rf": 2 * SPECS["v"].bits,  # real, imag: Lava's RF clips both to 24 bits
    "rf_iz": 2 * SPECS["v"].bits,
}
"""State bits per neuron of the kinds that differ from the CUBA compartment's u and v."""


class AccumulatorOverflowWarning(UserWarning):
    """One step of worst-case input can wrap a layer's 24-bit current `u`."""


@dataclass
class ProjectionBudget:
    """Synaptic memory and worst-case input of one projection (see the module docstring)."""

    name: str
    src: str
    dst: str
    kind: str
    sign_mode: str
    num_weight_bits: int
    bits_per_weight: int
    synapses: int  # nonzero weights (conv: kernel entries), as ChipGraph.num_synapses counts
    stored: int  # entries the weight memory holds
    weight_bits: int
    index_bits_per_synapse: int
    index_bits: int
    delay_bits: int
    memory_bits: int
    num_message_bits: int
    weight_exp: int
    max_input: int  # 64 x the largest |value| this projection alone adds to one neuron per step
    synaptic_ops: int | None = None  # measured over the run (whole batch); None without activity


@dataclass
class SpikeBudget:
    """Spike traffic of one source (population or input) over a run."""

    name: str
    payload_bits: int
    spikes: int | None = None  # None: no activity was given or measured for it
    spike_bits: int | None = None
    spike_bits_per_sample: float | None = None
    spike_bits_per_step: float | None = None  # per sample and time step


@dataclass
class LayerBudget:
    """One population with its incoming projections."""

    name: str
    model: str
    neurons: int
    per_neuron_params: list[str]
    projections: list[ProjectionBudget]
    weight_memory_bits: int
    state_bits: int
    param_bits: int
    spikes: SpikeBudget
    max_input: int
    input_bits: int
    margin_bits: int
    overflow_possible: bool
    max_u_accumulated: int
    margin_bits_accumulated: int

    @property
    def synapses(self) -> int:
        return sum(p.synapses for p in self.projections)

    @property
    def memory_bits(self) -> int:
        """Weight memory + state + parameters: everything this layer keeps on the core."""
        return self.weight_memory_bits + self.state_bits + self.param_bits


@dataclass
class BitBudget:
    """Per-layer and total bits of a chip graph, and the layers whose `u` can overflow."""

    layers: list[LayerBudget]
    inputs: list[SpikeBudget]
    steps: int | None = None
    batch: int | None = None
    warnings: list[str] = field(default_factory=list)

    # -- totals -----------------------------------------------------------------------------------
    @property
    def neurons(self) -> int:
        return sum(layer.neurons for layer in self.layers)

    @property
    def synapses(self) -> int:
        return sum(layer.synapses for layer in self.layers)

    @property
    def weight_memory_bits(self) -> int:
        return sum(layer.weight_memory_bits for layer in self.layers)

    @property
    def state_bits(self) -> int:
        return sum(layer.state_bits for layer in self.layers)

    @property
    def param_bits(self) -> int:
        return sum(layer.param_bits for layer in self.layers)

    @property
    def memory_bits(self) -> int:
        return self.weight_memory_bits + self.state_bits + self.param_bits

    def _spike_sources(self) -> list[SpikeBudget]:
        return [layer.spikes for layer in self.layers] + list(self.inputs)

    @property
    def spike_bits(self) -> int | None:
        """Payload bits of every measured spike (layers and inputs) over the run; None without activity."""
        if self.batch is None:
            return None
        return sum(s.spike_bits or 0 for s in self._spike_sources())

    @property
    def spike_bits_per_sample(self) -> float | None:
        bits = self.spike_bits
        return None if bits is None or self.batch is None else bits / self.batch

    @property
    def bit_ops(self) -> int | None:
        """Synaptic operations x weight bits, summed over projections and the run (the Bit Budget's
        compute cost: each operation fetches and adds one num_weight_bits weight); None without activity."""
        if self.batch is None:
            return None
        return sum((p.synaptic_ops or 0) * p.num_weight_bits for layer in self.layers for p in layer.projections)

    @property
    def bit_ops_per_sample(self) -> float | None:
        ops = self.bit_ops
        return None if ops is None or self.batch is None else ops / self.batch

    @property
    def min_margin_bits(self) -> int | None:
        return min((layer.margin_bits for layer in self.layers), default=None)

    # -- output -----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain JSON-serializable numbers (ints, floats, strings, None), all in bits.

        `layers` maps each layer to its bits by quantity only (what report.py stacks per layer);
        `layer_details` holds every field of every layer and projection.
        """
        details, layers = [], {}
        for layer in self.layers:
            d = asdict(layer)
            d["synapses"] = layer.synapses
            d["memory_bits"] = layer.memory_bits
            details.append(d)
            bits: dict[str, float] = {
                "weight_bits": sum(p.weight_bits for p in layer.projections),
                "index_bits": sum(p.index_bits for p in layer.projections),
                "delay_bits": sum(p.delay_bits for p in layer.projections),
                "state_bits": layer.state_bits,
                "param_bits": layer.param_bits,
            }
            if layer.spikes.spike_bits_per_sample is not None:
                bits["spike_bits_per_sample"] = layer.spikes.spike_bits_per_sample
            layers[layer.name] = bits
        return {
            "units": "bits",
            "steps": self.steps,
            "batch": self.batch,
            "layers": layers,
            "layer_details": details,
            "inputs": [asdict(s) for s in self.inputs],
            "total": {
                "neurons": self.neurons,
                "synapses": self.synapses,
                "weight_memory_bits": self.weight_memory_bits,
                "state_bits": self.state_bits,
                "param_bits": self.param_bits,
                "memory_bits": self.memory_bits,
                "spike_bits": self.spike_bits,
                "spike_bits_per_sample": self.spike_bits_per_sample,
                "bit_ops": self.bit_ops,
                "bit_ops_per_sample": self.bit_ops_per_sample,
                "min_margin_bits": self.min_margin_bits,
            },
            "warnings": list(self.warnings),
            "definitions": {
                "payload_bits": "max(1, num_message_bits) per spike",
                "weight_bits": "num_weight_bits x stored entries "
                "(dense: all dst x src; sparse: nnz, plus ceil(log2(src)) index bits each; conv: kernel entries)",
                "state_bits": f"{STATE_BITS} x neurons (24-bit u and v)",
                "max_input": "64 x max over neurons of the worst-case per-step synaptic sum into u",
                "margin_bits": "24 - (bit_length(max_input) + 1); negative: u can wrap in one step",
            },
        }

    def render(self):
        """A rich Table of the budget (bits), warnings as its caption."""
        from rich.table import Table

        title = f"Bit budget: {_kib(self.memory_bits)} on chip"
        if self.steps is not None:
            title += f", {self.steps} steps x batch {self.batch}"
        table = Table(title=title, caption="\n".join(self.warnings) or None, caption_justify="left")
        for col in ("layer", "neurons", "synapses", "weight mem", "state", "params", "spike bits/sample", "max |in| to u", "margin"):
            table.add_column(col, justify="left" if col == "layer" else "right")
        for layer in self.layers:
            margin = f"{layer.margin_bits} b"
            if layer.overflow_possible:
                margin = f"[bold red]{margin} OVERFLOW[/]"
            table.add_row(
                layer.name,
                f"{layer.neurons:,}",
                f"{layer.synapses:,}",
                f"{layer.weight_memory_bits:,}",
                f"{layer.state_bits:,}",
                f"{layer.param_bits:,}",
                _num(layer.spikes.spike_bits_per_sample),
                f"{layer.max_input:,}",
                margin,
            )
        for src in self.inputs:
            if src.spikes is not None:
                table.add_row(f"{src.name} (input)", "", "", "", "", "", _num(src.spike_bits_per_sample), "", "")
        table.add_section()
        table.add_row(
            "total",
            f"{self.neurons:,}",
            f"{self.synapses:,}",
            f"{self.weight_memory_bits:,}",
            f"{self.state_bits:,}",
            f"{self.param_bits:,}",
            _num(self.spike_bits_per_sample),
            "",
            "" if self.min_margin_bits is None else f"{self.min_margin_bits} b",
        )
        return table


def _num(x) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


def _kib(bits: int) -> str:
    return f"{bits:,} bits ({bits / 8192:,.2f} KiB)"


# -- computing it ----------------------------------------------------------------------------------
def bit_budget(graph: ChipGraph, activity=None, *, warn: bool = True) -> BitBudget:
    """The bit budget of `graph`; spike bits need the `Activity` of a run of this same graph.

    With `warn`, each layer whose worst-case one-step input can wrap `u` also raises an
    `AccumulatorOverflowWarning` (the same text is always in `BitBudget.warnings`).
    """
    graph.validate()
    if activity is not None:
        _check_activity(graph, activity)
    layers = [_layer_budget(graph, pop, activity) for pop in graph.populations.values()]
    inputs = [
        _spike_budget(name, max(1, int(inp.num_message_bits)), activity, graph)
        for name, inp in graph.inputs.items()
    ]
    budget = BitBudget(
        layers=layers,
        inputs=inputs,
        steps=None if activity is None else int(activity.steps),
        batch=None if activity is None else int(activity.batch),
    )
    for layer in layers:
        if layer.overflow_possible:
            msg = (
                f"layer {layer.name!r}: the 24-bit current u can wrap in one step: worst-case input "
                f"{layer.max_input:,} needs {layer.input_bits} bits (margin {layer.margin_bits} bits, "
                f"limit {U_MAX:,}). Lower the incoming weight_exp or num_message_bits, or scale the "
                f"layer's weights and threshold down"
            )
            budget.warnings.append(msg)
            if warn:
                warnings.warn(msg, AccumulatorOverflowWarning, stacklevel=2)
    return budget


def _check_activity(graph: ChipGraph, activity) -> None:
    """The activity must come from a run of this graph: same populations, a positive batch and T."""
    where = "bit budget: activity"
    for attr in ("batch", "steps"):
        value = getattr(activity, attr, None)
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise GraphError(
                f"activity.{attr} must be a positive integer",
                where=where,
                got=value,
                hint="pass RunResult.activity from the sim backend",
            )
    missing = [name for name in graph.populations if name not in activity.populations]
    if missing:
        raise GraphError(
            "activity has no counters for some populations of the graph",
            where=where,
            expected=sorted(graph.populations),
            got=sorted(activity.populations),
            hint=f"missing {missing}; pass the Activity of a run of this same graph",
        )


def _spike_budget(name: str, payload: int, activity, graph: ChipGraph | None = None) -> SpikeBudget:
    """Spikes of `name` from its population counters; for an input that has none, the
    `messages_in` of one of its outgoing projections (the sim counts nonzero input messages there)."""
    spikes = None
    if activity is not None:
        counters = activity.populations.get(name)
        if counters is not None:
            spikes = int(counters.spikes)
        elif graph is not None:
            for proj in graph.outgoing(name):
                if proj.name in activity.projections:
                    spikes = int(activity.projections[proj.name].messages_in)
                    break
    if spikes is None:
        return SpikeBudget(name=name, payload_bits=payload)
    bits = payload * spikes
    per_sample = bits / activity.batch
    return SpikeBudget(
        name=name,
        payload_bits=payload,
        spikes=spikes,
        spike_bits=bits,
        spike_bits_per_sample=per_sample,
        spike_bits_per_step=per_sample / activity.steps,
    )


def _layer_budget(graph: ChipGraph, pop: Population, activity) -> LayerBudget:
    incoming = graph.incoming(pop.name)
    projections: list[ProjectionBudget] = []
    sums: dict[str, tuple] = {}  # port -> (pos, neg)
    for proj in incoming:
        p_pos, p_neg = _input_bounds(graph, proj, pop)
        pos, neg = sums.get(proj.port, (0, 0))
        sums[proj.port] = (pos + p_pos, neg + p_neg)
        pb = _projection_budget(graph, proj, p_pos, p_neg)
        if activity is not None and proj.name in activity.projections:
            pb.synaptic_ops = int(activity.projections[proj.name].synaptic_ops)
        projections.append(pb)
    worst = np.zeros(pop.size, dtype=object)  # A_i, Python ints: the largest port's bound
    for pos, neg in sums.values():
        worst = np.maximum(worst, np.maximum(pos, neg))
    shift, state_bits = (0, SIGMA_DELTA_STATE_BITS) if pop.sigma_delta else (INPUT_SHIFT, U_BITS)
    if pop.model in RF_KINDS:
        shift = int(pop.state_exp)
    max_input = (int(worst.max()) if pop.size else 0) << shift
    input_bits = max_input.bit_length() + 1
    du = np.broadcast_to(np.asarray(pop.du, dtype=np.int64), pop.shape).reshape(-1)
    if pop.model in RF_KINDS:
        accumulated = _resonator_bound(pop, max_input)
    else:
        accumulated = max_input if pop.sigma_delta else max(  # sigma has no decay: one step is the bound given
            (-(-((int(a) << INPUT_SHIFT) * DECAY_ONE) // (int(d) + 1)) for a, d in zip(worst, du)), default=0
        )
    fields = _RF_PARAM_FIELDS if pop.model in RF_KINDS else _SIGMA_DELTA_PARAM_FIELDS.get(pop.model, PARAM_FIELDS)
    per_neuron = [name for name in fields if np.ndim(getattr(pop, name))]
    param_bits = sum(SPECS[name].bits * (pop.size if name in per_neuron else 1) for name in fields)
    param_bits += _MODEL_EXTRA_BITS[pop.model]
    payload = max([1] + [int(p.num_message_bits) for p in graph.outgoing(pop.name)])
    return LayerBudget(
        name=pop.name,
        model=pop.model,
        neurons=pop.size,
        per_neuron_params=per_neuron,
        projections=projections,
        weight_memory_bits=sum(p.memory_bits for p in projections),
        state_bits=_STATE_BITS_PER_NEURON.get(pop.model, STATE_BITS) * pop.size,
        param_bits=param_bits,
        spikes=_spike_budget(pop.name, payload, activity),
        max_input=max_input,
        input_bits=input_bits,
        margin_bits=state_bits - input_bits,
        overflow_possible=max_input > (U_MAX if state_bits == U_BITS else 2 ** (state_bits - 1) - 1),
        max_u_accumulated=accumulated,
        margin_bits_accumulated=state_bits - (accumulated.bit_length() + 1),
    )


def _resonator_bound(pop: Population, max_input: int) -> int:
    """Largest |real|, |imag| a resonator can sustain (see the module docstring), 2**24 when unbounded."""
    gain = float(np.max(np.hypot(pop.sin_decay, pop.cos_decay))) / (1 << int(pop.decay_bits))
    if gain >= 1:
        return 1 << U_BITS
    return math.ceil(math.sqrt(2) * (max_input + 1) / (1 - gain))


def _projection_budget(graph: ChipGraph, proj: Projection, pos, neg) -> ProjectionBudget:
    src = graph.source(proj.src)
    mode = proj.sign_mode
    bits_per_weight = int(proj.num_weight_bits)
    if isinstance(proj.weights, sp.csr_matrix):  # kind "sparse"
        stored = int(proj.weights.nnz)
        index_per = (src.size - 1).bit_length()  # = ceil(log2(src.size))
    else:  # dense: the whole matrix; conv: the kernel
        stored = int(proj.weights.size)
        index_per = 0
    delay_field = SPECS["delay"].bits
    if np.ndim(proj.delay):
        delay_bits = delay_field * stored if np.any(proj.delay) else 0
    else:
        delay_bits = delay_field if int(proj.delay) > 0 else 0
    weight_bits = bits_per_weight * stored
    index_bits = index_per * stored
    worst = np.maximum(pos, neg)
    return ProjectionBudget(
        name=proj.name,
        src=proj.src,
        dst=proj.dst,
        kind=proj.kind,
        sign_mode=mode,
        num_weight_bits=int(proj.num_weight_bits),
        bits_per_weight=bits_per_weight,
        synapses=proj.num_synapses,
        stored=stored,
        weight_bits=weight_bits,
        index_bits_per_synapse=index_per,
        index_bits=index_bits,
        delay_bits=delay_bits,
        memory_bits=weight_bits + index_bits + delay_bits,
        num_message_bits=int(proj.num_message_bits),
        weight_exp=int(proj.weight_exp),
        max_input=(int(worst.max()) if worst.size else 0) << INPUT_SHIFT,
    )


def _input_bounds(graph: ChipGraph, proj: Projection, dst: Population) -> tuple[np.ndarray, np.ndarray]:
    """Per target neuron: the largest positive and negative sums this projection can deliver in one
    step, after weight_exp and before the << 6 (object arrays of Python ints: no int64 overflow)."""
    w = proj.effective_weights()
    if isinstance(proj, SparseProjection):
        pos = np.asarray(w.maximum(0).sum(axis=1)).reshape(-1)
        neg = np.asarray((-w).maximum(0).sum(axis=1)).reshape(-1)
    elif isinstance(proj, ConvProjection):
        w = np.asarray(w, dtype=np.int64)
        per_pos = np.clip(w, 0, None).sum(axis=(1, 2, 3))  # per output channel
        per_neg = np.clip(-w, 0, None).sum(axis=(1, 2, 3))
        positions = math.prod(proj.conv.out_shape[1:])
        pos, neg = np.repeat(per_pos, positions), np.repeat(per_neg, positions)
    else:
        w = np.asarray(w, dtype=np.int64)
        pos = np.clip(w, 0, None).sum(axis=1)
        neg = np.clip(-w, 0, None).sum(axis=1)
    pos = np.asarray(pos, dtype=np.int64).astype(object)
    neg = np.asarray(neg, dtype=np.int64).astype(object)
    if pos.shape != (dst.size,):
        raise GraphError(
            "projection does not match its target population's size",
            where=f"projection {proj.name!r} ({proj.src} -> {proj.dst})",
            expected=dst.size,
            got=pos.shape[0],
            hint="run ChipGraph.validate() to find the mismatch",
        )
    if proj.num_message_bits > 0:
        payload = (1 << int(proj.num_message_bits)) - 1
        pos = neg = (pos + neg) * payload
    e = int(proj.weight_exp)
    if e >= 0:
        return pos << e, neg << e
    k = -e
    return pos >> k, -((-neg) >> k)
