"""The `snnc` command line.

Each subcommand (one module here) is one entry of `SUBCOMMANDS`: a name, a one-line help, a function that adds its
arguments to an argparse parser and a handler `(args, console) -> exit code`. Adding a command is
one module with its `register(...)` call, imported below.

Errors a user can cause (every `SnncError`) print one line `snnc: error: ...` on stderr and exit
with status 2, as argparse does for bad arguments; `--debug` shows the traceback instead.
"""
from __future__ import annotations

from . import inspect, run, compile, budget, report, evaluate  # noqa: F401, I001  (each registers its commands, in help order)
from .app import SUBCOMMANDS, Subcommand, build_parser, main, register

__all__ = ["SUBCOMMANDS", "Subcommand", "build_parser", "main", "register"]
