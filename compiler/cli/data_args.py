"""`--input` / `--events FILE --bin-ms|--steps` / `--calibrate`: where a command's data comes from."""
from __future__ import annotations

import argparse

from snnc.compiler.data.inputs import load_input_array
from snnc.ir.errors import ParameterError

from .common import _positive_float


def add_data_args(p: argparse.ArgumentParser, *, calibrate: bool, required: bool = True) -> None:
    """--input IN.npy or --events FILE (with --bin-ms; --steps bins into that many steps) [--calibrate]."""
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("--input", metavar="IN.npy",
                     help="input array [T, *shape] or [batch, T, *shape]; for several input ports an .npz with one array per port name")
    src.add_argument("--events", metavar="FILE", help="an event recording read by tonic (N-MNIST .bin, .aedat4, .aedat, .npy events); "
                     "binned into [T, polarity, H, W] frames by --bin-ms or --steps")
    p.add_argument("--event-format", choices=["nmnist", "aedat4", "dvs128", "dvsgesture", "davis346", "npy"],
                   help="event file format (default: from the file name)")
    p.add_argument("--bin-ms", type=_positive_float, metavar="MS", help="with --events: bin width in milliseconds")
    if calibrate:
        p.add_argument("--calibrate", metavar="IN.npy",
                       help="sample inputs to size scales on when compiling (default: the run's own input, with a note)")


def read_data(args: argparse.Namespace):
    """The command's input: the array, or the binned event frames."""
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
