"""Bit budget vs. fidelity: compile one model at several weight widths and compare with float.

This is the trade-off Shen et al. argue about (G. Shen, D. Zhao, T. Li, J. Li, Y. Zeng, "Are
Conventional SNNs Really Efficient? A Perspective from Network Quantization", CVPR 2024,
arXiv:2311.10802, which introduces the "Bit Budget"): bits spent on weights, state and spikes
against what the network still computes. For each width the model is compiled with
`snnc.compiler.pipeline.compile(model, weight_bits=N, **compile_opts)`, run on the bit-exact `sim`
backend, and compared with the float `reference` backend on the same inputs.

Fidelity (per output port and per hidden population whose name is also a spiking node of the
float graph), on the chip's outputs shifted back by `time_shift` (`RunResult.aligned`) and a hidden
population's spikes shifted back by its own `meta["latency"]` (set by the timing pass: chip step
t + latency computes float step t; `time_shift` when absent). The chip runs `steps + time_shift`
steps so that all `steps` aligned steps are compared (so its bit budget counts the spikes of those
`steps + time_shift` steps, what the chip needs for the same answer):
  agreement        Dice coefficient of the spike sets, exact timing:
                   2 x |chip AND ref| / (|chip| + |ref|) over (sample, step, neuron); 1 if both
                   are silent. 1 means identical spikes; a spike one step late costs two.
  count_agreement  1 - sum |n_chip - n_ref| / sum (n_chip + n_ref) over (sample, neuron) spike
                   counts; 1 if both silent. Insensitive to timing.
  mismatches       entries (sample, step, neuron) where the two differ.
Accuracy (with labels): argmax over output neurons of the spike count of each sample (ties and
silence pick the lowest index, as numpy's argmax) compared with the label.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from snnc.ir.bits import SPECS
from snnc.ir.errors import ParameterError, ShapeError, SnncError

from .budget import BitBudget, bit_budget

DEFAULT_WEIGHT_BITS = (2, 4, 6, 8)


# -- metrics ---------------------------------------------------------------------------------------
@dataclass
class SpikeFidelity:
    """How closely one chip spike train [batch, T, ...] follows the float one (module docstring)."""

    name: str
    agreement: float
    count_agreement: float
    mismatches: int
    chip_spikes: int
    reference_spikes: int


def spike_counts(name: str, chip: np.ndarray, reference: np.ndarray) -> dict[str, int]:
    """The integer sums `SpikeFidelity` is made of, for two aligned spike arrays of one shape
    (nonzero = spike). Sums over samples: the counts of several batches add up to those of one run."""
    chip, reference = np.asarray(chip) != 0, np.asarray(reference) != 0
    if chip.shape != reference.shape:
        raise ShapeError(
            "chip and reference spike arrays differ in shape",
            where=f"fidelity of {name!r}",
            expected=reference.shape,
            got=chip.shape,
            hint="the chip population must have the float node's shape",
        )
    counts_chip = chip.reshape(chip.shape[0], chip.shape[1], -1).sum(axis=1)
    counts_ref = reference.reshape(reference.shape[0], reference.shape[1], -1).sum(axis=1)
    return {
        "chip": int(chip.sum()),
        "reference": int(reference.sum()),
        "both": int(np.logical_and(chip, reference).sum()),
        "mismatches": int(np.count_nonzero(chip != reference)),
        "count_difference": int(np.abs(counts_chip - counts_ref).sum()),
    }


def fidelity_from_counts(name: str, counts: dict[str, int]) -> SpikeFidelity:
    """`SpikeFidelity` (module docstring) of summed `spike_counts`."""
    n_chip, n_ref = counts["chip"], counts["reference"]
    total = n_chip + n_ref
    return SpikeFidelity(
        name=name,
        agreement=1.0 if total == 0 else 2.0 * counts["both"] / total,
        count_agreement=1.0 if total == 0 else 1.0 - counts["count_difference"] / total,
        mismatches=counts["mismatches"],
        chip_spikes=n_chip,
        reference_spikes=n_ref,
    )


def spike_fidelity(name: str, chip: np.ndarray, reference: np.ndarray) -> SpikeFidelity:
    """Compare two aligned spike arrays of the same shape (nonzero = spike)."""
    return fidelity_from_counts(name, spike_counts(name, chip, reference))


def predictions(spikes: np.ndarray) -> np.ndarray:
    """Class per sample: argmax of the output spike counts over time ([batch, T, classes])."""
    spikes = np.asarray(spikes)
    return spikes.reshape(spikes.shape[0], spikes.shape[1], -1).sum(axis=1).argmax(axis=1)


def accuracy(spikes: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predictions(spikes) == np.asarray(labels).reshape(-1)))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, quality) points no other point dominates (cost <= and quality >=,
    one strictly): the widths worth choosing; NaN points are never on the front."""
    pts = [(float(c), float(q)) for c, q in points]
    front = []
    for i, (c, q) in enumerate(pts):
        if np.isnan(c) or np.isnan(q):
            continue
        dominated = any(c2 <= c and q2 >= q and (c2 < c or q2 > q)
                        for j, (c2, q2) in enumerate(pts) if j != i and not (np.isnan(c2) or np.isnan(q2)))
        if not dominated:
            front.append(i)
    return front


