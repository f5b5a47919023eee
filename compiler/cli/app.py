"""The `snnc` entry point: subcommand registry, argument parsing, and the one-line error contract.

Errors a user can cause (every `SnncError`) print one line `snnc: error: ...` on stderr and exit
with status 2, as argparse does for bad arguments; `--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from snnc.ir.errors import SnncError
from snnc.ir.repairs import ReadNote
from snnc.ir.reset_mode import AssumptionWarning

from .common import _console, _one_line

EXIT_ERROR = 2


@dataclass(frozen=True)
class Subcommand:
    """One `snnc <name>` command."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace, Any], int]


SUBCOMMANDS: list[Subcommand] = []


def register(name: str, help: str, add_arguments: Callable, handler: Callable) -> Subcommand:
    """Add a subcommand (replacing one of the same name)."""
    cmd = Subcommand(name, help, add_arguments, handler)
    SUBCOMMANDS[:] = [c for c in SUBCOMMANDS if c.name != name] + [cmd]
    return cmd


# -- entry point ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    parser = argparse.ArgumentParser(
        prog="snnc",
        description="Compile spiking neural networks for Loihi-class neuromorphic chips.",
    )
    parser.add_argument("--debug", action="store_true", default=False, help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for cmd in SUBCOMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help, parents=[common])
        cmd.add_arguments(p)
        p.set_defaults(_handler=cmd.handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage and the error
        return int(exc.code) if isinstance(exc.code, int) else EXIT_ERROR
    debug = getattr(args, "debug", False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", AssumptionWarning)  # an assumption is stated every run
            warnings.showwarning = _show_warning
            return int(args._handler(args, _console()) or 0)
    except SnncError as exc:
        if debug:
            traceback.print_exc()
        _error(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug, not a user error: still one line unless --debug
        if debug:
            traceback.print_exc()
        _error(f"internal error ({type(exc).__name__}: {_one_line(exc)}); rerun with --debug for the traceback and report it")
        return EXIT_ERROR


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """snnc's own warnings as one line on stderr; others as Python prints them."""
    if issubclass(category, AssumptionWarning):
        print(f"snnc: warning: {_one_line(message)}", file=sys.stderr)
    elif issubclass(category, ReadNote):  # a file quirk with one meaning, repaired (snnc.ir.repairs)
        print(f"snnc: note: {_one_line(message)}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _error(message: str) -> None:
    print(f"snnc: error: {_one_line(message)}", file=sys.stderr)


