"""Lava processes that stream recordings to the host through an external pipe.

Lava's own recorders (`Monitor`, `sink.RingBuffer`, `sink.Read`) keep their data in a Var, and
`Var.get()` sends one message per element (~16 us each): reading 100 neurons x 1000 steps takes
seconds. These processes instead send one array per time step over an external pipe (the
mechanism of `lava.proc.io.extractor.Extractor`), which the host drains while Lava runs.

This module lives in its own package because Lava's compiler imports every ``*.py`` in the
directory of a process class while looking for its ProcessModels; keep it free of relative
imports and side effects.
"""
from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class StateTap(AbstractProcess):
    """Sends the value of one Var (e.g. a LIF's `u` or `v`) to the host after every step.

    The value is read in the post-management phase, i.e. after the neurons updated: the message
    of step t holds the state at the end of step t.
    """

    def __init__(self, *, shape: ty.Tuple[int, ...], buffer_size: int = 64,
                 name: ty.Optional[str] = None) -> None:
        shape = tuple(shape)
        super().__init__(shape=shape, buffer_size=buffer_size, name=name)
        self.state = RefPort(shape)
        self.out_port = OutPort(shape=shape)
        self.out_port.flag_external_pipe(buffer_size=buffer_size)

    def connect_var(self, var: Var) -> None:
        """Tap `var` (same pattern as `lava.proc.io.reset.Reset.connect_var`)."""
        self.state = RefPort(var.shape)
        self.state.connect_var(var)
        self._post_init()

    def recv_port(self):
        """The host end of the pipe (exists once the runtime is built)."""
        return self.out_port.external_pipe_csp_recv_port


class SpikeTap(AbstractProcess):
    """Sends what arrives at its InPort (spikes or graded values) to the host every step."""

    def __init__(self, *, shape: ty.Tuple[int, ...], buffer_size: int = 64,
                 name: ty.Optional[str] = None) -> None:
        shape = tuple(shape)
        super().__init__(shape=shape, buffer_size=buffer_size, name=name)
        self.a_in = InPort(shape=shape)
        self.out_port = OutPort(shape=shape)
        self.out_port.flag_external_pipe(buffer_size=buffer_size)

    def recv_port(self):
        """The host end of the pipe (exists once the runtime is built)."""
        return self.out_port.external_pipe_csp_recv_port


@implements(proc=StateTap, protocol=LoihiProtocol)
@requires(CPU)
class PyStateTapModel(PyLoihiProcessModel):
    """Reads the Var through a RefPort after each step. Float64 holds every 24-bit state exactly."""

    state: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)
    out_port: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def post_guard(self) -> bool:
        return True

    def run_post_mgmt(self) -> None:
        self.out_port.csp_ports[-1].send(np.asarray(self.state.read(), dtype=float))


@implements(proc=SpikeTap, protocol=LoihiProtocol)
@requires(CPU)
class PySpikeTapModel(PyLoihiProcessModel):
    """Forwards the spikes received in the spiking phase of each step."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    out_port: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self) -> None:
        self.out_port.csp_ports[-1].send(np.asarray(self.a_in.recv(), dtype=float))
