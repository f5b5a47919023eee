"""Reports: `report.json` for machines, `report.html` for people, an energy table for the terminal.

Why: a compile is only useful if its user can see where the network went (cores, utilization),
what it costs (energy per layer and per operation, latency) and what quantization did (bit
budget, errors), in one file they can open anywhere and one they can parse.

Parts that are not available yet may be None. `budget` and `quant_errors` come from the
quantizer; anything with a `to_dict()`, a dataclass or a plain dict is accepted. The HTML bit-budget
chart expects, per layer, numbers of bits by quantity: either `{"layers": {layer: {quantity:
bits, ...}}}` or `{layer: {quantity: bits, ...}}` (a nested `{"bits": n}` also counts; keys
starting with "total" are not stacked). Quantization errors are shown as a table of
`{layer: {metric: value}}` (or a list of row dicts).
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from snnc.ir.errors import ParameterError
from snnc.ir.io import write_text as atomic_write_text

from .format import format_energy, format_time



# -- plain data -----------------------------------------------------------------------------------------
def to_plain(obj: Any) -> Any:
    """Anything snnc produces -> JSON-serializable data (numpy, dataclasses, to_dict(), paths)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else str(f)
    if isinstance(obj, np.ndarray):
        return to_plain(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_plain(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_plain(v) for v in obj]
    if hasattr(obj, "tocsr"):
        return {"sparse_shape": list(obj.shape), "nnz": int(obj.nnz)}
    return repr(obj)


def activity_to_dict(activity) -> dict | None:
    """An Activity as plain data (per-step arrays and per-neuron counts as lists)."""
    if activity is None:
        return None
    return {
        "batch": int(activity.batch),
        "steps": int(activity.steps),
        "total_synaptic_ops": int(activity.total_synaptic_ops),
        "total_spikes": int(activity.total_spikes),
        "populations": {
            name: {
                "neurons": int(p.neurons),
                "neuron_updates": int(p.neuron_updates),
                "active_updates": int(p.active_updates),
                "spikes": int(p.spikes),
                "spikes_per_step": to_plain(p.spikes_per_step),
                "spike_counts": to_plain(p.spike_counts),
            }
            for name, p in activity.populations.items()
        },
        "projections": {
            name: {
                "synaptic_ops": int(p.synaptic_ops),
                "messages_in": int(p.messages_in),
                "synaptic_ops_per_step": to_plain(p.synaptic_ops_per_step),
            }
            for name, p in activity.projections.items()
        },
    }


def graph_summary(graph) -> dict | None:
    """The chip graph's structure (no weights): layers, projections, outputs, meta."""
    if graph is None:
        return None
    return {
        "inputs": {n: {"shape": list(i.shape), "num_message_bits": int(i.num_message_bits)} for n, i in graph.inputs.items()},
        "populations": {
            n: {"shape": list(p.shape), "size": p.size, "model": p.model, "per_layer_params": p.per_layer()}
            for n, p in graph.populations.items()
        },
        "projections": {
            n: {
                "src": p.src, "dst": p.dst, "kind": p.kind, "synapses": p.num_synapses,
                "num_weight_bits": int(p.num_weight_bits), "weight_exp": int(p.weight_exp),
                "num_message_bits": int(p.num_message_bits), "max_delay": p.max_delay, "sign_mode": p.sign_mode,
            }
            for n, p in graph.projections.items()
        },
        "outputs": {n: {"population": o.population, "var": o.var} for n, o in graph.outputs.items()},
        "num_neurons": graph.num_neurons,
        "num_synapses": graph.num_synapses,
        "meta": to_plain(graph.meta),
    }


def run_summary(run_result) -> dict | None:
    """What a RunResult holds, without the (possibly large) arrays."""
    if run_result is None:
        return None

    def describe(a):
        a = np.asarray(a)
        return {"shape": list(a.shape), "dtype": str(a.dtype), "sum": to_plain(a.sum()) if a.dtype.kind in "biuf" else None}

    return {
        "backend": run_result.backend,
        "time_shift": int(run_result.time_shift),
        "outputs": {k: describe(v) for k, v in run_result.outputs.items()},
        "probes": {k: describe(v) for k, v in run_result.probes.items()},
    }


def build_report_dict(*, graph=None, mapping=None, energy=None, activity=None, run_result=None,
                      budget=None, quant_errors=None, meta=None, fidelity=None, assumptions=None, sweep=None,
                      notes=None) -> dict:
    """Everything `report.json` holds, as one plain dict (absent parts are None). `fidelity`: the
    compile's fidelity guard (snnc.compiler.analysis.fidelity); `assumptions`: what it assumed;
    `notes`: quirks of the model file repaired while reading it (snnc.ir.repairs);
    `sweep`: a bit-budget sweep (e.g. analysis.conversion_sweep.ConversionGrid). NeuroBench metrics
    are computed from the chip graph and the activity (analysis.neurobench.report_metrics)."""
    from snnc.compiler.analysis.neurobench import report_metrics

    energy_d = to_plain(energy)
    if activity is None and run_result is not None:
        activity = run_result.activity
    return {
        "schema": "snnc-report/1",
        "meta": to_plain(meta or {}),
        "graph": graph_summary(graph),
        "mapping": to_plain(mapping),
        "bit_budget": to_plain(budget),
        "quantization_errors": to_plain(quant_errors),
        "activity": activity_to_dict(activity),
        "neurobench": to_plain(report_metrics(graph, activity, run_result.probes if run_result is not None else None)),
        "sweep": to_plain(sweep),
        "energy": energy_d,
        "latency": energy_d.get("latency") if isinstance(energy_d, dict) else None,
        "run": run_summary(run_result),
        "fidelity": to_plain(fidelity),
        "assumptions": to_plain(assumptions),
        "notes": to_plain(notes or []),
    }


def write_report(out_dir, *, graph=None, mapping=None, energy=None, activity=None, run_result=None,
                 budget=None, quant_errors=None, meta=None, fidelity=None, assumptions=None,
                 sweep=None, notes=None) -> dict[str, Path]:
    """Write `report.json` and a self-contained `report.html` into `out_dir`; returns their paths."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ParameterError("report output path is a file, not a folder", where=str(out), hint="pass a folder path")
    out.mkdir(parents=True, exist_ok=True)
    if activity is None and run_result is not None:
        activity = run_result.activity
    data = build_report_dict(graph=graph, mapping=mapping, energy=energy, activity=activity, run_result=run_result,
                             budget=budget, quant_errors=quant_errors, meta=meta, fidelity=fidelity,
                             assumptions=assumptions, sweep=sweep, notes=notes)
    json_path = out / "report.json"
    atomic_write_text(json_path, json.dumps(data, indent=1))
    from .html import render_html

    html_path = out / "report.html"
    atomic_write_text(html_path, render_html(data, graph=graph, mapping=mapping, energy=energy, activity=activity,
                                             run_result=run_result, sweep=sweep))
    return {"json": json_path, "html": html_path}


# -- terminal -----------------------------------------------------------------------------------------------


def energy_table(energy):
    """Rich renderables of the energy per inference: a per-layer table, then totals and baselines."""
    from rich.console import Group
    from rich.table import Table

    t = Table(title=f"Energy per inference on {energy.target} ({energy.table.label})", title_justify="left")
    t.add_column("layer", no_wrap=True)
    for col in ("syn ops", "spikes", "synaptic", "neuron", "spk+msg", "hops", "total"):
        t.add_column(col, justify="right", no_wrap=True, min_width=8 if col == "total" else None)
    for name, le in energy.layers.items():
        e = le.energy
        t.add_row(
            name + (" (in)" if le.kind == "input" else ""),
            f"{le.synaptic_ops:,.0f}", f"{le.spikes:,.0f}",
            format_energy(e["synaptic"]),
            format_energy(e["neuron_active"] + e["neuron_inactive"]),
            format_energy(e["spike_out"] + e["message"]),
            format_energy(e["hop_ew"] + e["hop_ns"] + e["chip_crossing"]),
            format_energy(le.total),
        )
    lat = energy.latency
    s = Table(show_header=False, box=None, padding=(0, 1))
    s.add_column("what")
    s.add_column("value", justify="right", no_wrap=True)
    s.add_row("[bold]dynamic[/bold]", f"[bold]{format_energy(energy.dynamic_j)}[/bold]")
    s.add_row(
        f"static ({energy.static_power_w * 1e3:.3g} mW x {energy.chips} chip(s) x {format_time(energy.run_time_s)})",
        format_energy(energy.static_j),
    )
    s.add_row("[bold]total[/bold]", f"[bold]{format_energy(energy.total_j)}[/bold]")
    if lat.per_inference_s > 0:
        s.add_row(
            f"latency {format_time(lat.mean_step_s)}/step x {energy.steps} steps",
            f"{format_time(lat.per_inference_s)} ({1 / lat.per_inference_s:,.0f}/s)",
        )
    for c in energy.comparisons:
        s.add_row(f"[dim]{c.label}[/dim]", f"[dim]{format_energy(c.energy_j)}[/dim]")
    return Group(t, s)


def print_energy_table(energy, console=None) -> str:
    """Print the energy table to the terminal (or `console`) and return it as plain text."""
    from rich.console import Console

    console = console or Console()
    table = energy_table(energy)
    console.print(table)
    plain = Console(width=console.width, record=True, file=io.StringIO())
    plain.print(table)
    return plain.export_text()
