"""A checksum of a graph's whole content (`graph_digest`): what tells a cache its graph changed.

The programs built once per compiled graph (`snnc.backends.program_cache`) key on it. It sits in
`ir` because it reads ir types only, so that any layer may key a cache on a graph. Arrays count by
their bytes, so an in-place edit of a weight array changes the digest.
"""
from __future__ import annotations

import dataclasses
import io
import pickle
import secrets
import zlib
from typing import Any

import scipy.sparse as sp

_FIELDS: dict[type, tuple[str, ...] | None] = {}  # type -> its dataclass fields (None: not a dataclass)


def _content(*parts: Any) -> None:
    """Stands in a digest's pickle for a dataclass or a sparse matrix (never called: nothing is unpickled)."""


class _ContentPickler(pickle.Pickler):
    """Pickles what a digest covers: a dataclass by its type name and fields (not by its __dict__,
    where a cache may sit beside them), a sparse matrix by its CSR arrays (not by scipy's lazily set
    flags), everything else as pickle does; array bytes go out of band (`buffer_callback`), so
    they are checksummed where they lie instead of copied into the stream."""

    def reducer_override(self, obj: Any) -> Any:
        t = type(obj)
        fields = _FIELDS.get(t, ())
        if fields == ():
            fields = _FIELDS[t] = (tuple(f.name for f in dataclasses.fields(obj))
                                   if dataclasses.is_dataclass(obj) and not isinstance(obj, type) else None)
        if fields is not None:
            return _content, (t.__qualname__, *(getattr(obj, name) for name in fields))
        if sp.issparse(obj):
            m = obj.tocsr()
            return _content, ("sparse", m.shape, m.data, m.indices, m.indptr)
        return NotImplemented


def graph_digest(graph: Any) -> int:
    """A checksum of everything in `graph` (every field of every node, the metadata): one CRC over
    its pickle (`_ContentPickler`) and the bytes of its arrays. A graph holding something pickle
    cannot write gets a new random digest each time: a cache never serves it."""
    stream = io.BytesIO()
    buffers: list[pickle.PickleBuffer] = []
    try:
        _ContentPickler(stream, protocol=5, buffer_callback=buffers.append).dump(graph)
    except Exception:  # noqa: BLE001 - anything unpicklable: never equal to another digest
        return secrets.randbits(64) | (1 << 64)
    crc = zlib.crc32(stream.getbuffer())
    for buffer in buffers:
        crc = zlib.crc32(buffer.raw(), crc)
    return crc
