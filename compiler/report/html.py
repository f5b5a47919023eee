"""The self-contained HTML report: tables plus matplotlib PNGs embedded as base64.

Why a single file: it opens offline in any browser, can be attached to an issue or archived with
the model, and needs no server or asset folder. Figures are drawn with matplotlib's object API on
the Agg canvas (no pyplot state, no display needed). A small script at the end marks every image
that decoded (`data-decoded="1"`) and writes the counts on <body>, so a headless browser can check
the page.
"""
from __future__ import annotations

import base64
import html
import io
import json
import re
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .format import SECTIONS, format_energy, format_time

if TYPE_CHECKING:
    from ..mapping import Block

_COST_COLORS = {
    "synaptic": "#1f77b4",
    "neuron_active": "#ff7f0e",
    "neuron_inactive": "#ffbb78",
    "spike_out": "#2ca02c",
    "message": "#98df8a",
    "hop_ew": "#d62728",
    "hop_ns": "#ff9896",
    "chip_crossing": "#9467bd",
    "static": "#7f7f7f",
}
_MAX_RASTER_NEURONS = 512
_MAX_CHIPS_DRAWN = 8


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig: Figure, alt: str) -> str:
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def _esc(x: Any) -> str:
    return html.escape(str(x))


_NUMERIC = re.compile(r"^[-+]?[\d.,]+(e[-+]?\d+)?\s?(%|[munpf]?J|[mun]?s|KiB)?$")


def _cell(c: Any) -> str:
    text = str(c)
    cls = ' class="num"' if _NUMERIC.match(text) else ""
    return f"<td{cls}>{_esc(text)}</td>"


