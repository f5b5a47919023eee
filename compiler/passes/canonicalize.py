"""Canonicalize: every NIR neuron becomes one discrete CUBA form, every Linear an Affine.

Why: the quantizer should see one neuron model, the one a Loihi compartment runs, instead of six
continuous-time NIR models. The reference backend (`snnc.backends.reference`) integrates each
NIR neuron with forward Euler at step `dt`; written as a discrete recurrence, every one of them
(IF, LIF, CubaLIF, LI, I, CubaLI, and the stateless Threshold) is

    i[t] = alpha * i[t-1] + g * x[t]          (x: summed synaptic input of the step)
    v[t] = beta  * v[t-1] + i[t]
    z[t] = v[t] > thr;  v[t] = 0 where z       (spiking neurons only)

with i = v = 0 at the start:

    node      alpha          beta           g                              thr
    CubaLIF   1-dt/tau_syn   1-dt/tau_mem   (dt/tau_syn) w_in (dt/tau_mem) r   v_threshold - v_leak
    LIF       0              1-dt/tau       (dt/tau) r                     v_threshold - v_leak
    IF        0              1              r          (reference: no dt)  v_threshold
    Threshold 0              0              1                              threshold
    CubaLI / LI / I as CubaLIF / LIF / IF without spikes; their output is v + v_leak.

The reference starts v at v_leak and leaks towards it; the form above is in v' = v - v_leak,
which is exact when the neuron also resets to v_leak (v_reset == v_leak, e.g. both 0, as Loihi
resets v to 0). Otherwise the chip cannot follow: by default that is a `ParameterError` naming the
neuron; for neurons without leak (IF) `reset="shift"` shifts by v_reset instead and reports the
initial-state difference (v starts at 0, not at -v_reset, until the first spike) as an
approximation.

Spiking neurons are then normalized to thr = 1 by folding 1/thr into g (exact: v is linear and
resets to 0), so a layer with per-neuron thresholds still gets one shared chip threshold. The
result is written back as `nir.CubaLIF` (spiking) / `nir.CubaLI` (non-spiking readout) nodes
whose parameters reproduce the recurrence exactly under the reference's Euler step:
tau_syn = dt/(1-alpha), tau_mem = dt/(1-beta), r = tau_mem/dt, w_in = g tau_syn/dt, v_reset = 0.
No leak (beta = 1, IF and I) cannot be written with a finite tau_mem; it is stored as
tau_mem = dt * 2**100 (and r = 2**100), for which the reference's float64 update is exactly
v += g x. So the canonical graph runs on the reference with the same spikes as the original.

Also: Linear -> Affine (bias 0); a Scale that alone feeds a neuron folds into its gain; a gain
folds into the Affine/Conv that alone feeds the neuron (rows and bias scaled; otherwise it stays
in w_in and the lowering in `netlist` scales the incoming projections); an Output fed by
anything but a single neuron gets a relay CubaLI (alpha = beta = 0, so v = x, exact); Delay
lengths are checked to be whole steps. The graph's metadata records `snnc_dt`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import nir
import numpy as np

from snnc.ir import shapes as S
from snnc.ir.errors import ParameterError, UnsupportedNodeError
from snnc.ir.graph import Graph
from snnc.ir.reset_mode import META_KEY as RESET_KEY
from snnc.ir.reset_mode import ResetMode, reset_mode_of
from snnc.ir.timestep import check_dt

from .base import Pass, PassResult

NO_LEAK_TAU_STEPS = 2.0**100
"""tau_mem / dt used to write beta = 1 (no leak) as a finite CubaLIF: dt/tau_mem = 2**-100 is
below float64 resolution against v, so the reference's update is exactly v += i."""

DELAY_TOLERANCE_STEPS = 1e-3
META_DT = "snnc_dt"
META_CANONICAL = "snnc_canonical"
META_RELAY = "snnc_relay"


@dataclass
class Cuba:
    """Discrete CUBA parameters of one neuron node (scalars or arrays of the node's shape)."""

    shape: tuple[int, ...]
    alpha: np.ndarray
    beta: np.ndarray
    gain: np.ndarray
    thr: np.ndarray | None  # None: non-spiking (readout of v)
    offset: np.ndarray  # value added to v' to give the NIR output (non-spiking: v_leak)
    source: str = ""
    reset_mode: ResetMode = "zero"  # snnc.ir.reset_mode: zero (v' = v_reset), subtract (v' -= thr next step), none
    v_reset: np.ndarray | float = 0.0  # v' after a spike in reset_mode zero (v_reset - v_leak)

    @property
    def spiking(self) -> bool:
        return self.thr is not None


