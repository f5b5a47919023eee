"""`--workers N` / `--scheduler ADDRESS`: where a command's batches run (snnc.compiler.analysis.distributed)."""
from __future__ import annotations

import argparse


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--workers wants an integer (0: one per core), got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--workers wants 0 (one per core) or a positive integer, got {text!r}")
    return value


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """--workers N | --scheduler ADDRESS (default: this process)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=_workers, metavar="N",
                   help="run batches on a Dask LocalCluster of N single-threaded worker processes on this machine "
                        "(0: one per core; 1 or not given: in this process)")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="run batches on an existing Dask cluster (`dask scheduler`, then `dask worker ADDRESS` on each "
                        "machine), e.g. tcp://10.0.0.5:8786; snnc never starts remote machines")


def engine_from_args(args: argparse.Namespace):
    """The engine the parsed options ask for (a context manager: close it when done)."""
    from snnc.compiler.analysis.distributed import engine_for

    return engine_for(getattr(args, "workers", None), getattr(args, "scheduler", None))
