"""Evaluate a model over a whole dataset: compile once, run batch after batch, on any backend.

`evaluate_dataset(model, data)` is `snnc evaluate`. It compiles the model once (`prepare`: a
NIR-level model through `snnc.compiler.compile`, calibrated on `calibrate` or else on the first
CALIBRATION_SAMPLES samples; a chip-level file as it is), then streams the dataset (`snnc.compiler.data.dataset`) in
batches through `run_batch` on an engine (`distributed`: this process or dask workers, each of
which builds the program once). Batch results are merged in sample order, so the result is the same
whatever the batch size, the number of workers or the order tasks finish in.

Reported (`DatasetEvaluation.to_dict()`, the RESULT.json):
  predictions   one class per sample; the rule is stated in the result:
                "count": argmax over classes of the output's spike count summed over the T steps
                         (spiking outputs; ties and silence pick the lowest index, numpy's argmax);
                "last":  argmax of the decoded float output at the last step (voltage/readout
                         outputs, e.g. a converted network's readout integrator).
  accuracy      with labels: the fraction of predictions equal to the label.
  fidelity      agreement: the fraction of samples whose prediction equals the float model's on the
                `reference` backend (same rule); a NIR-level model is its own float model, a
                chip-level file needs `reference=` (its float source), else fidelity is absent.
  activity      the backend's counters summed over every sample (exactly the counters of one run
                over the whole dataset: they are integer sums), per inference.
  energy        `estimate_energy` of that activity on the mapped network: energy and latency per
                inference (backends that count no activity, e.g. lava, report none).
"""
from __future__ import annotations

import hashlib
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from snnc.backends.base import Activity, PopulationActivity, ProjectionActivity
from snnc.ir.chip import ChipGraph
from snnc.ir.errors import BackendError, ParameterError, ShapeError, SnncError

from ..data.dataset import Part, open_dataset
from .distributed import Engine, LocalEngine, worker_program
from .sweep import predictions

PREDICTION_RULES = {
    "count": "argmax over classes of the output spike count summed over time (ties: lowest index)",
    "last": "argmax over classes of the decoded float output at the last step (ties: lowest index)",
}


def predict(output: np.ndarray, rule: str = "count") -> np.ndarray:
    """One class per sample of `output` [batch, T, *classes] by `rule` (PREDICTION_RULES)."""
    out = np.asarray(output)
    if rule == "count":
        return predictions(out)
    if rule == "last":
        return out.reshape(out.shape[0], out.shape[1], -1)[:, -1].argmax(axis=1)
    raise ParameterError("unknown prediction rule", where="--predict", expected=sorted(PREDICTION_RULES), got=rule)


def _digest(obj: Any) -> str:
    return hashlib.sha256(pickle.dumps(obj, protocol=4)).hexdigest()[:20]


# -- compile once ----------------------------------------------------------------------------------
@dataclass
class Prepared:
    """What every batch task needs (picklable; `key` names the program a worker caches)."""

    key: str
    backend: str
    graph: Any  # ChipGraph (sim, lava) or snnc.ir.Graph (reference)
    output: str
    rule: str
    steps: int | None = None
    dt: float | None = None
    reference: Any = None  # the float Graph for fidelity, or None
    reference_output: str | None = None
    reference_key: str | None = None
    notes: list[str] = field(default_factory=list)
    name: str = ""  # the model, for messages and the result
    compiled: Any = None  # the CompileResult (stays in the caller's process: not sent to workers)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["compiled"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)


def _pick_output(names: Sequence[str], output: str | None, where: str) -> str:
    names = list(names)
    if output is not None:
        if output not in names:
            raise ParameterError("no such output port", where=f"{where}: --output {output}", expected=names)
        return output
    if len(names) != 1:
        raise ParameterError("the model has several outputs: say which one classifies", where=where, expected=names,
                             hint="pass --output NAME")
    return names[0]


