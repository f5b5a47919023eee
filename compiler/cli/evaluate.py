"""`snnc evaluate`: accuracy, fidelity, activity and energy of a model over a whole dataset."""
from __future__ import annotations

import argparse
import json

from .app import register
from .common import _positive_float, _positive_int, add_reset_mode
from .dataset_args import data_options
from .engine_args import add_engine_args, engine_from_args
from .guard_args import add_guard_args, guard_options, strict_exit


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a NIR-level .nir (compiled once), a chip-level .nir, or what `snnc compile` accepts")
    add_reset_mode(p)
    p.add_argument("--data", required=True, metavar="DATA",
                   help="an .npz with x [N, T, *shape] (or one array per input port) and optional labels y [N]; an .npy "
                        "[N, T, *shape]; a folder of event files (one subfolder per class gives labels); or a tonic "
                        "dataset name (nmnist, shd, ...) under --dataset-root")
    p.add_argument("--out", required=True, metavar="RESULT.json", help="where to write the result (accuracy, predictions, ...)")
    p.add_argument("--backend", default="sim", metavar="NAME", help="sim (default), lava, or reference (the float model itself)")
    p.add_argument("--batch-size", type=_positive_int, default=64, metavar="B", help="samples per task (default 64); "
                   "bounds the memory a worker needs")
    add_engine_args(p)
    p.add_argument("--weight-bits", type=_positive_int, default=8, metavar="N", help="bits per weight when compiling (default 8)")
    p.add_argument("--dt", type=_positive_float, metavar="S", help="time step in seconds when compiling (default: the compiler's)")
    p.add_argument("--calibrate", metavar="DATA", help="data (as --data) whose first 64 samples size the compiler's "
                   "scales (default: the first 64 samples of --data, with a note)")
    p.add_argument("--steps", type=_positive_int, metavar="T", help="time steps per sample (event data: the number of bins; "
                   "arrays: default their length)")
    p.add_argument("--bin-ms", type=_positive_float, metavar="MS", help="event data: bins of MS milliseconds, cut or padded to --steps")
    p.add_argument("--event-format", choices=["nmnist", "aedat4", "dvs128", "dvsgesture", "davis346", "npy"],
                   help="event file format (default: from the file name)")
    p.add_argument("--dataset-root", default=".", metavar="DIR", help="tonic datasets: the folder tonic keeps them in")
    p.add_argument("--train", action="store_true", help="tonic datasets: the training split (default: test)")
    p.add_argument("--download", action="store_true", help="tonic datasets: let tonic download it when missing")
    p.add_argument("--samples", type=_positive_int, metavar="N", help="tonic datasets: the first N samples only")
    p.add_argument("--output", metavar="PORT", help="the output port that classifies (needed when the model has several)")
    p.add_argument("--predict", choices=["auto", "count", "last"], default="auto",
                   help="prediction per sample: count = argmax of output spike counts, last = argmax of the decoded "
                        "output at the last step; auto (default): count for spiking outputs, last otherwise")
    p.add_argument("--reference", metavar="FLOAT.nir", help="a chip-level model's float source, for fidelity")
    p.add_argument("--chip", default="loihi2", metavar="NAME|FILE", help="chip profile for mapping and energy (default loihi2)")
    p.add_argument("--costs", metavar="TABLE", help="cost table (default: the chip's)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_guard_args(p)


def _evaluate(args: argparse.Namespace, console) -> int:
    from snnc.compiler.analysis.dataset_eval import calibration_samples, evaluate_dataset
    from snnc.compiler.data.dataset import open_dataset
    from snnc.ir.io import write_text

    calibrate = None
    if args.calibrate:
        calibrate = calibration_samples(open_dataset(args.calibrate, **data_options(args)))
    options = {"weight_bits": args.weight_bits, "steps": args.steps, "output": args.output, "rule": args.predict,
               "reference": args.reference, **guard_options(args)}
    if args.dt is not None:
        options["dt"] = args.dt
    with engine_from_args(args) as engine:
        console.print(f"evaluating on {args.backend}, batches of {args.batch_size}, {engine.name}", highlight=False)
        result = evaluate_dataset(args.model, args.data, backend=args.backend, batch_size=args.batch_size, engine=engine,
                                  calibrate=calibrate, chip=args.chip, costs=args.costs, progress=args.progress,
                                  data_options=data_options(args), reset_mode=args.reset_mode, **options)
    failed = strict_exit(args, result.compiled, result.assumed)
    if failed is not None:
        return failed
    write_text(args.out, json.dumps(result.to_dict(), indent=1))
    _print_summary(result, console)
    console.print(f"wrote {args.out}", highlight=False)
    return 0


def _print_summary(result, console) -> None:
    from .common import _table

    rows = [["samples", f"{result.samples} x {result.steps} steps"], ["prediction", result.rule]]
    if result.accuracy is not None:
        rows.append(["accuracy", f"{result.accuracy:.4f}"])
    if result.agreement is not None:
        rows.append(["agreement with the float model", f"{result.agreement:.4f}"])
        if result.reference_accuracy is not None:
            rows.append(["float model accuracy", f"{result.reference_accuracy:.4f}"])
    if result.energy is not None:
        rows.append(["energy per inference", f"{result.energy.total_j:.4g} J"])
        rows.append(["latency per inference", f"{result.energy.latency.per_inference_s:.4g} s"])
    if result.activity is not None:
        rows.append(["synaptic ops per inference", f"{result.activity.total_synaptic_ops / result.activity.batch:,.0f}"])
    console.print(_table(f"{result.model} on {result.data} ({result.backend})", ["", "value"], rows))
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, markup=False)


register("evaluate", "accuracy, fidelity, activity and energy over a whole dataset (in batches, optionally on Dask)",
         _evaluate_args, _evaluate)
