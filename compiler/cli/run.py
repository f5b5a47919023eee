"""`snnc run`: run a model on an input array and save outputs and probes."""
from __future__ import annotations

import argparse

import numpy as np

from snnc.compiler.data.inputs import load_input_array
from snnc.ir.errors import BackendError, GraphError, ParameterError, ShapeError

from .app import register
from .common import _positive_float, _positive_int, _probe_targets, add_reset_mode, load_backend, load_model_arg, model_input_shapes, write_npz

def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a .nir file (NIR-level or chip-level) or a lava-dl .net file")
    add_reset_mode(p)
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


def _run(args: argparse.Namespace, console) -> int:
    from snnc.backends.base import normalize_inputs
    from snnc.ir.chip import ChipGraph

    model = load_model_arg(args)
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


register("run", "run a model on an input array and save outputs and probes", _run_args, _run)
