"""The `snnc` command line.

Each subcommand is one entry of `SUBCOMMANDS`: a name, a one-line help, a function that adds its
arguments to an argparse parser and a handler `(args, console) -> exit code`. Adding a command is
one `register(...)` call (see the bottom of this file).

Errors a user can cause (every `SnncError`) print one line `snnc: error: ...` on stderr and exit
with status 2, as argparse does for bad arguments; `--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import math
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from snnc.ir.errors import BackendError, GraphError, ModelFileError, ParameterError, ShapeError, SnncError

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


def _error(message: str) -> None:
    print(f"snnc: error: {_one_line(message)}", file=sys.stderr)


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


# -- inspect --------------------------------------------------------------------------------------
def _inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a .nir file (NIR-level or chip-level) or a lava-dl .net file")


def _inspect(args: argparse.Namespace, console) -> int:
    from snnc.compiler.frontends.loader import load_model
    from snnc.ir.chip import ChipGraph

    model = load_model(args.model)
    if isinstance(model, ChipGraph):
        _inspect_chip(model, args.model, console)
    else:
        _inspect_nir(model, args.model, console)
    return 0


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape) if shape is not None else "?"


def _inspect_nir(graph, label: str, console) -> None:
    from snnc.ir import shapes as S
    from snnc.ir.graph import node_param_count

    rows = []
    for name in graph.topo_order():
        node = graph.nodes[name]
        rows.append((name, type(node).__name__, _shape(graph.in_shapes.get(name)), _shape(graph.out_shapes.get(name)), node_param_count(node)))
    console.print(_table(f"{label}: NIR-level graph, {len(graph.nodes)} nodes", ["node", "type", "input", "output", "params"], rows))
    rank = {n: i for i, n in enumerate(graph.topo_order())}
    edge_rows = [(a, b, "recurrent" if (a, b) in graph.recurrent else "")
                 for a, b in sorted(graph.edges, key=lambda e: (rank[e[0]], rank[e[1]]))]
    console.print(_table(f"edges ({len(graph.edges)})", ["from", "to", ""], edge_rows))
    loops = nir_loops(graph)
    if loops:
        console.print(_table(f"recurrent loops ({len(loops)})", ["loop", "closed by"], [(" -> ".join(c), ", ".join(f"{a} -> {b}" for a, b in e)) for c, e in loops]))
    else:
        console.print("recurrent loops: none")
    neurons = sum(math.prod(graph.out_shapes[n]) for n, node in graph.nodes.items() if isinstance(node, S.NEURON_TYPES))
    synapses = sum(nir_synapses(graph, n) for n in graph.nodes)
    params = sum(node_param_count(node) for node in graph.nodes.values())
    console.print(f"totals: {neurons} neurons, {synapses} synapses, {params} parameters, "
                  f"inputs {', '.join(f'{n} {_shape(graph.in_shapes[n])}' for n in graph.inputs)}, "
                  f"outputs {', '.join(f'{n} {_shape(graph.in_shapes[n])}' for n in graph.outputs)}")


def nir_loops(graph) -> list[tuple[list[str], list[tuple[str, str]]]]:
    """Strongly connected components with a cycle, each with the recurrent edges that close it."""
    import networkx as nx

    g = graph.nx()
    loops = []
    order = {n: i for i, n in enumerate(graph.nodes)}
    for comp in nx.strongly_connected_components(g):
        members = sorted(comp, key=order.__getitem__)
        if len(members) > 1 or g.has_edge(members[0], members[0]):
            closing = sorted(e for e in graph.recurrent if e[0] in comp and e[1] in comp)
            loops.append((members, closing))
    return sorted(loops, key=lambda item: order[item[0][0]])


def nir_synapses(graph, name: str) -> int:
    """Connections a weight node makes: nonzero dense weights; in-bounds conv kernel taps."""
    import nir

    node = graph.nodes[name]
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight)
        lead = math.prod(graph.in_shapes[name][:-1]) if len(graph.in_shapes[name]) > 1 else 1
        return int(np.count_nonzero(w)) * lead
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        from snnc.ir import shapes as S

        w = np.asarray(node.weight)
        in_shape, out_shape = graph.in_shapes[name], graph.out_shapes[name]
        dims = len(in_shape) - 1
        where = f"node {name!r}"
        stride = S.pair(node.stride, "stride", where) if dims == 2 else (int(np.ravel(node.stride)[0]),)
        dil = S.pair(node.dilation, "dilation", where) if dims == 2 else (int(np.ravel(node.dilation)[0]),)
        pads = S.conv_padding_pairs(node, in_shape[1:], where)
        taps = 1
        for i in range(dims):
            k, n_in, n_out = w.shape[2 + i], in_shape[1 + i], out_shape[1 + i]
            pos = np.arange(n_out)[:, None] * stride[i] - pads[i][0] + np.arange(k)[None, :] * dil[i]
            taps *= int(np.count_nonzero((pos >= 0) & (pos < n_in)))
        return taps * int(w.shape[0]) * int(w.shape[1])
    return 0


def _int_summary(value, per: str = "neuron") -> str:
    if np.ndim(value) == 0:
        return str(int(value))
    arr = np.asarray(value)
    lo, hi = int(arr.min()), int(arr.max())
    return f"{lo} (per {per})" if lo == hi else f"{lo}..{hi} (per {per})"


def _inspect_chip(graph, label: str, console) -> None:
    from snnc.ir.bits import SPECS, STATE_BITS

    b = {k: s.bits for k, s in SPECS.items()}
    console.print(_table(
        f"{label}: chip-level graph — inputs",
        ["input", "shape", f"num_message_bits ({b['num_message_bits']}b)"],
        [(i.name, _shape(i.shape), i.num_message_bits) for i in graph.inputs.values()],
    ))
    pop_rows = []
    for p in graph.populations.values():
        model = p.model
        if p.model == "lif_reset":
            model += f" (every {p.reset_interval}, offset {p.reset_offset})"
        elif p.model == "ternary":
            model += f" (vth_hi {p.vth_hi}, vth_lo {p.vth_lo})"
        pop_rows.append((p.name, _shape(p.shape), p.size, model, _int_summary(p.du), _int_summary(p.dv), _int_summary(p.vth),
                         _int_summary(p.bias_mant), _int_summary(p.bias_exp), p.size * STATE_BITS))
    console.print(_table(
        f"populations ({len(graph.populations)})",
        ["population", "shape", "neurons", "model", f"du ({b['du']}b)", f"dv ({b['dv']}b)", f"vth ({b['vth']}b)",
         f"bias_mant ({b['bias_mant']}b)", f"bias_exp ({b['bias_exp']}b)", f"state bits (u {b['u']}b + v {b['v']}b)"],
        pop_rows,
    ))
    proj_rows = []
    for p in graph.projections.values():
        geom = ""
        if p.kind == "conv":
            c = p.conv
            geom = f"k{_shape(c.kernel)} s{_shape(c.stride)} p{_shape(c.padding)} d{_shape(c.dilation)} g{c.groups}"
        proj_rows.append((p.name, f"{p.src} -> {p.dst}", p.kind + (f" {geom}" if geom else ""), _shape(p.weights.shape), p.num_synapses,
                          p.sign_mode, p.weight_exp, p.num_weight_bits, p.num_message_bits, _int_summary(p.delay, "synapse")))
    console.print(_table(
        f"projections ({len(graph.projections)})",
        ["projection", "src -> dst", "kind", "weights", "synapses", "sign", f"weight_exp ({b['weight_exp']}b)",
         f"num_weight_bits ({b['num_weight_bits']}b)", f"num_message_bits ({b['num_message_bits']}b)", f"delay ({b['delay']}b)"],
        proj_rows,
    ))
    console.print(_table(f"outputs ({len(graph.outputs)})", ["output", "population", "variable"],
                         [(n, o.population, o.var) for n, o in graph.outputs.items()]))
    recurrent = [c for c in graph.population_order() if graph.is_recurrent(c)]
    console.print("recurrent loops: " + ("; ".join(" -> ".join(c + c[:1]) for c in recurrent) if recurrent else "none"))
    meta = ", ".join(f"{k}={v}" for k, v in graph.meta.items() if isinstance(v, (int, float, str)))
    console.print(f"totals: {graph.num_neurons} neurons, {graph.num_synapses} synapses" + (f"; meta: {meta}" if meta else ""))


# -- run ------------------------------------------------------------------------------------------
def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a .nir file (NIR-level or chip-level) or a lava-dl .net file")
    p.add_argument("--input", required=True, metavar="IN.npy",
                   help="input array [T, *shape] or [batch, T, *shape]; for several input ports an .npz with one array per port name")
    p.add_argument("--out", required=True, metavar="OUT.npz", help="where to write outputs and probes")
    p.add_argument("--steps", type=_positive_int, metavar="T", help="time steps (default: the input's length; extra steps get zero input)")
    p.add_argument("--backend", metavar="NAME", help="backend (default: reference for NIR-level models, sim for chip-level)")
    p.add_argument("--dt", type=_positive_float, metavar="S", help="time step in seconds (NIR-level models; default 1e-4)")
    p.add_argument("--probe", nargs="+", action="extend", default=[], metavar="NODE", help="also record these nodes ('node' or 'node/var')")
    p.epilog = (
        "OUT.npz holds 'output' [batch, T, *shape] (one 'output/<name>' per output when the model has several) "
        "and 'probe/<node>' for every --probe."
    )


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


def load_input_array(path: str | Path) -> np.ndarray | dict[str, np.ndarray]:
    """Read IN.npy as a numeric array, or IN.npz: one array, or one array per input port by name."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError("input file not found", where=str(path), hint="pass a .npy file saved with numpy.save")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError/UnpicklingError
        raise ModelFileError(
            f"cannot read the input array ({type(exc).__name__}: {_one_line(exc)})",
            where=str(path),
            hint="save inputs with numpy.save(path, array)",
        ) from exc
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            arrays = {key: data[key] for key in data.keys()}
        if not arrays:
            raise ModelFileError("the .npz input holds no array", where=str(path), hint="numpy.savez(path, input=array)")
        for key, arr in arrays.items():
            if arr.dtype.kind not in "biuf":
                raise ShapeError("input must be numeric", where=f"{path}[{key}]", got=str(arr.dtype))
        # one unnamed array is the single input; several are matched to the model's ports by name
        return next(iter(arrays.values())) if len(arrays) == 1 else arrays
    if data.dtype.kind not in "biuf":
        raise ShapeError("input must be numeric", where=str(path), got=str(data.dtype))
    return data


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


