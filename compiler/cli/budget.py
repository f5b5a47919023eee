"""`snnc budget`: bit budget against fidelity over weight widths; for a float ANN file to convert
(.pt), over weight bits x time steps (analysis.conversion_sweep) with its Pareto front."""
from __future__ import annotations

import argparse
import json

import numpy as np

from snnc.compiler.analysis.conversion_sweep import COSTS
from snnc.compiler.analysis.sweep import DEFAULT_WEIGHT_BITS, budget_sweep
from snnc.compiler.frontends.conversion.ann_file import is_ann_file
from snnc.compiler.analysis.fidelity import recorded_warnings
from snnc.compiler.data.inputs import load_input_array
from snnc.ir.errors import ParameterError
from snnc.ir.io import write_text

from .app import register
from .common import add_reset_mode
from .guard_args import add_guard_args, guard_options, strict_exit
from .data_args import add_data_args, calibration, read_data
from .dataset_args import add_dataset_args, dataset_source, open_data
from .engine_args import engine_from_args

def _int_list(flag: str, example: str):
    def parse(text: str) -> list[int]:
        try:
            return [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} wants comma-separated integers, e.g. {example}; got {text!r}") from None
    return parse


_width_list = _int_list("--weight-bits", "2,4,6,8")
CONVERSION_FLAGS = ("time_steps", "levels", "state_bits", "input_scale", "input_range", "cost")


