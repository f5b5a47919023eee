"""The float model: NIR semantics, forward Euler at step `dt`, batched with numpy (float64).

snnc's one float evaluator. The reference backend runs it (probes, activity, RunResult); the
quantizer's calibration and the fidelity guard run it on the canonical graph with their own
hooks (`FloatModel.run(..., hooks)`: each hook names the nodes and state variables it reads and
gets them a block of steps at a time). So the golden model, the calibration data and the guard's
float side are one computation, not copies held equal by tests.

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
compared AFTER integrating the step's input, and the reset (`snnc.ir.reset_mode`; NIR's own is
v = v_reset, NOT subtraction) is applied in the SAME step where z = 1. The next step integrates
from v_reset (no refractory step). The current i is never reset. The output of a spiking node is
z (0./1.); probe "node/v" shows v after the reset (so 0 at a spike step, like norse's trace).
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

How a run is evaluated (the same numbers as stepping every node through every step): the graph's
strongly connected components run in topological order, a block of steps at a time (as many as
`MAX_BLOCK_BYTES` of node outputs hold). A node outside every loop takes the whole block at once:
a stateless node (Affine, Conv, ...) in one call on all its rows, a neuron or Delay step by step
from its input block. The nodes of a loop step together, each step in `Graph.topo_order()`.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

import nir
import numpy as np

from .float_kernels import Kernel, make_kernel
from .graph import Graph
from .order import component_order

MAX_BLOCK_BYTES = 1 << 28  # node outputs kept for one block of steps (all nodes, all samples)


class Hook(Protocol):
    """What a run reports, block by block: for each node in `watch` (name -> state variables to
    read, e.g. ("v", "i"); the output is always given), `observe(name, t0, out, state)` gets its
    output for steps t0.. as [k, batch, *out_shape] and each variable as [k, batch, *in_shape]
    (after each step). Arrays are the run's own: copy what you keep."""

    @property
    def watch(self) -> Mapping[str, Sequence[str]]: ...

    def observe(self, name: str, t0: int, out: np.ndarray, state: Mapping[str, np.ndarray]) -> None: ...


@dataclass
class _Node:
    name: str
    kernel: Kernel
    forward: tuple[str, ...]  # predecessors read in the same step
    recurrent: tuple[str, ...]  # predecessors read from the previous step
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