def _graph_rule(graph, output: str, dt: float | None) -> str:
    """'count' when the float graph's output comes from spiking nodes, else 'last'."""
    from snnc.backends.base import get_backend

    program = get_backend("reference").build(graph, **({} if dt is None else {"dt": dt}))
    kernels = getattr(program, "kernels", {})
    sources = graph.predecessors(output)
    spiking = bool(sources) and all(getattr(kernels.get(s), "spiking", False) for s in sources)
    return "count" if spiking else "last"


def prepare(model: Any, *, backend: str = "sim", calibrate: Any = None, weight_bits: int = 8, dt: float | None = None,
            steps: int | None = None, reset_mode: str | None = None, output: str | None = None, rule: str = "auto",
            reference: Any = None, name: str | None = None, notes: Sequence[str] = (), **compile_options: Any) -> Prepared:
    """Load `model` and compile it once for `backend` ('reference' runs the float graph itself).

    `calibrate`: inputs to size the compiler's scales on (NIR-level models; the caller passes the
    first samples of the data when the user gave none). `reference`: the float model of a chip-level file, for
    fidelity. `notes`: what the caller already stated (kept in the result). Remaining options go to
    `snnc.compiler.compile`.
    """
    from snnc.backends.base import get_backend
    from snnc.compiler.frontends.loader import load_model

    from .fidelity import recorded_warnings

    with recorded_warnings() as stated:
        graph = load_model(model, reset_mode=reset_mode)
    notes = [*notes, *(str(w.message) for w in stated)]
    where = name or (str(model) if isinstance(model, (str, Path)) else type(model).__name__)
    is_chip = isinstance(graph, ChipGraph)
    be = get_backend(backend)
    if getattr(be, "level", None) == "nir" and is_chip:
        raise BackendError(f"backend {backend!r} runs NIR-level graphs but the model is chip-level", where=where,
                           hint="use --backend sim or lava for a chip-level file")
    compiled = None
    float_graph = None
    if backend == "reference":
        if reference is not None:
            raise ParameterError("--reference compares against the float model; the reference backend runs it already",
                                 where=where, hint="drop --reference or choose --backend sim")
        run_graph = graph
    elif is_chip:
        run_graph = graph
        if calibrate is not None:
            notes.append("calibration data ignored: the model is chip-level already")
        if reference is not None:
            with recorded_warnings():
                float_graph = load_model(reference, reset_mode=reset_mode)
            if isinstance(float_graph, ChipGraph):
                raise ParameterError("the reference must be a float (NIR-level) model", where=f"--reference {reference}")
    else:
        from snnc.compiler.pipeline import compile as compile_model

        if calibrate is None:
            raise ParameterError("compiling needs calibration inputs", where=where, hint="pass calibrate= (--calibrate FILE)")
        options = {"weight_bits": weight_bits, "calibrate": calibrate, "assumed": notes, **compile_options}
        if dt is not None:
            options["dt"] = dt
        compiled = compile_model(graph, **options)
        run_graph = compiled.chip
        float_graph = compiled.source
    problems = list(be.problems(run_graph)) if hasattr(be, "problems") else []
    if problems:
        raise BackendError(f"backend {backend!r} cannot run this model: {'; '.join(map(str, problems[:3]))}", where=where,
                           hint="try another --backend")
    ref_dt = dt if dt is not None else (run_graph.meta.get("dt") if isinstance(run_graph, ChipGraph) else None)
    if isinstance(run_graph, ChipGraph):
        out = _pick_output(list(run_graph.outputs), output, where)
        auto = "count" if run_graph.outputs[out].var == "s" else "last"
    else:
        out = _pick_output(run_graph.outputs, output, where)
        auto = _graph_rule(run_graph, out, dt)
    chosen = auto if rule == "auto" else rule
    if chosen not in PREDICTION_RULES:
        raise ParameterError("unknown prediction rule", where="--predict", expected=["auto", *PREDICTION_RULES], got=rule)
    prepared = Prepared(key="", backend=backend, graph=run_graph, output=out, rule=chosen, steps=steps,
                        dt=dt if backend == "reference" else None, notes=notes, name=where, compiled=compiled)
    if float_graph is not None:
        prepared.reference = float_graph
        ref_outputs = list(float_graph.outputs)
        prepared.reference_output = out if out in ref_outputs else _pick_output(ref_outputs, None, f"{where} (float model)")
        prepared.dt = ref_dt  # the float model runs at the chip's step
        prepared.reference_key = "reference:" + _digest((float_graph, ref_dt))
    prepared.key = f"{backend}:" + _digest((run_graph, backend, prepared.dt))
    return prepared


