"""snnc's CUBA neuron as a Lava process, for what Lava 0.10's LIF cannot do.

Lava's LIF resets v to 0. Loihi 2's programmable neurons can also subtract the threshold (snnTorch's
default reset), leave v alone, reset to another voltage, or send the state itself as a graded
spike (a leaky integrator feeding the next layer). `CubaNeuron` runs any of these; its fixed_pt
model is `snnc.ir.fixed_point.neuron_step`, the same specification the `sim` kernels follow, so the
chip semantics are written once. Parameters are per-neuron Vars of the population's shape.

The ports, u, v and LIF parameters are `compartment.CubaCompartment`'s. No relative imports and
no side effects here: Lava's compiler imports every module in this folder while looking for
ProcessModels.
"""
from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from snnc.backends.lava.procs.compartment import CubaCompartment, PyCubaCompartmentModel, per_neuron
from snnc.ir.fixed_point import NEURON_KINDS, RESET_MODES, NeuronState, neuron_step
from snnc.ir.fixed_point.units import threshold_value


class CubaNeuron(CubaCompartment):
    """A population of CUBA compartments of one `kind` ("lif", "lif_reset", "ternary", "relay")
    with a `reset_mode` ("zero", "subtract", "none"), as in `snnc.ir.fixed_point.neuron`."""

    def __init__(self, *, shape: ty.Tuple[int, ...], du, dv, vth, bias_mant, bias_exp, v_reset=0,
                 kind: str = "lif", reset_mode: str = "zero", relay_shift: int = 0,
                 vth_hi: int = 0, vth_lo: int = 0, reset_interval: int = 1, reset_offset: int = 0,
                 name: ty.Optional[str] = None) -> None:
        shape = tuple(shape)
        if kind not in NEURON_KINDS or reset_mode not in RESET_MODES:
            raise ValueError(f"CubaNeuron: kind {kind!r} / reset_mode {reset_mode!r} unknown")
        super().__init__(shape=shape, du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp, name=name,
                         kind=NEURON_KINDS.index(kind), reset_mode=RESET_MODES.index(reset_mode),
                         relay_shift=int(relay_shift), reset_interval=int(reset_interval), reset_offset=int(reset_offset))
        self.spiked = Var(shape=shape, init=0)
        self.v_reset = Var(shape=shape, init=per_neuron(v_reset, shape))
        self.vth_hi = Var(shape=(1,), init=int(vth_hi))
        self.vth_lo = Var(shape=(1,), init=int(vth_lo))


@implements(proc=CubaNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyCubaNeuronFixed(PyCubaCompartmentModel):
    """Bit-accurate model: one `neuron_step` per time step (int32 messages in and out)."""

    spiked: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)
    v_reset: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    vth_hi: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=18)
    vth_lo: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=18)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.kind = NEURON_KINDS[proc_params["kind"]]
        self.reset_mode = RESET_MODES[proc_params["reset_mode"]]
        self.relay_shift = proc_params["relay_shift"]
        self.reset_interval = proc_params["reset_interval"]
        self.reset_offset = proc_params["reset_offset"]

    def run_spk(self) -> None:
        state = NeuronState(self.u.astype(np.int64)[None], self.v.astype(np.int64)[None], self.spiked.astype(bool)[None])
        s = neuron_step(
            state, self.receive(), **self.lif_parameters(), kind=self.kind, reset_mode=self.reset_mode,
            v_reset=self.v_reset, step=self.time_step, reset_interval=self.reset_interval,
            reset_offset=self.reset_offset, vth_hi_e=threshold_value(int(self.vth_hi[0])),
            vth_lo_e=threshold_value(int(self.vth_lo[0])), relay_shift=self.relay_shift,
        )
        self.spiked[:] = state.spiked[0]
        self.update(state.u, state.v, s)
