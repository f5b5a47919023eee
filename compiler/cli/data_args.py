"""`--input` / `--events FILE --bin-ms|--steps` / `--calibrate`: where a command's data comes from."""
from __future__ import annotations

import argparse

from snnc.compiler.data.inputs import load_input_array
from snnc.ir.errors import ParameterError

from .common import _positive_float


def add_data_args(p: argparse.ArgumentParser, *, calibrate: bool, required: bool = True) -> None:
    """--input IN.npy, --events FILE or --dataset NAME (binned by --bin-ms or --steps) [--calibrate]."""
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("--input", metavar="IN.npy",
                     help="input array [T, *shape] or [batch, T, *shape]; for several input ports an .npz with one array per port name")
    src.add_argument("--events", metavar="FILE", help="an event recording read by tonic (N-MNIST .bin, .aedat4, .aedat, .npy events); "
                     "binned into [T, polarity, H, W] frames by --bin-ms or --steps")
    src.add_argument("--dataset", metavar="NAME", help="a tonic dataset (nmnist, dvsgesture, shd, ...) stored under --dataset-root, "
                     "binned by --bin-ms or --steps; its labels give accuracy where the command reports it")
    p.add_argument("--dataset-root", default=".", metavar="DIR", help="with --dataset: the folder tonic keeps it in (default .)")
    p.add_argument("--samples", type=int, metavar="N", help="with --dataset: use the first N samples (default all)")
    p.add_argument("--train", action="store_true", help="with --dataset: the training split (default: test)")
    p.add_argument("--download", action="store_true", help="with --dataset: let tonic download it when missing")
    p.add_argument("--event-format", choices=["nmnist", "aedat4", "dvs128", "dvsgesture", "davis346", "npy"],
                   help="event file format (default: from the file name)")
    p.add_argument("--bin-ms", type=_positive_float, metavar="MS", help="with --events: bin width in milliseconds")
    if calibrate:
        p.add_argument("--calibrate", metavar="IN.npy",
                       help="sample inputs to size scales on when compiling (default: the run's own input, with a note)")


def read_data(args: argparse.Namespace):
    """The command's input: the array, or the binned event frames."""
    if getattr(args, "dataset", None):
        from snnc.compiler.data.events import dataset_arrays, load_dataset

        bin_ms, steps = getattr(args, "bin_ms", None), getattr(args, "steps", None)
        if bin_ms is None and steps is None:
            raise ParameterError("--dataset needs --bin-ms (bin width) or --steps (number of bins)", where=args.dataset)
        data = load_dataset(args.dataset, args.dataset_root, train=args.train, download=args.download)
        x, labels = dataset_arrays(data, bin_ms=bin_ms, steps=None if bin_ms is not None else steps, samples=args.samples)
        args.dataset_labels = labels
        return x
    if getattr(args, "events", None):
        from snnc.compiler.data.events import read_events

        bin_ms, steps = getattr(args, "bin_ms", None), getattr(args, "steps", None)
        if bin_ms is None and steps is None:
            raise ParameterError("--events needs --bin-ms (bin width) or --steps (number of bins)", where=args.events)
        return read_events(args.events, format=getattr(args, "event_format", None), bin_ms=bin_ms,
                           steps=None if bin_ms is not None else steps)
    if getattr(args, "bin_ms", None) is not None:
        raise ParameterError("--bin-ms applies to --events only", where=f"--bin-ms {args.bin_ms}")
    return load_input_array(args.input)


def calibration(args: argparse.Namespace, data, console):
    """--calibrate's data, or the run's own input with a note saying so."""
    if getattr(args, "calibrate", None):
        return load_input_array(args.calibrate)
    console.print("note: no --calibrate given: scales are sized on the run's own input", highlight=False, markup=False)
    return data
