"""Bit budget over weight bits x state bits x time steps for a lossless conversion (Shen et al.'s
trade-off).

For a converted network the time axis is the number of activation levels L: a hidden layer fires
in a window of L steps, so T = 2 + N L + P (+1 with a readout), N hidden layers, P max pools
(`window_steps`); a requested T becomes the largest L that fits (`levels_for_steps`). Each grid point is an
independent pure function of (model, point, data) -> row (`conversion_point`), so a distributed
engine can farm the points out; `conversion_grid` maps it over the grid and returns a
`ConversionGrid` (table, Pareto front, figure, JSON).

Per point: accuracy (with labels) and agreement with the float model's predictions; whether the
chip's outputs equal the integer network's exactly (`exact`: conversion error zero, checked on
every sample); memory bits (weights + state + parameters of the chip as built: data synapses at the
network's width, clock synapses at theirs, `chip.exact_weights`); `model_weight_bits` (the integer
network's weights x width, without the conversion's clocks and state); bit ops per sample
(synaptic ops x num_weight_bits, from the sim's counters); energy and latency per inference on the
target (`energy.estimate_energy` over the sim's activity, mapped by `map_to_cores`); NeuroBench
workload metrics (`neurobench.chip_metrics`, and membrane updates from the v probes).

State bits: the sim runs u and v at Loihi's 24 bits; a point's `state_bits_needed` is the signed
width of the largest |u|, |v| any population reaches on the data (`required_state_bits`, from u/v
probes of the run). Each (weight bits, levels) run is priced at every `--state-bits` value s
(`at_state_bits`): state memory = the 24-bit state x s / 24 (u and v at s bits each), and a point
with s < state_bits_needed is infeasible (its u or v would leave s bits on this data; it is shown,
never on the Pareto front). Other costs do not depend on s.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from snnc.ir.errors import ParameterError

from .budget import bit_budget
from .sweep import pareto_front

STATE_BITS = 24
"""Width of u and v on Loihi (the sim's), the state width a run is measured at."""
COSTS = ("bit_ops_per_sample", "memory_bits", "energy_j", "steps")
"""Costs a Pareto front can be taken over (each lower is better) against quality."""


@dataclass
class ConversionPoint:
    """One (weight bits, levels) point: its chip run's quality and costs, per inference."""

    weight_bits: int
    levels: int
    steps: int
    accuracy: float | None  # against the labels (None without labels)
    agreement: float  # predictions equal to the float model's
    exact: bool  # chip outputs equal the integer network's on every sample
    memory_bits: int  # weights + state + parameters of the chip as built
    model_weight_bits: int  # the quantized network's weights x weight_bits
    bit_ops_per_sample: float
    synaptic_ops_per_sample: float
    energy_j: float
    latency_s: float
    neurobench: dict = field(default_factory=dict)
    requested_steps: int | None = None  # the --time-steps value this point came from
    state_bits: int = STATE_BITS  # width u and v are priced at (memory_bits)
    state_bits_needed: int = 0  # signed width of max |u|, |v| reached on the data
    state_memory_bits: int = 0  # the state part of memory_bits, at state_bits

    @property
    def feasible(self) -> bool:
        """u and v fit in state_bits on the data."""
        return self.state_bits_needed <= self.state_bits

    @property
    def quality(self) -> float:
        """Accuracy with labels, else agreement with the float model."""
        return self.accuracy if self.accuracy is not None else self.agreement

    def to_dict(self) -> dict:
        return {**asdict(self), "feasible": self.feasible}


def required_state_bits(chip, probes) -> int:
    """Signed two's-complement width holding every u and v a run reached (probes "<pop>/u",
    "<pop>/v" of every population of `chip`)."""
    lo = hi = 0
    for name in chip.populations:
        for var in ("u", "v"):
            a = np.asarray(probes[f"{name}/{var}"], np.int64)
            if a.size:
                lo, hi = min(lo, int(a.min())), max(hi, int(a.max()))
    return max(hi.bit_length(), (-lo - 1).bit_length() if lo < 0 else 0) + 1


def at_state_bits(point: ConversionPoint, bits: int) -> ConversionPoint:
    """The same run priced with u and v at `bits` each (state memory scaled from its current width)."""
    state = point.state_memory_bits * int(bits) // point.state_bits
    return replace(point, state_bits=int(bits), state_memory_bits=state,
                   memory_bits=point.memory_bits - point.state_memory_bits + state)


def network_layout(model: Any) -> tuple[int, bool, int]:
    """(hidden layers N, has a readout, max pools P) of a float nn.Sequential `quantize_model`
    accepts: each Conv/Linear followed by its activation (ReLU, ReLU6, Hardtanh; BatchNorm and a
    MaxPool may sit in between) is hidden; a last one without is the readout."""
    import torch.nn as nn

    from snnc.compiler.frontends.conversion.chip import _BATCHNORMS, _OPS, Residual, _flat_modules

    def flat(module) -> list:  # a Residual block: its body, then the block's ReLU
        return [x for m in _flat_modules(module)
                for x in (flat(m.body) + [nn.ReLU()] if isinstance(m, Residual) else [m])]

    pools = (nn.MaxPool1d, nn.MaxPool2d)
    mods = [m for m in flat(model) if not isinstance(m, (*_BATCHNORMS, nn.Dropout, nn.Identity))]
    ops = [i for i, m in enumerate(mods) if isinstance(m, _OPS)]
    if not ops:
        raise ParameterError("the model has no Conv/Linear layer to convert", where="conversion grid",
                             hint="pass the float nn.Sequential that quantize_model takes")

    def activated(i: int) -> bool:
        rest = [m for m in mods[i + 1:] if not isinstance(m, pools)][:1]
        return bool(rest) and isinstance(rest[0], (nn.ReLU, nn.Hardtanh))

    return (sum(1 for i in ops if activated(i)), not activated(ops[-1]),
            sum(1 for m in mods if isinstance(m, pools)))


def window_steps(hidden: int, levels: int, readout: bool, pools: int = 0) -> int:
    """T = 2 + N L + P (+1 with a readout): the converted network's time steps per inference."""
    return 2 + hidden * levels + pools + (1 if readout else 0)


def levels_for_steps(hidden: int, readout: bool, steps: int, pools: int = 0) -> int:
    """The largest L whose window fits in `steps` time steps (an error naming the minimum)."""
    if hidden == 0:
        raise ParameterError("a network without hidden layers has no time axis", where=f"--time-steps {steps}",
                             expected=f"T = {window_steps(0, 1, readout)} (the readout alone)",
                             hint="sweep --weight-bits only")
    levels = (int(steps) - window_steps(0, 0, readout, pools)) // hidden
    if levels < 1:
        raise ParameterError("too few time steps for one activation level", where=f"--time-steps {steps}",
                             expected=f">= {window_steps(hidden, 1, readout, pools)} (2 + {hidden} hidden layers x 1 "
                             f"level + {pools} max pools" + (" + 1 readout step)" if readout else ")"), got=steps,
                             hint="raise T; each extra level costs one step per hidden layer")
    return levels


def conversion_point(model: Any, weight_bits: int, levels: int, calib, x, labels=None, *,
                     input_shape: Sequence[int], input_range=(0, 16), input_scale: float = 1.0,
                     chip: str = "loihi2", requested_steps: int | None = None) -> ConversionPoint:
    """Quantize `model` at this point, convert it for the chip, run it on the sim and price it."""
    import torch

    from snnc.backends.program_cache import build_cached
    from snnc.compiler.frontends.conversion.chip import IntGridLayer, convert_to_chip, quantize_model
    from snnc.compiler.mapping import map_to_cores

    from .energy import estimate_energy
    from .neurobench import chip_metrics, probed_membrane_updates

    qnet = quantize_model(model, calib, levels=levels, weight_bits=weight_bits, input_range=input_range,
                          input_scale=input_scale)
    conv = convert_to_chip(qnet, input_shape)
    state_probes = [f"{n}/{var}" for n in conv.chip.populations for var in ("u", "v")]
    result = build_cached(conv.chip, "sim").run(conv.encode(x), steps=conv.steps, probes=state_probes)
    pred = np.asarray(conv.decode(result))
    integers = qnet.integer_forward(x)[-1]
    exact = bool(np.array_equal(conv.activations(result), integers.reshape(len(pred), -1).numpy().astype(np.int64)))
    with torch.no_grad():
        xt = torch.as_tensor(np.asarray(x)).to(next(model.parameters()).dtype)
        float_pred = model(xt).reshape(len(pred), -1).argmax(1).numpy()
    budget = bit_budget(conv.chip, result.activity, warn=False)
    energy = estimate_energy(result.activity, map_to_cores(conv.chip, chip, traffic=result.activity))
    batch = result.activity.batch
    layers = [m for m in qnet.layers if isinstance(m, IntGridLayer)]
    return ConversionPoint(
        weight_bits=int(weight_bits), levels=int(levels), steps=int(conv.steps),
        accuracy=None if labels is None else float(np.mean(pred == np.asarray(labels))),
        agreement=float(np.mean(pred == float_pred)),
        exact=exact,
        memory_bits=int(budget.memory_bits), state_memory_bits=int(budget.state_bits),
        state_bits_needed=required_state_bits(conv.chip, result.probes),
        model_weight_bits=int(sum(m.op.weight.numel() for m in layers) * weight_bits),
        bit_ops_per_sample=float(budget.bit_ops or 0) / batch,
        synaptic_ops_per_sample=result.activity.total_synaptic_ops / batch,
        energy_j=float(energy.total_j), latency_s=float(energy.latency.per_inference_s),
        neurobench={**chip_metrics(conv.chip, result.activity),
                    "membrane_updates": probed_membrane_updates(conv.chip, result.probes)},
        requested_steps=requested_steps,
    )


@dataclass
class ConversionGrid:
    """The points of a weight bits x time steps grid, weight bits outer, with their Pareto front."""

    points: list[ConversionPoint]
    cost: str = "bit_ops_per_sample"
    notes: list[str] = field(default_factory=list)

    def pareto(self) -> list[ConversionPoint]:
        """Points no other beats in both `cost` (lower) and quality (higher)."""
        return grid_pareto(self.points, self.cost)

    def figure(self):
        """Cost against quality, one marker per point labelled (bits, T), the front joined by a line
        (matplotlib object API, no pyplot state)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.5, 3.8))
        ax = fig.add_subplot()
        for i, bits in enumerate(sorted({p.weight_bits for p in self.points})):
            pts = [p for p in self.points if p.weight_bits == bits and p.feasible]  # infeasible: table only
            ax.scatter([getattr(p, self.cost) for p in pts], [p.quality for p in pts], color=f"C{i % 10}",
                       label=f"{bits}-bit weights", s=18)
            for p in pts:
                ax.annotate(f"T={p.steps}", (getattr(p, self.cost), p.quality), textcoords="offset points",
                            xytext=(3, 3), fontsize=7)
        front = sorted(self.pareto(), key=lambda p: getattr(p, self.cost))
        ax.plot([getattr(p, self.cost) for p in front], [p.quality for p in front], "-", color="k", lw=1,
                label="Pareto front")
        ax.set_xlabel(self.cost.replace("_", " "))
        ax.set_ylabel("accuracy" if self._labelled else "agreement with the float model")
        ax.set_title("Converted network: weight bits x time steps")
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig

    @property
    def _labelled(self) -> bool:
        return all(p.accuracy is not None for p in self.points)

    def to_dict(self) -> dict:
        front = self.pareto()
        return {
            "axes": ["weight_bits", "state_bits", "steps"],
            "cost": self.cost,
            "quality": "accuracy" if self._labelled else "agreement",
            "pareto": [{"weight_bits": p.weight_bits, "state_bits": p.state_bits, "levels": p.levels, "steps": p.steps}
                       for p in front],
            "points": [p.to_dict() for p in self.points],
            "notes": list(self.notes),
            "definitions": {
                "steps": "T = 2 + N L (+1 with a readout): N hidden layers, L activation levels",
                "memory_bits": "weights + state + parameters of the chip as built (analysis.budget), u and v "
                "at state_bits each",
                "state_bits_needed": "signed width of the largest |u|, |v| of any neuron on the data (sim u/v "
                "probes); a point with state_bits below it is infeasible and never on the Pareto front",
                "bit_ops_per_sample": "sum over projections of synaptic ops x num_weight_bits, per sample",
                "exact": "the chip's outputs equal the integer network's on every sample",
                "neurobench": "analysis.neurobench.chip_metrics (neurobench 2.3.0 definitions)",
            },
        }

    def render(self):
        """A rich Table, one row per point; the Pareto points starred."""
        from rich.table import Table

        front = {id(p) for p in self.pareto()}
        quality = "accuracy" if self._labelled else "agreement"
        table = Table(title="Converted network: weight bits x time steps",
                      caption=f"Pareto (*): not beaten in both {self.cost.replace('_', ' ')} and {quality}; "
                      "exact: chip outputs = the integer network's on every sample; per inference"
                      + "".join(f"\nnote: {n}" for n in self.notes), caption_justify="left")
        for col in ("weight bits", "state bits", "T", "levels", quality, "exact", "memory bits", "bit ops", "syn ops",
                    "energy", "latency", "act. sparsity", "Pareto"):
            table.add_column(col, justify="right")
        from snnc.compiler.report.format import format_energy, format_time

        for p in self.points:
            table.add_row(str(p.weight_bits),
                          str(p.state_bits) if p.feasible else f"[red]{p.state_bits}: needs {p.state_bits_needed} state bits[/]",
                          str(p.steps), str(p.levels), f"{p.quality:.3f}",
                          "yes" if p.exact else "[red]NO[/]", f"{p.memory_bits:,}", f"{p.bit_ops_per_sample:,.0f}",
                          f"{p.synaptic_ops_per_sample:,.0f}", format_energy(p.energy_j), format_time(p.latency_s),
                          f"{p.neurobench.get('activation_sparsity', math.nan):.3f}",
                          "*" if id(p) in front else "")
        return table


def conversion_grid(model: Any, weight_bits: Sequence[int], levels: Sequence[int], calib, x, labels=None, *,
                    progress: Callable[[Any], Any] | None = None, cost: str = "bit_ops_per_sample",
                    requested_steps: Sequence[int | None] | None = None,
                    state_bits: Sequence[int] = (STATE_BITS,), **kwargs) -> ConversionGrid:
    """Every (weight bits, levels) run, weight bits outer, priced at each of `state_bits` (one run
    serves them all: `at_state_bits`). `progress` wraps the run iterator (e.g. rich.progress.track);
    `requested_steps`, one per level, records the T each came from."""
    bad = [b for b in state_bits if not 1 <= int(b) <= STATE_BITS]
    if bad or not state_bits:
        raise ParameterError("state widths are 1..24 bits (Loihi's u and v are 24-bit)", where="--state-bits",
                             got=bad or list(state_bits), hint="e.g. --state-bits 12,16,24")
    if cost not in COSTS:
        raise ParameterError("unknown Pareto cost", where="conversion_grid", expected=", ".join(COSTS), got=cost)
    asked = list(requested_steps) if requested_steps is not None else [None] * len(levels)
    grid = [(wb, L, t) for wb in weight_bits for L, t in zip(levels, asked)]
    it = progress(grid) if progress is not None else grid
    runs = [conversion_point(model, wb, L, calib, x, labels, requested_steps=t, **kwargs) for wb, L, t in it]
    return ConversionGrid([at_state_bits(p, s) for p in runs for s in state_bits], cost=cost)


def grid_pareto(points: Sequence[ConversionPoint], cost: str = "bit_ops_per_sample") -> list[ConversionPoint]:
    """Feasible points no other beats in both `cost` (lower) and quality (higher)."""
    feasible = [p for p in points if p.feasible]
    return [feasible[i] for i in pareto_front([(getattr(p, cost), p.quality) for p in feasible])]
