"""The NIR-level graph: flattened, validated and shape-inferred.

`Graph` wraps the nodes of the `nir` package (never re-implemented) with what the compiler needs
and NIR leaves implicit: nested subgraphs flattened (inner names prefixed `outer.inner`), every
node's input/output shape, and which edges are recurrent (they close a cycle, so their signal
arrives one step later). Parameters are kept exactly as given, scalars or arrays (NIR issue #176:
no forced broadcasting). `Graph.to_nir()` writes it back; read -> write -> read is lossless.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import networkx as nx
import nir
import numpy as np

from . import shapes as S
from .errors import GraphError, ModelFileError, ParameterError, ShapeError, UnsupportedNodeError

# Parameters that must be finite; time constants must also be positive.
_TIME_CONSTANTS = {"tau", "tau_syn", "tau_mem"}
_NUMERIC_FIELDS = {
    "weight", "bias", "tau", "tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset",
    "w_in", "scale", "delay", "threshold",
}


@dataclass
class Graph:
    """A flat NIR graph plus inferred shapes and recurrent edges.

    `nodes` maps names to `nir` node objects (Input and Output nodes included); `edges` is a list
    of (source, target) pairs; `recurrent` is the subset of edges that close a cycle.
    """

    nodes: dict[str, nir.NIRNode]
    edges: list[tuple[str, str]]
    metadata: dict = field(default_factory=dict)
    in_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    out_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    recurrent: set[tuple[str, str]] = field(default_factory=set)
    source: str = "<graph>"

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_nir(cls, model: "nir.NIRGraph | str | Path", *, validate: bool = True) -> "Graph":
        """Read a NIR graph (object or file path), flatten it, infer shapes, validate it."""
        source = "<graph>"
        if isinstance(model, (str, Path)):
            source = str(model)
            model = read_nir_file(model)
        if not isinstance(model, nir.NIRGraph):
            raise ModelFileError(
                "not a NIR graph", where=source, got=type(model).__name__, hint="pass a nir.NIRGraph or a .nir file"
            )
        nodes, edges = _flatten(model, prefix="", where=source)
        graph = cls(nodes=nodes, edges=edges, metadata=dict(model.metadata or {}), source=source)
        if validate:
            graph.validate()
        return graph

    def copy(self) -> "Graph":
        return copy.deepcopy(self)

    def to_nir(self) -> nir.NIRGraph:
        """The graph as a flat `nir.NIRGraph` (shapes written into Input/Output and Conv nodes)."""
        nodes = {}
        for name, node in self.nodes.items():
            node = copy.deepcopy(node)
            if isinstance(node, nir.Output) and name in self.in_shapes:
                node.output_type = {"output": np.array(self.in_shapes[name])}
                node.input_type = {"input": np.array(self.in_shapes[name])}
            nodes[name] = node
        return nir.NIRGraph(nodes=nodes, edges=list(self.edges), metadata=dict(self.metadata), type_check=False)

    def write(self, path: str | Path) -> None:
        nir.write(str(path), self.to_nir())

    # -- structure ------------------------------------------------------------------------------
    @property
    def inputs(self) -> list[str]:
        return [n for n, node in self.nodes.items() if isinstance(node, nir.Input)]

    @property
    def outputs(self) -> list[str]:
        return [n for n, node in self.nodes.items() if isinstance(node, nir.Output)]

    def predecessors(self, name: str) -> list[str]:
        return [a for a, b in self.edges if b == name]

    def successors(self, name: str) -> list[str]:
        return [b for a, b in self.edges if a == name]

    def nx(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        g.add_edges_from(self.edges)
        return g

    def topo_order(self) -> list[str]:
        """Nodes in an order where every non-recurrent edge points forward."""
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        g.add_edges_from(e for e in self.edges if e not in self.recurrent)
        rank = {n: i for i, n in enumerate(self.nodes)}
        return list(nx.lexicographical_topological_sort(g, key=rank.__getitem__))

    def find_recurrent_edges(self) -> set[tuple[str, str]]:
        """Back edges of a depth-first search from the inputs (then any unreached node).

        These are the edges whose signal a simulator must take from the previous step.
        """
        adj: dict[str, list[str]] = {n: [] for n in self.nodes}
        for a, b in self.edges:
            adj[a].append(b)
        state: dict[str, int] = {}  # 1 = on stack, 2 = done
        back: set[tuple[str, str]] = set()
        roots = self.inputs + [n for n in self.nodes if n not in self.inputs]
        for root in roots:
            if root in state:
                continue
            stack = [(root, iter(adj[root]))]
            state[root] = 1
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[node] = 2
                    stack.pop()
                elif state.get(nxt) == 1:
                    back.add((node, nxt))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, iter(adj[nxt])))
        return back

    # -- editing (for passes) -------------------------------------------------------------------
    def add_node(self, name: str, node: nir.NIRNode) -> None:
        if name in self.nodes:
            raise GraphError("duplicate node name", where=f"node {name!r}")
        self.nodes[name] = node

    def remove_node(self, name: str, *, bridge: bool = False) -> None:
        """Remove a node; with `bridge`, connect each predecessor to each successor."""
        preds, succs = self.predecessors(name), self.successors(name)
        del self.nodes[name]
        self.edges = [e for e in self.edges if name not in e]
        if bridge:
            for a in preds:
                for b in succs:
                    if (a, b) not in self.edges:
                        self.edges.append((a, b))

    def unique_name(self, base: str) -> str:
        name, i = base, 1
        while name in self.nodes:
            name, i = f"{base}_{i}", i + 1
        return name

    # -- validation -----------------------------------------------------------------------------
    def validate(self) -> "Graph":
        """Check types, edges, parameters and shapes; fill `in_shapes`, `out_shapes`, `recurrent`."""
        for name, node in self.nodes.items():
            if not isinstance(node, S.SUPPORTED_TYPES):
                raise UnsupportedNodeError(
                    f"node type {type(node).__name__} is not supported",
                    where=f"{self.source}: node {name!r}",
                    expected=", ".join(sorted(t.__name__ for t in S.SUPPORTED_TYPES)),
                )
            _check_parameters(name, node, self.source)
        for a, b in self.edges:
            for end in (a, b):
                if end not in self.nodes:
                    raise GraphError(
                        "edge refers to a node that does not exist",
                        where=f"{self.source}: edge {a!r} -> {b!r}",
                        got=end,
                        hint=f"known nodes: {', '.join(sorted(self.nodes)[:12])}",
                    )
        if len(set(self.edges)) != len(self.edges):
            dup = next(e for e in self.edges if self.edges.count(e) > 1)
            raise GraphError("duplicate edge", where=f"{self.source}: edge {dup[0]!r} -> {dup[1]!r}")
        if not self.inputs:
            raise GraphError("graph has no Input node", where=self.source, hint="add a nir.Input with the input shape")
        if not self.outputs:
            raise GraphError("graph has no Output node", where=self.source, hint="add a nir.Output")
        for name in self.nodes:
            if isinstance(self.nodes[name], nir.Input):
                if self.predecessors(name):
                    raise GraphError("Input node has incoming edges", where=f"{self.source}: node {name!r}")
            elif not self.predecessors(name):
                raise GraphError(
                    "node has no incoming edge", where=f"{self.source}: node {name!r}", hint="connect it or remove it"
                )
            if isinstance(self.nodes[name], nir.Output) and self.successors(name):
                raise GraphError("Output node has outgoing edges", where=f"{self.source}: node {name!r}")
        self.recurrent = self.find_recurrent_edges()
        self._infer_shapes()
        return self

    def _infer_shapes(self) -> None:
        """Propagate shapes forward (and backward for scalar-parameter nodes) to a fixed point."""
        ins: dict[str, tuple] = {}
        outs: dict[str, tuple] = {}

        def settle(table, name, shape, why):
            if shape is None:
                return False
            shape = tuple(int(d) for d in shape)
            old = table.get(name)
            if old is None:
                table[name] = shape
                return True
            if old != shape:
                raise ShapeError(
                    "shapes do not agree",
                    where=f"{self.source}: {why}",
                    expected=old,
                    got=shape,
                )
            return False

        for name, node in self.nodes.items():
            own = S.own_shape(node)
            if own is not None:
                settle(ins, name, own, f"node {name!r}")
            hint = S.input_shape_hint(node)
            if hint is not None:
                if isinstance(node, nir.Output):
                    settle(ins, name, hint, f"node {name!r}")
                elif isinstance(node, (nir.Affine, nir.Linear)) and len(hint) == 1:
                    pass  # last dimension only: checked by output_shape
            if isinstance(node, (nir.Conv1d, nir.Conv2d)) and node.input_shape is not None:
                spatial = tuple(int(d) for d in np.atleast_1d(node.input_shape))
                settle(ins, name, (int(np.asarray(node.weight).shape[1]) * int(np.ravel(node.groups)[0]), *spatial), f"node {name!r}")
        changed = True
        while changed:
            changed = False
            for name in self.topo_order():
                node = self.nodes[name]
                if name in ins and name not in outs:
                    changed |= settle(outs, name, S.output_shape(node, ins[name], f"{self.source}: node {name!r}"), f"node {name!r}")
                for succ in self.successors(name):
                    if name in outs:
                        changed |= settle(ins, succ, outs[name], f"edge {name!r} -> {succ!r}")
                # Backward: a shape-preserving node with scalar parameters learns its shape from
                # a successor that knows its input shape (e.g. Affine -> LIF(scalar) -> Affine).
                if name not in ins and isinstance(node, S.SHAPE_PRESERVING):
                    for succ in self.successors(name):
                        if succ in ins:
                            changed |= settle(ins, name, ins[succ], f"edge {name!r} -> {succ!r}")
                            break
        # Affine/Linear inputs: the weight fixes the last dimension only; a 1-D guess is safe
        # when nothing else was learned (e.g. a dense layer right after an Input).
        missing = [n for n in self.nodes if n not in ins or n not in outs]
        if missing:
            raise ShapeError(
                "cannot infer the shape of some nodes",
                where=f"{self.source}: node {missing[0]!r}",
                got=missing[:8],
                hint="give the Input node a shape, or neuron parameters per neuron",
            )
        self.in_shapes, self.out_shapes = ins, outs


def read_nir_file(path: str | Path) -> nir.NIRGraph:
    """`nir.read` with every failure turned into a ModelFileError/UnsupportedNodeError."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError("file not found", where=str(path), hint="check the path")
    if path.is_dir():
        raise ModelFileError("is a directory, not a NIR file", where=str(path))
    try:
        import h5py

        with h5py.File(path, "r") as f:
            if "node" not in f:
                raise ModelFileError(
                    "HDF5 file is not a NIR graph (no 'node' group)",
                    where=str(path),
                    got=sorted(f.keys())[:8],
                    hint="write NIR files with nir.write",
                )
        return nir.read(str(path))
    except ModelFileError:
        raise
    except OSError as exc:
        raise ModelFileError(
            "cannot read as HDF5 (truncated, corrupt, or not a NIR file)",
            where=str(path),
            got=str(exc).split("(")[0].strip() or type(exc).__name__,
        ) from exc
    except (AssertionError, ValueError) as exc:
        msg = str(exc)
        if "Unknown unit type" in msg or isinstance(exc, AssertionError):
            raise UnsupportedNodeError(
                "file contains a node type nir 1.0.8 does not define",
                where=str(path),
                got=msg or "unknown type",
                hint="export with nir 1.0.8 node types",
            ) from exc
        raise ModelFileError(f"invalid NIR content: {msg}", where=str(path)) from exc
    except Exception as exc:  # noqa: BLE001 - h5py/nir raise many types on malformed content
        raise ModelFileError(
            f"malformed NIR file ({type(exc).__name__}: {exc})",
            where=str(path),
            hint="the file is incomplete or was written by an incompatible tool",
        ) from exc


