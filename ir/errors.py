"""Every error a user can cause, in one place.

Each error says *where* (file, node, layer, parameter), *what* is wrong, the *limit* or what was
expected, the offending *value*, and a *hint* for what to do. The CLI prints `str(err)` as one line;
code that catches errors can read the fields.
"""
from __future__ import annotations

from typing import Any


class SnncError(Exception):
    """Base of all errors snnc raises on purpose."""

    def __init__(
        self,
        what: str,
        *,
        where: str | None = None,
        expected: Any = None,
        got: Any = None,
        hint: str | None = None,
    ):
        self.what = what
        self.where = where
        self.expected = expected
        self.got = got
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        parts = []
        if self.where:
            parts.append(f"{self.where}: ")
        parts.append(self.what)
        detail = []
        if self.expected is not None:
            detail.append(f"expected {_short(self.expected)}")
        if self.got is not None:
            detail.append(f"got {_short(self.got)}")
        if detail:
            parts.append(" (" + ", ".join(detail) + ")")
        if self.hint:
            parts.append(f". {self.hint}")
        return "".join(parts)


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value) if not isinstance(value, str) else value
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ModelFileError(SnncError):
    """A model or data file cannot be read: missing, truncated, corrupt or of the wrong format."""


class UnsupportedNodeError(SnncError):
    """A node/module type snnc (or the chosen target/backend) cannot handle."""


class GraphError(SnncError):
    """Malformed graph structure: dangling edges, missing inputs/outputs, cycles without state."""


class ShapeError(SnncError):
    """Shapes that do not fit together, or an input of the wrong shape."""


class ParameterError(SnncError):
    """A parameter value out of its domain: NaN/inf, negative time constant, wrong bit width."""


class QuantizationError(SnncError):
    """The float model cannot be expressed in the target's fixed-point formats."""


class ResourceError(SnncError):
    """The network does not fit the chip: names the layer, resource, need, limit and a way out."""

    # also as fields, when the mapping knows them: the layer that does not fit, the resource it
    # runs out of, how much of it the layer needs and how much there is
    layer: str | None = None
    resource: str | None = None
    need: int | None = None
    limit: int | None = None


class BackendError(SnncError):
    """A backend is missing, cannot run this graph, or failed while running."""


class PassError(SnncError):
    """A compiler pass failed; wraps the cause and names the pass."""

    cause: SnncError | None = None  # the snnc error the pass raised, when it raised one
