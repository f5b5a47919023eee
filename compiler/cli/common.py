"""Helpers every command shares: console output, argument types, backends and output files."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from snnc.ir.errors import BackendError, ModelFileError, SnncError
from snnc.ir.io import atomic_open


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())


def _console():
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]):
    from rich.table import Table
    from rich.text import Text

    from rich.console import Group

    table = Table(show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(v)) for v in row))
    return Group(Text(title, style="bold"), table)


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape) if shape is not None else "?"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def model_input_shapes(model) -> dict[str, tuple[int, ...]]:
    from snnc.ir.chip import ChipGraph

    if isinstance(model, ChipGraph):
        return {name: tuple(inp.shape) for name, inp in model.inputs.items()}
    return {name: tuple(model.in_shapes[name]) for name in model.inputs}


def _probe_targets(model) -> list[str]:
    from snnc.ir.chip import ChipGraph

    if isinstance(model, ChipGraph):
        return [*model.inputs, *model.populations, *model.projections]
    return list(model.nodes)


def load_backend(name: str, model):
    """The backend `name`, checked against the model's level and its `problems()`."""
    from snnc.backends import base

    try:
        backend = base.get_backend(name)
    except SnncError:
        raise
    except Exception as exc:  # noqa: BLE001 - a half-installed backend package
        raise BackendError(
            f"backend {name!r} cannot be loaded ({type(exc).__name__}: {_one_line(exc)})",
            hint=f"available: {', '.join(base.available_backends())}",
        ) from exc
    from snnc.ir.chip import ChipGraph

    level = "chip" if isinstance(model, ChipGraph) else "nir"
    backend_level = getattr(backend, "level", None)
    if backend_level is not None and backend_level != level:
        raise BackendError(
            f"backend {name!r} runs {backend_level}-level graphs but the model is {level}-level",
            hint="use --backend reference for NIR-level models and --backend sim (or lava) for chip-level ones"
            if level == "nir" or backend_level == "nir" else None,
        )
    problems = list(backend.problems(model)) if hasattr(backend, "problems") else []
    if problems:
        raise BackendError(
            f"backend {name!r} cannot run this model: {'; '.join(map(str, problems[:3]))}"
            + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""),
            hint="try another --backend",
        )
    return backend


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez to exactly `path` (numpy would append .npz), creating its directory."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:  # the previous file stays intact if this fails midway
            np.savez(f, **arrays)
    except OSError as exc:
        raise ModelFileError(f"cannot write the output file ({exc.strerror or exc})", where=str(path)) from exc


def add_reset_mode(p: argparse.ArgumentParser) -> None:
    """`--reset-mode`: what spiking neurons do after a spike where a NIR file cannot say."""
    p.add_argument("--reset-mode", choices=["zero", "subtract", "none"], default=None,
                   help="reset of spiking neurons whose file does not state it (NIR cannot): zero = NIR's reset to v_reset "
                        "(assumed, with a warning, when not given), subtract = snnTorch's default, none")


def add_netx_options(p: argparse.ArgumentParser) -> None:
    """lava-dl's `netx.hdf5.Network` run-time options, for lava-dl `.net` models."""
    g = p.add_argument_group("lava-dl .net models")
    g.add_argument("--reset-interval", type=_positive_int, metavar="N", help="reset every layer every N steps (lava-dl's reset_interval, Lava LIFReset)")
    g.add_argument("--reset-offset", type=int, default=None, metavar="K", help="phase of that reset (lava-dl's reset_offset; default 0)")
    g.add_argument("--input-bias", metavar="IMAGE.npy", help="bias_mant of the input layer's neurons, in C,H,W order (an image fed as lava-dl feeds it)")
    g.add_argument("--input-shape", metavar="C,H,W", help="input shape of a .net file without an input layer that cannot give it")
    g.add_argument("--refractory", action="store_true", default=None,
                   help="run layers with refDelay > 1 with their refractory period (Lava LIFRefractory); by default they run "
                        "as lava-dl netx 0.6 runs them, as a plain LIF (refDelay ignored, with a warning)")


def _netx_args(args: argparse.Namespace) -> dict:
    """The netx options given on the command line (an error if the model is not a .net file)."""
    from pathlib import Path

    import numpy as np

    from snnc.ir.errors import ParameterError

    opts: dict = {}
    if getattr(args, "reset_interval", None) is not None:
        opts["reset_interval"] = args.reset_interval
        opts["reset_offset"] = args.reset_offset or 0
    elif getattr(args, "reset_offset", None) is not None:
        raise ParameterError("--reset-offset needs --reset-interval", where="--reset-offset", hint="add --reset-interval N")
    if getattr(args, "input_bias", None):
        try:
            opts["input_bias"] = np.load(args.input_bias)
        except (OSError, ValueError) as exc:
            raise ParameterError("cannot read the input bias", where=f"--input-bias {args.input_bias}", got=str(exc)[:80], hint="save it with numpy.save") from exc
    if getattr(args, "input_shape", None):
        try:
            opts["input_shape"] = tuple(int(d) for d in str(args.input_shape).split(","))
        except ValueError:
            raise ParameterError("--input-shape must be integers separated by commas", where="--input-shape", got=args.input_shape) from None
    if getattr(args, "refractory", None):
        opts["refractory"] = True
    if opts and Path(str(args.model)).suffix.lower() != ".net":
        flags = ", ".join("--" + k.replace("_", "-") for k in opts)
        raise ParameterError(f"{flags} apply only to lava-dl .net models", where=str(args.model), hint="drop these flags")
    return opts


def load_model_arg(args: argparse.Namespace):
    """The model named on the command line, with its `--reset-mode` (and netx options for .net files)."""
    from snnc.compiler.frontends.loader import load_model

    return load_model(args.model, reset_mode=getattr(args, "reset_mode", None), **_netx_args(args))