# -- run many --------------------------------------------------------------------------------------
@dataclass
class BatchResult:
    """What one batch gives back (small: predictions and counters, never outputs)."""

    start: int
    predictions: np.ndarray
    labels: np.ndarray | None
    reference_predictions: np.ndarray | None
    activity: Activity | None
    steps: int
    encoded: dict[str, tuple] = field(default_factory=dict)  # run_chip's record per input port


def _reference_program(graph, dt: float | None, key: str):
    from snnc.backends.base import get_backend

    return worker_program(key, lambda: get_backend("reference").build(graph, **({} if dt is None else {"dt": dt})))


def run_chip(prepared: Prepared, x) -> tuple[np.ndarray, Activity | None, int, dict[str, tuple]]:
    """Float inputs through the chip program (the encoding contract's encode/decode around a cached
    program): (aligned output in float units [batch, T, ...], activity, T, what the encoding had to
    do per input port: `encoding_notes` turns that into notes that do not depend on the batching)."""
    from snnc.backends.base import get_backend
    from snnc.compiler.data.encoding import contract, decode, encode, extra_steps

    chip = prepared.graph
    with warnings.catch_warnings():  # stated once per dataset (encoding_notes), not once per batch
        warnings.simplefilter("ignore")
        enc = encode(chip, x, prepared.steps)
    ports = contract(chip)["inputs"]
    done: dict[str, tuple] = {}
    for name, arr in enc.inputs.items():
        widened = enc.chip.inputs[name].num_message_bits != chip.inputs[name].num_message_bits
        rng = (ports.get(name) or {}).get("range")
        if widened:
            done[name] = ("widened", float(np.max(arr)), int(enc.chip.inputs[name].num_message_bits))
        elif rng is not None:
            top = float(np.max(np.abs(x[name] if isinstance(x, dict) else x)))
            if top > float(rng) * (1 + 1e-9):
                done[name] = ("beyond range", top, float(rng))
    bits = tuple(sorted((n, v[2]) for n, v in done.items() if v[0] == "widened"))
    key = prepared.key + (f"+widened{bits}" if bits else "")  # one program per payload width
    program = worker_program(key, lambda: get_backend(prepared.backend).build(enc.chip))
    result = program.run(enc.inputs, steps=enc.steps + extra_steps(enc.chip))
    out = decode(chip, {prepared.output: result.outputs[prepared.output]}, enc.steps)[prepared.output]
    return out, result.activity, enc.steps, done


def encoding_notes(per_batch: Sequence[dict[str, tuple]]) -> list[str]:
    """One note per input port on what the encoding did over all batches (largest values)."""
    merged: dict[str, tuple] = {}
    for done in per_batch:
        for name, (kind, top, extra) in done.items():
            old = merged.get(name)
            merged[name] = (kind, max(top, old[1]), max(extra, old[2])) if old and old[0] == kind else (kind, top, extra)
    notes = []
    for name, (kind, top, extra) in sorted(merged.items()):
        if kind == "widened":
            notes.append(f"input {name!r}: binned counts up to {top:g} on a port compiled for binary spikes were sent as "
                         f"{extra}-bit graded payload (scale 1, exact); the compiled headroom assumed one spike per step: "
                         f"calibrate on such data to size it")
        else:
            notes.append(f"input {name!r}: values up to |x| = {top:.6g} beyond the calibrated range |x| <= {extra:.6g} "
                         f"(within the payload; not clipped)")
    return notes


