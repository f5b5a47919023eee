"""`snnc run`: run a model on an input array and save outputs and probes."""
from __future__ import annotations

import argparse
import warnings

import numpy as np

from snnc.ir.errors import BackendError, GraphError, ParameterError, ShapeError

from .app import register
from .data_args import add_data_args, read_data
from .common import _positive_float, _positive_int, _probe_targets, add_netx_options, add_reset_mode, load_backend, load_model_arg, model_input_shapes, write_npz

def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a .nir file (NIR-level or chip-level) or a lava-dl .net file")
    add_reset_mode(p)
    add_netx_options(p)
    add_data_args(p, calibrate=False)
    p.add_argument("--raw", action="store_true",
                   help="chip-level models: write the chip's own integer outputs (unaligned) instead of float values aligned with the float model")
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
    data = read_data(args)
    shapes = model_input_shapes(model)
    try:
        if isinstance(model, ChipGraph):  # checked (with the index of a bad value) by the encoding
            from snnc.compiler.data.encoding import encode

            with warnings.catch_warnings():  # the run below states them once
                warnings.simplefilter("ignore")
                enc = encode(model, data, args.steps)
            inputs, batch, steps = enc.inputs, enc.batch, enc.steps
        else:
            inputs, batch, steps = normalize_inputs(data, shapes, args.steps)
    except ShapeError as exc:
        source = args.input or args.events
        raise ShapeError(exc.what, where=f"{source}: {exc.where}" if exc.where else source,
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
    if isinstance(model, ChipGraph):  # float in, float out: the encoding contract in the chip file
        from snnc.compiler.data.encoding import run as run_encoded

        result = run_encoded(model, data, backend=name, steps=args.steps, probes=list(args.probe), raw=args.raw)
    else:
        if args.raw:
            raise ParameterError("--raw applies to chip-level models only", where=args.model)
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
    where = "" if not isinstance(model, ChipGraph) else (" (chip integers, unaligned)" if args.raw else " (float units, aligned with the float model)")
    console.print(f"ran {batch} x {steps} steps on {name}{where}; wrote {args.out}: {summary}")
    return 0


register("run", "run a model on an input array and save outputs and probes", _run_args, _run)