def _flatten(graph: nir.NIRGraph, prefix: str, where: str) -> tuple[dict, list]:
    """Inline nested NIRGraphs; their inner Input/Output nodes become pass-throughs and vanish."""
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}  # subgraph name -> its inner input-node names (flattened)
    exit_: dict[str, list[str]] = {}
    if not isinstance(graph.nodes, dict):
        raise ModelFileError("graph nodes must be a mapping", where=where)
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if isinstance(node, nir.NIRGraph):
            inner_nodes, inner_edges = _flatten(node, prefix=f"{full}.", where=where)
            ins = [n for n, v in inner_nodes.items() if isinstance(v, nir.Input) and n.count(".") == full.count(".") + 1]
            outs = [n for n, v in inner_nodes.items() if isinstance(v, nir.Output) and n.count(".") == full.count(".") + 1]
            entry[full], exit_[full] = ins, outs
            nodes.update(inner_nodes)
            edges.extend(inner_edges)
        else:
            nodes[full] = node
    for edge in graph.edges:
        try:
            a, b = (str(x.decode() if isinstance(x, bytes) else x) for x in edge)
        except (TypeError, ValueError):
            raise GraphError("malformed edge", where=f"{where}", got=edge) from None
        a, b = f"{prefix}{a}", f"{prefix}{b}"
        if a in exit_:
            if len(exit_[a]) != 1:
                raise GraphError("edge from a subgraph with several outputs must name one", where=f"{where}: edge {a} -> {b}")
            a = exit_[a][0]
        if b in entry:
            if len(entry[b]) != 1:
                raise GraphError("edge into a subgraph with several inputs must name one", where=f"{where}: edge {a} -> {b}")
            b = entry[b][0]
        edges.append((a, b))
    # Remove the inner Input/Output nodes of inlined subgraphs by bridging across them.
    inner_ports = [n for sub in (*entry.values(), *exit_.values()) for n in sub]
    for port in inner_ports:
        preds = [a for a, b in edges if b == port]
        succs = [b for a, b in edges if a == port]
        edges = [e for e in edges if port not in e]
        edges.extend((a, b) for a in preds for b in succs if (a, b) not in edges)
        nodes.pop(port, None)
    return nodes, edges