def _run(args: argparse.Namespace, console) -> int:
    from snnc.backends.base import normalize_inputs
    from snnc.compiler.frontends.loader import load_model
    from snnc.ir.chip import ChipGraph

    model = load_model(args.model)
    data = load_input_array(args.input)
    shapes = model_input_shapes(model)
    try:
        inputs, batch, steps = normalize_inputs(data, shapes, args.steps)
    except ShapeError as exc:
        raise ShapeError(exc.what, where=f"{args.input}: {exc.where}" if exc.where else args.input,
                         expected=exc.expected, got=exc.got, hint=exc.hint) from exc
    known = _probe_targets(model)
    for probe in args.probe:
        if probe.split("/", 1)[0] not in known:
            raise GraphError("unknown probe", where=f"--probe {probe}", expected=", ".join(known[:20]),
                             hint="probe a node by name, or 'node/var' for a state variable")
    name = args.backend or ("sim" if isinstance(model, ChipGraph) else "reference")
    if args.dt is not None and isinstance(model, ChipGraph):
        raise ParameterError(
            "--dt applies to NIR-level models only",
            where=args.model,
            got=args.dt,
            hint=f"a chip-level model was quantized for its own time step (dt={model.meta.get('dt', 'unknown')}); recompile to change it",
        )
    backend = load_backend(name, model)
    options = {"dt": args.dt} if args.dt is not None else {}
    program = backend.build(model, **options)
    result = program.run(inputs, steps=steps, probes=list(args.probe))
    arrays = {}
    if len(result.outputs) == 1:
        arrays["output"] = np.asarray(next(iter(result.outputs.values())))
    else:
        for out_name, arr in result.outputs.items():
            arrays[f"output/{out_name}"] = np.asarray(arr)
    for probe in args.probe:
        if probe not in result.probes:
            raise BackendError(f"backend {name!r} did not record the probe", where=f"--probe {probe}", got=sorted(result.probes))
        arrays[f"probe/{probe}"] = np.asarray(result.probes[probe])
    write_npz(args.out, arrays)
    summary = ", ".join(f"{k} {list(v.shape)}" for k, v in arrays.items())
    console.print(f"ran {batch} x {steps} steps on {name}; wrote {args.out}: {summary}")
    return 0


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez to exactly `path` (numpy would append .npz), creating its directory."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as exc:
        raise ModelFileError(f"cannot write the output file ({exc.strerror or exc})", where=str(path)) from exc