def run_batch(prepared: Prepared, part: Part) -> BatchResult:
    """One batch: load it, run the cached program (and the float reference), predict."""
    x, labels = part.load()
    if isinstance(prepared.graph, ChipGraph):
        out, activity, steps, encoded = run_chip(prepared, x)
    else:
        program = _reference_program(prepared.graph, prepared.dt, prepared.key)
        result = program.run(x, steps=prepared.steps)
        out, activity, encoded = result.outputs[prepared.output], result.activity, {}
        steps = int(out.shape[1])
    ref_pred = None
    if prepared.reference is not None:
        program = _reference_program(prepared.reference, prepared.dt, str(prepared.reference_key))
        ref = program.run(x, steps=steps)
        ref_pred = predict(ref.outputs[prepared.reference_output], prepared.rule)
    if labels is not None and len(labels) != part.size:
        raise ShapeError("one label per sample", where=f"samples {part.start}..{part.stop - 1}", expected=part.size, got=len(labels))
    return BatchResult(part.start, predict(out, prepared.rule), labels, ref_pred, activity, steps, encoded)


# -- merge -----------------------------------------------------------------------------------------
def _add(a, b):
    if a is None or b is None:
        return None if a is None and b is None else (a if b is None else b)
    return np.asarray(a) + np.asarray(b)


def merge_activity(parts: Sequence[Activity | None]) -> Activity | None:
    """The counters of several batches as one run over all their samples (every counter is a sum
    over samples); None when a batch has none. Batches must have run the same number of steps."""
    runs = [p for p in parts if p is not None]
    if not runs or len(runs) != len(parts):
        return None
    steps = {p.steps for p in runs}
    if len(steps) != 1:
        raise ShapeError("batches ran different numbers of steps; their activity cannot be merged",
                         where="dataset evaluation", expected="one T for every sample", got=sorted(steps))
    total = Activity(batch=sum(p.batch for p in runs), steps=runs[0].steps)
    for p in runs:
        for name, pop in p.populations.items():
            acc = total.populations.get(name)
            if acc is None:
                total.populations[name] = PopulationActivity(
                    pop.neurons, pop.neuron_updates, pop.active_updates, pop.spikes,
                    None if pop.spikes_per_step is None else np.array(pop.spikes_per_step),
                    None if pop.spike_counts is None else np.array(pop.spike_counts))
                continue
            acc.neuron_updates += pop.neuron_updates
            acc.active_updates += pop.active_updates
            acc.spikes += pop.spikes
            acc.spikes_per_step = _add(acc.spikes_per_step, pop.spikes_per_step)
            acc.spike_counts = _add(acc.spike_counts, pop.spike_counts)
        for name, proj in p.projections.items():
            pacc = total.projections.get(name)
            if pacc is None:
                total.projections[name] = ProjectionActivity(
                    proj.synaptic_ops, proj.messages_in,
                    None if proj.synaptic_ops_per_step is None else np.array(proj.synaptic_ops_per_step))
                continue
            pacc.synaptic_ops += proj.synaptic_ops
            pacc.messages_in += proj.messages_in
            pacc.synaptic_ops_per_step = _add(pacc.synaptic_ops_per_step, proj.synaptic_ops_per_step)
    return total


