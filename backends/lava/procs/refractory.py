"""snnc's refractory LIF as a Lava process: Lava 0.10's `LIFRefractory` has a floating-point model only.

`CubaRefractory` is the fixed_pt counterpart: its model runs
`snnc.ir.fixed_point.refractory_step`, the specification the `sim` kernel follows (u integrates
every step, v is held at 0 for `refractory_period` steps after each spike), with the LIF's
per-neuron parameters as Vars and the refractory down-counter as the Var `refractory`.

No relative imports and no side effects here: Lava's compiler imports every module in this
folder while looking for ProcessModels.
"""
from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from snnc.ir.fixed_point import RefractoryState, refractory_step
from snnc.ir.fixed_point.units import bias_value, threshold_value


class CubaRefractory(AbstractProcess):
    """A LIF population whose v is held at 0 for `refractory_period` steps after each spike."""

    def __init__(self, *, shape: ty.Tuple[int, ...], du, dv, vth, bias_mant, bias_exp, refractory_period: int,
                 name: ty.Optional[str] = None) -> None:
        shape = tuple(shape)
        super().__init__(shape=shape, name=name, refractory_period=int(refractory_period))
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        full = lambda value: np.broadcast_to(np.asarray(value, np.int64), shape).copy()  # noqa: E731
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.refractory = Var(shape=shape, init=0)
        self.du = Var(shape=shape, init=full(du))
        self.dv = Var(shape=shape, init=full(dv))
        self.vth = Var(shape=shape, init=full(vth))
        self.bias_mant = Var(shape=shape, init=full(bias_mant))
        self.bias_exp = Var(shape=shape, init=full(bias_exp))


@implements(proc=CubaRefractory, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyCubaRefractoryFixed(PyLoihiProcessModel):
    """Bit-accurate model: one `refractory_step` per time step (int32 messages in, 0/1 out)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    refractory: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=6)
    du: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=3)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.refractory_period = proc_params["refractory_period"]

    def run_spk(self) -> None:
        a = np.asarray(self.a_in.recv(), np.int64)
        state = RefractoryState(*(np.asarray(x, np.int64)[None] for x in (self.u, self.v, self.refractory)))
        s = refractory_step(state, a[None], du=self.du, dv=self.dv, bias=bias_value(self.bias_mant, self.bias_exp),
                            vth_e=threshold_value(self.vth.astype(np.int64)), refractory_period=self.refractory_period)
        self.u[:] = state.u[0]
        self.v[:] = state.v[0]
        self.refractory[:] = state.c[0]
        self.s_out.send(s[0].astype(np.int32))
