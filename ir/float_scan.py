"""A neuron of the LIF, IF and LI families stepped by compiled code: a whole block of steps in one
call outside every loop, one call a step inside one (`CompiledNeuron`).

Why: the float model steps a neuron once per time step in numpy, a dozen small array operations
each (~8 us for a layer of 38 neurons): on the short runs of the fidelity guard and of calibration
that is most of the float side. Here numba compiles the kernels' own update functions
(`float_kernels.leaky_update`, `integrate_update`, `cuba_update`, `spike_update`: the same
expressions, in numba's strict IEEE arithmetic without contraction, so the same bits) into one loop
over steps and samples; tests/ir/test_float_scan.py holds every kind, reset mode and parameter form
to the numpy steps bit for bit. `FloatModel` uses it only when numba is loaded already (the sim
backend loads it): a process that runs only the float model does not pay numba's start.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numba
import numpy as np

from . import float_kernels as FK

LEAKY, INTEGRATE, CUBA = 0, 1, 2
SCANNED = {FK.LIFKernel: LEAKY, FK.LIKernel: LEAKY, FK.IFKernel: INTEGRATE, FK.CubaLIFKernel: CUBA, FK.CubaLIKernel: CUBA}

_leaky = numba.njit(cache=True)(FK.leaky_update)
_integrate = numba.njit(cache=True)(FK.integrate_update)
_cuba = numba.njit(cache=True)(FK.cuba_update)
_spike = numba.njit(cache=True)(FK.spike_update)


@numba.njit(cache=True)
def _scan(kind, spiking, xs, i, v, z, v_in, out, keep, rec_i, rec_v, rec_vin, rec_z,
          a, v_leak, r, w_in, a_syn, a_mem, v_th, v_reset, v_sub, unit_w, unit_syn, unit_r, no_leak, reset):  # pragma: no cover - compiled
    for t in range(xs.shape[0]):
        for b in range(xs.shape[1]):
            x = xs[t, b]
            if kind == CUBA:
                ib, vb = _cuba(x, i[b], v[b], w_in, a_syn, r, a_mem, v_leak, unit_w, unit_syn, unit_r, no_leak)
                i[b] = ib
            elif kind == LEAKY:
                vb = _leaky(x, v[b], a, v_leak, r)
            else:
                vb = _integrate(x, v[b], r)
            v_in[b] = vb
            if spiking:
                vb, zb = _spike(vb, z[b], v_th, v_reset, v_sub, reset)
                z[b] = zb
                out[t, b] = zb
            else:
                out[t, b] = vb
            v[b] = vb
            if keep[0]:
                rec_i[t, b] = i[b]
            if keep[1]:
                rec_v[t, b] = vb
            if keep[2]:
                rec_vin[t, b] = v_in[b]
            if keep[3]:
                rec_z[t, b] = z[b]


def _signatures() -> dict[str, list[tuple]]:
    """The one argument-type tuple `_scan` is called with (`CompiledNeuron` makes every array
    contiguous and writable, every flag a bool), compiled ahead by `snnc.backends.sim.warmup`."""
    from numba import types as T

    def arr(dtype, ndim: int):
        return T.Array(dtype, ndim, "C")

    f64, flag = T.float64, T.boolean
    state = (arr(f64, 2), arr(f64, 2), arr(flag, 2), arr(f64, 2))  # i, v, z, v_in
    records = (arr(f64, 3), arr(f64, 3), arr(f64, 3), arr(flag, 3))  # i, v, v_in, z
    return {"_scan": [(T.int64, flag, arr(f64, 3), *state, arr(f64, 3), arr(flag, 1), *records,
                       *(arr(f64, 1),) * 9, flag, flag, flag, flag, T.int64)]}


SIGNATURES = _signatures()


def _flat_params(kernel: Any, n: int) -> tuple:
    """The kernel's parameters as float64 arrays of its n neurons (numba compiles one signature),
    made once per kernel; a parameter its kind has not is zeros (never read)."""
    cached = kernel.__dict__.get("_scan_params")
    if cached is None:
        def flat(name: str) -> np.ndarray:  # a new writable array (numba compiles one signature)
            value = np.asarray(getattr(kernel, name, 0.0), np.float64)
            if value.ndim == 0:
                return np.full(n, value)
            if value.shape == kernel.shape:
                return value.reshape(n).copy()
            return np.array(np.broadcast_to(value, kernel.shape).reshape(n))

        unit = getattr(kernel, "_unit", (False, False, False))
        cached = (*(flat(f) for f in ("a", "v_leak", "r", "w_in", "a_syn", "a_mem", "v_th", "v_reset", "v_sub")),
                  *unit, bool(getattr(kernel, "_no_leak", False)), int(getattr(kernel, "reset", 0)))
        kernel.__dict__["_scan_params"] = cached
    return cached


_NAMES = ("i", "v", "v_in", "z")  # the state variables a run may record, in _scan's order


class CompiledNeuron:
    """One neuron node's state for a block of k steps, stepped by the compiled `_scan`: `advance`
    steps it through any number of the block's steps (all at once outside a loop, one at a time in
    one), `finish` hands back the state as k calls of `kernel.step` leave it and the recorded state
    variables in `watch` ({var: [k, batch, *shape]})."""

    def __init__(self, kernel: Any, state: Mapping[str, np.ndarray], k: int, batch: int, watch: Any):
        self.kernel, self.shape, self.k, self.batch = kernel, tuple(kernel.shape), k, batch
        self.n = n = math.prod(self.shape)

        def own(var: str, dtype) -> np.ndarray:  # a contiguous copy of a state variable, [batch, n]
            return np.array(state[var], dtype).reshape(batch, n) if var in state else np.zeros((batch, n), dtype)

        self.i, self.v, self.z = own("i", np.float64), own("v", np.float64), own("z", bool)
        self.v_in = np.empty((batch, n))
        self.watch = [var for var in _NAMES if var in watch]
        self.keep = np.array([var in watch for var in _NAMES])
        self.rec = [np.empty((k, batch, n) if var in watch else (1, 1, 1), bool if var == "z" else np.float64) for var in _NAMES]
        self.head = (SCANNED[type(kernel)], bool(kernel.spiking))
        self.params = _flat_params(kernel, n)

    def advance(self, t: int, x: np.ndarray, out: np.ndarray) -> None:
        """Steps t .. t + len(x) - 1 of the block: x [steps, batch, n] float64 in (C-contiguous), `out`
        (same shape) written."""
        if not x.flags.writeable:  # numba compiles a read-only array as another type
            x = x.copy()
        rec = [r[t : t + x.shape[0]] if keep else r for r, keep in zip(self.rec, self.keep)] if self.watch else self.rec
        _scan(*self.head, x, self.i, self.v, self.z, self.v_in, out, self.keep, *rec, *self.params)

    def finish(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch, shape = self.batch, self.shape
        state["v"] = self.v.reshape(batch, *shape)
        if "i" in state:
            state["i"] = self.i.reshape(batch, *shape)
        if "z" in state:
            state["z"] = self.z.reshape(batch, *shape)
        if self.kernel.spiking:
            state["v_in"] = self.v_in.reshape(batch, *shape)
        return {var: r.reshape(self.k, batch, *shape) for var, r, keep in zip(_NAMES, self.rec, self.keep) if keep}


def scan(kernel: Any, x: np.ndarray, state: dict[str, np.ndarray], watch: Mapping[str, Any]) -> tuple[np.ndarray, dict]:
    """`kernel` (a type in SCANNED) stepped through x [k, batch, *shape]: its outputs [k, batch,
    *shape] and the state variables in `watch` after each step ({var: [k, batch, *shape]}), and
    `state` left as k calls of `kernel.step` leave it."""
    k, batch = x.shape[:2]
    neuron = CompiledNeuron(kernel, state, k, batch, watch)
    xs = np.ascontiguousarray(x, np.float64).reshape(k, batch, neuron.n)
    out = np.empty((k, batch, neuron.n))
    neuron.advance(0, xs, out)
    return out.reshape(k, batch, *neuron.shape), neuron.finish(state)
