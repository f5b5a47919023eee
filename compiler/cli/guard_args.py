"""The fidelity guard's options, shared by every command that compiles: --no-guard, --tolerance, --strict.

See snnc.compiler.analysis.fidelity. `--strict` turns every warning the guard or the loader states
(breached tolerances, assumptions a model file cannot state) into an error: the command prints
them, writes no output and exits with status 1 (for CI).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from snnc.compiler.analysis.fidelity import TOLERANCES, parse_tolerance, strict_problems
from snnc.ir.errors import ParameterError

EXIT_STRICT = 1


def _tolerance(text: str) -> str:
    try:
        parse_tolerance(text)
    except ParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_guard_args(p: argparse.ArgumentParser) -> None:
    keys = ", ".join(f"{k} ({kind} {limit:g})" for k, (limit, kind, _) in TOLERANCES.items())
    p.add_argument("--no-guard", dest="guard", action="store_false",
                   help="skip the fidelity guard (float model vs chip on the calibration data or a generated input)")
    p.add_argument("--tolerance", type=_tolerance, metavar="KEY=VALUE,...", help=f"fidelity guard limits; keys (default): {keys}")
    p.add_argument("--strict", action="store_true", help="treat every warning (guard breaches, unstated assumptions) as an error: exit status 1")


def guard_options(args: argparse.Namespace) -> dict[str, Any]:
    """compile() keywords for the parsed guard options."""
    out: dict[str, Any] = {"guard": getattr(args, "guard", True)}
    if getattr(args, "tolerance", None):
        out["tolerance"] = args.tolerance
    return out


def strict_exit(args: argparse.Namespace, result: Any, assumed: list[str]) -> int | None:
    """With --strict and any warning: print each as an error and return exit status 1; else None."""
    if not getattr(args, "strict", False):
        return None
    problems = list(dict.fromkeys(strict_problems(result, assumed)))
    if not problems:
        return None
    for p in problems:
        print(f"snnc: error: strict: {' '.join(p.split())}", file=sys.stderr)
    print(f"snnc: error: strict: {len(problems)} warning(s) treated as errors; no output written", file=sys.stderr)
    return EXIT_STRICT