# -- compile --------------------------------------------------------------------------------------
def _compile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a NIR-level .nir file (or a lava-dl .net file, already chip-level)")
    p.add_argument("-o", "--out", required=True, metavar="OUT.nir", help="where to write the compiled (chip-level) NIR file")
    p.add_argument("--target", choices=["loihi2", "loihi1"], default="loihi2", help="chip to compile for (default loihi2)")
    p.add_argument("--weight-bits", type=_positive_int, default=8, metavar="N", help="bits per weight, 1..8 (default 8)")
    p.add_argument("--dt", type=_positive_float, default=1e-4, metavar="S", help="time step in seconds (default 1e-4, the NIR paper's)")
    p.add_argument("--calibrate", metavar="IN.npy", help="sample inputs [T, *shape] or [batch, T, *shape] to size scales on")
    p.add_argument("--report", metavar="REPORT.json", help="also write the per-pass, per-layer report as JSON")
    p.add_argument("--dump-after", nargs="+", action="extend", default=[], metavar="PASS",
                   help="write the graph after these passes (canonicalize, fuse, timing, quantize, legalize) next to OUT")


def _compile(args: argparse.Namespace, console) -> int:
    import json

    from snnc.compiler.frontends.loader import load_model
    from snnc.compiler.pipeline import compile as snnc_compile
    from snnc.ir.chip import ChipGraph
    from snnc.ir.chip_nir import chip_to_nir
    from snnc.ir.graph import write_nir

    model = load_model(args.model)
    out = Path(args.out)
    result = None
    if isinstance(model, ChipGraph):
        console.print(f"{args.model} is already chip-level ({len(model.populations)} populations); writing it unchanged")
    else:
        calibrate = load_input_array(args.calibrate) if args.calibrate else None
        result = snnc_compile(
            model, target=args.target, weight_bits=args.weight_bits, dt=args.dt, calibrate=calibrate,
            dump_after=args.dump_after or None, dump_dir=out.parent / f"{out.stem}.dumps" if args.dump_after else None,
        )
        console.print(result.summary_text(width=console.width or 120), end="")
    write_nir(chip_to_nir(model if result is None else result.chip), out)
    if args.report:
        report = result.to_dict() if result is not None else {"note": "model was chip-level already"}
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=1))
    console.print(f"wrote {out}" + (f" and {args.report}" if args.report else "")
                  + f"; run it with: snnc run {out} --input IN.npy --out OUT.npz")
    return 0


