"""One step of every NIR node type, vectorized over `[batch, *shape]` numpy arrays (float64).

`make_kernel` turns a node into a `Kernel` once, at build time: parameters are converted to
float64 and checked to broadcast against the node's shape (they are never broadcast in the graph
itself), Euler coefficients such as `dt / tau` are precomputed, convolutions get their weights as
torch tensors. The semantics (evaluation order, reset, dt) are documented in `float_model.py`,
which runs these kernels. Kernels never modify their input arrays and return a fresh output array
every step. A `stateless` kernel's step treats every row alike, so it may take the rows of many
steps at once; a spiking kernel leaves v after integrating and before its reset in `state["v_in"]`
(what calibration measures).
"""
from __future__ import annotations

import math
from typing import Any

import nir
import numpy as np

from . import shapes as S
from .conv import torch_threads
from .errors import ParameterError, ShapeError, UnsupportedNodeError
from .reset_mode import reset_mode_of

# A delay whose length in steps is further than this from an integer is an error, not rounded:
# rounding 1.5 steps silently would simulate a different network.
DELAY_TOLERANCE_STEPS = 1e-3


class Kernel:
    """A node compiled for the reference simulator.

    `step(x, state)` consumes the summed input of this step and returns the output;
    `rest(x)` is the output at the virtual step -1 (network at rest, see backend docstring).
    `state_vars` names the probe-able state variables ("v", "i") kept in the `state` dict.
    """

    state_vars: tuple[str, ...] = ()
    spiking: bool = False
    stateless: bool = False  # no state: `step` may take the rows of many steps at once

    def init(self, batch: int) -> dict[str, np.ndarray]:
        return {}

    def step(self, x: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def rest(self, x: np.ndarray) -> np.ndarray:
        return self.step(x, self.init(x.shape[0]))


def _param(node: Any, field: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A parameter as float64, kept scalar or per-neuron; must broadcast to the node's shape."""
    value = getattr(node, field)
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim and arr.size == 1:
        arr = arr.reshape(())
    if arr.ndim and arr.shape != tuple(shape):
        try:
            ok = np.broadcast_shapes(arr.shape, shape) == tuple(shape)
        except ValueError:
            ok = False
        if not ok:
            raise ShapeError(
                f"parameter {field} does not fit the node's shape",
                where=f"{where}.{field}",
                expected=f"a scalar or shape {tuple(shape)}",
                got=arr.shape,
                hint="give one value per neuron or a single value for all",
            )
    return arr


def _decay(dt: float, tau: np.ndarray, field: str, where: str) -> np.ndarray:
    """dt / tau, the forward-Euler step of a leak; above 1 Euler overshoots the fixed point."""
    a = dt / tau
    if np.any(a > 1.0):
        raise ParameterError(
            f"time step dt is longer than the time constant {field}; forward Euler would overshoot",
            where=f"{where}.{field}",
            expected=f"{field} >= dt = {dt:g} s",
            got=float(np.min(tau)),
            hint="build with a smaller dt, or check the time constants are in seconds",
        )
    return a


# -- neurons ------------------------------------------------------------------------------------
# The neuron updates, each written once as an array expression: the kernels' `step` evaluates them
# with numpy on [batch, *shape] arrays, and `snnc.ir.float_scan` compiles the same functions with
# numba (strict IEEE arithmetic, no contraction: the same bits) to step a neuron through a block of
# steps in one call outside every loop, one step a call inside one.
RESET_CODES = {"zero": 0, "subtract": 1, "none": 2}
RESET_ZERO, RESET_SUBTRACT = RESET_CODES["zero"], RESET_CODES["subtract"]


def leaky_update(x, v, a, v_leak, r):
    """LIF and LI: v + dt/tau (v_leak - v + r x)."""
    return v + a * (v_leak - v + r * x)


def integrate_update(x, v, r):
    """IF and I: v + r x (per step, no dt)."""
    return v + r * x


def cuba_update(x, i, v, w_in, a_syn, r, a_mem, v_leak, unit_w, unit_syn, unit_r, no_leak):
    """CubaLIF and CubaLI: i += dt/tau_syn (w_in x - i); v + dt/tau_mem (v_leak - v + r i_new) ->
    (i, v). Operations that change no bit are skipped: x 1 (the unit flags), and 0 - v + r i is
    computed as r i - v (`no_leak`: the two differ only in the sign of a zero where v = +0, which
    v + dt/tau_mem (...) then drops)."""
    d = (x if unit_w else w_in * x) - i
    i = i + (d if unit_syn else a_syn * d)
    ri = i if unit_r else r * i
    return i, v + a_mem * (ri - v if no_leak else v_leak - v + ri)


def spike_update(v, z, v_th, v_reset, v_sub, reset):
    """v after integrating this step -> (v after the reset, spikes z = v > v_th); `z` in: the last
    step's spikes, read by the subtract reset only (snnTorch's: a spike's threshold comes off v in
    the next step, before the comparison)."""
    if reset == RESET_SUBTRACT:
        v = v - v_sub * z
    z = v > v_th
    if reset == RESET_ZERO:
        v = np.where(z, v_reset, v)
    return v, z


class _Neuron(Kernel):
    """Common state handling: v starts at `v0` (v_leak, or 0 without leak), i at 0."""

    def __init__(self, shape: tuple[int, ...], v0: np.ndarray | float = 0.0, current: bool = False):
        self.shape = tuple(shape)
        self.v0 = np.broadcast_to(np.asarray(v0, dtype=np.float64), self.shape)
        self.current = current
        self.state_vars = ("v", "i") if current else ("v",)

    def init(self, batch: int) -> dict[str, np.ndarray]:
        state = {"v": np.broadcast_to(self.v0, (batch, *self.shape)).copy()}
        if self.current:
            state["i"] = np.zeros((batch, *self.shape))
        return state

    def rest(self, x: np.ndarray) -> np.ndarray:
        # Spiking neurons emit nothing at rest; integrators emit their resting voltage.
        if self.spiking:
            return np.zeros((x.shape[0], *self.shape))
        return np.broadcast_to(self.v0, (x.shape[0], *self.shape)).copy()


class _Spiking(_Neuron):
    """Threshold and reset of a spiking node, by its reset mode (`snnc.ir.reset_mode`)."""

    spiking = True

    def __init__(self, node, shape, v0, where, current: bool = False):
        p = lambda f: _param(node, f, shape, where)  # noqa: E731
        self.v_th, self.v_reset = p("v_threshold"), p("v_reset")
        self.reset_mode = reset_mode_of(node)
        self.reset = RESET_CODES[self.reset_mode]
        leak = p("v_leak") if hasattr(node, "v_leak") else 0.0
        self.v_sub = self.v_th - leak  # what a subtract reset takes off
        super().__init__(shape, v0, current=current)
        if self.reset_mode == "subtract":
            self.state_vars = (*self.state_vars, "z")

    def init(self, batch: int) -> dict[str, np.ndarray]:
        state = super().init(batch)
        if self.reset_mode == "subtract":
            state["z"] = np.zeros((batch, *self.shape), bool)
        return state

    def fire(self, v, state) -> np.ndarray:
        """v after integrating this step's input -> spikes; stores the post-spike v (and v itself
        as `v_in`)."""
        state["v_in"] = v
        v, z = spike_update(v, state.get("z"), self.v_th, self.v_reset, self.v_sub, self.reset)
        if self.reset == RESET_SUBTRACT:
            state["z"] = z
        state["v"] = v
        return z.astype(np.float64)


class LIFKernel(_Spiking):
    """v += dt/tau (v_leak - v + r x); z = v > v_th; then the node's reset."""

    def __init__(self, node: nir.LIF, shape, dt, where):
        p = lambda f: _param(node, f, shape, where)  # noqa: E731
        self.a = _decay(dt, p("tau"), "tau", where)
        self.r, self.v_leak = p("r"), p("v_leak")
        super().__init__(node, shape, self.v_leak, where)

    def step(self, x, state):
        return self.fire(leaky_update(x, state["v"], self.a, self.v_leak, self.r), state)


class _Cuba:
    """The current-based pair of Euler steps CubaLIF and CubaLI share."""

    a_syn: np.ndarray
    a_mem: np.ndarray
    r: np.ndarray
    v_leak: np.ndarray
    w_in: np.ndarray

    def _cuba_params(self, node, shape, dt, where) -> None:
        p = lambda f: _param(node, f, shape, where)  # noqa: E731
        self.a_syn = _decay(dt, p("tau_syn"), "tau_syn", where)
        self.a_mem = _decay(dt, p("tau_mem"), "tau_mem", where)
        self.r, self.v_leak, self.w_in = p("r"), p("v_leak"), p("w_in")
        # operations that change no bit, skipped (see cuba_update)
        self._unit = tuple(bool(np.all(a == 1.0)) for a in (self.w_in, self.a_syn, self.r))
        self._no_leak = bool(np.all(self.v_leak == 0.0))

    def _integrate(self, x, state) -> np.ndarray:
        """i += dt/tau_syn (w_in x - i), stored; returns v + dt/tau_mem (v_leak - v + r i_new)."""
        unit_w, unit_syn, unit_r = self._unit
        i, v = cuba_update(x, state["i"], state["v"], self.w_in, self.a_syn, self.r, self.a_mem, self.v_leak,
                           unit_w, unit_syn, unit_r, self._no_leak)
        state["i"] = i
        return v


class CubaLIFKernel(_Cuba, _Spiking):
    """i += dt/tau_syn (w_in x - i); v += dt/tau_mem (v_leak - v + r i_new); z; then the reset."""

    def __init__(self, node: nir.CubaLIF, shape, dt, where):
        self._cuba_params(node, shape, dt, where)
        super().__init__(node, shape, self.v_leak, where, current=True)

    def step(self, x, state):
        return self.fire(self._integrate(x, state), state)


class IFKernel(_Spiking):
    """v += r x (per step, no dt); z = v > v_th; then the reset."""

    def __init__(self, node: nir.IF, shape, dt, where):
        p = lambda f: _param(node, f, shape, where)  # noqa: E731
        self.r = p("r")
        super().__init__(node, shape, 0.0, where)

    def step(self, x, state):
        return self.fire(integrate_update(x, state["v"], self.r), state)


class LIKernel(_Neuron):
    """v += dt/tau (v_leak - v + r x); output v."""

    def __init__(self, node: nir.LI, shape, dt, where):
        p = lambda f: _param(node, f, shape, where)  # noqa: E731
        self.a = _decay(dt, p("tau"), "tau", where)
        self.r, self.v_leak = p("r"), p("v_leak")
        super().__init__(shape, self.v_leak)

    def step(self, x, state):
        v = leaky_update(x, state["v"], self.a, self.v_leak, self.r)
        state["v"] = v
        return v.copy()


class IKernel(_Neuron):
    """v += r x (per step, no dt); output v. Probe "i" is the input x of the step."""

    def __init__(self, node: nir.I, shape, dt, where):
        self.r = _param(node, "r", shape, where)
        super().__init__(shape, 0.0, current=True)

    def step(self, x, state):
        v = integrate_update(x, state["v"], self.r)
        state["v"] = v
        state["i"] = np.broadcast_to(x, v.shape).astype(np.float64, copy=True)
        return v.copy()


class CubaLIKernel(_Cuba, _Neuron):
    """i += dt/tau_syn (w_in x - i); v += dt/tau_mem (v_leak - v + r i_new); output v."""

    def __init__(self, node: nir.CubaLI, shape, dt, where):
        self._cuba_params(node, shape, dt, where)
        super().__init__(shape, self.v_leak, current=True)

    def step(self, x, state):
        v = self._integrate(x, state)
        state["v"] = v
        return v.copy()


# -- stateless nodes ----------------------------------------------------------------------------
class AffineKernel(Kernel):
    """y = x W^T (+ b), over the last dimension."""
    stateless = True

    def __init__(self, node, shape, dt, where):
        self.wt = np.asarray(node.weight, dtype=np.float64).T.copy()
        bias = getattr(node, "bias", None)
        self.bias = None if bias is None or isinstance(node, nir.Linear) else np.asarray(bias, dtype=np.float64)

    def step(self, x, state):
        y = x @ self.wt
        if self.bias is not None:
            y += self.bias
        return y


class ScaleKernel(Kernel):
    stateless = True

    def __init__(self, node, shape, dt, where):
        self.scale = _param(node, "scale", shape, where)

    def step(self, x, state):
        return x * self.scale


class ThresholdKernel(Kernel):
    """z = x > threshold (Heaviside, strict as in NIR's definition)."""
    stateless = True

    def __init__(self, node, shape, dt, where):
        self.threshold = _param(node, "threshold", shape, where)

    def step(self, x, state):
        return (x > self.threshold).astype(np.float64)


class IdentityKernel(Kernel):
    """Output nodes: the summed input, unchanged."""
    stateless = True

    def __init__(self, *args):
        pass

    def step(self, x, state):
        return x


class FlattenKernel(Kernel):
    stateless = True

    def __init__(self, node, shape, dt, where, out_shape=None):
        self.out_shape = tuple(out_shape)

    def step(self, x, state):
        return x.reshape(x.shape[0], *self.out_shape)


def _ints(value, n: int, name: str, where: str) -> tuple[int, ...]:
    if n == 2:
        return S.pair(value, name, where)
    return (int(np.ravel(value)[0]),)


class ConvKernel(Kernel):
    """Conv1d/Conv2d through torch in float64; 'same'/'valid' resolved by `ir.shapes`."""
    stateless = True

    def __init__(self, node, shape, dt, where):
        import torch  # only convolutional graphs pay torch's import time
        import torch.nn.functional as F

        self.torch = torch
        dims = 1 if isinstance(node, nir.Conv1d) else 2
        self.fn = F.conv1d if dims == 1 else F.conv2d
        self.weight = torch.from_numpy(np.asarray(node.weight, dtype=np.float64).copy())
        bias = np.asarray(node.bias, dtype=np.float64)
        out_ch = self.weight.shape[0]
        self.bias = torch.from_numpy(np.broadcast_to(bias, (out_ch,)).copy())
        self.stride = _ints(node.stride, dims, "stride", where)
        self.dilation = _ints(node.dilation, dims, "dilation", where)
        self.padding = tuple(S.conv_padding(node, tuple(shape[1:]), where))
        self.groups = int(np.ravel(node.groups)[0])
        self.macs = math.prod(self.weight.shape[1:])  # per output element

    def step(self, x, state):
        t = self.torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
        with torch_threads(self.torch, x.shape[0] * self.macs * self.weight.shape[0] * math.prod(x.shape[2:])):
            y = self.fn(t, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return y.numpy()


class PoolKernel(Kernel):
    """SumPool2d / AvgPool2d; zero padding, counted in the average (torch's default)."""
    stateless = True

    def __init__(self, node, shape, dt, where):
        self.kernel = S.pair(node.kernel_size, "kernel_size", where)
        self.stride = S.pair(node.stride, "stride", where)
        self.padding = S.pair(node.padding, "padding", where)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel)):
            raise ShapeError(
                "pooling padding must be at most half the kernel",
                where=f"{where}.padding",
                expected=f"<= {tuple(k // 2 for k in self.kernel)}",
                got=self.padding,
            )
        self.divisor = 1 if isinstance(node, nir.SumPool2d) else None
        import torch  # only pooling graphs pay torch's import time
        import torch.nn.functional as F

        self.torch, self.pool = torch, F.avg_pool2d

    def step(self, x, state):
        t = self.torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
        with torch_threads(self.torch, x.size * math.prod(self.kernel)):
            y = self.pool(t, self.kernel, self.stride, self.padding, count_include_pad=True, divisor_override=self.divisor)
        return y.numpy()


class DelayKernel(Kernel):
    """y[t] = x[t - d], d = round(delay / dt) steps (scalar or per neuron); zero before t = d."""

    def __init__(self, node, shape, dt, where):
        delay = _param(node, "delay", shape, where)
        steps_f = delay / dt
        steps = np.rint(steps_f)
        off = np.abs(steps_f - steps)
        if np.any(off > DELAY_TOLERANCE_STEPS):
            bad = float(np.broadcast_to(delay, off.shape).ravel()[int(np.argmax(off))])
            raise ParameterError(
                "delay is not a whole number of time steps",
                where=f"{where}.delay",
                expected=f"a multiple of dt = {dt:g} s",
                got=bad,
                hint="build with a dt that divides every delay",
            )
        self.shape = tuple(shape)
        self.steps = steps.astype(np.int64)
        self.length = int(self.steps.max()) + 1 if self.steps.size else 1
        self.per_neuron = self.steps.ndim > 0
        if self.per_neuron:
            flat = np.broadcast_to(self.steps, self.shape).ravel()
            self.flat_steps = flat
            self.flat_index = np.arange(flat.size)

    def init(self, batch):
        return {"buffer": np.zeros((self.length, batch, *self.shape)), "t": np.zeros((), np.int64)}

    def step(self, x, state):
        buf, t = state["buffer"], int(state["t"])
        buf[t % self.length] = x
        state["t"] = np.asarray(t + 1)
        if not self.per_neuron:
            return buf[(t - int(self.steps)) % self.length].copy()
        batch = buf.shape[1]
        flat = buf.reshape(self.length, batch, -1)
        out = flat[(t - self.flat_steps) % self.length, :, self.flat_index]  # [n, batch]
        return np.ascontiguousarray(out.T).reshape(batch, *self.shape)

    def rest(self, x):
        return np.zeros((x.shape[0], *self.shape))


_KERNELS = {
    nir.LIF: LIFKernel,
    nir.CubaLIF: CubaLIFKernel,
    nir.IF: IFKernel,
    nir.LI: LIKernel,
    nir.I: IKernel,
    nir.CubaLI: CubaLIKernel,
    nir.Affine: AffineKernel,
    nir.Linear: AffineKernel,
    nir.Scale: ScaleKernel,
    nir.Threshold: ThresholdKernel,
    nir.Conv1d: ConvKernel,
    nir.Conv2d: ConvKernel,
    nir.SumPool2d: PoolKernel,
    nir.AvgPool2d: PoolKernel,
    nir.Flatten: FlattenKernel,
    nir.Delay: DelayKernel,
    nir.Output: IdentityKernel,
}

SUPPORTED = tuple(_KERNELS) + (nir.Input,)


def make_kernel(node: nir.NIRNode, in_shape, out_shape, dt: float, where: str) -> Kernel:
    """Compile one node; `in_shape` is its input shape without batch."""
    cls = _KERNELS.get(type(node))
    if cls is None:
        raise UnsupportedNodeError(
            f"the reference backend cannot run {type(node).__name__} nodes",
            where=where,
            expected=", ".join(sorted(t.__name__ for t in SUPPORTED)),
            hint="flatten nested graphs with snnc.ir.Graph.from_nir",
        )
    if cls is FlattenKernel:
        return FlattenKernel(node, in_shape, dt, where, out_shape=out_shape)
    return cls(node, tuple(in_shape), dt, where)