# -- result ----------------------------------------------------------------------------------------
@dataclass
class SweepRow:
    """One weight width: its bit budget and how well the chip follows the float model."""

    weight_bits: int
    budget: BitBudget | None = None
    outputs: dict[str, SpikeFidelity] = field(default_factory=dict)
    hidden: dict[str, SpikeFidelity] = field(default_factory=dict)
    accuracy: float | None = None
    time_shift: int = 0
    error: str | None = None  # a compile/run error at this width (an snnc error), else None

    @property
    def fidelity(self) -> float | None:
        """Output agreement (Dice, exact timing), pooled over all output ports."""
        if not self.outputs:
            return None
        chip = sum(f.chip_spikes for f in self.outputs.values())
        ref = sum(f.reference_spikes for f in self.outputs.values())
        if chip + ref == 0:
            return 1.0
        both = sum(f.agreement * (f.chip_spikes + f.reference_spikes) / 2 for f in self.outputs.values())
        return 2 * both / (chip + ref)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {
            "weight_bits": self.weight_bits,
            "error": self.error,
            "time_shift": self.time_shift,
            "fidelity": self.fidelity,
            "accuracy": self.accuracy,
            "outputs": {k: asdict(v) for k, v in self.outputs.items()},
            "hidden": {k: asdict(v) for k, v in self.hidden.items()},
            "budget": None if self.budget is None else self.budget.to_dict(),
        }


