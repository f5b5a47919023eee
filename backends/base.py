"""The contract every backend meets, and the registry that finds them.

A backend declares the IR level it executes (`"nir"`: float `snnc.ir.Graph`; `"chip"`: integer
`snnc.ir.chip.ChipGraph`), says whether it can run a given graph, builds a `Program` from it, and
the program runs a batch `[batch, T, *input_shape]` and returns a `RunResult`.

Backends register under the entry-point group `snnc.backends` (see pyproject.toml), so a third
party can add one by installing a package; no edit of this repo is needed.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from snnc.ir.errors import BackendError, ShapeError

ENTRY_POINT_GROUP = "snnc.backends"


@dataclass
class PopulationActivity:
    """What one population did over a run, summed over the batch."""

    neurons: int
    neuron_updates: int = 0  # compartment updates = neurons x steps x batch
    active_updates: int = 0  # updates of compartments whose u or v was non-zero
    spikes: int = 0
    spikes_per_step: np.ndarray | None = None  # [T], summed over batch
    spike_counts: np.ndarray | None = None  # [neurons], summed over batch and time


@dataclass
class ProjectionActivity:
    """What one projection did over a run, summed over the batch."""

    synaptic_ops: int = 0  # weight fetch + accumulate, one per (incoming spike, synapse)
    messages_in: int = 0  # spikes (or graded messages) that arrived at its source side
    synaptic_ops_per_step: np.ndarray | None = None  # [T]


@dataclass
class Activity:
    """Activity counters of a run, the input of the energy and latency model."""

    batch: int
    steps: int
    populations: dict[str, PopulationActivity] = field(default_factory=dict)
    projections: dict[str, ProjectionActivity] = field(default_factory=dict)

    @property
    def total_synaptic_ops(self) -> int:
        return sum(p.synaptic_ops for p in self.projections.values())

    @property
    def total_spikes(self) -> int:
        return sum(p.spikes for p in self.populations.values())


@dataclass
class RunResult:
    """Outputs `[batch, T, ...]` per output port, requested probes, activity counters.

    `time_shift` is the number of steps by which these outputs lag the float reference (the chip
    adds a step per projection; the timing pass records the shift); `aligned()` undoes it.
    `output_shifts` overrides it per output port where ports lag by different amounts (an output
    population that feeds another output).
    """

    outputs: dict[str, np.ndarray]
    probes: dict[str, np.ndarray] = field(default_factory=dict)
    activity: Activity | None = None
    backend: str = ""
    time_shift: int = 0
    output_shifts: dict[str, int] = field(default_factory=dict)

    @property
    def output(self) -> np.ndarray:
        """The single output; an error when the network has several."""
        if len(self.outputs) != 1:
            raise BackendError(
                "network has several outputs", expected="one", got=sorted(self.outputs), hint="use result.outputs[name]"
            )
        return next(iter(self.outputs.values()))

    def aligned(self, array: np.ndarray, output: str | None = None) -> np.ndarray:
        """`array[:, shift:]` padded with zeros at the end: time-aligned with the float reference
        (`output`: the port whose shift applies; default `time_shift`)."""
        return shift_back(array, self.output_shifts.get(output, self.time_shift) if output else self.time_shift)


def shift_back(array: np.ndarray, shift: int) -> np.ndarray:
    """`array[:, shift:]` padded with zeros at the end (undo a lag of `shift` steps)."""
    if not shift:
        return array
    out = np.zeros_like(array)
    out[:, : max(array.shape[1] - shift, 0)] = array[:, shift:]
    return out


@runtime_checkable
class Program(Protocol):
    """A graph built for one backend, ready to run many batches."""

    def run(
        self,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        steps: int | None = None,
        probes: Sequence[str] = (),
    ) -> RunResult: ...


class Backend(Protocol):
    """What a backend is. Probe names are "node" (its output) or "node/var" (a state variable)."""

    name: ClassVar[str]
    level: ClassVar[str]  # "nir" or "chip"

    def problems(self, graph: Any) -> list[str]:
        """Why this backend cannot run `graph` (empty when it can)."""
        ...

    def build(self, graph: Any, **options: Any) -> Program: ...


def normalize_inputs(
    inputs: np.ndarray | Mapping[str, np.ndarray],
    input_shapes: Mapping[str, tuple[int, ...]],
    steps: int | None,
) -> tuple[dict[str, np.ndarray], int, int]:
    """Bring user inputs to {name: [batch, T, *shape]} and check them.

    Accepts one array for a single-input network, `[T, *shape]` (batch of one) or
    `[batch, T, *shape]`. With `steps` > T, the remaining steps get zero input; with steps < T the
    input is cut. Returns (inputs, batch, steps).
    """
    names = list(input_shapes)
    if not isinstance(inputs, Mapping):
        if len(names) != 1:
            raise ShapeError("network has several inputs; pass a dict", expected=names)
        inputs = {names[0]: inputs}
    unknown = set(inputs) - set(names)
    missing = set(names) - set(inputs)
    if unknown or missing:
        raise ShapeError("inputs do not match the network's input ports", expected=names, got=sorted(inputs))
    out, batch, length = {}, None, None
    for name, arr in inputs.items():
        arr = np.asarray(arr)
        shape = tuple(input_shapes[name])
        if arr.dtype.kind not in "biuf":
            raise ShapeError("input must be numeric", where=f"input {name!r}", got=str(arr.dtype))
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ShapeError("input holds NaN or inf", where=f"input {name!r}")
        if arr.shape[1:] == shape and arr.ndim == len(shape) + 1:
            arr = arr[None]
        elif not (arr.ndim == len(shape) + 2 and arr.shape[2:] == shape):
            raise ShapeError(
                "input has the wrong shape",
                where=f"input {name!r}",
                expected=f"[T, {', '.join(map(str, shape))}] or [batch, T, {', '.join(map(str, shape))}]",
                got=list(arr.shape),
            )
        if batch is None:
            batch, length = arr.shape[0], arr.shape[1]
        elif arr.shape[0] != batch or arr.shape[1] != length:
            raise ShapeError("inputs disagree on batch or time length", where=f"input {name!r}", expected=(batch, length), got=arr.shape[:2])
        out[name] = arr
    if batch is None or length is None:  # only when the network has no input ports at all
        raise ShapeError(
            "the network has no input ports, so there are no inputs to take",
            expected="no inputs", got=type(inputs).__name__,
            hint="run a network without inputs with steps=T and no inputs",
        )
    steps = length if steps is None else int(steps)
    if steps <= 0:
        raise ShapeError("number of steps must be positive", got=steps)
    for name, arr in out.items():
        if steps > arr.shape[1]:
            pad = np.zeros((arr.shape[0], steps - arr.shape[1], *arr.shape[2:]), dtype=arr.dtype)
            out[name] = np.concatenate([arr, pad], axis=1)
        else:
            out[name] = arr[:, :steps]
    return out, batch, steps


# -- registry ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _entry_points() -> dict[str, Any]:
    """The installed backends, read once per process (scanning every distribution's metadata costs
    8-20 ms, more than a small program's build)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


_BUILTIN = {
    "reference": "snnc.backends.reference:ReferenceBackend",
    "sim": "snnc.backends.sim:SimBackend",
    "lava": "snnc.backends.lava:LavaBackend",
}


def available_backends() -> list[str]:
    return sorted(set(_BUILTIN) | set(_entry_points()))


def get_backend(name: str) -> Backend:
    """Instantiate the backend registered as `name`."""
    eps = _entry_points()
    try:
        if name in eps:
            cls = eps[name].load()
        elif name in _BUILTIN:
            import importlib

            module, attr = _BUILTIN[name].split(":")
            cls = getattr(importlib.import_module(module), attr)
        else:
            raise BackendError(
                "unknown backend",
                got=name,
                expected=", ".join(available_backends()),
                hint=f"install a package that registers it under the entry-point group {ENTRY_POINT_GROUP!r}",
            )
    except ImportError as exc:
        raise BackendError(f"backend {name!r} cannot be imported: {exc}", hint="check its dependencies are installed") from exc
    return cls()
