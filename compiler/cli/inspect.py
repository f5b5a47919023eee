"""`snnc inspect`: a model's nodes, shapes, edges, loops and totals (NIR or chip level)."""
from __future__ import annotations

import argparse
import math

import numpy as np

from .app import register
from .common import _shape, _table, add_netx_options, add_reset_mode, load_model_arg

def _inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a .nir file (NIR-level or chip-level) or a lava-dl .net file")
    add_reset_mode(p)
    add_netx_options(p)


def _inspect(args: argparse.Namespace, console) -> int:
    from snnc.ir.chip import ChipGraph

    model = load_model_arg(args)
    if isinstance(model, ChipGraph):
        _inspect_chip(model, args.model, console)
    else:
        _inspect_nir(model, args.model, console)
    return 0


def _inspect_nir(graph, label: str, console) -> None:
    from snnc.ir import shapes as S
    from snnc.ir.graph import node_param_count
    from snnc.ir.reset_mode import SPIKING, reset_mode_of

    rows = []
    for name in graph.topo_order():
        node = graph.nodes[name]
        reset = reset_mode_of(node) if isinstance(node, SPIKING) else ""
        rows.append((name, type(node).__name__, _shape(graph.in_shapes.get(name)), _shape(graph.out_shapes.get(name)), node_param_count(node), reset))
    console.print(_table(f"{label}: NIR-level graph, {len(graph.nodes)} nodes", ["node", "type", "input", "output", "params", "reset"], rows))
    if graph.subgraphs:  # the nesting the file had before it was flattened (snnc.ir.nesting)
        console.print(_table(f"nested subgraphs ({len(graph.subgraphs)}), flattened as outer.inner", ["subgraph", "inside", "nodes"],
                             [(name, _parent(name, graph.subgraphs) or "(top level)", ", ".join(members))
                              for name, members in graph.subgraphs.items()]))
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


def _parent(name: str, subgraphs: dict) -> str | None:
    """The subgraph that holds subgraph `name` (the longest other subgraph name it starts with)."""
    return max((s for s in subgraphs if s != name and name.startswith(f"{s}.")), key=len, default=None)


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
    from snnc.ir.chip import ConvProjection

    b = {k: s.bits for k, s in SPECS.items()}
    console.print(_table(
        f"{label}: chip-level graph — inputs",
        ["input", "shape", f"num_message_bits ({b['num_message_bits']}b)"],
        [(i.name, _shape(i.shape), i.num_message_bits) for i in graph.inputs.values()],
    ))
    pop_rows = []
    for p in graph.populations.values():
        model = p.model + ("" if p.reset_mode == "zero" or not p.spiking else f", reset {p.reset_mode}")
        if np.any(p.v_reset):
            model += f", v_reset {_int_summary(p.v_reset)}"
        if p.model == "relay":
            model += f" (payload v >> {p.relay_shift})"
        if p.model == "lif_reset":
            model += f" (every {p.reset_interval}, offset {p.reset_offset})"
        elif p.model == "ternary":
            model += f" (vth_hi {p.vth_hi}, vth_lo {p.vth_lo})"
        elif p.model == "lif_refractory":
            model += f" (v held {p.refractory_period} steps after a spike)"
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
        if isinstance(p, ConvProjection):
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
    from snnc.compiler.data.encoding import port_table

    console.print(_table("port encodings (float <-> chip)", ["port", "name", "encoding", "scale", "shift (steps)"], port_table(graph)))
    console.print("recurrent loops: " + ("; ".join(" -> ".join(c + c[:1]) for c in recurrent) if recurrent else "none"))
    meta = ", ".join(f"{k}={v}" for k, v in graph.meta.items() if isinstance(v, (int, float, str)))
    console.print(f"totals: {graph.num_neurons} neurons, {graph.num_synapses} synapses" + (f"; meta: {meta}" if meta else ""))


register("inspect", "show a model's nodes, shapes, edges, loops and totals", _inspect_args, _inspect)
