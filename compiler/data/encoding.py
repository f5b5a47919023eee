"""The encoding contract: how float values cross a compiled graph's ports, both ways.

A compiled (chip-level) graph runs on integers, one step later per projection. The float model
it came from takes float inputs and returns float outputs at the float steps. The contract says,
per port, how to go from one to the other, and is stored in the chip graph's meta
(`meta["encoding"]`, hence in the chip .nir file):

    inputs[name]  = {"encoding": "spikes" | "graded", "scale": chip units per float unit,
                     "bits": payload bits (0 for spikes), "range": calibrated |x| max or None,
                     "shift": 0}
    outputs[port] = {"encoding": "spikes" | "voltage", "var": "s" | "v", "scale": float units per
                     chip unit (a list per neuron for per-channel scales), "offset": v_leak,
                     "shift": steps the port lags the float model}

`encode` checks float inputs (shape, dtype, NaN/inf, range: one error naming port, index and
limit; nothing is clipped) and turns them into chip integers; binned event counts above 1 on a
port compiled for binary spikes are sent as graded payload (scale 1, exact) with a warning rather
than refused. `run` extends the run by the largest output shift so that all T float steps are
produced, and `decode` shifts every output back and converts it to float units. Chip files
written before the contract existed are described from their legacy meta keys
(`input_scale`, `output_scale`, `output_offset`) and population latencies.
"""
from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from snnc.ir.errors import ShapeError
from snnc.ir.reset_mode import AssumptionWarning

META_KEY = "encoding"


@dataclass
class Encoded:
    """Chip inputs ready to run, the graph to run them on (a copy when a port had to be widened),
    the float length T, and notes on every choice made."""

    inputs: dict[str, np.ndarray]
    chip: Any
    steps: int
    batch: int
    notes: list[str] = field(default_factory=list)


def describe(chip) -> dict:
    """The contract of `chip` from what it holds (input message bits, scales, latencies)."""
    meta = chip.meta
    in_scale, in_range = meta.get("input_scale", {}) or {}, meta.get("input_range", {}) or {}
    inputs = {}
    for name, inp in chip.inputs.items():
        bits = int(inp.num_message_bits)
        inputs[name] = {
            "encoding": "graded" if bits else "spikes",
            "scale": float(in_scale.get(name, 1.0)),
            "bits": bits,
            "range": in_range.get(name),
            "shift": 0,
        }
    time_shift = int(meta.get("time_shift", 0) or 0)
    outputs = {}
    for port, out in chip.outputs.items():
        pop = chip.populations[out.population]
        shift = pop.meta.get("latency")
        voltage = out.var == "v" and port in (meta.get("output_scale") or {})
        outputs[port] = {
            "encoding": "voltage" if voltage else ("spikes" if out.var == "s" else "raw"),
            "var": out.var,
            "scale": meta["output_scale"][port] if voltage else 1.0,
            "offset": (meta.get("output_offset") or {}).get(port, 0.0) if voltage else 0.0,
            "shift": int(time_shift if shift is None else shift),
        }
    return {"inputs": inputs, "outputs": outputs}


def contract(chip) -> dict:
    """The stored contract (meta["encoding"]), or one described from the graph for older files."""
    stored = chip.meta.get(META_KEY)
    return stored if stored else describe(chip)


def record(chip) -> dict:
    """Describe `chip` and store the contract in its meta (called by the quantizer)."""
    chip.meta[META_KEY] = describe(chip)
    return chip.meta[META_KEY]


def _first(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.argwhere(mask)[0]]


