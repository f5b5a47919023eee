"""`compile()`: a model in, a chip-level graph plus a report of every pass out.

The pipeline is canonicalize -> fuse -> timing -> quantize -> split -> legalize (see each pass's module
for why it exists), run by the `PassManager` which validates the graph after every pass, times
the passes and can dump the graph after any of them. `CompileResult` holds the ChipGraph, the
NIR-level graph the quantizer saw, per-pass reports and per-layer quantization errors, renders a
summary table (rich), serializes to JSON (`to_dict`), and can run the compiled graph on a backend
with the input encoding the quantizer chose (`run`).
"""
from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from snnc.backends.base import shift_back
from snnc.ir.chip import ChipGraph
from snnc.ir.errors import ParameterError, ShapeError
from snnc.ir.graph import Graph

from .passes.base import Pass, PassManager, PassRecord, jsonable
from .passes.canonicalize import Canonicalize
from .passes.fuse import Fuse
from .passes.legalize import Legalize
from .passes.quantize import Quantize
from .passes.split import Split
from .passes.timing import Timing

DEFAULT_DT = 1e-4


def load(model: Any, reset_mode: str | None = None) -> Graph:
    """A validated NIR-level Graph from a Graph, a nir.NIRGraph or a path (`reset_mode`: see
    `snnc.ir.reset_mode`; None assumes NIR's reset where the model cannot say, with a warning)."""
    from snnc.compiler.frontends.loader import load_model

    graph = model if isinstance(model, Graph) else load_model(model, reset_mode=reset_mode)
    if isinstance(graph, ChipGraph):
        raise ParameterError(
            "the model is already a chip-level graph",
            where="compile(model)",
            hint="run it directly on the 'sim' or 'lava' backend; compile takes NIR-level models",
        )
    return graph


def default_passes(
    *,
    target: str = "loihi2",
    weight_bits: int = 8,
    dt: float = DEFAULT_DT,
    calibrate: Any = None,
    per_channel: bool = False,
    reset: str = "exact",
    input_encoding: str = "auto",
    input_bits: int = 8,
    bias: str = "neuron",
    exponent_groups: int = 4,
    split_sign: bool = True,
    headroom: float = 2.0,
    refine: bool = True,
    shared: Sequence[str] | None = None,
    tolerance: float = 0.01,
) -> list[Pass]:
    """The standard pass list with its options (see `compile`)."""
    if shared is None:
        shared = ("du", "dv") if per_channel else ("du", "dv", "vth")
    return [
        Canonicalize(dt=dt, reset=reset),
        Fuse(),
        Timing(),
        Quantize(
            weight_bits=weight_bits, per_channel=per_channel, calibrate=calibrate, input_encoding=input_encoding,
            input_bits=input_bits, headroom=headroom, bias=bias, exponent_groups=exponent_groups,
            split_sign=split_sign, refine=refine,
        ),
        Split(shared=tuple(shared), tolerance=tolerance),  # heterogeneous layers as sub-populations
        Legalize(target=target, shared=tuple(shared), tolerance=tolerance),
    ]