class FloatModel:
    """A graph compiled for float evaluation at step `dt`; `run` may be called many times.

    Builds every node's kernel (parameters checked against shapes, Euler coefficients computed);
    raises the kernels' SnncErrors naming the node."""

    def __init__(self, graph: Graph, dt: float):
        self.graph = graph
        self.dt = dt
        self.input_shapes = {n: tuple(graph.out_shapes[n]) for n in graph.inputs}
        order = [n for n in graph.topo_order() if not isinstance(graph.nodes[n], nir.Input)]
        self.nodes: dict[str, _Node] = {}
        for name in order:
            preds = graph.predecessors(name)
            self.nodes[name] = _Node(
                name=name,
                kernel=make_kernel(graph.nodes[name], graph.in_shapes[name], graph.out_shapes[name], dt,
                                   f"{graph.source}: node {name!r}"),
                forward=tuple(p for p in preds if (p, name) not in graph.recurrent),
                recurrent=tuple(p for p in preds if (p, name) in graph.recurrent),
                in_shape=tuple(graph.in_shapes[name]),
                out_shape=tuple(graph.out_shapes[name]),
            )
        self.kernels = {name: node.kernel for name, node in self.nodes.items()}
        self.recurrent_sources = sorted({p for node in self.nodes.values() for p in node.recurrent})
        self.components = self._components(order)
        self.rest = self._rest_outputs()

    def _components(self, order: list[str]) -> list[tuple[list[str], bool]]:
        """(members in topo order, whether they form a loop), in an order where every edge
        between components points forward."""
        if not self.graph.recurrent:  # every loop has a recurrent edge: a graph without one has none
            return [([name], False) for name in order]
        edges = [(a, b) for a, b in self.graph.edges if a in self.nodes and b in self.nodes]
        return [(names, len(names) > 1 or any(self.nodes[names[0]].recurrent)) for names in component_order(order, edges)]

    def _rest_outputs(self) -> dict[str, np.ndarray]:
        """Outputs at the virtual step -1 (batch 1), for the recurrent edges' first delivery."""
        if not self.recurrent_sources:
            return {}
        values = {n: np.zeros((1, *shape)) for n, shape in self.input_shapes.items()}
        for node in self.nodes.values():
            values[node.name] = node.kernel.rest(_sum(node.forward, values, (1, *node.in_shape)))
        return {n: values[n] for n in self.recurrent_sources}

    # -- running ----------------------------------------------------------------------------------
    def block_steps(self, batch: int, steps: int) -> int:
        """Steps per block: all node outputs of a block fit MAX_BLOCK_BYTES."""
        per_step = 8 * batch * (sum(math.prod(s) for s in self.input_shapes.values())
                                + sum(math.prod(n.out_shape) for n in self.nodes.values()))
        return int(max(1, min(steps, MAX_BLOCK_BYTES // max(per_step, 1))))

    def run(self, data: Mapping[str, np.ndarray], steps: int, hooks: Sequence[Hook] = ()) -> None:
        """Evaluate `data` ({input: [batch, steps, *shape]} floats) for `steps` steps, reporting to `hooks`."""
        batch = next(iter(data.values())).shape[0] if data else 1
        watch: dict[str, set[str]] = {}
        for hook in hooks:
            for name, variables in hook.watch.items():
                watch.setdefault(name, set()).update(variables)
        states = {name: node.kernel.init(batch) for name, node in self.nodes.items()}
        last = {n: np.broadcast_to(v, (batch, *v.shape[1:])).copy() for n, v in self.rest.items()}
        block = self.block_steps(batch, steps)
        for t0 in range(0, steps, block):
            k = min(block, steps - t0)
            values = {n: np.ascontiguousarray(np.moveaxis(np.asarray(a[:, t0 : t0 + k], np.float64), 1, 0))
                      for n, a in data.items()}  # [k, batch, *shape]
            for name in values:
                for hook in hooks:
                    if name in hook.watch:
                        hook.observe(name, t0, values[name], {})
            for members, looped in self.components:
                recorded: dict[str, dict[str, list[np.ndarray]]] = {n: {v: [] for v in watch.get(n, ())} for n in members}
                if looped:
                    self._loop(members, values, last, states, recorded, k, batch)
                else:
                    self._alone(self.nodes[members[0]], values, states, recorded[members[0]], k, batch)
                for name in members:
                    if name in watch:
                        state = {v: series if isinstance(series, np.ndarray) else np.stack(series)
                                 for v, series in recorded[name].items()}
                        for hook in hooks:
                            if name in hook.watch:
                                hook.observe(name, t0, values[name], state)
            last = {n: values[n][-1] for n in self.recurrent_sources}

    def _alone(self, node: _Node, values, states, recorded, k: int, batch: int) -> None:
        """A node outside every loop, for a block of k steps: its input block is complete."""
        x = _sum(node.forward, values, (k, batch, *node.in_shape))
        kernel = node.kernel
        if kernel.stateless:
            y = kernel.step(x.reshape(k * batch, *node.in_shape), states[node.name])
            values[node.name] = y.reshape(k, batch, *y.shape[1:])
            return
        state = states[node.name]
        module = _compiled_scan(kernel)
        if module is not None:
            values[node.name], series = module.scan(kernel, x, state, recorded)
            recorded.update(series)
            return
        out = np.empty((k, batch, *node.out_shape))
        for t in range(k):
            out[t] = kernel.step(x[t], state)
            for var, steps in recorded.items():
                steps.append(state[var])
        values[node.name] = out

    def _loop(self, members: list[str], values, last, states, recorded, k: int, batch: int) -> None:
        """The nodes of one loop, stepped together through a block of k steps."""
        nodes = [self.nodes[n] for n in members]
        compiled = {}  # neurons the compiled scan steps (float_scan.CompiledNeuron), one step at a time
        for node in nodes:
            values[node.name] = np.empty((k, batch, *node.out_shape))
            module = _compiled_scan(node.kernel)
            if module is not None:
                compiled[node.name] = module.CompiledNeuron(node.kernel, states[node.name], k, batch, recorded[node.name])
        # per node: its output block, its sources' blocks (same step) and (block, rest output) of its
        # recurrent sources (previous step), the compiled neuron or the kernel, its state and records
        plan = [(values[node.name], [values[n] for n in node.forward], [(values[n], last[n]) for n in node.recurrent],
                 compiled.get(node.name), node.kernel, states[node.name], list(recorded[node.name].items())) for node in nodes]
        for t in range(k):
            for out, forward, recurrent, neuron, kernel, state, series in plan:
                x = _add([a[t] for a in forward] + [a[t - 1] if t > 0 else rest for a, rest in recurrent])
                if neuron is not None:
                    neuron.advance(t, x.reshape(1, batch, neuron.n), out[t].reshape(1, batch, neuron.n))
                    continue
                out[t] = kernel.step(x, state)
                for var, steps in series:
                    steps.append(state[var])
        for name, neuron in compiled.items():
            recorded[name].update(neuron.finish(states[name]))


def _compiled_scan(kernel: Kernel):
    """The module `snnc.ir.float_scan` when it can step this kernel and numba is loaded already
    (the same bits as stepping it here; a process that never loads numba does not pay its start)."""
    if "numba" not in sys.modules:
        return None
    from . import float_scan

    return float_scan if type(kernel) in float_scan.SCANNED else None


def _sum(sources: Sequence[str], values: Mapping[str, np.ndarray], shape) -> np.ndarray:
    """The summed input of a node: its sources' values added in order (zeros without sources)."""
    return _add([values[s] for s in sources]) if sources else np.zeros(shape)


def _add(terms: list[np.ndarray]) -> np.ndarray:
    """terms[0] + terms[1] + ... in this order (a node in a loop has at least its recurrent input)."""
    x = terms[0]
    for term in terms[1:]:
        x = x + term
    return x