def _arr(node: Any, name: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    value = np.asarray(getattr(node, name), dtype=np.float64)
    try:
        return np.broadcast_to(value.reshape(()) if value.size == 1 else value, shape).astype(np.float64)
    except ValueError:
        raise ParameterError(
            f"parameter {name} does not fit the neuron's shape",
            where=f"{where}.{name}",
            expected=f"a scalar or shape {shape}",
            got=value.shape,
        ) from None


def _euler(dt: float, tau: np.ndarray, name: str, where: str) -> np.ndarray:
    a = dt / tau
    if np.any(a > 1.0 + 1e-12):
        raise ParameterError(
            f"time step dt is longer than {name}; forward Euler would overshoot and Loihi's decay "
            "cannot express it",
            where=f"{where}.{name}",
            expected=f"{name} >= dt = {dt:g} s",
            got=float(np.min(tau)),
            hint="compile with a smaller dt, or check the time constants are in seconds",
        )
    return np.minimum(a, 1.0)


def discrete_params(node: nir.NIRNode, dt: float, shape: tuple[int, ...], where: str, reset: str = "exact") -> tuple[Cuba, list[str]]:
    """The discrete CUBA recurrence (table in the module docstring) of a NIR neuron node.

    Returns the parameters and a list of approximation notes (empty when exact).
    """
    notes: list[str] = []
    p = lambda name: _arr(node, name, shape, where)  # noqa: E731
    zeros = np.zeros(shape)
    kind = type(node).__name__
    if isinstance(node, (nir.CubaLIF, nir.CubaLI)):
        a_s = _euler(dt, p("tau_syn"), "tau_syn", where)
        a_m = _euler(dt, p("tau_mem"), "tau_mem", where)
        alpha, beta = 1.0 - a_s, 1.0 - a_m
        gain = a_s * p("w_in") * a_m * p("r")
        v_leak = p("v_leak")
    elif isinstance(node, (nir.LIF, nir.LI)):
        a = _euler(dt, p("tau"), "tau", where)
        alpha, beta, gain, v_leak = zeros.copy(), 1.0 - a, a * p("r"), p("v_leak")
    elif isinstance(node, (nir.IF, nir.I)):
        alpha, beta, gain, v_leak = zeros.copy(), np.ones(shape), p("r"), zeros.copy()
    elif isinstance(node, nir.Threshold):
        return Cuba(shape, zeros.copy(), zeros.copy(), np.ones(shape), p("threshold"), zeros.copy(), kind), notes
    else:
        raise UnsupportedNodeError(f"{kind} is not a neuron", where=where)

    if isinstance(node, (nir.LI, nir.I, nir.CubaLI)):
        return Cuba(shape, alpha, beta, gain, None, v_leak, kind), notes

    thr, v_reset = p("v_threshold"), p("v_reset")
    mode = reset_mode_of(node)
    if mode != "zero" or np.allclose(v_reset, v_leak, rtol=1e-9, atol=1e-12):
        shift = v_leak
    elif reset == "exact":
        # the chip resets v' to (v_reset - v_leak) exactly (Population.v_reset)
        return Cuba(shape, alpha, beta, gain, thr - v_leak, zeros.copy(), kind, mode, v_reset - v_leak), notes
    elif reset == "shift":
        shift = v_reset
        bad = float(np.max(np.abs(v_leak - v_reset)))
        notes.append(
            f"{where}: v_reset != v_leak; shifted by v_reset (exact after the first spike), the "
            f"initial state differs by up to {bad:g} because Loihi starts v at 0"
        )
    else:
        i = int(np.argmax(np.abs(v_reset - v_leak).ravel()))
        raise ParameterError(
            "v_reset differs from the resting voltage; Loihi starts v at 0 and resets v to 0, so "
            "only v_reset == v_leak can be mapped exactly",
            where=f"{where}.v_reset",
            expected=f"v_reset == v_leak = {float(v_leak.ravel()[i]):g}",
            got=float(v_reset.ravel()[i]),
            hint="retrain/export with v_reset equal to v_leak (usually 0), or compile with "
            "reset='shift' to accept a reported approximation",
        )
    # Leak towards v_leak in v' = v - shift: beta v' + (1-beta)(v_leak - shift) + i.
    leak_bias = (1.0 - beta) * (v_leak - shift)
    if np.any(np.abs(leak_bias) > 0):
        raise ParameterError(
            "with v_reset != v_leak, a leaky neuron keeps a constant pull towards v_leak that Loihi's "
            "reset-to-0 compartment cannot express (reset='shift' only covers neurons without leak)",
            where=f"{where}.v_leak",
            expected=f"v_leak == v_reset = {float(np.ravel(shift)[0]):g}",
            got=float(np.ravel(v_leak)[0]),
            hint="export the model with v_reset equal to v_leak",
        )
    return Cuba(shape, alpha, beta, gain, thr - shift, zeros.copy(), kind, mode), notes


def cuba_node(c: Cuba, dt: float) -> nir.NIRNode:
    """A CubaLIF/CubaLI whose Euler update at `dt` is exactly the recurrence `c`."""
    alpha = np.asarray(c.alpha, dtype=np.float64)
    beta = np.asarray(c.beta, dtype=np.float64)
    if np.any(alpha >= 1.0) or np.any(alpha < 0) or np.any(beta < 0) or np.any(beta > 1):
        raise ParameterError("decay factors out of [0, 1)", where=c.source, got=(float(alpha.max()), float(beta.min())))
    tau_syn = dt / (1.0 - alpha)
    no_leak = beta >= 1.0
    tau_mem = np.where(no_leak, dt * NO_LEAK_TAU_STEPS, dt / np.where(no_leak, 0.5, 1.0 - beta))
    r = np.where(no_leak, NO_LEAK_TAU_STEPS, 1.0 / np.where(no_leak, 0.5, 1.0 - beta))
    w_in = c.gain / (1.0 - alpha)
    meta: dict[str, int | str] = {META_CANONICAL: 1}
    if c.spiking:
        meta[RESET_KEY] = c.reset_mode
        return nir.CubaLIF(
            tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=np.zeros(c.shape), v_threshold=np.asarray(c.thr, dtype=np.float64),
            v_reset=np.broadcast_to(np.asarray(c.v_reset, dtype=np.float64), c.shape).copy(), w_in=w_in, metadata=meta,
        )
    return nir.CubaLI(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=np.asarray(c.offset, dtype=np.float64), w_in=w_in, metadata=meta)


def read_canonical(node: nir.NIRNode, dt: float, shape: tuple[int, ...], where: str) -> Cuba:
    """The recurrence of a canonical node (what the quantizer reads)."""
    if not isinstance(node, (nir.CubaLIF, nir.CubaLI)):
        raise UnsupportedNodeError(
            f"{type(node).__name__} is not in canonical form",
            where=where,
            hint="run the canonicalize pass before fuse/timing/quantize",
        )
    c, _ = discrete_params(node, dt, shape, where)
    # beta written as no-leak rounds to 1 - 2**-100 == 1.0 in float64 already; snap tiny errors.
    c.beta = np.where(np.abs(c.beta - 1.0) < 1e-15, 1.0, c.beta)
    c.alpha = np.where(np.abs(c.alpha) < 1e-15, 0.0, c.alpha)
    c.beta = np.where(np.abs(c.beta) < 1e-15, 0.0, c.beta)
    return c


def graph_dt(graph: Graph, where: str = "graph") -> float:
    dt = graph.metadata.get(META_DT)
    if dt is None:
        raise UnsupportedNodeError(
            "graph is not canonical (no snnc_dt in its metadata)",
            where=where,
            hint="run the canonicalize pass first",
        )
    return float(np.asarray(dt))


LINEAR_TYPES = (nir.Affine, nir.Linear, nir.Conv1d, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d, nir.Flatten, nir.Scale, nir.Delay)


def replace_edge(graph: Graph, old: tuple[str, str], new: tuple[str, str] | None) -> None:
    """Replace an edge in place (keeping the list order, which fixes which edges are recurrent)."""
    i = graph.edges.index(old)
    if new is None or new in graph.edges:
        del graph.edges[i]
    else:
        graph.edges[i] = new


def contract(graph: Graph, name: str) -> None:
    """Remove a node with one predecessor and one successor, joining them in place."""
    (pred,) = graph.predecessors(name)
    (succ,) = graph.successors(name)
    replace_edge(graph, (pred, name), (pred, succ))
    replace_edge(graph, (name, succ), None)
    del graph.nodes[name]


@dataclass(frozen=True)
class Canonicalize(Pass):
    """Rewrite neurons into the canonical CUBA form at step `dt` (see module docstring).

    `reset`: "exact" (default) refuses v_reset != v_leak; "shift" accepts it with a reported
    approximation. `normalize_threshold`: fold per-neuron thresholds into the input gain.
    """

    dt: float = 1e-4
    reset: str = "exact"
    normalize_threshold: bool = True
    fold_gain: bool = True

    name: ClassVar[str] = "canonicalize"

    def run(self, graph: Graph) -> PassResult:
        self.check_level(graph)
        dt = check_dt(self.dt, "compile option dt")
        if self.reset not in ("exact", "shift"):
            raise ParameterError("reset must be 'exact' or 'shift'", where="canonicalize option reset", got=self.reset)
        g = graph.copy()
        report: dict[str, Any] = {"neurons": {}, "linear_to_affine": [], "scale_folded": [], "gain_folded": [], "relays": [], "approximations": []}

        for name in list(g.nodes):
            node = g.nodes[name]
            if isinstance(node, nir.Linear):
                w = np.asarray(node.weight)
                g.nodes[name] = nir.Affine(weight=w, bias=np.zeros(w.shape[0], dtype=np.float64), metadata=dict(node.metadata or {}))
                report["linear_to_affine"].append(name)
            elif isinstance(node, nir.Delay):
                steps = np.asarray(node.delay, dtype=np.float64) / dt
                if np.any(np.abs(steps - np.rint(steps)) > DELAY_TOLERANCE_STEPS):
                    raise ParameterError(
                        "delay is not a whole number of time steps",
                        where=f"{g.source}: node {name!r}.delay",
                        expected=f"a multiple of dt = {dt:g} s",
                        got=np.asarray(node.delay).ravel()[:3].tolist(),
                        hint="compile with a dt that divides every delay",
                    )

        for name in list(g.nodes):
            node = g.nodes[name]
            if not isinstance(node, S.NEURON_TYPES + (nir.Threshold,)):
                continue
            where = f"{g.source}: node {name!r}"
            shape = tuple(g.in_shapes[name])
            c, notes = discrete_params(node, dt, shape, where, self.reset)
            report["approximations"].extend(notes)
            normalized = False
            if c.thr is not None and self.normalize_threshold:  # spiking
                if np.any(c.thr < 0):
                    raise ParameterError(
                        "threshold below the reset voltage: the neuron would fire every step from rest, "
                        "which a Loihi compartment (spike when v > vth >= 0) cannot express",
                        where=f"{where}.v_threshold",
                        expected=">= v_reset",
                        got=float(np.min(c.thr)),
                    )
                pos = c.thr > 0
                if np.any(pos) and not np.all(c.thr == 1.0):
                    scale = np.where(pos, c.thr, 1.0)  # v' / thr: gain, threshold and reset voltage alike
                    c.gain = c.gain / scale
                    c.v_reset = np.asarray(c.v_reset, dtype=np.float64) / scale
                    c.thr = np.where(pos, 1.0, c.thr)
                    normalized = True
            g.nodes[name] = cuba_node(c, dt)
            report["neurons"][name] = {
                "from": type(node).__name__,
                "spiking": c.spiking,
                "alpha": _summary(c.alpha),
                "beta": _summary(c.beta),
                "threshold_normalized": normalized,
                "reset": c.reset_mode + ("" if c.reset_mode != "zero" or not np.any(c.v_reset) else " (to v_reset != v_leak)"),
            }

        if self.fold_gain:
            self._fold_scales(g, report)
            self._fold_gains(g, report, dt)
        self._insert_relays(g, report, dt)
        g.metadata = dict(g.metadata)
        g.metadata[META_DT] = dt
        g.validate()
        return PassResult(g, report)

    # -- folding --------------------------------------------------------------------------------
    @staticmethod
    def _neuron_gain(node) -> np.ndarray:
        return np.asarray(node.w_in, dtype=np.float64) * (1.0 - _alpha_of(node))

    @staticmethod
    def _set_gain(node, gain: np.ndarray) -> None:
        node.w_in = np.asarray(gain, dtype=np.float64) / (1.0 - _alpha_of(node))

    def _fold_scales(self, g: Graph, report: dict) -> None:
        """A Scale that is the only input of a neuron multiplies that neuron's gain."""
        for name in list(g.nodes):
            node = g.nodes.get(name)
            if not isinstance(node, nir.Scale):
                continue
            succs, preds = g.successors(name), g.predecessors(name)
            if len(succs) != 1 or len(preds) != 1:
                continue
            target = g.nodes[succs[0]]
            if not isinstance(target, (nir.CubaLIF, nir.CubaLI)) or g.predecessors(succs[0]) != [name]:
                continue
            shape = g.in_shapes[succs[0]]
            scale = np.broadcast_to(np.asarray(node.scale, dtype=np.float64), shape)
            self._set_gain(target, self._neuron_gain(target) * scale)
            contract(g, name)
            report["scale_folded"].append(name)

    def _fold_gains(self, g: Graph, report: dict, dt: float) -> None:
        """Move each neuron's gain into the Affine/Conv that alone feeds it (exact)."""
        for name in list(g.nodes):
            node = g.nodes[name]
            if not isinstance(node, (nir.CubaLIF, nir.CubaLI)):
                continue
            preds = g.predecessors(name)
            if len(preds) != 1:
                continue
            src = g.nodes[preds[0]]
            if g.successors(preds[0]) != [name]:
                continue
            gain = np.broadcast_to(self._neuron_gain(node), g.in_shapes[name])
            if np.all(gain == 1.0):
                continue
            if isinstance(src, nir.Affine) and len(g.out_shapes[preds[0]]) == 1:
                w = np.array(src.weight, dtype=np.float64)  # one float64 copy, scaled in place
                w *= gain[:, None]
                b = np.broadcast_to(np.asarray(src.bias, dtype=np.float64), gain.shape) * gain
                g.nodes[preds[0]] = nir.Affine(weight=w, bias=b, metadata=dict(src.metadata or {}))
            elif isinstance(src, nir.Conv2d) and len(gain.shape) == 3 and np.all(gain == gain[:, :1, :1]):
                ch = gain[:, 0, 0]
                w = np.asarray(src.weight, dtype=np.float64) * ch[:, None, None, None]
                b = np.broadcast_to(np.asarray(src.bias, dtype=np.float64), ch.shape) * ch
                g.nodes[preds[0]] = nir.Conv2d(
                    input_shape=src.input_shape, weight=w, stride=src.stride, padding=src.padding,
                    dilation=src.dilation, groups=src.groups, bias=b, metadata=dict(src.metadata or {}),
                )
            else:
                continue
            self._set_gain(node, np.ones(gain.shape))
            report["gain_folded"].append(f"{name} -> {preds[0]}")

    def _insert_relays(self, g: Graph, report: dict, dt: float) -> None:
        """Every Output reads exactly one neuron: add a v = x relay where it reads anything else."""
        for name in list(g.outputs):
            preds = g.predecessors(name)
            if len(preds) == 1 and isinstance(g.nodes[preds[0]], (nir.CubaLIF, nir.CubaLI)):
                continue
            shape = tuple(g.in_shapes[name])
            relay = g.unique_name(f"{name}.relay")
            zeros = np.zeros(shape)
            node = cuba_node(Cuba(shape, zeros, zeros, np.ones(shape), None, zeros, "relay"), dt)
            node.metadata[META_RELAY] = 1
            g.add_node(relay, node)
            for p in preds:
                replace_edge(g, (p, name), (p, relay))
            g.edges.append((relay, name))
            report["relays"].append(relay)


def _alpha_of(node) -> np.ndarray:
    """alpha of a canonical node, written as 1 - dt/tau_syn = 1 - (1 - alpha)."""
    # w_in = g tau_syn/dt and dt/tau_syn = 1 - alpha; recover (1 - alpha) without dt:
    # canonical nodes store r = tau_mem/dt, so dt = tau_mem / r.
    dt = np.asarray(node.tau_mem, dtype=np.float64) / np.asarray(node.r, dtype=np.float64)
    return 1.0 - dt / np.asarray(node.tau_syn, dtype=np.float64)


def _summary(a: np.ndarray):
    a = np.asarray(a)
    u = np.unique(a)
    return float(u[0]) if u.size == 1 else {"min": float(a.min()), "max": float(a.max())}
