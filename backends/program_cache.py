"""Programs built once per graph and reused: `build_cached(graph, backend, **options)`.

Building a program plans the whole graph (effective weight matrices, their transposes and CSC
forms, fanout tables), which for a large graph costs many times a short run. Callers that run the
same compiled graph repeatedly (`CompileResult.run`, the conversions' `run`) take the program from
here: it is rebuilt when the backend, the options or anything in the graph changes. A change is
seen through a digest of every field of every node (arrays by their bytes, so in-place edits of a
weight array count too), recomputed on each call: a CRC of the graph's arrays, about 2 ms per
million int64 weights. Only programs that declare themselves reusable (`reusable = True`: `run`
keeps no state between calls) are kept, for the `MAX_GRAPHS` most recently run graphs (a program
refers to its graph, so both stay in memory until pushed out or `clear()`). The digest is
`snnc.ir.digest.graph_digest`.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from snnc.ir.digest import graph_digest

from .base import get_backend

MAX_GRAPHS = 2  # graphs whose programs are kept (each program holds its own copies of the weights)

_programs: OrderedDict[int, tuple[Any, dict]] = OrderedDict()  # id(graph) -> (graph, {key: (digest, program)})


def build_cached(graph: Any, backend: str = "sim", **options: Any):
    """`get_backend(backend).build(graph, **options)`, reused while `graph` is unchanged."""
    try:
        key = (backend, tuple(sorted(options.items())))
        hash(key)
    except TypeError:  # unhashable option values: nothing to key the program by
        return get_backend(backend).build(graph, **options)
    entry = _programs.get(id(graph))
    digest = None
    if entry is not None and entry[0] is graph:
        _programs.move_to_end(id(graph))
        hit = entry[1].get(key)
        digest = graph_digest(graph)
        if hit is not None and hit[0] == digest:
            return hit[1]
    program = get_backend(backend).build(graph, **options)
    if not getattr(program, "reusable", False):
        return program
    if digest is None:  # a graph not seen before: its digest after the build, which has just read it all
        digest = graph_digest(graph)
    if entry is None or entry[0] is not graph:
        entry = (graph, {})
        _programs[id(graph)] = entry
        while len(_programs) > MAX_GRAPHS:
            _programs.popitem(last=False)
    entry[1][key] = (digest, program)
    return program


def clear() -> None:
    """Drop every kept program."""
    _programs.clear()
