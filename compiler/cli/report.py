"""`snnc report` and `snnc energy`: compile, simulate, map, price; write reports or print energy."""
from __future__ import annotations

import argparse

from snnc.compiler.data.inputs import load_input_array

from .app import register
from .common import _positive_float, _positive_int, add_reset_mode, load_model_arg

def _evaluate_args(p: argparse.ArgumentParser, *, report: bool) -> None:
    p.add_argument("model", help="a NIR-level .nir (compiled first), a chip-level .nir, or a lava-dl .net file")
    add_reset_mode(p)
    p.add_argument("--input", required=True, metavar="IN.npy", help="input array [T, *shape] or [batch, T, *shape]")
    p.add_argument("--chip", default="loihi2", metavar="NAME|FILE", help="chip profile: loihi1, loihi2 or a .toml/.json profile")
    p.add_argument("--costs", metavar="TABLE", help="cost table (loihi1-davies2018, loihi1-sanafe, loihi2-assumed; default: the chip's)")
    p.add_argument("--steps", type=_positive_int, metavar="T", help="time steps (default: the input's length)")
    p.add_argument("--weight-bits", type=_positive_int, default=8, metavar="N", help="bits per weight when compiling (default 8)")
    p.add_argument("--dt", type=_positive_float, default=1e-4, metavar="S", help="time step in seconds when compiling (default 1e-4)")
    if report:
        p.add_argument("-o", "--out", required=True, metavar="DIR", help="folder for report.json and report.html")


def _evaluate(args: argparse.Namespace):
    from snnc.compiler.analysis.evaluate import evaluate
    from snnc.ir.chip import ChipGraph

    model = load_model_arg(args)
    data = load_input_array(args.input)
    options = {} if isinstance(model, ChipGraph) else {"weight_bits": args.weight_bits, "dt": args.dt}
    return evaluate(model, data, chip=args.chip, costs=args.costs, steps=args.steps, **options)


def _report(args: argparse.Namespace, console) -> int:
    from snnc.compiler.report import print_energy_table

    ev = _evaluate(args)
    paths = ev.write_report(args.out, meta={"model": str(args.model), "input": str(args.input)})
    print_energy_table(ev.energy, console=console)
    console.print(f"wrote {paths['json']} and {paths['html']}")
    return 0


def _energy(args: argparse.Namespace, console) -> int:
    from snnc.compiler.report import print_energy_table

    ev = _evaluate(args)
    print_energy_table(ev.energy, console=console)
    return 0


register("energy", "estimate energy and latency per inference from a simulated run", lambda p: _evaluate_args(p, report=False), _energy)


register("report", "compile, simulate, map, price and write report.json + report.html", lambda p: _evaluate_args(p, report=True), _report)