def encode(chip, inputs, steps: int | None = None) -> Encoded:
    """Float inputs (as the float model takes them) -> chip integers, checked per port."""
    from snnc.backends.base import normalize_inputs

    enc = contract(chip)["inputs"]
    names = list(chip.inputs)
    if not isinstance(inputs, Mapping):
        if len(names) != 1:
            raise ShapeError("the network has several inputs; pass a dict (an .npz with one array per port)", expected=names)
        inputs = {names[0]: inputs}
    for name, arr in inputs.items():
        arr = np.asarray(arr)
        if arr.dtype.kind not in "biuf":
            raise ShapeError("input must be numeric", where=f"input {name!r}", expected="bool, int or float", got=str(arr.dtype))
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            bad = ~np.isfinite(arr)
            raise ShapeError("input holds NaN or inf", where=f"input {name!r} at index {_first(bad)}",
                             expected="finite values", got=float(arr[tuple(_first(bad))]))
    shapes = {n: tuple(i.shape) for n, i in chip.inputs.items()}
    data, batch, length = normalize_inputs(inputs, shapes, steps)
    out, notes, widened = {}, [], {}
    for name, arr in data.items():
        e = enc.get(name) or {"encoding": "spikes", "scale": 1.0, "bits": 0, "range": None}
        where = f"input {name!r}"
        values = np.asarray(arr, dtype=np.float64)
        if e["encoding"] == "spikes":
            binary = (values == 0) | (values == 1)
            if binary.all():
                out[name] = values
                continue
            counts = (values == np.rint(values)) & (values >= 0)
            if not counts.all():
                idx = _first(~counts)
                raise ShapeError(
                    "the port was compiled for binary spikes; this input is analog",
                    where=f"{where} at index {idx}", expected="0/1 spikes or non-negative integer counts",
                    got=float(values[tuple(idx)]), hint="compile with --calibrate on such inputs (the port becomes graded)",
                )
            top = int(values.max())
            bits = max(1, math.ceil(math.log2(top + 1)))
            widened[name] = bits
            note = (f"input {name!r}: binned counts up to {top} (first at index {_first(values == top)}) on a port compiled for "
                    f"binary spikes are sent as {bits}-bit graded payload (scale 1, exact); the compiled headroom assumed "
                    f"one spike per step: calibrate on such data to size it")
            notes.append(note)
            warnings.warn(note, AssumptionWarning, stacklevel=2)
            out[name] = values
            continue
        scale, bits = float(e["scale"]), int(e["bits"])
        limit = (1 << bits) - 1
        payload = np.rint(values * scale)
        over = np.abs(payload) > limit
        if over.any():
            idx = _first(over)
            raise ShapeError(
                "input value beyond what the port's graded payload can carry (it would be clipped)",
                where=f"{where} at index {idx}", expected=f"|x| <= {limit / scale:.6g} ({bits}-bit payload, scale {scale:.6g})",
                got=float(values[tuple(idx)]), hint="recompile with --calibrate on data covering this range",
            )
        rng = e.get("range")
        if rng is not None and np.any(np.abs(values) > float(rng) * (1 + 1e-9)):
            idx = _first(np.abs(values) > float(rng) * (1 + 1e-9))
            note = (f"input {name!r} at index {idx}: {float(values[tuple(idx)]):.6g} is beyond the calibrated range "
                    f"|x| <= {float(rng):.6g} (still within the payload, |x| <= {limit / scale:.6g}; not clipped)")
            notes.append(note)
            warnings.warn(note, AssumptionWarning, stacklevel=2)
        out[name] = payload
    run_chip = chip
    if widened:
        run_chip = copy.deepcopy(chip)
        for name, bits in widened.items():
            run_chip.inputs[name].num_message_bits = bits
            for proj in run_chip.projections.values():
                if proj.src == name:
                    proj.num_message_bits = bits
    return Encoded(inputs=out, chip=run_chip, steps=length, batch=batch, notes=notes)


def float_steps(chip, inputs, steps: int | None = None) -> int:
    """T: `steps`, else the inputs' length ([T, *shape] or [batch, T, *shape])."""
    if steps is not None:
        return int(steps)
    name, arr = next(iter(inputs.items())) if isinstance(inputs, Mapping) else (next(iter(chip.inputs)), inputs)
    arr = np.asarray(arr)
    return int(arr.shape[0] if arr.ndim == len(chip.inputs[name].shape) + 1 else arr.shape[1])


def extra_steps(chip) -> int:
    """Steps the run is extended by so that every output covers all T float steps."""
    return max([int(o["shift"]) for o in contract(chip)["outputs"].values()] + [0])