def compile(  # noqa: A001 - the verb users expect
    model: Any,
    target: str = "loihi2",
    weight_bits: int = 8,
    dt: float = DEFAULT_DT,
    calibrate: Any = None,
    *,
    passes: str | Sequence[Pass] | None = None,
    reset_mode: str | None = None,
    extra_passes: Sequence[Pass] = (),
    dump_after: str | Iterable[str] | None = None,
    dump_dir: str | Path | None = None,
    validate: bool = True,
    guard: bool = True,
    strict: bool = False,
    assumed: Sequence[str] = (),
    **pass_options: Any,
) -> "CompileResult":
    """Compile `model` (Graph, nir.NIRGraph or .nir path) for `target` ("loihi2", "loihi1").

    weight_bits: bits per synaptic weight (1..8). dt: seconds per time step (NIR is continuous;
    the NIR paper's models assume 1e-4). calibrate: sample inputs [T, *shape] / [batch, T, *shape]
    (a dict for several inputs) to size scales from real ranges, refine them on the float model's
    spike decisions and report membrane-input errors. per_channel: one scale per neuron (needs
    per-neuron vth; implies shared=("du", "dv")). reset: "exact" or "shift" (v_reset != v_leak).
    input_encoding: "auto", "spikes" or "graded"; input_bits: graded payload bits. bias: "neuron"
    (exact) or "mant". exponent_groups / split_sign: weight coding (see quantize). shared: neuron
    parameters the target holds once per layer; tolerance: how far per-neuron values may be
    collapsed. passes: replace the pass list (Pass objects, or a text spec such as
    "canonicalize,fuse,timing,quantize(weight_bits=6),legalize"; `calibrate` still reaches quantize); extra_passes: run after legalize (e.g. mapping).
    reset_mode: "zero", "subtract" or "none" for spiking neurons whose model cannot state it (NIR
    files; see snnc.ir.reset_mode); None assumes "zero" and warns.
    dump_after/dump_dir: write (or keep in memory) the graph after the named passes.
    The remaining options (per_channel ... tolerance) are `default_passes`'s, whose defaults they
    keep; they configure the default pass list, so they cannot be combined with `passes`.
    guard: run the fidelity guard (snnc.compiler.analysis.fidelity) after compiling: float model vs
    chip graph on `calibrate` (or a generated input), per-layer measurements in `result.fidelity`, a
    FidelityWarning per breached tolerance. `tolerance=` given as a dict or "KEY=VALUE,..." text sets
    the guard's limits (a number is still the legalize option above). strict: raise a
    QuantizationError listing every breach and assumption warning instead. assumed: assumptions
    made before this call (e.g. the loader's warnings) to state with this run's.
    """
    from .analysis.fidelity import recorded_warnings

    guard_tolerance = pass_options.pop("tolerance") if isinstance(pass_options.get("tolerance"), (str, Mapping)) else None
    with recorded_warnings() as load_warnings:
        source = load(model, reset_mode)
    assumed = [*assumed, *(str(w.message) for w in load_warnings)]
    if isinstance(passes, str):
        from .passes import parse_pipeline

        passes = [dataclasses.replace(p, calibrate=calibrate) if isinstance(p, Quantize) and calibrate is not None else p
                  for p in parse_pipeline(passes)]
    if passes is None:
        passes = default_passes(target=target, weight_bits=weight_bits, dt=dt, calibrate=calibrate, **pass_options)
    elif pass_options:
        raise ParameterError(
            "pass options configure the default pass list and cannot be combined with `passes`",
            where="compile()",
            got=sorted(pass_options),
            hint="set the options on the Pass objects you pass instead",
        )
    passes = list(passes) + list(extra_passes)
    # keep the NIR-level graph the quantizer lowered (the output of the pass before it)
    names = [p.name for p in passes]
    keep = [names[names.index("quantize") - 1]] if "quantize" in names[1:] else []
    manager = PassManager(passes, validate=validate, dump_after=dump_after, dump_dir=dump_dir, keep=keep)
    result = manager.run(source)
    nir_graph = result.dumps.get(keep[0]) if keep else None
    compiled = CompileResult(
        chip=result.graph, graph=nir_graph, source=source, records=result.records, dumps=result.dumps,
        target=target, dt=float(dt), weight_bits=int(weight_bits),
    )
    from .analysis.fidelity import guard_compile

    try:
        guard_compile(compiled, calibrate=calibrate, tolerance=guard_tolerance, assumed=assumed,
                      run=guard and "quantize" in names, strict=strict)
    finally:
        for record in compiled.records:
            record.handoff.clear()  # for this compile only: a result keeps no float run alive
    return compiled


