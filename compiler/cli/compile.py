"""`snnc compile`: quantize a float model for a chip and write chip-level NIR."""
from __future__ import annotations

import argparse
from pathlib import Path

from snnc.compiler.analysis.fidelity import recorded_warnings
from snnc.compiler.data.inputs import load_input_array
from snnc.ir.io import write_text

from .app import register
from .common import _positive_float, _positive_int, add_netx_options, add_reset_mode, load_model_arg
from .guard_args import add_guard_args, guard_options, strict_exit

def _compile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a NIR-level .nir file (or a lava-dl .net file, already chip-level)")
    add_reset_mode(p)
    add_netx_options(p)
    p.add_argument("-o", "--out", required=True, metavar="OUT.nir", help="where to write the compiled (chip-level) NIR file; "
                   "OUT.net writes a lava-dl netx file instead (for networks netx can express)")
    p.add_argument("--target", choices=["loihi2", "loihi1"], default="loihi2", help="chip to compile for (default loihi2)")
    p.add_argument("--weight-bits", type=_positive_int, default=8, metavar="N", help="bits per weight, 1..8 (default 8)")
    p.add_argument("--dt", type=_positive_float, default=1e-4, metavar="S", help="time step in seconds (default 1e-4, the NIR paper's)")
    p.add_argument("--calibrate", metavar="IN.npy", help="sample inputs [T, *shape] or [batch, T, *shape] to size scales on")
    p.add_argument("--report", metavar="REPORT.json", help="also write the per-pass, per-layer report as JSON")
    p.add_argument("--passes", metavar="SPEC", help="pass pipeline as text, e.g. 'canonicalize,fuse,timing,quantize(weight_bits=6),legalize' "
                   "(default: the standard pipeline configured by the options above)")
    p.add_argument("--dump-after", nargs="+", action="extend", default=[], metavar="PASS",
                   help="write the graph after these passes (canonicalize, fuse, timing, quantize, legalize) next to OUT")
    add_guard_args(p)


def _compile(args: argparse.Namespace, console) -> int:
    import json

    from snnc.compiler.pipeline import compile as snnc_compile
    from snnc.ir.chip import ChipGraph
    from snnc.ir.chip_nir import chip_to_nir
    from snnc.ir.graph import write_nir

    with recorded_warnings() as load_warnings:  # assumptions the file cannot state (--strict fails on them)
        model = load_model_arg(args)
    assumed = [str(w.message) for w in load_warnings]
    out = Path(args.out)
    result = None
    if isinstance(model, ChipGraph):
        console.print(f"{args.model} is already chip-level ({len(model.populations)} populations); writing it unchanged")
    else:
        calibrate = load_input_array(args.calibrate) if args.calibrate else None
        passes = args.passes
        if out.suffix == ".net" and passes is None:
            passes = _netx_passes(args, calibrate)
            console.print("OUT.net: quantizing for lava-dl netx (quantize max_weight_exp=0, split_sign=False, exponent_groups=1, "
                          "bias='mant', bias_exp=6: one projection per layer whose weights netx's weight fit reproduces, biases "
                          "as netx holds them; coarser than the default coding)")
        result = snnc_compile(
            model, target=args.target, weight_bits=args.weight_bits, dt=args.dt, calibrate=calibrate, passes=passes,
            dump_after=args.dump_after or None, dump_dir=out.parent / f"{out.stem}.dumps" if args.dump_after else None,
            assumed=assumed, **guard_options(args),
        )
        console.print(result.summary_text(width=console.width or 120), end="")
        if out.suffix == ".net":
            assumed += _netx_bias_warnings(result)
    failed = strict_exit(args, result, assumed)
    if failed is not None:
        return failed
    chip = model if result is None else result.chip
    if out.suffix == ".net":
        from snnc.compiler.export.netx import describe, write_netx

        options = write_netx(chip, out)
        console.print(f"lava-dl runs it as {describe(options, out)}")
    else:
        write_nir(chip_to_nir(chip), out)
    if args.report:
        report = result.to_dict() if result is not None else {"note": "model was chip-level already"}
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        write_text(args.report, json.dumps(report, indent=1))
    console.print(f"wrote {out}" + (f" and {args.report}" if args.report else "")
                  + f"; run it with: snnc run {out} --input IN.npy --out OUT.npz")
    return 0


def _netx_passes(args: argparse.Namespace, calibrate):
    """The default pipeline with the coding lava-dl netx can hold: one projection per layer (no sign
    split, one exponent group), weight_exp <= 0 (netx refits weights with exponents <= 0), and
    biases in bias_mant at bias_exp 6 (netx has no bias synapses and hands every bias to Lava so)."""
    import dataclasses

    from snnc.compiler.export.netx import NETX_BIAS_EXP
    from snnc.compiler.pipeline import default_passes

    netx = dict(max_weight_exp=0, split_sign=False, exponent_groups=1, bias="mant", bias_exp=NETX_BIAS_EXP)
    return [dataclasses.replace(p, **netx) if p.name == "quantize" else p
            for p in default_passes(target=args.target, weight_bits=args.weight_bits, dt=args.dt, calibrate=calibrate)]


def _netx_bias_warnings(result) -> list[str]:
    """One warning per layer whose bias_mant is not the float model's bias, with what the guard
    measured there (the exact form, a bias neuron, needs a synapse netx's chain cannot hold)."""
    import warnings

    from snnc.ir.reset_mode import AssumptionWarning

    out = []
    measured = result.fidelity.layers if result.fidelity is not None else {}
    for name, layer in result.layers.items():
        if not layer.get("bias_approximation"):
            continue
        m = measured.get(name, {})
        guard = ", ".join(f"{k} {m[k]:.4g}" for k in ("agreement", "timing", "trace_error") if m.get(k) is not None)
        message = (f"layer {name!r}: lava-dl netx holds a bias only as bias_mant (bias_exp 6), which approximates it here: "
                   + "; ".join(layer["bias_approximation"])
                   + f". Fidelity guard vs the float model: {guard or 'not measured'}. Write OUT.nir for the exact bias neuron")
        warnings.warn(message, AssumptionWarning, stacklevel=2)
        out.append(message)
    return out


register("compile", "compile a float model for a chip: quantized chip-level NIR plus a per-layer summary", _compile_args, _compile)