def _table(headers: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _missing(what: str) -> str:
    return f'<p class="missing">Not supplied: {_esc(what)}.</p>'


# -- figures --------------------------------------------------------------------------------------------------
def fig_mesh(mapping) -> Figure:
    """Core occupancy on the mesh: one panel per chip, cores coloured by layer, shaded by use."""
    prof = mapping.profile
    rows, cols = prof.mesh_shape
    chips = min(mapping.chips_used, _MAX_CHIPS_DRAWN)
    cpt = prof.cores_per_tile
    sub = int(np.ceil(np.sqrt(cpt)))
    layers = list(mapping.layers)
    cmap = [f"C{i % 10}" for i in range(len(layers))]
    color = {name: cmap[i] for i, name in enumerate(layers)}
    ncols = min(chips, 2)
    nrows = -(-chips // ncols)
    fig = Figure(figsize=(5.5 * ncols, 0.45 * rows * nrows + 1.2 + 0.2 * len(layers) / 4))
    limits = prof.limits()
    by_chip: dict[int, list[Block]] = {}
    for b in mapping.blocks:
        by_chip.setdefault(b.chip, []).append(b)
    for ci in range(chips):
        ax = fig.add_subplot(nrows, ncols, ci + 1)
        ax.set_xlim(0, cols)
        ax.set_ylim(rows, 0)
        ax.set_aspect("equal")
        ax.set_xticks(range(cols + 1), minor=False)
        ax.set_yticks(range(rows + 1))
        ax.tick_params(labelsize=6)
        ax.grid(True, color="#cccccc", linewidth=0.6)
        ax.set_title(f"chip {ci}: {len(by_chip.get(ci, []))} of {prof.cores_per_chip} cores", fontsize=8)
        for b in by_chip.get(ci, []):
            tile, k = divmod(b.core, cpt)
            r, c = divmod(tile, cols)
            kr, kc = divmod(k, sub)
            w = 1.0 / sub
            util = max(b.used()[res] / limits[res] for res in limits)
            ax.add_patch(
                _rect((c + kc * w, r + kr * w), w, w, color[b.layer], alpha=0.35 + 0.65 * min(util, 1.0))
            )
    handles = [_rect((0, 0), 1, 1, color[n], alpha=0.9) for n in layers]
    fig.legend(handles, layers, loc="lower center", ncol=min(len(layers), 5), fontsize=7, frameon=False)
    fig.suptitle(
        f"{mapping.profile.name}: {mapping.cores_used} cores on {mapping.chips_used} chip(s); "
        f"shade = most-used resource of the core", fontsize=9,
    )
    fig.subplots_adjust(bottom=0.12 + 0.03 * (len(layers) // 5), hspace=0.45)
    return fig


def _rect(xy, w, h, color, alpha):
    from matplotlib.patches import Rectangle

    return Rectangle(xy, w, h, facecolor=color, alpha=alpha, edgecolor="black", linewidth=0.4)


def fig_utilization(mapping) -> Figure:
    """Per-core utilization of each resource (fraction of the core's limit)."""
    from ..mapping import RESOURCES

    limits = mapping.profile.limits()
    blocks = sorted(mapping.blocks, key=lambda b: (b.chip, b.core))
    x = np.arange(len(blocks))
    fig = Figure(figsize=(max(6, 0.12 * len(blocks) + 3), 3))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(RESOURCES)
    for i, r in enumerate(RESOURCES):
        ax.bar(x + i * width, [getattr(b, r) / limits[r] for b in blocks], width, label=r.replace("_", " "))
    ax.set_ylabel("fraction of core limit")
    ax.set_xlabel("core (chip order)")
    ax.set_ylim(0, 1.05)
    if len(blocks) <= 40:
        ax.set_xticks(x + 0.4)
        ax.set_xticklabels([f"{b.layer}[{b.index}]" for b in blocks], rotation=60, fontsize=6, ha="right")
    ax.legend(fontsize=7, ncol=4)
    return fig


def fig_energy_layers(energy) -> Figure:
    """Stacked energy per layer by cost type."""
    from ..analysis.energy import COST_TYPES

    names = list(energy.layers)
    fig = Figure(figsize=(7, 0.35 * len(names) + 1.5))
    ax = fig.add_subplot(1, 1, 1)
    left = np.zeros(len(names))
    for t in COST_TYPES:
        vals = np.array([energy.layers[n].energy[t] for n in names]) * 1e6
        if vals.any():
            ax.barh(names, vals, left=left, color=_COST_COLORS[t], label=t.replace("_", " "))
            left += vals
    ax.invert_yaxis()
    ax.set_xlabel("dynamic energy per inference (uJ)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Energy per layer and cost type", fontsize=9)
    return fig


def fig_energy_types(energy) -> Figure:
    """Energy by cost type including static, and the estimate beside the labelled baselines."""
    fig = Figure(figsize=(9, 3.2))
    ax = fig.add_subplot(1, 2, 1)
    by = dict(energy.by_type)
    by["static"] = energy.static_j
    keys = [k for k, v in by.items() if v > 0] or list(by)
    ax.bar(range(len(keys)), [by[k] * 1e6 for k in keys], color=[_COST_COLORS[k] for k in keys])
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([k.replace("_", " ") for k in keys], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("uJ per inference")
    ax.set_title("By cost type", fontsize=9)
    ax2 = fig.add_subplot(1, 2, 2)
    labels = ["this estimate\n(dynamic)", "this estimate\n(+ static)"] + [c.name.replace("_", " ") for c in energy.comparisons]
    vals = [energy.dynamic_j, energy.total_j] + [c.energy_j for c in energy.comparisons]
    vals = [max(v, 1e-18) for v in vals]
    ax2.bar(range(len(vals)), vals, color=["#1f77b4", "#7f7f7f"] + ["#bbbbbb"] * len(energy.comparisons))
    ax2.set_yscale("log")
    ax2.set_xticks(range(len(vals)))
    ax2.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax2.set_ylabel("J per inference (log)")
    ax2.set_title("Estimate vs. labelled baselines", fontsize=9)
    return fig


def fig_latency(energy) -> Figure:
    lat = energy.latency
    t = np.arange(1, lat.step_s.size + 1)
    fig = Figure(figsize=(7, 2.6))
    ax = fig.add_subplot(1, 1, 1)
    bottom = np.zeros(t.size)
    for vals, label, color in ((lat.compute_s, "slowest core", "#1f77b4"), (lat.routing_s, "longest route", "#d62728"),
                               (np.full(t.size, lat.barrier_s), "barrier", "#7f7f7f")):
        ax.bar(t, vals * 1e6, bottom=bottom, width=0.85 if t.size < 200 else 1.0, label=label, color=color)
        bottom += vals * 1e6
    ax.set_xlabel("time step")
    ax.set_ylabel("us")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"Modelled step time ({format_time(lat.per_inference_s)} per inference)", fontsize=9)
    return fig


def _spike_arrays(run_result, graph) -> list[tuple[str, np.ndarray]]:
    """(name, [T, neurons]) spike arrays of batch element 0 from outputs and probes."""
    out: list[tuple[str, np.ndarray]] = []
    if run_result is None:
        return out
    items = []
    for name, arr in run_result.outputs.items():
        var = graph.outputs[name].var if graph is not None and name in graph.outputs else "s"
        if var == "s":
            items.append((f"output {name}", arr))
    for name, arr in run_result.probes.items():
        if "/" not in name or name.endswith("/s"):
            items.append((f"probe {name}", arr))
    for label, arr in items:
        a = np.asarray(arr)
        if a.ndim < 2 or a.dtype.kind not in "biuf":
            continue
        a = a[0] if a.ndim >= 3 else a
        a = a.reshape(a.shape[0], -1)
        if a.size and np.all(np.isin(a, (-1, 0, 1))):
            out.append((label, a))
    return out


def fig_raster(name: str, spikes: np.ndarray) -> Figure:
    """Spike raster of one layer (batch element 0); at most _MAX_RASTER_NEURONS neurons shown."""
    n = spikes.shape[1]
    shown = spikes[:, :_MAX_RASTER_NEURONS]
    t, i = np.nonzero(shown)
    fig = Figure(figsize=(7, 2.4))
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(t + 1, i, s=2, marker="|", color="black")
    ax.set_xlim(0.5, spikes.shape[0] + 0.5)
    ax.set_ylim(-0.5, shown.shape[1] - 0.5)
    ax.set_xlabel("time step")
    ax.set_ylabel("neuron")
    more = f", first {_MAX_RASTER_NEURONS} of {n} neurons" if n > _MAX_RASTER_NEURONS else ""
    ax.set_title(f"{name}: {int(spikes.sum())} spikes{more}", fontsize=9)
    return fig


def fig_activity(activity) -> Figure:
    """Spikes per step of every layer (the raster's stand-in when no spike trains were probed)."""
    fig = Figure(figsize=(7, 2.6))
    ax = fig.add_subplot(1, 1, 1)
    for name, p in activity.populations.items():
        series = p.spikes_per_step
        if series is None:
            series = np.full(activity.steps, p.spikes / max(activity.steps, 1))
        ax.plot(np.arange(1, len(series) + 1), np.asarray(series) / activity.batch, label=name, linewidth=1)
    ax.set_xlabel("time step")
    ax.set_ylabel("spikes per step (per inference)")
    ax.legend(fontsize=7)
    ax.set_title("Population activity", fontsize=9)
    return fig


_NOT_STACKED = re.compile(r"^(total|memory_bits$|input_bits$|payload_bits$)|margin")


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def budget_layers(budget: Any) -> dict[str, dict[str, float]] | None:
    """Per layer, every numeric field of a bit-budget dict (nested {"bits": n} counts)."""
    if not isinstance(budget, dict):
        return None
    layers = budget.get("layers", budget)
    if isinstance(layers, list):  # snnc.compiler.analysis.budget: a list of layer dicts with "name"
        layers = {d["name"]: d for d in layers if isinstance(d, dict) and "name" in d}
    if not isinstance(layers, dict):
        return None
    out: dict[str, dict[str, float]] = {}
    for layer, fields in layers.items():
        if not isinstance(fields, dict):
            continue
        row = {}
        for k, v in fields.items():
            if isinstance(v, dict) and _numeric(v.get("bits")):
                row[str(k)] = float(v["bits"])
            elif _numeric(v):
                row[str(k)] = float(v)
        if row:
            out[str(layer)] = row
    return out or None


def budget_rows(budget: Any) -> dict[str, dict[str, float]] | None:
    """Per layer {quantity: bits} to stack in the chart: the `*_bits` fields that are parts of the
    layer's storage (not totals, margins or accumulator widths), or every number when no field
    is named `*_bits` (the simple {layer: {quantity: bits}} form)."""
    layers = budget_layers(budget)
    if not layers:
        return None
    out = {}
    for name, row in layers.items():
        if any(k.endswith("_bits") for k in row):
            row = {k: v for k, v in row.items() if k.endswith("_bits") and not _NOT_STACKED.search(k)}
        else:
            row = {k: v for k, v in row.items() if not k.startswith("total")}
        if row:
            out[name] = row
    return out or None


def fig_budget(rows: dict[str, dict[str, float]]) -> Figure:
    names = list(rows)
    keys = sorted({k for r in rows.values() for k in r})
    fig = Figure(figsize=(7, 0.35 * len(names) + 1.6))
    ax = fig.add_subplot(1, 1, 1)
    left = np.zeros(len(names))
    for i, k in enumerate(keys):
        vals = np.array([rows[n].get(k, 0.0) for n in names])
        ax.barh(names, vals, left=left, color=f"C{i % 10}", label=k)
        left += vals
    ax.invert_yaxis()
    ax.set_xlabel("bits")
    ax.legend(fontsize=7, ncol=3, loc="lower right")
    ax.set_title("Bit budget per layer", fontsize=9)
    return fig


# -- page -------------------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0} th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left}
th{background:#f4f4f4} td.num{text-align:right;white-space:nowrap}
figure{margin:.8em 0} img{max-width:100%} figcaption{font-size:.8em;color:#666}
.missing{color:#888;font-style:italic} .kv td{text-align:left} nav a{margin-right:.8em;font-size:.9em}
code,pre{background:#f6f6f6;padding:.1em .3em} pre{overflow-x:auto;font-size:.8em;padding:.6em}
"""

_CHECK_JS = """
(function(){
  function check(){
    var imgs=document.images, ok=0;
    for(var i=0;i<imgs.length;i++){
      if(imgs[i].complete && imgs[i].naturalWidth>0){ok++; imgs[i].setAttribute('data-decoded','1');}
      else {imgs[i].setAttribute('data-decoded','0');}
    }
    document.body.setAttribute('data-images-total', String(imgs.length));
    document.body.setAttribute('data-images-decoded', String(ok));
  }
  if(document.readyState==='complete'){check();} else {window.addEventListener('load', check);}
})();
"""


def _meta_text(value) -> str:
    """A summary cell: nested dicts as `key: value` pairs, fractions shortened, strings as they are."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_meta_text(v)}" for k, v in value.items())
    return json.dumps(value)


def _summary(data: dict, mapping, energy, graph) -> str:
    rows = []
    meta = data.get("meta") or {}
    for k, v in meta.items():
        rows.append([k, _meta_text(v)])
    if graph is not None:
        rows += [["neurons", f"{graph.num_neurons:,}"], ["synapses", f"{graph.num_synapses:,}"],
                 ["layers", len(graph.populations)], ["projections", len(graph.projections)]]
    if mapping is not None:
        rows += [["target", f"{mapping.profile.name}: {mapping.profile.description}"],
                 ["cores / chips", f"{mapping.cores_used} cores on {mapping.chips_used} chip(s)"]]
    if energy is not None:
        rows += [["energy per inference", f"{format_energy(energy.dynamic_j)} dynamic + {format_energy(energy.static_j)} static = {format_energy(energy.total_j)}"],
                 ["cost table", energy.table.label],
                 ["latency", f"{format_time(energy.latency.mean_step_s)} per step, {format_time(energy.latency.per_inference_s)} per inference"]]
    if not rows:
        return _missing("graph, mapping and energy")
    return _table(["item", "value"], rows, "kv")


def _mapping_section(mapping) -> str:
    if mapping is None:
        return _missing("mapping (run map_to_cores)")
    util = mapping.utilization()
    parts = [_img(fig_mesh(mapping), "Core occupancy on the mesh"), _img(fig_utilization(mapping), "Utilization per core and resource")]
    rows = [[r, f"{u['used']:,}", f"{u['limit_per_core']:,}", f"{100 * u['mean']:.1f}%", f"{100 * u['max']:.1f}%"]
            for r, u in util.items() if r != "cores"]
    parts.append(_table(["resource", "used", "limit per core", "mean use", "max use"], rows))
    parts.append(_table(
        ["layer", "neurons", "cores", "block size", "synaptic memory (KiB)", "incoming"],
        [[n, f"{l['size']:,}", l["cores"], l["block_size"], f"{l['synaptic_memory_bits'] / 8192:.1f}", ", ".join(l["incoming"])]
         for n, l in mapping.layers.items()],
    ))
    core_rows = [[c["chip"], c["core"], f"({c['tile'][0]}, {c['tile'][1]})", f"{c['layer']}[{c['block']}]",
                  c["neurons"], c["synaptic_memory_bits"], c["input_axons"], c["output_axons"],
                  f"{100 * max(c['utilization'].values()):.0f}%"] for c in mapping.core_table()[:256]]
    parts.append("<details><summary>Per-core table</summary>" + _table(
        ["chip", "core", "tile", "block", "neurons", "syn. bits", "in axons", "out axons", "max use"], core_rows) + "</details>")
    parts.append(f"<p>Placement: <b>{_esc(mapping.placement)}</b>, traffic {_esc(mapping.traffic_source)}; "
                 f"cost greedy {mapping.placement_cost.get('greedy', 0):.3g} vs chosen "
                 f"{mapping.placement_cost.get(mapping.placement, 0):.3g} (traffic x hop energy); "
                 f"{mapping.message_hops():,.0f} message-hops per inference.</p>")
    return "".join(parts)


def _energy_section(energy) -> str:
    if energy is None:
        return _missing("energy estimate (run estimate_energy)")
    parts = [_img(fig_energy_layers(energy), "Dynamic energy per layer and cost type"),
             _img(fig_energy_types(energy), "Energy by cost type, and the estimate beside labelled baselines")]
    rows = []
    for name, le in energy.layers.items():
        e = le.energy
        rows.append([name + (" (host input)" if le.kind == "input" else ""), f"{le.synaptic_ops:,.0f}", f"{le.neuron_updates:,.0f}",
                     f"{le.spikes:,.0f}", f"{le.messages:,.0f}", format_energy(e["synaptic"]),
                     format_energy(e["neuron_active"] + e["neuron_inactive"]), format_energy(e["spike_out"] + e["message"]),
                     format_energy(e["hop_ew"] + e["hop_ns"] + e["chip_crossing"]), format_energy(le.total)])
    rows.append(["dynamic total", "", "", "", "", "", "", "", "", format_energy(energy.dynamic_j)])
    rows.append([f"static ({energy.static_power_w * 1e3:.3g} mW x {energy.chips} chip(s) x {format_time(energy.run_time_s)}, {energy.run_time_source})",
                 "", "", "", "", "", "", "", "", format_energy(energy.static_j)])
    rows.append(["total", "", "", "", "", "", "", "", "", format_energy(energy.total_j)])
    parts.append(_table(["layer", "syn ops", "neuron upd", "spikes", "messages", "synaptic", "neuron", "spike+msg", "hops", "total"], rows))
    parts.append("<p>Per inference (counters divided by the batch of "
                 f"{energy.batch}); {energy.steps} steps. Cost table: {_esc(energy.table.label)}.</p>")
    parts.append(_table(["baseline (labelled, not part of the estimate)", "energy per inference", "source"],
                        [[c.label, format_energy(c.energy_j), c.source] for c in energy.comparisons]))
    return "".join(parts)


def _latency_section(energy) -> str:
    if energy is None:
        return _missing("latency (comes with the energy estimate)")
    lat = energy.latency
    rows = [["mean step", format_time(lat.mean_step_s)], ["max step", format_time(float(lat.step_s.max()) if lat.step_s.size else 0)],
            ["barrier sync", f"{format_time(lat.barrier_s)} ({lat.tiles} tiles)"],
            ["per inference", format_time(lat.per_inference_s)],
            ["inferences per second", f"{1 / lat.per_inference_s:,.0f}" if lat.per_inference_s > 0 else "n/a"]]
    return _img(fig_latency(energy), "Modelled time per step") + _table(["quantity", "value"], rows, "kv")


def _raster_section(run_result, graph, activity) -> str:
    arrays = _spike_arrays(run_result, graph)
    if arrays:
        return "".join(_img(fig_raster(n, a), f"Spike raster: {n} (batch element 0)") for n, a in arrays[:12])
    if activity is not None:
        return ("<p>No spike trains were probed; showing spikes per step of every layer "
                "from the activity counters instead.</p>" + _img(fig_activity(activity), "Spikes per step per layer"))
    return _missing("run result with spike outputs/probes, or activity")


def _budget_section(data: dict) -> str:
    budget = data.get("bit_budget")
    if budget is None:
        return _missing("bit budget (from the quantizer)")
    rows = budget_rows(budget)
    table = budget_layers(budget)
    parts = []
    if rows:
        parts.append(_img(fig_budget(rows), "Bits per layer by quantity"))
    if table:
        keys = list(dict.fromkeys(k for r in table.values() for k in r))
        parts.append(_table(["layer", *keys], [[n, *[f"{table[n][k]:,.0f}" if k in table[n] else "" for k in keys]]
                                                for n in table]))
    parts.append("<details><summary>Bit budget (raw)</summary><pre>" + _esc(json.dumps(budget, indent=1)[:20000]) + "</pre></details>")
    return "".join(parts)


def _quant_section(data: dict) -> str:
    q = data.get("quantization_errors")
    if q is None:
        return _missing("quantization errors (from the quantizer)")
    rows_in = None
    if isinstance(q, dict) and all(isinstance(v, dict) for v in q.values()):
        rows_in = [{"layer": k, **v} for k, v in q.items()]
    elif isinstance(q, list) and all(isinstance(v, dict) for v in q):
        rows_in = q
    if rows_in:
        keys = list(dict.fromkeys(k for r in rows_in for k in r))
        fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else v  # noqa: E731
        return _table(keys, [[fmt(r.get(k, "")) for k in keys] for r in rows_in])
    return "<pre>" + _esc(json.dumps(q, indent=1)[:20000]) + "</pre>"


def _fidelity_section(data: dict) -> str:
    f = data.get("fidelity")
    if not isinstance(f, dict):
        return _missing("fidelity guard (from compile)")
    verdict = ("no tolerance breached" if f.get("ok") else f"{len(f.get('breaches') or [])} tolerance(s) breached")
    head = f"<p>Float model vs. chip on {_esc(f.get('input'))}, {f.get('batch')} x {f.get('steps')} steps: {_esc(verdict)}.</p>"
    layers = f.get("layers") or {}
    keys = list(dict.fromkeys(k for m in layers.values() for k in m))
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else v  # noqa: E731
    table = _table(["layer", *keys], [[name, *(fmt(m.get(k, "")) for k in keys)] for name, m in layers.items()]) if layers else ""
    breaches = "".join(f"<li>{_esc(b.get('message'))}</li>" for b in f.get("breaches") or [])
    limits = ", ".join(f"{k} {v:g}" for k, v in (f.get("tolerance") or {}).items())
    return head + table + (f"<h3>Warnings</h3><ul>{breaches}</ul>" if breaches else "") + f"<p>Limits: {_esc(limits)}</p>"


def _activity_section(activity) -> str:
    if activity is None:
        return _missing("activity counters (from the sim backend)")
    rows = [[n, p.neurons, f"{p.neuron_updates:,}", f"{p.active_updates:,}", f"{p.spikes:,}",
             f"{p.spikes / max(p.neurons * activity.steps * activity.batch, 1):.4f}"] for n, p in activity.populations.items()]
    prow = [[n, f"{p.synaptic_ops:,}", f"{p.messages_in:,}"] for n, p in activity.projections.items()]
    return (f"<p>Batch {activity.batch}, {activity.steps} steps; totals over the batch.</p>"
            + _table(["population", "neurons", "updates", "active", "spikes", "spikes/neuron/step"], rows)
            + _table(["projection", "synaptic ops", "messages in"], prow))


def _assumptions_section(mapping, energy, stated=None) -> str:
    items = [f"<li>{_esc(a)}</li>" for a in stated or []]
    if energy is not None:
        items.append(f"<li>Cost table: {_esc(energy.table.label)}. Source: {_esc(energy.table.source)}</li>")
        items.append(f"<li>Static power: {_esc(energy.table.static_source)}</li>")
        items += [f"<li>{_esc(a)}</li>" for a in energy.assumptions]
    if mapping is not None:
        items += [f"<li>{_esc(n)}</li>" for n in mapping.notes]
        items += [f"<li>{_esc(k)}: {_esc(v)}</li>" for k, v in mapping.profile.sources.items()]
    if not items:
        return _missing("mapping and energy")
    return "<ul>" + "".join(items) + "</ul>"


def _neurobench_section(data: dict) -> str:
    m = data.get("neurobench")
    if not isinstance(m, dict):
        return _missing("chip graph and activity counters (from the sim backend)")
    defs = m.get("definitions") or {}
    fmt = lambda v: f"{v:,.4g}" if isinstance(v, float) else v  # noqa: E731
    rows = [[k, fmt(v)] for k, v in m.items() if k != "definitions"]
    notes = "".join(f"<li>{_esc(k)}: {_esc(v)}</li>" for k, v in defs.items())
    return _table(["metric", "value"], rows, "kv") + (f"<ul>{notes}</ul>" if notes else "")


def _sweep_section(data: dict, sweep) -> str:
    s = data.get("sweep")
    if not isinstance(s, dict):
        return _missing("a bit-budget sweep (snnc budget --report)")
    parts = []
    if sweep is not None and hasattr(sweep, "figure"):
        parts.append(_img(sweep.figure(), "Cost against quality with the Pareto front"))
    points = s.get("points") or []
    front = {(p.get("weight_bits"), p.get("state_bits"), p.get("steps")) for p in s.get("pareto") or []}
    keys = [k for k in ("weight_bits", "state_bits", "state_bits_needed", "feasible", "levels", "steps", "accuracy", "agreement", "exact", "memory_bits",
                        "bit_ops_per_sample", "synaptic_ops_per_sample", "energy_j", "latency_s")
            if any(k in p for p in points)]
    fmt = lambda v: f"{v:,.4g}" if isinstance(v, float) else v  # noqa: E731
    rows = [[*(fmt(p.get(k, "")) for k in keys),
             "*" if (p.get("weight_bits"), p.get("state_bits"), p.get("steps")) in front else ""]
            for p in points]
    parts.append(_table([*keys, "Pareto"], rows))
    parts += [f"<p>{_esc(n)}</p>" for n in s.get("notes") or []]
    return "".join(parts)


def render_html(data: dict, *, graph=None, mapping=None, energy=None, activity=None, run_result=None,
                sweep=None) -> str:
    """The whole report page; `data` is what report.json holds (used for the quantizer's parts)."""
    title = (data.get("meta") or {}).get("title") or "snnc compile report"
    body = {
        "summary": _summary(data, mapping, energy, graph),
        "mapping": _mapping_section(mapping),
        "energy": _energy_section(energy),
        "latency": _latency_section(energy),
        "raster": _raster_section(run_result, graph, activity),
        "bit-budget": _budget_section(data),
        "quantization": _quant_section(data),
        "fidelity": _fidelity_section(data),
        "activity": _activity_section(activity),
        "neurobench": _neurobench_section(data),
        "sweep": _sweep_section(data, sweep),
        "assumptions": _assumptions_section(mapping, energy, data.get("assumptions")),
    }
    nav = "".join(f'<a href="#{sid}">{_esc(t)}</a>' for sid, t in SECTIONS)
    sections = "".join(f'<section id="{sid}"><h2>{_esc(t)}</h2>{body[sid]}</section>' for sid, t in SECTIONS)
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_esc(title)}</h1><nav>{nav}</nav>{sections}"
        "<footer><p>Generated by snnc. Machine-readable data: report.json beside this file.</p></footer>"
        f"<script>{_CHECK_JS}</script></body></html>"
    )
