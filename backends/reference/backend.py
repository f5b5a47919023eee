"""The reference backend: the float golden model (`snnc.ir.float_model`) as a Backend.

The semantics (forward Euler at `dt`, evaluation order inside a step, recurrent edges, resets)
are written once, in `snnc.ir.float_model`, the one float evaluator the compiler's calibration
and fidelity guard run too. This module adds what a backend owes its callers: the graph checks
and the dt option at build time, inputs as users give them, probes of any node's output or
neuron state, activity counters and a RunResult.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import nir
import numpy as np

from snnc.backends.base import Activity, PopulationActivity, RunResult, normalize_inputs
from snnc.ir import shapes as S
from snnc.ir.errors import BackendError, SnncError
from snnc.ir.float_kernels import make_kernel
from snnc.ir.float_model import FloatModel
from snnc.ir.graph import Graph
from snnc.ir.timestep import check_dt

DEFAULT_DT = 1e-4


def _as_graph(graph: Any) -> Graph:
    """A validated private copy: building never edits the caller's graph."""
    if isinstance(graph, Graph):
        g = graph.copy()
        g.validate()
        return g
    if isinstance(graph, (nir.NIRGraph, str, Path)):
        return Graph.from_nir(graph)
    raise BackendError(
        "the reference backend runs NIR-level graphs",
        expected="snnc.ir.Graph, nir.NIRGraph or a .nir path",
        got=type(graph).__name__,
        hint="chip-level graphs run on the 'sim' or 'lava' backend",
    )


class ReferenceProgram:
    """A graph compiled for the float model; `run` may be called many times."""

    def __init__(self, graph: Graph, dt: float):
        self.graph = graph
        self.dt = dt
        self.model = FloatModel(graph, dt)
        self.input_shapes = self.model.input_shapes
        self.kernels = self.model.kernels

    # -- probes ---------------------------------------------------------------------------------
    def probe_names(self) -> list[str]:
        """Every probe this program can record."""
        names = list(self.graph.nodes)
        for name, kernel in self.kernels.items():
            names.extend(f"{name}/{var}" for var in kernel.state_vars)
        return names

    def _parse_probes(self, probes: Sequence[str]) -> list[tuple[str, str, str | None]]:
        if isinstance(probes, str):
            probes = [probes]
        parsed = []
        for probe in probes:
            node, _, var = str(probe).partition("/")
            ok = node in self.graph.nodes and (not var or var in getattr(self.kernels.get(node), "state_vars", ()))
            if not ok:
                avail = self.probe_names()
                raise BackendError(
                    "unknown probe",
                    where=f"reference backend, probe {probe!r}",
                    expected=", ".join(avail[:20]) + (" ..." if len(avail) > 20 else ""),
                    got=probe,
                    hint='probe "node" for a node\'s output, "node/v" or "node/i" for neuron state',
                )
            parsed.append((str(probe), node, var or None))
        return parsed

    # -- simulation -----------------------------------------------------------------------------
    def run(
        self,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        steps: int | None = None,
        probes: Sequence[str] = (),
    ) -> RunResult:
        """Simulate `[batch, T, *input_shape]` (or `[T, *shape]`) for `steps` steps."""
        data, batch, steps = normalize_inputs(inputs, self.input_shapes, steps)
        recorder = _Recorder(self, self._parse_probes(probes), batch, steps)
        self.model.run(data, steps, [recorder])
        activity = Activity(batch=batch, steps=steps)
        for name, (per_step, counts, active) in recorder.populations.items():
            n = int(np.prod(counts.shape))
            spiking = self.kernels[name].spiking
            activity.populations[name] = PopulationActivity(
                neurons=n,
                neuron_updates=n * steps * batch,
                active_updates=active[0],
                spikes=int(per_step.sum()) if spiking else 0,
                spikes_per_step=per_step.astype(np.int64) if spiking else None,
                spike_counts=counts.reshape(-1).astype(np.int64) if spiking else None,
            )
        return RunResult(outputs=recorder.outputs, probes=recorder.probes, activity=activity, backend=ReferenceBackend.name)