def _check_parameters(name: str, node: nir.NIRNode, source: str) -> None:
    where = f"{source}: node {name!r}"
    for field_name in _NUMERIC_FIELDS:
        if not hasattr(node, field_name):
            continue
        value = getattr(node, field_name)
        if value is None:
            continue
        arr = np.asarray(value)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise ParameterError(f"{field_name} must be numeric", where=f"{where}.{field_name}", got=str(arr.dtype))
        if not np.all(np.isfinite(arr)):
            raise ParameterError(
                f"{field_name} holds NaN or inf", where=f"{where}.{field_name}", hint="fix the exported model"
            )
        if field_name in _TIME_CONSTANTS and np.any(arr <= 0):
            raise ParameterError(
                f"time constant {field_name} must be positive",
                where=f"{where}.{field_name}",
                got=float(arr.min()),
                hint="time constants are in seconds, e.g. 1e-3",
            )
        if field_name == "delay" and np.any(arr < 0):
            raise ParameterError("delay must be non-negative", where=f"{where}.delay", got=float(arr.min()))
    for field_name in ("weight",):
        if hasattr(node, field_name):
            w = np.asarray(getattr(node, field_name))
            need = 4 if isinstance(node, nir.Conv2d) else 3 if isinstance(node, nir.Conv1d) else 2
            if w.ndim != need:
                raise ShapeError(f"weight must have {need} dimensions", where=f"{where}.weight", got=w.shape)
    if isinstance(node, nir.Affine):
        b = np.asarray(node.bias)
        if b.ndim > 1 or (b.ndim == 1 and b.size not in (1, np.asarray(node.weight).shape[0])):
            raise ShapeError("bias does not match the weight's output size", where=f"{where}.bias", expected=np.asarray(node.weight).shape[0], got=b.shape)


def node_param_count(node: nir.NIRNode) -> int:
    """Number of stored parameter values of a node (for `snnc inspect`)."""
    total = 0
    for field_name in _NUMERIC_FIELDS:
        value = getattr(node, field_name, None)
        if value is not None:
            total += int(np.size(value))
    return total


def iter_neuron_nodes(graph: Graph) -> Iterable[str]:
    return (n for n, node in graph.nodes.items() if isinstance(node, S.NEURON_TYPES))
