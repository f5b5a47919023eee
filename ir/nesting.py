"""Nested NIR subgraphs inlined into one flat graph, as the platforms write them.

A NIRGraph node inside a NIRGraph is a subgraph. The writers address its nodes in three ways, all
read here: an edge names the subgraph itself ("lif1": its only Input/Output), an inner node with a
dotted name ("lif1.lif", "mid.inner.fc": several levels deep), or, as snnTorch's recurrent export
(RLeaky/RSynaptic) does, the outer edges restate edges that the subgraph holds already
(`lif1.lif -> lif1.lin`), which are counted once. Inner names that already carry the subgraph's
name (the NIR paper's RNN subgraph holds "lif1.lif" inside "lif1") are not prefixed twice.

Flattened names are `outer.inner`; the inner Input/Output nodes become pass-through points and
are bridged away, so every pass and backend sees one flat graph. `Flat.subgraphs` keeps which
flat nodes came from which subgraph (for `snnc inspect`); `Flat.notes` says what was counted once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import nir

from .errors import GraphError

MAX_DEPTH = 64
"""Deepest nesting read; deeper is taken for a cycle an object graph cannot show by identity."""


@dataclass
class Flat:
    """A nested NIRGraph inlined: flat nodes and edges, the nesting, and what was repaired."""

    nodes: dict[str, nir.NIRNode]
    edges: list[tuple[str, str]]
    subgraphs: dict[str, list[str]] = field(default_factory=dict)  # subgraph -> its flat nodes
    notes: list[str] = field(default_factory=list)


@dataclass
class _Level:
    nodes: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)
    entry: dict = field(default_factory=dict)  # subgraph (any depth) -> its inner Input names
    exit: dict = field(default_factory=dict)  # subgraph (any depth) -> its inner Output names
    subgraphs: dict = field(default_factory=dict)
    restated: list = field(default_factory=list)


def flatten(graph: nir.NIRGraph, where: str) -> Flat:
    """Inline every nested subgraph of `graph` (see module docstring)."""
    level = _inline(graph, full="", local="", where=where, stack=())
    edges = level.edges
    ports = [n for sub in (*level.entry.values(), *level.exit.values()) for n in sub]
    for port in ports:  # bridge the inner Input/Output nodes once, all levels together
        preds = [a for a, b in edges if b == port]
        succs = [b for a, b in edges if a == port]
        edges = [e for e in edges if port not in e]
        edges.extend((a, b) for a in preds for b in succs if (a, b) not in edges)
        level.nodes.pop(port, None)
    subgraphs = {name: [n for n in members if n in level.nodes] for name, members in level.subgraphs.items()}
    notes = []
    if level.restated:
        shown = ", ".join(f"{a} -> {b}" for a, b in level.restated[:4]) + (f" (+{len(level.restated) - 4} more)" if len(level.restated) > 4 else "")
        notes.append(f"{where}: edge(s) {shown} stated both inside a subgraph and by the graph around it "
                     "(snnTorch's recurrent export does this): each counted once")
    return Flat(nodes=level.nodes, edges=edges, subgraphs=subgraphs, notes=notes)


def _qualify(full: str, local: str, name: str) -> str:
    """The flat name of `name` inside subgraph `full` (whose own name is `local`)."""
    if not full:
        return name
    if local and name.startswith(f"{local}."):  # already carries the subgraph's name
        return f"{full}{name[len(local):]}"
    return f"{full}.{name}"


def _name(value, where: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf8", "replace")
    if not isinstance(value, str):
        raise GraphError("node names must be strings", where=where, got=repr(value))
    return value


def _inline(graph, *, full: str, local: str, where: str, stack: tuple) -> _Level:
    here = f"{where}: subgraph {full!r}" if full else where
    if id(graph) in stack or len(stack) >= MAX_DEPTH:
        raise GraphError(
            "subgraph contains itself (a cycle in the nesting)" if id(graph) in stack else "subgraphs nested too deeply",
            where=here,
            expected=f"a tree of subgraphs at most {MAX_DEPTH} deep",
            hint="a NIRGraph node must not hold the graph around it; give each level its own NIRGraph",
        )
    if not isinstance(getattr(graph, "nodes", None), dict):
        raise GraphError("graph nodes must be a mapping of names to nodes", where=here, got=type(getattr(graph, "nodes", None)).__name__)
    raw_edges = getattr(graph, "edges", None)
    if raw_edges is None or isinstance(raw_edges, (str, bytes, dict)):
        raise GraphError("graph edges must be a list of (source, target) pairs", where=here, got=type(raw_edges).__name__)
    level = _Level()
    inner_edges: set[tuple[str, str]] = set()

    def put(name: str, node) -> None:
        if name in level.nodes:
            raise GraphError(
                "two nodes get the same name after flattening nested graphs",
                where=f"{where}: node {name!r}",
                hint="rename the node or the subgraph",
            )
        level.nodes[name] = node

    for raw_name, node in graph.nodes.items():
        name = _name(raw_name, here)
        flat = _qualify(full, local, name)
        if isinstance(node, nir.NIRGraph):
            sub = _inline(node, full=flat, local=name, where=where, stack=(*stack, id(graph)))
            for inner, inner_node in sub.nodes.items():
                put(inner, inner_node)
            level.edges.extend(sub.edges)
            inner_edges.update(sub.edges)
            level.entry.update(sub.entry)
            level.exit.update(sub.exit)
            level.subgraphs.update(sub.subgraphs)
            level.restated.extend(sub.restated)
            inner = [(_name(k, here), v) for k, v in node.nodes.items()]
            level.entry[flat] = [_qualify(flat, name, k) for k, v in inner if isinstance(v, nir.Input)]
            level.exit[flat] = [_qualify(flat, name, k) for k, v in inner if isinstance(v, nir.Output)]
            level.subgraphs[flat] = list(sub.nodes)
        else:
            put(flat, node)
    try:
        edge_list = list(raw_edges)
    except TypeError:
        raise GraphError("graph edges must be a list of (source, target) pairs", where=here, got=type(raw_edges).__name__) from None
    for edge in edge_list:
        try:
            a, b = (x.decode() if isinstance(x, bytes) else x for x in edge)
        except (TypeError, ValueError, UnicodeDecodeError):
            raise GraphError("malformed edge", where=here, expected="a (source, target) pair", got=edge) from None
        if not isinstance(a, str) or not isinstance(b, str):
            raise GraphError("edge ends must be node names (strings)", where=here, got=(a, b))
        label = f"{where}: edge {_qualify(full, local, a)!r} -> {_qualify(full, local, b)!r}"
        src = _resolve(_qualify(full, local, a), level, level.exit, "Output", label, source=True, inside=full)
        dst = _resolve(_qualify(full, local, b), level, level.entry, "Input", label, source=False, inside=full)
        if (src, dst) in inner_edges:
            level.restated.append((src, dst))
            continue
        level.edges.append((src, dst))
    return level


def _resolve(name: str, level: _Level, ports: dict, kind: str, label: str, *, source: bool, inside: str) -> str:
    """An edge end as a flat node name: a node, or a subgraph's only Input/Output."""
    if name in level.nodes:
        return name
    if name in ports:
        if len(ports[name]) != 1:
            side = "from" if source else "into"
            raise GraphError(
                f"edge {side} a subgraph without exactly one {kind} must name the inner node",
                where=label,
                got=ports[name],
                hint=f"write the edge end as '{name}.<inner node>'"
                + ("" if ports[name] else f", or give subgraph {name!r} a nir.{kind} node"),
            )
        return ports[name][0]
    members = {**level.subgraphs, **({inside: list(level.nodes)} if inside else {})}  # `inside`: this subgraph
    owner = max((s for s in members if name.startswith(f"{s}.")), key=len, default=None)
    if owner is not None:
        inner = [n[len(owner) + 1:] for n in members[owner]]
        raise GraphError(
            f"edge end {name!r} names no node inside subgraph {owner!r}",
            where=label,
            expected=", ".join(inner[:12]) or "(the subgraph is empty)",
            hint="dotted names address nodes inside subgraphs: '<subgraph>.<inner node>'",
        )
    known = sorted([*level.nodes, *ports])
    raise GraphError(
        "edge refers to a node that does not exist",
        where=label,
        got=name,
        hint=f"known nodes: {', '.join(known[:12])}",
    )