@dataclass
class SweepResult:
    """The rows of a sweep, in the order of the requested widths."""

    rows: list[SweepRow]
    steps: int
    batch: int
    reference_accuracy: float | None = None

    def row(self, weight_bits: int) -> SweepRow:
        for r in self.rows:
            if r.weight_bits == weight_bits:
                return r
        raise KeyError(weight_bits)

    def pareto(self) -> list[int]:
        """Weight widths on the Pareto front of memory bits (weights + state) against accuracy
        (with labels) or output agreement; rows that failed or have no quality are left out."""
        rows = [r for r in self.rows if r.error is None and r.budget is not None]
        quality = [r.accuracy if r.accuracy is not None else r.fidelity for r in rows]
        budgets = [r.budget for r in rows if r.budget is not None]
        cost = [b.weight_memory_bits + b.state_bits for b in budgets]
        points = [(c, np.nan if q is None else q) for c, q in zip(cost, quality)]
        return [rows[i].weight_bits for i in pareto_front(points)]

    def figure(self):
        """Memory bits (weights + state) against accuracy (labels) or output agreement, one point
        per width, the Pareto front joined by a line (matplotlib object API, no pyplot state)."""
        from matplotlib.figure import Figure

        rows = [r for r in self.rows if r.error is None and r.budget is not None]
        use_acc = any(r.accuracy is not None for r in rows)
        fig = Figure(figsize=(5, 3.5))
        ax = fig.add_subplot()
        pts = {r.weight_bits: (r.budget.weight_memory_bits + r.budget.state_bits,
                               r.accuracy if use_acc else r.fidelity) for r in rows}
        pts = {k: v for k, v in pts.items() if v[1] is not None}
        ax.scatter([c for c, _ in pts.values()], [q for _, q in pts.values()], color="0.6", label="width")
        for bits, (c, q) in pts.items():
            ax.annotate(f"{bits} b", (c, q), textcoords="offset points", xytext=(4, 4), fontsize=8)
        front = sorted((pts[b] for b in self.pareto() if b in pts))
        ax.plot([c for c, _ in front], [q for _, q in front], "o-", color="C3", label="Pareto front")
        ax.set_xlabel("memory bits (weights + state)")
        ax.set_ylabel("accuracy" if use_acc else "output agreement")
        ax.set_title(f"Bit budget ({self.steps} steps)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig

    def to_dict(self) -> dict:
        return {
            "pareto_weight_bits": self.pareto(),
            "steps": self.steps,
            "batch": self.batch,
            "reference_accuracy": self.reference_accuracy,
            "rows": [r.to_dict() for r in self.rows],
        }

    def render(self):
        """A rich Table: one row per width, budget columns then fidelity columns."""
        from rich.table import Table

        hidden = sorted({name for r in self.rows for name in r.hidden})
        title = f"Bit budget vs. fidelity ({self.steps} steps, batch {self.batch})"
        caption = "agreement: Dice of spike sets vs. the float reference (1 = identical); bits per whole network"
        if self.reference_accuracy is not None:
            caption += f"; float reference accuracy {self.reference_accuracy:.3f}"
        table = Table(title=title, caption=caption, caption_justify="left")
        cols = ["weight bits", "weight memory", "state bits", "spike bits/sample", "bit ops/sample", "min margin",
                "output agreement"]
        cols += [f"{name} agreement" for name in hidden]
        if any(r.accuracy is not None for r in self.rows):
            cols.append("accuracy")
        cols.append("Pareto")
        front = set(self.pareto())
        caption += "; Pareto: not beaten in both memory (weights + state) and accuracy/agreement"
        table.caption = caption
        for col in cols:
            table.add_column(col, justify="right")
        for r in self.rows:
            if r.error is not None:
                table.add_row(str(r.weight_bits), f"[red]{r.error}[/]", *[""] * (len(cols) - 2))
                continue
            b = r.budget
            cells = [
                str(r.weight_bits),
                f"{b.weight_memory_bits:,}",
                f"{b.state_bits:,}",
                _fmt(b.spike_bits_per_sample, "{:,.0f}"),
                _fmt(b.bit_ops_per_sample, "{:,.0f}"),
                f"{b.min_margin_bits} b",
                _fmt(r.fidelity, "{:.3f}"),
            ]
            cells += [_fmt(r.hidden[n].agreement if n in r.hidden else None, "{:.3f}") for n in hidden]
            if "accuracy" in cols:
                cells.append(_fmt(r.accuracy, "{:.3f}"))
            cells.append("*" if r.weight_bits in front else "")
            table.add_row(*cells)
        return table


def _fmt(value, spec: str) -> str:
    return "-" if value is None else spec.format(value)


# -- the sweep -------------------------------------------------------------------------------------
def _check_widths(weight_bits: Sequence[int]) -> list[int]:
    spec = SPECS["num_weight_bits"]
    widths = []
    for w in weight_bits:
        try:
            value = int(w)
        except (TypeError, ValueError):
            value = None
        if value is None or value != w or not spec.lo <= value <= spec.hi:
            raise ParameterError(
                "weight width out of range",
                where="budget sweep: weight_bits",
                expected=f"integers {spec.lo}..{spec.hi}",
                got=w,
                hint="e.g. --weight-bits 2,4,6,8",
            )
        widths.append(value)
    if not widths:
        raise ParameterError("no weight widths to sweep", where="budget sweep: weight_bits", hint="e.g. --weight-bits 2,4,6,8")
    return widths


def _float_graph(model: Any, reset_mode: str | None = None):
    """The float graph the reference backend runs: the model as the compiler loads it (its
    warnings are the compiler's to state)."""
    from snnc.compiler.frontends.loader import load_model
    from snnc.ir.chip import ChipGraph

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = load_model(model, reset_mode=reset_mode)
    if isinstance(graph, ChipGraph):
        raise ParameterError(
            "cannot find the float graph of this model for the reference backend",
            where="budget sweep",
            got="a chip-level model",
            hint="pass the float model (a NIR file, nir.NIRGraph or torch module) the chip was compiled from",
        )
    return graph


def _spike_outputs(chip) -> list[str]:
    return [name for name, port in chip.outputs.items() if port.var == "s"]


def _pair_outputs(chip_names: list[str], ref_names: list[str]) -> list[tuple[str, str]]:
    """Chip output -> float output: by equal name, else the single output of each."""
    pairs = [(n, n) for n in chip_names if n in ref_names]
    if not pairs and len(chip_names) == 1 and len(ref_names) == 1:
        pairs = [(chip_names[0], ref_names[0])]
    return pairs


def budget_sweep(
    model: Any,
    weight_bits: Sequence[int] = DEFAULT_WEIGHT_BITS,
    inputs: Any = None,
    steps: int | None = None,
    labels: Any = None,
    *,
    compile_fn: Callable[..., Any] | None = None,
    engine: Any = None,
    batch_size: int | None = None,
    results: str | Path | None = None,
    **compile_opts: Any,
) -> SweepResult:
    """Compile `model` at each weight width, run `sim` and `reference`, and tabulate budget vs. fidelity.

    `inputs`: `[T, *shape]`, `[batch, T, *shape]`, a dict of those, or a `snnc.compiler.data.dataset`
    Dataset; `labels`: one class per sample. `compile_fn` defaults to `snnc.compiler.pipeline.compile`;
    `compile_opts` (e.g. `dt`) go to it, and `dt` also to the reference backend. An snnc error at one
    width is recorded in its row (`SweepRow.error`) so the other widths still report; other
    exceptions propagate.

    Each width compiles as one task and runs its batches of `batch_size` samples (default: all) as
    further tasks on `engine` (`analysis.distributed`; default this process). The counters of the
    batches are integer sums, so the table does not depend on the batching or the engine.
    `results`: a JSON-lines file; each finished width is appended as it completes, keyed by the
    sweep's arguments (`sweep_key`), and a rerun with the same arguments takes those rows from the
    file instead of computing them again (a sweep resumes after an interruption).
    """
    from ..data.dataset import ArrayDataset, Dataset
    from .distributed import LocalEngine

    widths = _check_widths(weight_bits)
    if inputs is None:
        raise ParameterError("the sweep needs inputs to simulate", where="budget sweep", hint="pass --input IN.npy")
    if compile_fn is None:
        from snnc.compiler.pipeline import compile as default_compile

        compile_fn = default_compile
    ref_graph = _float_graph(model, compile_opts.get("reset_mode"))
    if isinstance(inputs, Dataset):
        dataset, length, batch = inputs, steps, inputs.size
    else:
        from snnc.backends.base import normalize_inputs

        shapes = {n: tuple(ref_graph.out_shapes[n]) for n in ref_graph.inputs}
        data, batch, length = normalize_inputs(inputs, shapes, steps)
        dataset = ArrayDataset(data, _check_labels(labels, batch))
    if isinstance(inputs, Dataset) and labels is not None:
        raise ParameterError("a dataset carries its own labels", where="budget sweep: labels", hint="drop labels=")
    key = sweep_key(model, dataset, steps, compile_fn, compile_opts) if results is not None else ""
    done = _load_rows(results, key) if results is not None else {}
    rows: dict[int, SweepRow] = {bits: done[bits][0] for bits in widths if bits in done}
    ref_accuracy = next((v[1] for v in done.values() if v[1] is not None), None)
    if done:
        first = next(iter(done.values()))
        length = first[2] if length is None else length
        batch = first[3]
    todo = [bits for bits in widths if bits not in rows]
    engine = engine or LocalEngine()
    parts = dataset.parts(batch_size or max(dataset.size, 1))
    ref_key = "reference:" + _digest(ref_graph)
    dt = compile_opts.get("dt")
    handles: list = []
    owner: dict[Any, tuple[int, str]] = {}
    for bits in todo:
        point = engine.submit(_compile_point, compile_fn, model, bits, compile_opts)
        handles.append(point)
        owner[point] = (bits, "compile")
        for part in parts:
            h = engine.submit(_sweep_batch, point, ref_graph, ref_key, dt, part, steps)
            handles.append(h)
            owner[h] = (bits, "batch")
    points: dict[int, _Point] = {}
    batches: dict[int, list[_BatchCounts]] = {bits: [] for bits in todo}
    for handle, value in engine.as_completed(handles):
        bits, kind = owner.pop(handle)
        if kind == "compile":
            points[bits] = value
            for w in value.warnings:  # stated where the compiler ran: stated again here
                warnings.warn_explicit(w[0], w[1], w[2], w[3])
        else:
            batches[bits].append(value)
        if bits in points and len(batches[bits]) == len(parts):
            row, row_ref, row_steps = _finish_row(bits, points.pop(bits), batches.pop(bits))
            rows[bits] = row
            length = length if length is not None else row_steps
            ref_accuracy = ref_accuracy if ref_accuracy is not None else row_ref
            if results is not None:
                _append_row(results, key, row, row_steps or length, dataset.size, row_ref)
    return SweepResult(rows=[rows[bits] for bits in widths], steps=length or 0, batch=batch or 0,
                       reference_accuracy=ref_accuracy)


# -- the sweep's tasks -----------------------------------------------------------------------------
@dataclass
class _Point:
    """A compiled width as a task returns it: the chip, what encodes its inputs, the warnings the
    compiler gave, or the snnc error that stopped it."""

    weight_bits: int
    chip: Any = None
    encoder: Any = None
    key: str = ""
    error: str | None = None
    warnings: list = field(default_factory=list)


@dataclass
class _BatchCounts:
    """One width on one batch: integer sums only (they add up over batches)."""

    start: int
    steps: int = 0
    time_shift: int = 0
    outputs: dict[str, dict[str, int]] = field(default_factory=dict)
    hidden: dict[str, dict[str, int]] = field(default_factory=dict)
    predictions: Any = None
    reference_predictions: Any = None
    labels: Any = None
    activity: Any = None
    error: str | None = None


def _digest(obj: Any) -> str:
    import hashlib
    import pickle

    return hashlib.sha256(pickle.dumps(obj, protocol=4)).hexdigest()[:20]


def _compile_point(compile_fn: Callable[..., Any], model: Any, bits: int, compile_opts: dict) -> _Point:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            compiled = compile_fn(model, weight_bits=bits, **compile_opts)
        except SnncError as err:
            return _Point(bits, error=str(err), warnings=_warning_args(caught))
    chip = compiled.chip
    encoder = compiled if hasattr(compiled, "encode_inputs") else None
    return _Point(bits, chip, encoder, f"sim:{bits}:" + _digest(chip), warnings=_warning_args(caught))


def _warning_args(caught) -> list:
    return [(w.message, w.category, w.filename, w.lineno) for w in caught]


def _sweep_batch(point: _Point, ref_graph, ref_key: str, dt: float | None, part, steps: int | None) -> _BatchCounts:
    """Run one compiled width and the float reference on one batch; count what fidelity needs."""
    from snnc.backends.base import get_backend, normalize_inputs

    from .distributed import worker_program

    counts = _BatchCounts(start=part.start)
    if point.error is not None:
        counts.error = point.error
        return counts
    x, labels = part.load()
    chip = point.chip
    ref_dt = dt if dt is not None else chip.meta.get("dt")
    ref_prog = worker_program(f"{ref_key}:{ref_dt}", lambda: get_backend("reference").build(
        ref_graph, **({} if ref_dt is None else {"dt": ref_dt})))
    data, _, length = normalize_inputs(x, ref_prog.input_shapes, steps)
    probes = [n for n in ref_prog.kernels if getattr(ref_prog.kernels[n], "spiking", False)]
    ref_run = ref_prog.run(data, steps=length, probes=probes)
    shift = int(chip.meta.get("time_shift", 0) or 0)
    out_pops = {port.population for port in chip.outputs.values()}
    hidden = [n for n in chip.populations if n in ref_run.probes and n not in out_pops]
    try:
        prog = worker_program(point.key, lambda: get_backend("sim").build(chip))
        chip_data = _chip_inputs(data, chip)
        if point.encoder is not None:  # graded inputs: scaled and rounded as compiled
            chip_data = point.encoder.encode_inputs(chip_data)
        run = prog.run(chip_data, steps=length + shift, probes=hidden)
    except SnncError as err:
        counts.error = str(err)
        return counts
    counts.steps, counts.time_shift, counts.activity, counts.labels = length, int(run.time_shift), run.activity, labels
    for chip_name, ref_name in _pair_outputs(_spike_outputs(chip), list(ref_run.outputs)):
        chip_out = run.aligned(run.outputs[chip_name])[:, :length]
        counts.outputs[chip_name] = spike_counts(chip_name, chip_out, ref_run.outputs[ref_name])
    for name in hidden:
        latency = int(chip.populations[name].meta.get("latency", counts.time_shift))
        counts.hidden[name] = spike_counts(name, _window(run.probes[name], latency, length), ref_run.probes[name])
    spike_outs = _spike_outputs(chip)
    if labels is not None and len(spike_outs) == 1:
        counts.predictions = predictions(run.aligned(run.outputs[spike_outs[0]])[:, :length])
        if len(ref_run.outputs) == 1:
            counts.reference_predictions = predictions(next(iter(ref_run.outputs.values())))
    elif labels is not None:
        raise ParameterError(
            "accuracy needs exactly one spiking output",
            where="budget sweep: labels",
            got=spike_outs,
            hint="drop --labels for networks with several outputs",
        )
    return counts


def _finish_row(bits: int, point: _Point, counts: list[_BatchCounts]) -> tuple[SweepRow, float | None, int | None]:
    """Merge a width's batches into (its row, the float reference's accuracy, the steps compared):
    fidelity from summed counts, the budget of the summed activity."""
    from .dataset_eval import merge_activity

    row = SweepRow(weight_bits=bits)
    counts = sorted(counts, key=lambda c: c.start)
    error = point.error or next((c.error for c in counts if c.error is not None), None)
    if error is not None:
        row.error = error
        return row, None, None
    row.time_shift = counts[0].time_shift
    row.budget = bit_budget(point.chip, merge_activity([c.activity for c in counts]), warn=False)
    for attr in ("outputs", "hidden"):
        for name in getattr(counts[0], attr):
            total = {k: sum(getattr(c, attr)[name][k] for c in counts) for k in getattr(counts[0], attr)[name]}
            getattr(row, attr)[name] = fidelity_from_counts(name, total)
    ref_accuracy = None
    if counts[0].predictions is not None:
        labels = np.concatenate([c.labels for c in counts])
        row.accuracy = float(np.mean(np.concatenate([c.predictions for c in counts]) == labels))
        if all(c.reference_predictions is not None for c in counts):
            ref_accuracy = float(np.mean(np.concatenate([c.reference_predictions for c in counts]) == labels))
    return row, ref_accuracy, counts[0].steps


# -- resuming --------------------------------------------------------------------------------------
def sweep_key(model: Any, dataset: Any, steps: int | None, compile_fn: Callable[..., Any], compile_opts: dict) -> str:
    """A digest of everything a sweep's rows depend on: the model (a file by its bytes), the data,
    the steps, the compiler and its options. Not the widths (each row is one), the batch size or the
    engine (the rows do not depend on them)."""
    import hashlib
    import json

    def opt(value: Any) -> str:
        if isinstance(value, np.ndarray):
            return f"array{value.dtype.str}{value.shape}:" + hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        if isinstance(value, dict):
            return "{" + ",".join(f"{k}={opt(v)}" for k, v in sorted(value.items())) + "}"
        if isinstance(value, (list, tuple)):
            return "[" + ",".join(opt(v) for v in value) + "]"
        return repr(value)

    if isinstance(model, (str, Path)) and Path(model).is_file():
        model_id = "file:" + hashlib.sha256(Path(model).read_bytes()).hexdigest()
    else:
        model_id = "object:" + _digest(model)
    parts = {"model": model_id, "data": dataset.fingerprint(), "steps": steps,
             "compiler": f"{getattr(compile_fn, '__module__', '')}.{getattr(compile_fn, '__qualname__', repr(compile_fn))}",
             "options": opt(dict(compile_opts))}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _append_row(path: str | Path, key: str, row: SweepRow, steps: int | None, batch: int, ref_accuracy: float | None) -> None:
    """One JSON line per finished width, flushed to disk before the next width is reported."""
    import json
    import os

    line = json.dumps({"key": key, "weight_bits": row.weight_bits, "steps": steps, "batch": batch,
                       "reference_accuracy": ref_accuracy, "row": row.to_dict()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A crash mid-write can leave a partial last line: start on a fresh line so this row survives.
    torn = False
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as last:
            last.seek(-1, os.SEEK_END)
            torn = last.read(1) != b"\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(("\n" if torn else "") + line + "\n")
        f.flush()
        os.fsync(f.fileno())


def _load_rows(path: str | Path, key: str) -> dict[int, tuple[SweepRow, float | None, int | None, int]]:
    """Rows of `path` written under `key`: weight bits -> (row, reference accuracy, steps, batch).
    A line cut short by a crash, or written under other arguments, is passed over."""
    import json

    path = Path(path)
    found: dict[int, tuple[SweepRow, float | None, int | None, int]] = {}
    if not path.exists():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("key") == key:
            found[int(entry["weight_bits"])] = (_row_from_dict(entry["row"]), entry.get("reference_accuracy"),
                                                entry.get("steps"), int(entry.get("batch") or 0))
    return found


def _row_from_dict(d: dict) -> SweepRow:
    return SweepRow(
        weight_bits=int(d["weight_bits"]),
        budget=None if d.get("budget") is None else _budget_from_dict(d["budget"]),
        outputs={k: SpikeFidelity(**v) for k, v in d.get("outputs", {}).items()},
        hidden={k: SpikeFidelity(**v) for k, v in d.get("hidden", {}).items()},
        accuracy=d.get("accuracy"),
        time_shift=int(d.get("time_shift", 0)),
        error=d.get("error"),
    )


def _budget_from_dict(d: dict) -> BitBudget:
    """`BitBudget.to_dict()` back into a BitBudget (its layer_details hold every field)."""
    from .budget import LayerBudget, ProjectionBudget, SpikeBudget

    layers = []
    for ld in d["layer_details"]:
        fields = {k: v for k, v in ld.items() if k not in ("synapses", "memory_bits")}
        fields["projections"] = [ProjectionBudget(**p) for p in fields["projections"]]
        fields["spikes"] = SpikeBudget(**fields["spikes"])
        layers.append(LayerBudget(**fields))
    return BitBudget(layers=layers, inputs=[SpikeBudget(**s) for s in d["inputs"]], steps=d.get("steps"),
                     batch=d.get("batch"), warnings=list(d.get("warnings", [])))


def _window(array: np.ndarray, start: int, length: int) -> np.ndarray:
    """`array[:, start:start + length]`, zero-padded at the end if the run was shorter."""
    out = np.zeros((array.shape[0], length, *array.shape[2:]), dtype=array.dtype)
    part = array[:, start : start + length]
    out[:, : part.shape[1]] = part
    return out


def _chip_inputs(data: dict[str, np.ndarray], chip) -> dict[str, np.ndarray] | np.ndarray:
    """The float graph's inputs under the chip's input names (the single input pairs by position)."""
    if set(data) == set(chip.inputs):
        return data
    if len(data) == 1 and len(chip.inputs) == 1:
        return {next(iter(chip.inputs)): next(iter(data.values()))}
    raise ShapeError(
        "the chip's input ports do not match the float graph's",
        where="budget sweep",
        expected=sorted(data),
        got=sorted(chip.inputs),
    )


def _check_labels(labels: Any, batch: int) -> np.ndarray | None:
    if labels is None:
        return None
    arr = np.atleast_1d(np.asarray(labels))
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(arr == np.round(arr))):
        raise ShapeError("labels must be integer class indices", where="budget sweep: labels", got=str(arr.dtype))
    if arr.shape != (batch,):
        raise ShapeError(
            "one label per input sample",
            where="budget sweep: labels",
            expected=(batch,),
            got=arr.shape,
            hint="labels.npy holds one integer class per sample of the input batch",
        )
    return arr.astype(np.int64)
