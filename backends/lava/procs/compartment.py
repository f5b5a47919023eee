"""The CUBA compartment that snnc's fixed_pt neuron processes share: `CubaNeuron` (cuba.py) and
`CubaRefractory` (refractory.py) each add their own state and step to it.

`CubaCompartment` declares the ports (int32 messages in and out), the states u and v and the
per-neuron LIF parameters du, dv, vth, bias_mant, bias_exp as Vars; `PyCubaCompartmentModel`
gives them their LavaPyTypes and reads them as `lif_parameters` of the `snnc.ir.fixed_point` steps.

Neither class is decorated: Lava's compiler runs every module of this folder while looking for
ProcessModels and takes a class with `@implements` for a model (here it finds none), and
`@implements` refuses a subclass of a model that implements another process, while `@requires`
and `@tag` add to what a parent declared. So each subclass decorates itself, once. No relative
imports and no side effects here, for the same reason.
"""
from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from snnc.ir.fixed_point.units import bias_value, threshold_value


def per_neuron(value, shape: ty.Tuple[int, ...]) -> np.ndarray:
    """A scalar or per-neuron parameter as an int64 array of the population's shape."""
    return np.broadcast_to(np.asarray(value, np.int64), shape).copy()


class CubaCompartment(AbstractProcess):
    """A population of CUBA compartments: a_in, s_out, u, v and per-neuron du, dv, vth, bias_mant,
    bias_exp. `params` are the subclass's own process parameters (read by its model)."""

    def __init__(self, *, shape: ty.Tuple[int, ...], du, dv, vth, bias_mant, bias_exp,
                 name: ty.Optional[str] = None, **params) -> None:
        shape = tuple(shape)
        super().__init__(shape=shape, name=name, **params)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.du = Var(shape=shape, init=per_neuron(du, shape))
        self.dv = Var(shape=shape, init=per_neuron(dv, shape))
        self.vth = Var(shape=shape, init=per_neuron(vth, shape))
        self.bias_mant = Var(shape=shape, init=per_neuron(bias_mant, shape))
        self.bias_exp = Var(shape=shape, init=per_neuron(bias_exp, shape))


class PyCubaCompartmentModel(PyLoihiProcessModel):
    """The LavaPyTypes of `CubaCompartment`'s ports and Vars, and the step's shared arguments."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    du: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=3)

    def lif_parameters(self) -> ty.Dict[str, ty.Any]:
        """du, dv, bias and the scaled threshold vth_e, as the fixed_point steps take them."""
        return {"du": self.du, "dv": self.dv, "bias": bias_value(self.bias_mant, self.bias_exp),
                "vth_e": threshold_value(self.vth.astype(np.int64))}

    def receive(self) -> np.ndarray:
        """This step's input, one row: [1, *shape] int64."""
        return np.asarray(self.a_in.recv(), np.int64)[None]

    def update(self, u: np.ndarray, v: np.ndarray, spikes: np.ndarray) -> None:
        """Store the new states (row 0 of the step's [1, *shape] arrays) and send the spikes."""
        self.u[:] = u[0]
        self.v[:] = v[0]
        self.s_out.send(spikes[0].astype(np.int32))