def add_budget_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `snnc budget MODEL --weight-bits 2,4,6,8 --input IN.npy [--labels L.npy]`."""
    parser.add_argument("model", help="model to compile (a .nir file, or what `snnc compile` accepts)")
    add_reset_mode(parser)
    parser.add_argument("--weight-bits", type=_width_list, default=list(DEFAULT_WEIGHT_BITS),
                        help="comma-separated weight widths to compile at (1..8; default 2,4,6,8)")
    add_data_args(parser, calibrate=True, required=False)
    add_dataset_args(parser, default_batch=None)
    parser.add_argument("--results", metavar="ROWS.jsonl",
                        help="append each finished width to this JSON-lines file; a rerun with the same model, data and "
                             "options takes those widths from it and computes only the rest (resumes an interrupted sweep)")
    parser.add_argument("--labels", help="optional .npy of one integer class per sample: adds accuracy")
    parser.add_argument("--steps", type=int, help="time steps to simulate (default: the input's length)")
    parser.add_argument("--dt", type=float, help="simulation step in seconds (default: the compiler's)")
    parser.add_argument("--plot", help="also draw memory vs accuracy/agreement with the Pareto front to this PNG")
    parser.add_argument("--json", dest="json_out", help="also write the sweep, with every bit budget, as JSON here")
    parser.add_argument("--report", metavar="DIR", help="also write report.json + report.html with the sweep, its table and plot")
    g = parser.add_argument_group("float ANN files to convert (.pt: torch.save(model) of an nn.Sequential)")
    g.add_argument("--time-steps", type=_int_list("--time-steps", "4,8,16"), metavar="T,...",
                   help="time steps per inference to sweep; each becomes the most activation levels L that fit "
                        "(T = 2 + N L + P, +1 with a readout, N hidden layers, P max pools)")
    g.add_argument("--state-bits", type=_int_list("--state-bits", "12,16,24"), metavar="S,...",
                   help="widths of u and v to price each point at (default 24, Loihi's); a point whose u or v reaches "
                        "beyond S bits on the data is marked infeasible ('needs N state bits')")
    g.add_argument("--levels", type=_int_list("--levels", "2,4,8"), metavar="L,...",
                   help="activation levels to sweep instead of --time-steps (default 2,4,8)")
    g.add_argument("--input-scale", type=float, metavar="S", help="the input grid: x = S x integer (default 1)")
    g.add_argument("--input-range", metavar="LO,HI", help="range of the input integers (default: the data's, with a note)")
    g.add_argument("--cost", choices=COSTS, help="cost axis of the Pareto front (default bit_ops_per_sample)")
    g.add_argument("--chip", default="loihi2", help="target whose costs price energy and latency (default loihi2)")
    return parser


def run_budget_command(args: argparse.Namespace, console=None) -> int:
    """Run the sweep the parsed `args` describe and print its table; snnc errors propagate to the CLI."""
    from rich.console import Console

    console = console or Console()
    if is_ann_file(args.model):
        return run_conversion_budget(args, console)
    given = [f"--{k.replace('_', '-')}" for k in CONVERSION_FLAGS if getattr(args, k, None) is not None]
    if given:
        raise ParameterError(f"{', '.join(given)} apply to float ANN files to convert (.pt)", where=str(args.model),
                             hint="an SNN's time window is --steps; convert an ANN by passing its torch.save file")
    inputs, labels = _sweep_data(args, console)
    opts: dict = {} if getattr(args, "dt", None) is None else {"dt": args.dt}
    if getattr(args, "reset_mode", None) is not None:
        opts["reset_mode"] = args.reset_mode
    opts["calibrate"] = _calibration(args, inputs, console)
    opts.update(guard_options(args))  # the fidelity guard runs at every width (its warnings name the layer)
    before = _rows_in(args.results)
    with recorded_warnings() as stated, engine_from_args(args) as engine:
        if engine.name != "in-process" or args.batch_size:
            console.print(f"note: sweeping on {engine.name}, batches of {args.batch_size or 'all samples'}",
                          highlight=False, markup=False)
        result = budget_sweep(args.model, args.weight_bits, inputs, getattr(args, "steps", None), labels, engine=engine,
                              batch_size=args.batch_size, results=args.results, **opts)
    if args.results:
        computed = [int(r["weight_bits"]) for r in _rows_in(args.results)[len(before):]]
        resumed = [b for b in args.weight_bits if b not in computed]
        console.print(f"note: {args.results}: computed widths {computed or 'none'}"
                      + (f", taken from earlier runs {resumed}" if resumed else ""), highlight=False, markup=False)
    failed = strict_exit(args, None, [str(w.message) for w in stated])
    if failed is not None:
        return failed
    console.print(result.render())
    for row in result.rows:
        if row.budget is not None:
            for warning in row.budget.warnings:
                console.print(f"[yellow]warning[/] ({row.weight_bits} bits): {warning}")
    _write_outputs(args, result, console, f"Pareto widths: {result.pareto()}")
    return 0


def _sweep_data(args: argparse.Namespace, console):
    """(inputs, labels): --data as an open Dataset (it carries its labels), or one array (+ --labels)."""
    if dataset_source(args):
        if getattr(args, "labels", None):
            raise ParameterError("--labels applies to --input; a dataset carries its own labels", where=f"--labels {args.labels}",
                                 hint="put the labels in the .npz as y, or drop --labels")
        return open_data(args), None
    inputs = read_data(args)
    labels = load_input_array(args.labels) if getattr(args, "labels", None) else getattr(args, "dataset_labels", None)
    return inputs, labels


def _calibration(args: argparse.Namespace, inputs, console):
    """--calibrate's data; for --data its first samples (as `snnc evaluate` sizes scales), with a note."""
    from snnc.compiler.data.dataset import Dataset

    if isinstance(inputs, Dataset) and not getattr(args, "calibrate", None):
        from snnc.compiler.analysis.dataset_eval import calibration_samples

        samples = calibration_samples(inputs)
        console.print(f"note: no --calibrate given: scales are sized on the first {len(samples)} samples of --data",
                      highlight=False, markup=False)
        return samples
    return calibration(args, inputs, console)


def _rows_in(path) -> list[dict]:
    """The complete JSON lines of a --results file (none when it does not exist yet)."""
    from pathlib import Path

    if not path or not Path(path).exists():
        return []
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _write_outputs(args: argparse.Namespace, result, console, front: str) -> None:
    """--plot PNG, --json and --report DIR of a sweep (anything with figure() and to_dict())."""
    if getattr(args, "plot", None):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = result.figure()
        FigureCanvasAgg(fig)
        fig.savefig(args.plot, dpi=100)
        console.print(f"wrote {args.plot} ({front})")
    if getattr(args, "json_out", None):
        write_text(args.json_out, json.dumps(result.to_dict(), indent=2))
        console.print(f"wrote {args.json_out}")
    if getattr(args, "report", None):
        from snnc.compiler.report import write_report

        paths = write_report(args.report, sweep=result, meta={"title": f"snnc budget: {args.model}", "model": str(args.model)})
        console.print(f"wrote {paths['html']} (+ report.json)")