@dataclass
class DatasetEvaluation:
    """The merged result of a dataset evaluation (module docstring)."""

    model: str
    data: str
    backend: str
    rule: str
    samples: int
    steps: int
    predictions: np.ndarray
    labels: np.ndarray | None = None
    reference_predictions: np.ndarray | None = None
    activity: Activity | None = None
    energy: Any = None  # EnergyReport
    mapping: Any = None
    notes: list[str] = field(default_factory=list)
    compiled: Any = None
    assumed: list[str] = field(default_factory=list)  # what loading the model assumed (--strict fails on these)
    graph: Any = None  # the graph that ran (ChipGraph on sim/lava): what a report maps and budgets

    @property
    def accuracy(self) -> float | None:
        return None if self.labels is None else float(np.mean(self.predictions == self.labels))

    @property
    def agreement(self) -> float | None:
        """Fraction of samples whose prediction equals the float model's."""
        if self.reference_predictions is None:
            return None
        return float(np.mean(self.predictions == self.reference_predictions))

    @property
    def reference_accuracy(self) -> float | None:
        if self.reference_predictions is None or self.labels is None:
            return None
        return float(np.mean(self.reference_predictions == self.labels))

    def to_dict(self) -> dict:
        act = self.activity
        activity = None
        if act is not None:
            n = max(act.batch, 1)
            neurons = sum(p.neurons for p in act.populations.values())
            activity = {
                "steps_per_inference": act.steps,
                "synaptic_ops_per_inference": act.total_synaptic_ops / n,
                "spikes_per_inference": act.total_spikes / n,
                "spikes_per_neuron_per_step": act.total_spikes / n / max(neurons * act.steps, 1),
                "populations": {k: {"neurons": p.neurons, "spikes_per_inference": p.spikes / n}
                                for k, p in act.populations.items()},
            }
        energy = None
        if self.energy is not None:
            e = self.energy
            energy = {"per_inference_j": e.total_j, "dynamic_j": e.dynamic_j, "static_j": e.static_j,
                      "latency_per_inference_s": e.latency.per_inference_s, "by_type_j": e.by_type,
                      "synaptic_ops_per_inference": e.synaptic_ops, "chip": e.target,
                      "cost_table": e.table.to_dict().get("name", ""), "cores": int(self.mapping.cores_used),
                      "assumptions": list(e.assumptions)}
        fidelity = None
        if self.reference_predictions is not None:
            fidelity = {"agreement": self.agreement, "reference_accuracy": self.reference_accuracy,
                        "reference": "the float model on the reference backend, predicted by the same rule",
                        "reference_predictions": [int(p) for p in self.reference_predictions]}
        return {
            "model": self.model,
            "data": self.data,
            "backend": self.backend,
            "samples": self.samples,
            "steps": self.steps,
            "prediction": {"rule": self.rule, "meaning": PREDICTION_RULES[self.rule]},
            "accuracy": self.accuracy,
            "predictions": [int(p) for p in self.predictions],
            "labels": None if self.labels is None else [int(v) for v in self.labels],
            "fidelity": fidelity,
            "activity": activity,
            "energy": energy,
            "notes": list(self.notes),
        }


def _combine(prepared: Prepared, results: list[BatchResult], *, model: str, data: str, chip: str,
             costs: str | None) -> DatasetEvaluation:
    results = sorted(results, key=lambda r: r.start)
    notes = list(dict.fromkeys([*prepared.notes, *encoding_notes([r.encoded for r in results])]))
    labels = None if any(r.labels is None for r in results) else np.concatenate([r.labels for r in results])
    refs = None if any(r.reference_predictions is None for r in results) else np.concatenate([r.reference_predictions for r in results])
    activity = merge_activity([r.activity for r in results])
    energy = mapping = None
    if activity is not None and isinstance(prepared.graph, ChipGraph):
        from ..mapping import map_to_cores
        from .energy import estimate_energy

        try:
            mapping = map_to_cores(prepared.graph, chip, traffic=activity)
            energy = estimate_energy(activity, mapping, costs=costs)
        except SnncError as err:
            notes.append(f"energy not estimated: {err}")
    elif activity is None or not isinstance(prepared.graph, ChipGraph):
        notes.append(f"no energy estimate: the {prepared.backend} backend "
                     + ("counts no chip activity" if activity is None else "runs the float model, not a mapped chip"))
    if prepared.reference is None and prepared.backend != "reference":
        notes.append("no fidelity: a chip-level file has no float model (pass --reference FLOAT.nir)")
    return DatasetEvaluation(
        model=model, data=data, backend=prepared.backend, rule=prepared.rule, samples=sum(len(r.predictions) for r in results),
        steps=results[0].steps if results else 0, predictions=np.concatenate([r.predictions for r in results]),
        labels=labels, reference_predictions=refs, activity=activity, energy=energy, mapping=mapping, notes=notes,
        compiled=prepared.compiled, graph=prepared.graph)


def _hold(value: Any) -> Any:
    """A task that returns its argument: the compiled model as a dask result every batch depends
    on (moved to each worker once; recomputed from the task itself if its worker dies)."""
    return value


