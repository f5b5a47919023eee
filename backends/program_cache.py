"""Programs built once per graph and reused: `build_cached(graph, backend, **options)`.

Building a program plans the whole graph (effective weight matrices, their transposes and CSC
forms, fanout tables), which for a large graph costs many times a short run. Callers that run the
same compiled graph repeatedly (`CompileResult.run`, the conversions' `run`) take the program from
here: it is rebuilt when the backend, the options or anything in the graph changes. A change is
seen through a digest of every field of every node (arrays by their bytes, so in-place edits of a
weight array count too), recomputed on each call: a CRC of the graph's arrays, about 2 ms per
million int64 weights. Only programs that declare themselves reusable (`reusable = True`: `run`
keeps no state between calls) are kept, for the `MAX_GRAPHS` most recently run graphs (a program
refers to its graph, so both stay in memory until pushed out or `clear()`).
"""
from __future__ import annotations

import dataclasses
import zlib
from collections import OrderedDict
from typing import Any

import numpy as np
import scipy.sparse as sp

from .base import get_backend

MAX_GRAPHS = 2  # graphs whose programs are kept (each program holds its own copies of the weights)

_programs: OrderedDict[int, tuple[Any, dict]] = OrderedDict()  # id(graph) -> (graph, {key: (digest, program)})


_SCALARS = (int, float, str, bool, type(None), np.generic)
_OPEN_DICT, _OPEN_LIST, _CLOSE = ("{",), ("[",), ("]",)  # markers: 1-tuples, which no value appends
_FIELDS: dict[type, tuple[str, ...] | None] = {}  # type -> its dataclass fields (None: not a dataclass)


def _parts(value: Any, out: list) -> None:
    """Append `value`'s content to `out` in a fixed order: arrays as (dtype, shape, CRC of their
    bytes), containers and dataclasses (marked by their type's name) as their items and fields
    between markers, scalars as they are (repr'd once, together, by `graph_digest`), anything
    else by its repr."""
    t = type(value)
    if isinstance(value, _SCALARS):
        out.append(value)
        return
    if t is np.ndarray:
        out.append((value.dtype.str, value.shape, zlib.crc32(np.ascontiguousarray(value).data.cast("B"))))
        return
    if t is dict:
        out.append(_OPEN_DICT)
        for k, v in value.items():
            out.append(k)
            _parts(v, out)
        out.append(_CLOSE)
        return
    if t is list or t is tuple:
        out.append(_OPEN_LIST)
        for v in value:
            _parts(v, out)
        out.append(_CLOSE)
        return
    fields = _FIELDS.get(t, ())
    if fields == ():
        fields = _FIELDS[t] = tuple(f.name for f in dataclasses.fields(value)) if dataclasses.is_dataclass(value) and not isinstance(value, type) else None
    if fields is not None:
        out.append((t.__name__,))
        for name in fields:
            out.append(name)
            _parts(getattr(value, name), out)
        out.append(_CLOSE)
        return
    if isinstance(value, np.ndarray):  # a subclass
        _parts(np.asarray(value), out)
    elif sp.issparse(value):
        m = value.tocsr()
        out.append(("sparse", m.shape))
        for part in (m.data, m.indices, m.indptr):
            _parts(part, out)
    elif isinstance(value, dict):
        _parts(dict(value), out)
    elif isinstance(value, (list, tuple)):
        _parts(list(value), out)
    else:
        out.append(repr(value))


def graph_digest(graph: Any) -> int:
    """A checksum of everything in `graph` (every field of every node, the metadata): one CRC of
    the repr of its parts (`_parts`; an array stands there as its dtype, shape and CRC)."""
    out: list = []
    _parts(graph, out)
    return zlib.crc32(repr(out).encode())


def build_cached(graph: Any, backend: str = "sim", **options: Any):
    """`get_backend(backend).build(graph, **options)`, reused while `graph` is unchanged."""
    try:
        key = (backend, tuple(sorted(options.items())))
        hash(key)
    except TypeError:  # unhashable option values: nothing to key the program by
        return get_backend(backend).build(graph, **options)
    digest = graph_digest(graph)
    entry = _programs.get(id(graph))
    if entry is not None and entry[0] is graph:
        _programs.move_to_end(id(graph))
        hit = entry[1].get(key)
        if hit is not None and hit[0] == digest:
            return hit[1]
    program = get_backend(backend).build(graph, **options)
    if not getattr(program, "reusable", False):
        return program
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