def _input_range(args: argparse.Namespace, arrays, scale: float, console) -> tuple[int, int]:
    if getattr(args, "input_range", None):
        try:
            lo, hi = (int(v) for v in str(args.input_range).split(","))
        except ValueError:
            raise ParameterError("--input-range wants two integers LO,HI", where="--input-range", got=args.input_range) from None
        return lo, hi
    lo = int(min(np.floor(np.min(a) / scale) for a in arrays))
    hi = int(max(np.ceil(np.max(a) / scale) for a in arrays))
    console.print(f"note: no --input-range given: input integers {lo}..{hi} (the data's range)", highlight=False, markup=False)
    return lo, hi


def run_conversion_budget(args: argparse.Namespace, console) -> int:
    """Convert the float ANN at every weight bits x time steps point, run each on the sim, print the
    grid and its Pareto front (plot, JSON, report as asked)."""
    from rich.progress import track

    from snnc.compiler.analysis.conversion_sweep import conversion_grid, levels_for_steps, network_layout
    from snnc.compiler.frontends.conversion.ann_file import load_ann

    sweep_only = [f for f, v in (("--data", args.data), ("--workers", args.workers), ("--scheduler", args.scheduler),
                                 ("--batch-size", args.batch_size), ("--results", args.results)) if v]
    if sweep_only:
        raise ParameterError(f"{', '.join(sweep_only)} apply to SNN models (the weight-width sweep), not yet to a float ANN "
                             "to convert", where=str(args.model), hint="pass the ANN's data with --input X.npy")
    model = load_ann(args.model)
    dataset_source(args)
    x = read_data(args)
    if isinstance(x, dict):
        raise ParameterError("a converted ANN takes one input array [batch, *shape]", where=str(args.input),
                             got=sorted(x), hint="save one array with numpy.save")
    labels = load_input_array(args.labels) if getattr(args, "labels", None) else getattr(args, "dataset_labels", None)
    calib = calibration(args, x, console)
    bad = [b for b in args.weight_bits if not 2 <= b <= 8]
    if bad:
        raise ParameterError("weight widths of a converted ANN are 2..8 bits (signed integers)", where="--weight-bits", got=bad)
    hidden, readout, pools = network_layout(model)
    notes: list[str] = []
    if args.time_steps and args.levels:
        raise ParameterError("give --time-steps or --levels, not both", where="--levels", hint="drop one of them")
    if args.time_steps:
        by_level: dict[int, int] = {}
        for t in args.time_steps:
            level = levels_for_steps(hidden, readout, t, pools)
            if level in by_level:
                notes.append(f"T = {t} gives L = {level} as T = {by_level[level]} does: swept once")
            else:
                by_level[level] = t
        levels, asked = list(by_level), list(by_level.values())
    else:
        levels, asked = list(args.levels or (2, 4, 8)), None
    scale = 1.0 if args.input_scale is None else float(args.input_scale)
    grid = conversion_grid(
        model, args.weight_bits, levels, calib, x, labels, cost=args.cost or "bit_ops_per_sample", requested_steps=asked,
        progress=lambda pts: track(pts, description="converting and running", console=console, transient=True),
        input_shape=tuple(np.asarray(x).shape[1:]), input_range=_input_range(args, [x, calib], scale, console),
        input_scale=scale, chip=args.chip, **({"state_bits": args.state_bits} if args.state_bits else {}),
    )
    grid.notes += notes + [f"{p.requested_steps} steps asked: L = {p.levels} uses T = {p.steps}"
                           for p in grid.points if p.requested_steps not in (None, p.steps) and p.weight_bits == args.weight_bits[0]]
    console.print(grid.render())
    front = ", ".join(f"{p.weight_bits} bits x T = {p.steps}" + (f" x {p.state_bits}-bit state" if args.state_bits else "")
                      for p in grid.pareto())
    console.print(f"Pareto front ({grid.cost.replace('_', ' ')} vs {'accuracy' if labels is not None else 'agreement'}): {front}")
    inexact = [f"{p.weight_bits} bits x T = {p.steps}" for p in grid.points if not p.exact]
    if inexact:
        console.print(f"[red]error[/]: the chip differs from the integer network at {', '.join(inexact)}")
    _write_outputs(args, grid, console, f"Pareto front: {front}")
    return 1 if inexact else 0


def _budget_args(p: argparse.ArgumentParser) -> None:
    add_budget_arguments(p)
    add_guard_args(p)


def _budget(args: argparse.Namespace, console) -> int:
    return run_budget_command(args, console)


register("budget", "bit budget vs fidelity over weight widths (x time steps for a float ANN to convert)", _budget_args, _budget)
