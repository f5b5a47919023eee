"""`snnc budget`: bit budget against fidelity over weight widths."""
from __future__ import annotations

import argparse
import json

from snnc.compiler.analysis.sweep import DEFAULT_WEIGHT_BITS, budget_sweep
from snnc.compiler.analysis.fidelity import recorded_warnings
from snnc.compiler.data.inputs import load_input_array
from snnc.ir.io import write_text

from .app import register
from .common import add_reset_mode
from .guard_args import add_guard_args, guard_options, strict_exit
from .data_args import add_data_args, calibration, read_data

def _width_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--weight-bits wants comma-separated integers, e.g. 2,4,6,8; got {text!r}") from None


def add_budget_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `snnc budget MODEL --weight-bits 2,4,6,8 --input IN.npy [--labels L.npy]`."""
    parser.add_argument("model", help="model to compile (a .nir file, or what `snnc compile` accepts)")
    add_reset_mode(parser)
    parser.add_argument("--weight-bits", type=_width_list, default=list(DEFAULT_WEIGHT_BITS),
                        help="comma-separated weight widths to compile at (1..8; default 2,4,6,8)")
    add_data_args(parser, calibrate=True)
    parser.add_argument("--labels", help="optional .npy of one integer class per sample: adds accuracy")
    parser.add_argument("--steps", type=int, help="time steps to simulate (default: the input's length)")
    parser.add_argument("--dt", type=float, help="simulation step in seconds (default: the compiler's)")
    parser.add_argument("--plot", help="also draw memory vs accuracy/agreement with the Pareto front to this PNG")
    parser.add_argument("--json", dest="json_out", help="also write the sweep, with every bit budget, as JSON here")
    return parser


def run_budget_command(args: argparse.Namespace, console=None) -> int:
    """Run the sweep the parsed `args` describe and print its table; snnc errors propagate to the CLI."""
    from rich.console import Console

    console = console or Console()
    inputs = read_data(args)
    labels = load_input_array(args.labels) if getattr(args, "labels", None) else getattr(args, "dataset_labels", None)
    opts = {} if getattr(args, "dt", None) is None else {"dt": args.dt}
    if getattr(args, "reset_mode", None) is not None:
        opts["reset_mode"] = args.reset_mode
    opts["calibrate"] = calibration(args, inputs, console)
    opts.update(guard_options(args))  # the fidelity guard runs at every width (its warnings name the layer)
    with recorded_warnings() as stated:
        result = budget_sweep(args.model, args.weight_bits, inputs, getattr(args, "steps", None), labels, **opts)
    failed = strict_exit(args, None, [str(w.message) for w in stated])
    if failed is not None:
        return failed
    console.print(result.render())
    for row in result.rows:
        if row.budget is not None:
            for warning in row.budget.warnings:
                console.print(f"[yellow]warning[/] ({row.weight_bits} bits): {warning}")
    if getattr(args, "plot", None):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = result.figure()
        FigureCanvasAgg(fig)
        fig.savefig(args.plot, dpi=100)
        console.print(f"wrote {args.plot} (Pareto widths: {result.pareto()})")
    if getattr(args, "json_out", None):
        write_text(args.json_out, json.dumps(result.to_dict(), indent=2))
        console.print(f"wrote {args.json_out}")
    return 0


def _budget_args(p: argparse.ArgumentParser) -> None:
    add_budget_arguments(p)
    add_guard_args(p)


def _budget(args: argparse.Namespace, console) -> int:
    return run_budget_command(args, console)


register("budget", "bit budget vs fidelity over weight widths (the bit-budget sweep)", _budget_args, _budget)
