"""`snnc report` and `snnc energy`: compile, simulate, map, price; write reports or print energy."""
from __future__ import annotations

import argparse

from snnc.ir.errors import ParameterError

from .app import register
from .data_args import add_data_args, calibration, read_data
from .dataset_args import add_dataset_args, data_options, dataset_source
from .common import _positive_float, _positive_int, add_netx_options, add_reset_mode, load_model_arg
from .guard_args import add_guard_args, guard_options, strict_exit

def _evaluate_args(p: argparse.ArgumentParser, *, report: bool) -> None:
    p.add_argument("model", help="a NIR-level .nir (compiled first), a chip-level .nir, or a lava-dl .net file")
    add_reset_mode(p)
    add_netx_options(p)
    add_data_args(p, calibrate=True, required=False)
    add_dataset_args(p, default_batch=64)
    p.add_argument("--chip", default="loihi2", metavar="NAME|FILE", help="chip profile: loihi1, loihi2 or a .toml/.json profile")
    p.add_argument("--costs", metavar="TABLE", help="cost table (loihi1-davies2018, loihi1-sanafe, loihi2-assumed; default: the chip's)")
    p.add_argument("--steps", type=_positive_int, metavar="T", help="time steps (default: the input's length)")
    p.add_argument("--weight-bits", type=_positive_int, default=8, metavar="N", help="bits per weight when compiling (default 8)")
    p.add_argument("--dt", type=_positive_float, default=1e-4, metavar="S", help="time step in seconds when compiling (default 1e-4)")
    if report:
        p.add_argument("-o", "--out", required=True, metavar="DIR", help="folder for report.json and report.html")
    add_guard_args(p)


def _evaluate(args: argparse.Namespace, console):
    from snnc.compiler.analysis.evaluate import evaluate
    from snnc.compiler.analysis.fidelity import recorded_warnings
    from snnc.ir.chip import ChipGraph

    if dataset_source(args):
        return _evaluate_dataset(args, console)
    engine_flags = [f for f, v in (("--workers", args.workers), ("--scheduler", args.scheduler)) if v]
    if engine_flags:
        raise ParameterError(f"{', '.join(engine_flags)} run a dataset's batches", where=f"--input {args.input}",
                             hint="pass the samples as --data DATA (an .npz with x and y), or drop the engine flag")
    with recorded_warnings() as load_warnings:  # assumptions the file cannot state (--strict fails on them)
        model = load_model_arg(args)
    args.assumed = [str(w.message) for w in load_warnings]
    data = read_data(args)
    if isinstance(model, ChipGraph):
        options = {}
        if args.calibrate:
            console.print("note: --calibrate ignored: the model is chip-level already", highlight=False, markup=False)
    else:
        options = {"weight_bits": args.weight_bits, "dt": args.dt, "calibrate": calibration(args, data, console),
                   "assumed": args.assumed, **guard_options(args)}
    return evaluate(model, data, chip=args.chip, costs=args.costs, steps=args.steps, **options)


def _evaluate_dataset(args: argparse.Namespace, console):
    """--data: accuracy, activity and energy over every sample (snnc evaluate's engine), one report."""
    from snnc.compiler.analysis.evaluate import evaluate_over_dataset
    from snnc.compiler.data.inputs import load_input_array

    from .engine_args import engine_from_args

    netx = [f"--{k.replace('_', '-')}" for k in ("reset_interval", "reset_offset", "input_bias", "input_shape", "refractory")
            if getattr(args, k, None) is not None]
    if netx:
        raise ParameterError(f"{', '.join(netx)} are not passed to the dataset engine yet", where=f"--data {args.data}",
                             hint="run a .net file with these options on --input IN.npy")
    options = {"weight_bits": args.weight_bits, "dt": args.dt, **guard_options(args)}
    if args.calibrate:
        options["calibrate"] = load_input_array(args.calibrate)
    with engine_from_args(args) as engine:
        console.print(f"evaluating over {args.data}, batches of {args.batch_size}, {engine.name}", highlight=False, markup=False)
        ev = evaluate_over_dataset(args.model, args.data, chip=args.chip, costs=args.costs, steps=args.steps, engine=engine,
                                   batch_size=args.batch_size, data_options=data_options(args), reset_mode=args.reset_mode,
                                   **options)
    args.assumed = ev.dataset.assumed
    result = ev.dataset
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    if result.accuracy is not None:
        console.print(f"accuracy over {result.samples} samples: {result.accuracy:.4f}", highlight=False)
    return ev


def _report(args: argparse.Namespace, console) -> int:
    from snnc.compiler.report import print_energy_table

    ev = _evaluate(args, console)
    failed = strict_exit(args, ev.compiled, args.assumed)
    if failed is not None:
        return failed
    paths = ev.write_report(args.out, meta={"model": str(args.model), "input": str(args.data or args.input or args.events or args.dataset)})
    print_energy_table(ev.energy, console=console)
    console.print(f"wrote {paths['json']} and {paths['html']}")
    return 0


def _energy(args: argparse.Namespace, console) -> int:
    from snnc.compiler.report import print_energy_table

    ev = _evaluate(args, console)
    print_energy_table(ev.energy, console=console)
    failed = strict_exit(args, ev.compiled, args.assumed)
    return 0 if failed is None else failed


register("energy", "estimate energy and latency per inference from a simulated run", lambda p: _evaluate_args(p, report=False), _energy)


register("report", "compile, simulate, map, price and write report.json + report.html", lambda p: _evaluate_args(p, report=True), _report)