class _Recorder:
    """The float model's hook for a backend run: outputs, probes ([batch, T, ...]) and each neuron
    node's activity (spikes per step, spike counts per neuron, updates with v or i non-zero)."""

    def __init__(self, program: ReferenceProgram, wanted: list[tuple[str, str, str | None]], batch: int, steps: int):
        graph, kernels = program.graph, program.kernels
        self.outputs = {n: np.zeros((batch, steps, *graph.in_shapes[n])) for n in graph.outputs}
        self.probes: dict[str, np.ndarray] = {}
        self.wanted: dict[str, list[tuple[str, str | None]]] = {}
        for key, node, var in wanted:
            shape = graph.out_shapes[node] if var is None else graph.in_shapes[node]
            self.probes[key] = np.zeros((batch, steps, *shape))
            self.wanted.setdefault(node, []).append((key, var))
        self.populations = {
            name: (np.zeros(steps), np.zeros(graph.out_shapes[name]), [0])
            for name in kernels if isinstance(graph.nodes[name], S.NEURON_TYPES)
        }
        self.spiking = {name: kernels[name].spiking for name in self.populations}
        watch: dict[str, set[str]] = {n: set() for n in [*self.outputs, *self.wanted]}
        for node, items in self.wanted.items():
            watch[node].update(var for _, var in items if var is not None)
        for name in self.populations:
            watch.setdefault(name, set()).update(v for v in ("v", "i") if v in kernels[name].state_vars)
        self.watch = {n: tuple(sorted(v)) for n, v in watch.items()}

    def observe(self, name: str, t0: int, out: np.ndarray, state: Mapping[str, np.ndarray]) -> None:
        k = out.shape[0]
        if name in self.outputs:
            self.outputs[name][:, t0 : t0 + k] = np.moveaxis(out, 0, 1)
        for key, var in self.wanted.get(name, ()):
            self.probes[key][:, t0 : t0 + k] = np.moveaxis(out if var is None else state[var], 0, 1)
        if name in self.populations:
            per_step, counts, active = self.populations[name]
            nz = state["v"] != 0
            if "i" in state:
                nz |= state["i"] != 0
            active[0] += int(np.count_nonzero(nz))
            if self.spiking[name]:
                per_step[t0 : t0 + k] = out.reshape(k, -1).sum(axis=1)
                counts += out.sum(axis=(0, 1))


class ReferenceBackend:
    """Float NIR simulator, the golden model quantized backends are compared against."""

    name: ClassVar[str] = "reference"
    level: ClassVar[str] = "nir"

    def problems(self, graph: Any, dt: float = DEFAULT_DT, **options: Any) -> list[str]:
        """Why `graph` cannot be built with this `dt`, one line per problem (empty when it can)."""
        try:
            dt = check_dt(dt, "build option dt")
            g = _as_graph(graph)
        except SnncError as err:
            return [str(err)]
        found = []
        for name in g.topo_order():
            node = g.nodes[name]
            if isinstance(node, nir.Input):
                continue
            try:
                make_kernel(node, g.in_shapes[name], g.out_shapes[name], dt, f"{g.source}: node {name!r}")
            except SnncError as err:
                found.append(str(err))
        return found

    def build(self, graph: Any, dt: float = DEFAULT_DT, **options: Any) -> ReferenceProgram:
        """Compile `graph` (snnc Graph, nir.NIRGraph or .nir path) for simulation at step `dt`."""
        if options:
            raise BackendError(
                "unknown build option for the reference backend",
                got=sorted(options),
                expected="dt",
                hint="the reference backend takes only dt (seconds per step)",
            )
        return ReferenceProgram(_as_graph(graph), check_dt(dt, "build option dt"))