# -- report / energy ------------------------------------------------------------------------------
def _evaluate_args(p: argparse.ArgumentParser, *, report: bool) -> None:
    p.add_argument("model", help="a NIR-level .nir (compiled first), a chip-level .nir, or a lava-dl .net file")
    p.add_argument("--input", required=True, metavar="IN.npy", help="input array [T, *shape] or [batch, T, *shape]")
    p.add_argument("--chip", default="loihi2", metavar="NAME|FILE", help="chip profile: loihi1, loihi2 or a .toml/.json profile")
    p.add_argument("--costs", metavar="TABLE", help="cost table (loihi1-davies2018, loihi1-sanafe, loihi2-assumed; default: the chip's)")
    p.add_argument("--steps", type=_positive_int, metavar="T", help="time steps (default: the input's length)")
    p.add_argument("--weight-bits", type=_positive_int, default=8, metavar="N", help="bits per weight when compiling (default 8)")
    p.add_argument("--dt", type=_positive_float, default=1e-4, metavar="S", help="time step in seconds when compiling (default 1e-4)")
    if report:
        p.add_argument("-o", "--out", required=True, metavar="DIR", help="folder for report.json and report.html")


def _evaluate(args: argparse.Namespace):
    from snnc.compiler.evaluate import evaluate
    from snnc.compiler.frontends.loader import load_model
    from snnc.ir.chip import ChipGraph

    model = load_model(args.model)
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


def _budget_args(p: argparse.ArgumentParser) -> None:
    from snnc.compiler.sweep import add_budget_arguments

    add_budget_arguments(p)


def _budget(args: argparse.Namespace, console) -> int:
    from snnc.compiler.sweep import run_budget_command

    return run_budget_command(args, console)


register("inspect", "show a model's nodes, shapes, edges, loops and totals", _inspect_args, _inspect)
register("run", "run a model on an input array and save outputs and probes", _run_args, _run)
register("compile", "compile a float model for a chip: quantized chip-level NIR plus a per-layer summary", _compile_args, _compile)
register("budget", "bit budget vs fidelity over weight widths (the bit-budget sweep)", _budget_args, _budget)
register("energy", "estimate energy and latency per inference from a simulated run", lambda p: _evaluate_args(p, report=False), _energy)
register("report", "compile, simulate, map, price and write report.json + report.html", lambda p: _evaluate_args(p, report=True), _report)
