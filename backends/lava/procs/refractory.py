"""snnc's refractory LIF as a Lava process: Lava 0.10's `LIFRefractory` has a floating-point model only.

`CubaRefractory` is the fixed_pt counterpart: its model runs
`snnc.ir.fixed_point.refractory_step`, the specification the `sim` kernel follows (u integrates
every step, v is held at 0 for `refractory_period` steps after each spike), with the LIF's
per-neuron parameters as Vars (`compartment.CubaCompartment`'s) and the refractory down-counter as
the Var `refractory`.

No relative imports and no side effects here: Lava's compiler imports every module in this
folder while looking for ProcessModels.
"""
from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from snnc.backends.lava.procs.compartment import CubaCompartment, PyCubaCompartmentModel
from snnc.ir.fixed_point import RefractoryState, refractory_step


class CubaRefractory(CubaCompartment):
    """A LIF population whose v is held at 0 for `refractory_period` steps after each spike."""

    def __init__(self, *, shape: ty.Tuple[int, ...], du, dv, vth, bias_mant, bias_exp, refractory_period: int,
                 name: ty.Optional[str] = None) -> None:
        shape = tuple(shape)
        super().__init__(shape=shape, du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp, name=name,
                         refractory_period=int(refractory_period))
        self.refractory = Var(shape=shape, init=0)


@implements(proc=CubaRefractory, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyCubaRefractoryFixed(PyCubaCompartmentModel):
    """Bit-accurate model: one `refractory_step` per time step (int32 messages in, 0/1 out)."""

    refractory: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=6)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.refractory_period = proc_params["refractory_period"]

    def run_spk(self) -> None:
        state = RefractoryState(*(np.asarray(x, np.int64)[None] for x in (self.u, self.v, self.refractory)))
        s = refractory_step(state, self.receive(), **self.lif_parameters(), refractory_period=self.refractory_period)
        self.refractory[:] = state.c[0]
        self.update(state.u, state.v, s)