@dataclass
class CompileResult:
    """What `compile` produced (see module docstring)."""

    chip: Any
    graph: Graph | None
    source: Graph
    records: list[PassRecord]
    dumps: dict = field(default_factory=dict)
    target: str = "loihi2"
    dt: float = DEFAULT_DT
    weight_bits: int = 8
    fidelity: Any = None  # snnc.compiler.analysis.fidelity.FidelityReport (None: guard not run)
    assumptions: list = field(default_factory=list)  # what this compile assumed, stated once

    # -- reports ----------------------------------------------------------------------------------
    def report(self, name: str) -> dict:
        for rec in self.records:
            if rec.name == name:
                return rec.report
        raise KeyError(f"no pass named {name!r} ran (passes: {[r.name for r in self.records]})")

    @property
    def layers(self) -> dict[str, dict]:
        """Per-layer quantization report (population name -> dict)."""
        return self.report("quantize").get("layers", {})

    @property
    def notes(self) -> list[str]:
        """Quirks of the model file repaired while reading it (snnc.ir.repairs), each stated once."""
        return list(getattr(self.source, "notes", []))

    @property
    def time_shift(self) -> int:
        return int(self.chip.meta.get("time_shift", 0) or 0)

    def latency(self, population: str) -> int:
        """Steps by which `population` lags the float model (its own shift; outputs: time_shift)."""
        pop = self.chip.populations.get(population)
        if pop is None:
            raise ShapeError("unknown population", where=f"latency({population!r})", expected=sorted(self.chip.populations))
        return int(pop.meta.get("latency") or 0)

    @property
    def output_shifts(self) -> dict[str, int]:
        """Steps each output port lags the float model (its population's latency; normally all
        equal to time_shift, different where one output population feeds another)."""
        return {name: int(self.chip.populations[port.population].meta.get("latency") or self.time_shift)
                for name, port in self.chip.outputs.items()}

    def align(self, array: np.ndarray, population: str | None = None, *, output: str | None = None) -> np.ndarray:
        """`array` [batch, T, ...] shifted back by the population's latency, or by an output port's
        shift (`output`); default: time_shift."""
        if output is not None:
            shift = self.output_shifts[output]
        else:
            shift = self.time_shift if population is None else self.latency(population)
        return shift_back(array, shift)

    def totals(self) -> dict:
        layers = self.layers
        return {
            "neurons": int(sum(p.size for p in self.chip.populations.values())),
            "synapses": int(self.chip.num_synapses),
            "weight_memory_bits": int(sum(p.num_synapses * int(p.num_weight_bits) for p in self.chip.projections.values())),
            "projections": len(self.chip.projections),
            "layers": len(layers),
            "time_shift": self.time_shift,
            "compile_seconds": round(sum(r.seconds for r in self.records), 4),
        }

    def to_dict(self) -> dict:
        """Everything as plain JSON values."""
        return jsonable(
            {
                "target": self.target,
                "dt": self.dt,
                "weight_bits": self.weight_bits,
                "totals": self.totals(),
                "layers": self.layers,
                "inputs": self.report("quantize").get("inputs", {}),
                "meta": {k: v for k, v in self.chip.meta.items()},
                "assumptions": list(self.assumptions),
                "notes": self.notes,
                "fidelity": self.fidelity.to_dict() if self.fidelity is not None else None,
                "passes": [r.to_dict() for r in self.records],
            }
        )

    def summary(self):
        """A rich Table: per layer neurons, synapses, bits, threshold/decays, errors; totals."""
        from rich.table import Table

        calibrated = any("membrane_input_error" in l for l in self.layers.values())
        table = Table(title=f"snnc compile: {self.target}, {self.weight_bits}-bit weights, dt={self.dt:g} s, time shift {self.time_shift}")
        for col, just in [("layer", "left"), ("neurons", "right"), ("synapses", "right"), ("bits", "right"),
                          ("projections", "right"), ("vth", "right"), ("du/dv", "right"), ("latency", "right"),
                          ("weight err", "right")] + ([("input err", "right")] if calibrated else []):
            table.add_column(col, justify=just)
        for name, l in self.layers.items():
            nproj = sum(len(p.get("parts", {})) or 1 for p in l["projections"].values())
            row = [
                name, f"{l['neurons']:,}", f"{l['synapses']:,}", str(l["weight_bits"]), str(nproj),
                _fmt(l["vth"]), f"{_fmt(l['du'])}/{_fmt(l['dv'])}", str(l.get("latency")),
                f"{100 * l['weight_error']:.2f}%",
            ]
            if calibrated:
                m = l.get("membrane_input_error")
                row.append("-" if m is None else f"{100 * m:.2f}%")
            table.add_row(*row)
        t = self.totals()
        table.add_section()
        row = ["total", f"{t['neurons']:,}", f"{t['synapses']:,}", f"{t['weight_memory_bits']:,} b", str(t["projections"]), "", "", "", ""]
        if calibrated:
            row.append("")
        table.add_row(*row)
        return table

    def summary_text(self, width: int = 120) -> str:
        """The summary table as plain text."""
        from rich.console import Console

        console = Console(record=True, width=width, file=io.StringIO())  # recorded, not shown
        console.print(self.summary())
        notes = [n for r in self.records for n in r.report.get("notes", []) + r.report.get("approximations", [])]
        for n in notes:
            console.print(f"note: {n}", highlight=False, markup=False)
        if self.fidelity is not None:
            for line in self.fidelity.lines():
                console.print(line, highlight=False, markup=False)
        else:
            for a in self.assumptions:
                console.print(f"assumed: {a}", highlight=False, markup=False)
            console.print("fidelity guard: not run", highlight=False, markup=False)
        return console.export_text()

    def __str__(self) -> str:
        return self.summary_text()

    # -- running ------------------------------------------------------------------------------------
    def encode_inputs(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Float inputs as the chip takes them (see snnc.compiler.data.encoding.encode)."""
        from .data.encoding import encode

        return encode(self.chip, inputs).inputs

    def run(self, inputs, backend: str = "sim", steps: int | None = None, probes: Sequence[str] = (), raw: bool = False,
            **options):
        """Run the compiled graph on float inputs, as the float model takes them: outputs come back
        aligned with the float model over all T steps and in its units (the run is extended by the
        latency). Probes stay in chip units and lag by their population's latency (`align`).
        `raw=True`: the chip's own integer outputs for `steps` steps, unaligned (as the chip runs).
        See snnc.compiler.data.encoding."""
        from .data.encoding import run

        return run(self.chip, inputs, backend=backend, steps=steps, probes=probes, raw=raw, **options)


def _fmt(value) -> str:
    if isinstance(value, dict):
        return f"{value.get('min')}..{value.get('max')}"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return str(value)
