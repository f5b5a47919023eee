"""`--data DATA [--batch-size B] [--workers N | --scheduler ADDRESS]`: a whole dataset, streamed in
batches on an engine, for commands that also take one array (`--input`/`--events`/`--dataset`)."""
from __future__ import annotations

import argparse

from snnc.ir.errors import ParameterError

from .common import _positive_int
from .engine_args import add_engine_args

ARRAY_SOURCES = ("input", "events", "dataset")


def add_dataset_args(p: argparse.ArgumentParser, *, default_batch: int | None) -> None:
    """--data DATA (as `snnc evaluate` takes it), --batch-size, --workers | --scheduler."""
    p.add_argument("--data", metavar="DATA",
                   help="a whole dataset, streamed in batches (instead of --input/--events/--dataset): an .npz with x "
                        "[N, T, *shape] and optional labels y, an .npy, a folder of event files (one subfolder per class), "
                        "or a tonic dataset name under --dataset-root; as `snnc evaluate --data` takes it")
    p.add_argument("--batch-size", type=_positive_int, default=default_batch, metavar="B",
                   help="samples per task (default: " + (f"{default_batch}" if default_batch else "all") + "); bounds a worker's memory")
    add_engine_args(p)


def dataset_source(args: argparse.Namespace) -> bool:
    """True for --data, False for one array; errors when neither or both are given."""
    given = [f"--{k}" for k in ARRAY_SOURCES if getattr(args, k, None)]
    if getattr(args, "data", None):
        if given:
            raise ParameterError(f"--data and {', '.join(given)} both give the data", where=f"--data {args.data}",
                                 hint="pass one of them")
        return True
    if not given:
        raise ParameterError("no data given", where="the command's data options",
                             expected="--data DATA, --input IN.npy, --events FILE or --dataset NAME")
    return False


def open_data(args: argparse.Namespace):
    """The open Dataset --data names, binned by --steps/--bin-ms as `snnc evaluate` bins it."""
    from snnc.compiler.data.dataset import open_dataset

    return open_dataset(args.data, **data_options(args))


def data_options(args: argparse.Namespace) -> dict:
    """open_dataset's options from the parsed flags (for evaluate_dataset's data_options)."""
    return {"steps": getattr(args, "steps", None), "bin_ms": getattr(args, "bin_ms", None),
            "event_format": getattr(args, "event_format", None), "root": getattr(args, "dataset_root", "."),
            "train": getattr(args, "train", False), "download": getattr(args, "download", False),
            "samples": getattr(args, "samples", None)}
