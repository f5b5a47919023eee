"""The float golden model: NIR semantics, forward Euler at step `dt`, batched with numpy.

Conventions (chosen so that the NIR paper's recordings are reproduced: the norse/exact LIF trace,
snnTorch's Braille hidden-layer spikes, 0 of 119 differing):

Time. Step t (0-based) covers [t dt, (t+1) dt); input sample t is applied in step t and the
output/probe sample t is the value at the end of step t. `dt` is a build option (default 1e-4 s).

Order inside a step. Nodes are evaluated in `Graph.topo_order()`. A node's input is the SUM of
  * the outputs of its feed-forward predecessors in the SAME step t (zero latency, so a spike
    entering an Affine -> LIF chain can make the LIF fire in the step it arrives), and
  * the outputs of its recurrent predecessors (edges in `Graph.recurrent`) from step t-1.
At t = 0 a recurrent edge delivers the source's output at a virtual step -1, the network at rest:
inputs zero, spiking neurons silent, integrators (LI, I, CubaLI) at their initial voltage, Delays
empty, recurrent edges zero, stateless nodes evaluated on that. So an Affine on a recurrent path
delivers its bias already at t = 0, as snnTorch's recurrent nn.Linear does with its zero initial
spikes (needed for the Braille match).

Neurons (x = summed input of the step; i, v = state; all start at i = 0 and v = v_leak, or
v = 0 for IF and I which have no leak):
  LIF      v += dt/tau * (v_leak - v + r x)
  CubaLIF  i += dt/tau_syn * (w_in x - i);  then  v += dt/tau_mem * (v_leak - v + r i)
           (v integrates the NEW current of the same step)
  LI       as LIF without spikes; output v
  CubaLI   as CubaLIF without spikes; output v
  IF       v += r x        (per step: NIR's dv/dt = R I is integrated WITHOUT dt, as sinabs,
  I        v += r x         lava-dl and snnTorch importers do; output of I is v)
Spiking neurons then fire z = (v > v_threshold), strictly greater (NIR's Heaviside, snnTorch's),
compared AFTER integrating the step's input, and the reset v = v_reset (NIR: reset to v_reset,
NOT subtraction) is applied in the SAME step where z = 1. The next step integrates from v_reset
(no refractory step). The current i is never reset. The output of a spiking node is z (0./1.);
probe "node/v" shows v after the reset (so 0 at a spike step, like norse's trace).
Delay     y[t] = x[t - round(delay/dt)] (NIR: y(t) = x(t - tau), delay in seconds), zero before;
          per-neuron delays allowed; a delay off the dt grid by > 1e-3 step is an error.
Threshold z = (x > threshold). Scale y = scale x. Affine y = x W^T + b, Linear y = x W^T (last
dimension). Conv1d/Conv2d: cross-correlation as torch (float64), padding int/pair/'same'/'valid'.
SumPool2d: windowed sum, zero padding. AvgPool2d: windowed mean, padding counted (torch default).
Flatten: over the non-batch dimensions, start_dim/end_dim as in NIR. Output: summed input.

snnTorch mapping. snnTorch's export (Synaptic/RSynaptic, dt = 1e-4) writes
tau_syn = dt/(1-alpha), tau_mem = dt/(1-beta), r = tau_mem/dt, w_in = tau_syn/dt, v_leak = 0,
v_reset = 0; with the Euler steps above that is exactly i = alpha i + x, v = beta v + i, the
snnTorch update. The same-step reset equals snnTorch's reset-to-zero for `Leaky`; snnTorch's
`Synaptic`/`RLeaky`/`RSynaptic` also hold v at zero for the whole step after a spike, which this
native CubaLIF does not (the torch frontend's reset="exact" mode builds that behaviour from
standard NIR nodes instead; see compiler/frontends/torch.py).

Parameters stay scalars or per-neuron arrays and broadcast at run time against
[batch, *shape]. Nothing here rounds or quantizes: everything is float64.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import nir
import numpy as np

from snnc.backends.base import Activity, PopulationActivity, RunResult, normalize_inputs
from snnc.ir import shapes as S
from snnc.ir.errors import BackendError, SnncError
from snnc.ir.graph import Graph
from snnc.ir.timestep import check_dt

from .kernels import Kernel, make_kernel

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




@dataclass
class _Step:
    """One node of the per-step plan."""

    name: str
    kernel: Kernel
    forward: tuple[str, ...]  # predecessors read in the same step
    recurrent: tuple[str, ...]  # predecessors read from the previous step
    out_shape: tuple[int, ...]


class ReferenceProgram:
    """A graph compiled for the float simulator; `run` may be called many times."""

    def __init__(self, graph: Graph, dt: float):
        self.graph = graph
        self.dt = dt
        self.input_shapes = {n: tuple(graph.out_shapes[n]) for n in graph.inputs}
        self.plan: list[_Step] = []
        for name in graph.topo_order():
            node = graph.nodes[name]
            if isinstance(node, nir.Input):
                continue
            where = f"{graph.source}: node {name!r}"
            kernel = make_kernel(node, graph.in_shapes[name], graph.out_shapes[name], dt, where)
            preds = graph.predecessors(name)
            self.plan.append(
                _Step(
                    name=name,
                    kernel=kernel,
                    forward=tuple(p for p in preds if (p, name) not in graph.recurrent),
                    recurrent=tuple(p for p in preds if (p, name) in graph.recurrent),
                    out_shape=tuple(graph.out_shapes[name]),
                )
            )
        self.kernels = {s.name: s.kernel for s in self.plan}
        self.recurrent_sources = sorted({p for s in self.plan for p in s.recurrent})
        self.rest = self._rest_outputs()

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
    def _rest_outputs(self) -> dict[str, np.ndarray]:
        """Outputs at the virtual step -1 (batch 1), for the recurrent edges' first delivery."""
        if not self.recurrent_sources:
            return {}
        values = {n: np.zeros((1, *shape)) for n, shape in self.input_shapes.items()}
        for step in self.plan:
            x = self._sum(step.forward, values, (1, *self.graph.in_shapes[step.name]))
            values[step.name] = step.kernel.rest(x)
        return {n: values[n] for n in self.recurrent_sources}

    @staticmethod
    def _sum(sources: Sequence[str], values: Mapping[str, np.ndarray], shape) -> np.ndarray:
        if not sources:
            return np.zeros(shape)
        x = values[sources[0]]
        for src in sources[1:]:
            x = x + values[src]
        return x

    def run(
        self,
        inputs: np.ndarray | Mapping[str, np.ndarray],
        steps: int | None = None,
        probes: Sequence[str] = (),
    ) -> RunResult:
        """Simulate `[batch, T, *input_shape]` (or `[T, *shape]`) for `steps` steps."""
        data, batch, steps = normalize_inputs(inputs, self.input_shapes, steps)
        data = {n: a.astype(np.float64, copy=False) for n, a in data.items()}
        wanted = self._parse_probes(probes)

        outputs = {n: np.zeros((batch, steps, *self.graph.in_shapes[n])) for n in self.graph.outputs}
        probe_out: dict[str, np.ndarray] = {}
        for key, node, var in wanted:
            shape = self.graph.out_shapes[node] if var is None else self.graph.in_shapes[node]
            probe_out[key] = np.zeros((batch, steps, *shape))

        states = {s.name: s.kernel.init(batch) for s in self.plan}
        prev = {n: np.broadcast_to(v, (batch, *v.shape[1:])).copy() for n, v in self.rest.items()}
        populations = {
            s.name: (np.zeros(steps), np.zeros(s.out_shape), [0])
            for s in self.plan
            if isinstance(self.graph.nodes[s.name], S.NEURON_TYPES)
        }

        values: dict[str, np.ndarray] = {}
        for t in range(steps):
            for name, arr in data.items():
                values[name] = arr[:, t]
            for step in self.plan:
                x = self._sum(step.forward, values, None) if step.forward else None
                for src in step.recurrent:
                    x = prev[src] if x is None else x + prev[src]
                values[step.name] = step.kernel.step(x, states[step.name])
            for name in outputs:
                outputs[name][:, t] = values[name]
            for key, node, var in wanted:
                probe_out[key][:, t] = values[node] if var is None else states[node][var]
            for name, (per_step, counts, active) in populations.items():
                kernel = self.kernels[name]
                state = states[name]
                nz = state["v"] != 0
                if "i" in state:
                    nz |= state["i"] != 0
                active[0] += int(np.count_nonzero(nz))
                if kernel.spiking:
                    z = values[name]
                    per_step[t] = z.sum()
                    counts += z.sum(axis=0)
            if self.recurrent_sources:
                prev = {n: values[n] for n in self.recurrent_sources}

        activity = Activity(batch=batch, steps=steps)
        for name, (per_step, counts, active) in populations.items():
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
        return RunResult(outputs=outputs, probes=probe_out, activity=activity, backend=ReferenceBackend.name)


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