def evaluate_dataset(model: Any, data: Any, *, backend: str = "sim", batch_size: int = 64, engine: Engine | None = None,
                     calibrate: Any = None, labels: Any = None, chip: str = "loihi2", costs: str | None = None,
                     progress: bool = False, data_options: dict | None = None, reset_mode: str | None = None,
                     **prepare_options: Any) -> DatasetEvaluation:
    """Evaluate `model` on every sample of `data` (module docstring); `engine` defaults to this process.

    `data`: what `open_dataset` takes (arrays with `labels`, an .npz, a folder of event files, a tonic
    dataset name; `data_options` holds its binning and root). `calibrate` defaults to the first
    CALIBRATION_SAMPLES samples (a note says so). `prepare_options` go to `prepare` (weight_bits, dt, steps, output, rule, reference, ...).
    """
    from snnc.compiler.frontends.loader import load_model

    from .fidelity import recorded_warnings

    name = str(model) if isinstance(model, (str, Path)) else type(model).__name__
    with recorded_warnings() as stated:
        graph = load_model(model, reset_mode=reset_mode)
    options = {"sensor_size": _sensor_size(graph), **(data_options or {})}
    dataset = open_dataset(data, labels=labels, **options)
    if dataset.size == 0:
        raise ParameterError("the dataset holds no samples", where=getattr(dataset, "description", str(data)))
    notes = [str(w.message) for w in stated]
    if calibrate is None and backend != "reference" and not isinstance(graph, ChipGraph):
        calibrate = calibration_samples(dataset)
        notes.append(f"no calibration data given: scales sized on the first {len(calibrate)} samples of the data")
    prepared = prepare(graph, backend=backend, calibrate=calibrate, name=name, notes=notes, **prepare_options)
    result = run_prepared(prepared, dataset, batch_size=batch_size, engine=engine, chip=chip, costs=costs,
                          progress=progress, model=name)
    result.assumed = [str(w.message) for w in stated]
    return result


def run_prepared(prepared: Prepared, dataset: Any, *, batch_size: int = 64, engine: Engine | None = None,
                 chip: str = "loihi2", costs: str | None = None, progress: bool = False,
                 model: str = "") -> DatasetEvaluation:
    """Run a compiled model (`prepare`) over every sample of an open `dataset` on `engine` (default
    this process) and merge the batches: the second half of `evaluate_dataset`, for callers that
    evaluate one compiled model on several datasets or engines."""
    parts = dataset.parts(batch_size)
    engine = engine or LocalEngine()
    held = engine.submit(_hold, prepared)
    handles = [engine.submit(run_batch, held, part) for part in parts]
    results: list[BatchResult] = []
    from tqdm.auto import tqdm

    with tqdm(total=dataset.size, unit="sample", desc=f"evaluate on {prepared.backend} ({engine.name})",
              disable=not progress, leave=False) as bar:
        for _, result in engine.as_completed(handles):
            results.append(result)
            bar.update(len(result.predictions))
    return _combine(prepared, results, model=model or prepared.name, data=getattr(dataset, "description", "") or type(dataset).__name__,
                    chip=chip, costs=costs)


CALIBRATION_SAMPLES = 64
"""Samples the compiler's scales are sized on when the user gives a dataset (whatever the batch size,
so that results never depend on how the data is batched)."""


def calibration_samples(dataset, samples: int = CALIBRATION_SAMPLES):
    """The first `samples` inputs of `dataset` (an open Dataset)."""
    return dataset.read(0, min(dataset.size, samples))[0]


def _sensor_size(graph) -> tuple[int, int, int] | None:
    """(W, H, P) of a single [P, H, W] input: the frame size event data is binned to where the
    event format does not fix it."""
    shapes = ([tuple(i.shape) for i in graph.inputs.values()] if isinstance(graph, ChipGraph)
              else [tuple(graph.out_shapes[n]) for n in graph.inputs])
    if len(shapes) == 1 and len(shapes[0]) == 3:
        p, h, w = shapes[0]
        return int(w), int(h), int(p)
    return None
