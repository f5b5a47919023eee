"""The main job in one call: compile, simulate, map, price, and report.

`evaluate(model, inputs)` is what a user runs before touching hardware: it compiles a float model
(or takes an already chip-level one), runs it on the bit-exact `sim` backend (which counts every
synaptic op, neuron update and spike), maps the network onto the chip's cores with the measured
traffic, prices that activity with the chip's cost table, and accounts every bit. The CLI's
`snnc report` / `snnc energy` and the examples all go through here, so they agree.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from snnc.backends.base import RunResult
from snnc.ir.chip import ChipGraph

from .budget import BitBudget, bit_budget
from .energy import EnergyReport, estimate_energy
from ..mapping import Mapping as CoreMapping
from ..mapping import map_to_cores
from ..pipeline import CompileResult, compile


@dataclass
class Evaluation:
    """Everything `evaluate` learned about one model on one input batch."""

    chip: ChipGraph
    run: RunResult | None  # None when evaluated over a dataset (`dataset` holds its result)
    mapping: CoreMapping
    energy: EnergyReport
    budget: BitBudget
    compiled: CompileResult | None = None  # None when the model was chip-level already
    dataset: Any = None  # analysis.dataset_eval.DatasetEvaluation: accuracy, predictions, fidelity over a dataset

    def write_report(self, out_dir: str | Path, meta: Mapping[str, Any] | None = None) -> dict[str, Path]:
        """`report.json` + self-contained `report.html` in `out_dir`."""
        from ..report import write_report

        info: dict[str, Any] = {"chip": self.mapping.profile.name}
        if self.run is not None:
            info["time_shift"] = self.run.time_shift
        if self.compiled is not None:
            info.update(target=self.compiled.target, weight_bits=self.compiled.weight_bits, dt=self.compiled.dt)
        if self.dataset is not None:
            info["dataset"] = self.dataset.to_dict()  # accuracy, predictions, fidelity, per-inference activity and energy
        decoded = getattr(self.run, "decoded_outputs", None)
        if decoded is not None:
            from ..data.encoding import readout_summary

            info["readouts"] = readout_summary(self.chip, decoded)
        info.update(meta or {})
        return write_report(
            out_dir,
            graph=self.chip,
            mapping=self.mapping,
            energy=self.energy,
            activity=self.run.activity if self.run is not None else self.dataset.activity,
            run_result=self.run,
            budget=self.budget,
            quant_errors=self.compiled.layers if self.compiled is not None else None,
            fidelity=self.compiled.fidelity if self.compiled is not None else None,
            assumptions=self.compiled.assumptions if self.compiled is not None else None,
            notes=self.compiled.notes if self.compiled is not None else None,
            meta=info,
        )


def evaluate(
    model: Any,
    inputs: np.ndarray | Mapping[str, np.ndarray],
    *,
    chip: str = "loihi2",
    costs: str | None = None,
    steps: int | None = None,
    probes: Sequence[str] | None = None,
    compiled: CompileResult | None = None,
    **compile_options: Any,
) -> Evaluation:
    """Compile (unless `model` is chip-level or `compiled` is given), run on `sim`, map, price.

    `chip` names a built-in profile ("loihi1", "loihi2") or a profile file (compiled with Loihi 2's
    number formats, mapped and priced with the file's limits and costs); `costs` overrides its
    cost table. `probes` defaults to the spikes of every population (for the report's rasters).
    Remaining keyword arguments go to `snnc.compiler.compile` (weight_bits, dt, calibrate, ...).
    """
    from snnc.compiler.frontends.loader import load_model

    if compiled is None:
        from .fidelity import recorded_warnings

        with recorded_warnings() as load_warnings:  # stated again by compile's assumptions
            model = load_model(model, reset_mode=compile_options.pop("reset_mode", None))  # a ChipGraph comes back as it is
        compile_options["assumed"] = [*compile_options.get("assumed", ()), *(str(w.message) for w in load_warnings)]
        if not isinstance(model, ChipGraph):
            target = chip if chip in ("loihi1", "loihi2") else "loihi2"
            compiled = compile(model, target=target, **compile_options)
    graph = compiled.chip if compiled is not None else model
    if probes is None:
        probes = [f"{name}/s" for name in graph.populations]
    # float inputs are encoded as compiled; the run is extended by the latency so that every output
    # covers all T float steps (the chip must run those steps too: their energy is counted)
    from ..data.encoding import decode, extra_steps, float_steps
    from ..data.encoding import run as run_encoded

    length = float_steps(graph, inputs, steps)
    run = run_encoded(graph, inputs, backend="sim", steps=length + extra_steps(graph), probes=probes, raw=True)
    run.decoded_outputs = decode(graph, run.outputs, length)  # float units, aligned, T steps
    mapping = map_to_cores(graph, chip, traffic=run.activity)
    energy = estimate_energy(run.activity, mapping, costs=costs)
    budget = bit_budget(graph, run.activity, warn=False)
    return Evaluation(chip=graph, run=run, mapping=mapping, energy=energy, budget=budget, compiled=compiled)


def evaluate_over_dataset(model: Any, data: Any, *, chip: str = "loihi2", costs: str | None = None, steps: int | None = None,
                          engine: Any = None, batch_size: int = 64, data_options: Mapping[str, Any] | None = None,
                          reset_mode: str | None = None, **compile_options: Any) -> Evaluation:
    """`evaluate` over a whole dataset (analysis.dataset_eval, on `engine`): compiled once, activity
    summed over every sample, mapped and priced per inference; `dataset` holds accuracy, predictions
    and fidelity. No single run is kept (`run` is None), so a report has no spike rasters."""
    from snnc.ir.errors import ParameterError

    from .dataset_eval import evaluate_dataset

    result = evaluate_dataset(model, data, chip=chip, costs=costs, steps=steps, engine=engine, batch_size=batch_size,
                              data_options=dict(data_options or {}), reset_mode=reset_mode, **compile_options)
    if result.energy is None:
        raise ParameterError("the model could not be mapped and priced over the dataset", where=str(model),
                             got="; ".join(result.notes[-1:]), hint="check `snnc evaluate` on the same data")
    budget = bit_budget(result.graph, result.activity, warn=False)
    return Evaluation(chip=result.graph, run=None, mapping=result.mapping, energy=result.energy, budget=budget,
                      compiled=result.compiled, dataset=result)