def decode(chip, outputs: Mapping[str, np.ndarray], steps: int, raw: bool = False) -> dict[str, np.ndarray]:
    """Chip outputs [batch, T + extra, ...] -> aligned [batch, T, ...] in float units (raw: chip
    integers, aligned)."""
    from snnc.backends.base import shift_back

    enc = contract(chip)["outputs"]
    result = {}
    for port, arr in outputs.items():
        e = enc.get(port, {"encoding": "raw", "shift": 0})
        a = shift_back(np.asarray(arr), int(e["shift"]))[:, :steps]
        if not raw and e["encoding"] == "voltage":
            shape = a.shape[2:]
            scale = np.asarray(e["scale"], dtype=np.float64)
            offset = np.asarray(e["offset"], dtype=np.float64)
            a = a * (scale.reshape(shape) if scale.size > 1 else scale) + (offset.reshape(shape) if offset.size > 1 else offset)
        elif not raw:
            a = a.astype(np.float64)
        result[port] = a
    return result


def run(chip, inputs, backend: str = "sim", steps: int | None = None, probes: Sequence[str] = (), raw: bool = False, **options):
    """Run `chip` on float inputs (encoded by `encode`). Default: a RunResult whose outputs are
    aligned with the float model over all T steps and in its units (the run is extended by the
    largest output shift; probes stay in chip units, `raw_time_shift` steps late; `raw_outputs`
    keeps the chip's own outputs). `raw=True`: the plain chip run, integers, `steps` as given
    (default T), unaligned, with `time_shift`/`output_shifts` set. `encoding_notes` lists the
    choices `encode` made."""
    from snnc.backends.program_cache import build_cached

    enc = encode(chip, inputs, steps)
    c = contract(chip)["outputs"]
    total = enc.steps if raw else enc.steps + extra_steps(enc.chip)
    program = build_cached(enc.chip, backend, **options)  # built once per compiled graph
    result = program.run(enc.inputs, steps=total, probes=probes)
    time_shift = int(chip.meta.get("time_shift", 0) or 0)
    shifts = {k: int(v["shift"]) for k, v in c.items()}
    result.encoding_notes = enc.notes
    if raw:
        result.time_shift, result.output_shifts = time_shift, shifts
        return result
    result.raw_outputs = dict(result.outputs)
    result.raw_time_shift, result.raw_output_shifts = time_shift, shifts
    result.outputs = decode(chip, result.outputs, enc.steps)
    result.time_shift, result.output_shifts = 0, {}
    return result


def readout_summary(chip, decoded: Mapping[str, np.ndarray]) -> dict:
    """Per output port, its decoded values in float units for reports: the encoding, and for
    spikes the count per neuron (batch 0), for voltages min/max/mean and the last step (batch 0)."""
    c = contract(chip)["outputs"]
    out = {}
    for port, arr in decoded.items():
        a = np.asarray(arr, dtype=np.float64)
        e = c.get(port, {})
        flat = a[0].reshape(a.shape[1], -1) if a.ndim >= 2 and a.shape[0] else a.reshape(1, -1)
        entry = {"encoding": e.get("encoding"), "shift": e.get("shift"), "steps": int(a.shape[1]) if a.ndim >= 2 else 0}
        if e.get("encoding") == "spikes":
            counts = flat.sum(axis=0)
            entry.update(spike_counts=[int(v) for v in counts[:64]], argmax=int(counts.argmax()) if counts.size else None)
        else:
            entry.update(min=float(a.min()) if a.size else None, max=float(a.max()) if a.size else None,
                         mean=float(a.mean()) if a.size else None, last=[float(f"{v:.6g}") for v in flat[-1][:64]] if flat.size else [],
                         argmax_last=int(flat[-1].argmax()) if flat.size else None)
        out[port] = entry
    return out


def port_table(chip) -> list[list[str]]:
    """Rows (direction, port, encoding, scale, shift) for `snnc inspect`."""
    c = contract(chip)
    rows = []
    for name, e in c["inputs"].items():
        extra = f", range {e['range']:.4g}" if e.get("range") is not None else ""
        rows.append(["input", name, f"{e['encoding']} ({e['bits']} bits{extra})" if e["bits"] else e["encoding"],
                     f"{float(e['scale']):.6g} chip/float", str(e["shift"])])
    for port, e in c["outputs"].items():
        scale = e["scale"]
        text = f"{scale:.6g}" if isinstance(scale, (int, float)) else f"per neuron {min(scale):.4g}..{max(scale):.4g}"
        rows.append(["output", port, f"{e['encoding']} ({e['var']})", f"{text} float/chip" + (f", offset {e['offset']}" if e["offset"] else ""),
                     str(e["shift"])])
    return rows
