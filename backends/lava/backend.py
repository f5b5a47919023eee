"""`LavaBackend`: runs a ChipGraph as real Lava processes (see emit.py and runner.py).

Options of `build(graph, **options)`:

- `tag`: "fixed_pt" (default; Lava's bit-accurate Loihi models) or "floating_pt" (float models,
  same units, see emit.py).
- `hardware`: False (default, `Loihi2SimCfg`) or True (`Loihi2HwCfg`; needs Intel's Loihi
  extension, a clear BackendError otherwise).
- `timeout`: seconds one `run()` call may take, compile included; default
  `60 + 0.1 * batch * steps`. On expiry every Lava process is ended and a BackendError names the
  busiest Lava process.
- `strategy`: how a batch is run, sample by sample with fresh state: "rebuild" compiles a fresh
  network per sample, "reset" keeps one network and zeroes its state Vars between samples
  (`Var.set`, which Lava sends one element at a time), "auto" (default) picks "reset" when the
  state to zero is small. Both give identical results (tested).
- `progress`: None (default: a tqdm bar appears when a run lasts over 2 s), True, False.

Time mapping (shared with the sim backend): input index t is what the RingBuffer sends at Lava
step t+1; output index t is the state or spike after Lava step t+1.

Activity: `RunResult.activity` is None. Counting synaptic ops would need every population's
spikes streamed out of Lava (one more OS process each); the sim backend is bit-exact with this one
and counts everything.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import numpy as np

from snnc.backends.base import RunResult, normalize_inputs
from snnc.ir.chip import ChipGraph
from snnc.ir.errors import BackendError

from .emit import TAGS, attach_taps, check_input_values, emit, parse_record_keys
from .runner import Session, loihi_extension_missing, make_run_config, run_isolated

if TYPE_CHECKING:
    from lava.magma.core.process.variable import Var

STRATEGIES = ("auto", "rebuild", "reset")
OPTIONS = ("tag", "hardware", "timeout", "strategy", "progress")
RESET_AUTO_LIMIT = 10_000  # state elements; Var.set costs ~14 us each, a rebuild ~0.15 s per sample
RESET_MAX_PADDING = 0.25  # "auto" avoids "reset" when aligning LIFReset phases pads more than this


def default_timeout(batch: int, steps: int) -> float:
    """Generous: Lava needs ~1-10 ms per step for small networks, plus compile time."""
    return 60.0 + 0.1 * batch * steps


def _state_vars(net) -> list[Var]:
    """Every Var whose value carries over from one step to the next: neurons' u and v, and the
    synaptic buffers of Dense/Sparse (`a_buff`, per delay for Delay*) and Conv (`a_buf`)."""
    out: list[Var] = []
    for proc in net.populations.values():
        out.extend(getattr(proc, name) for name in ("u", "v", "real", "imag") if hasattr(proc, name))  # ProdNeuron has no u; RF: real, imag
        if hasattr(proc, "spiked"):  # snnc's CubaNeuron remembers last step's spikes (subtract reset)
            out.append(proc.spiked)
        if hasattr(proc, "refractory"):  # snnc's CubaRefractory counts the steps it still holds v
            out.append(proc.refractory)
    for proc in net.projections.values():
        for name in ("a_buff", "a_buf"):
            var = getattr(proc, name, None)
            if var is not None:
                out.append(var)
    return out


def reset_period(graph: ChipGraph) -> int:
    """Steps per sample must be a multiple of this for LIFReset phases to repeat in every sample."""
    period = 1
    for pop in graph.populations.values():
        if pop.model == "lif_reset":
            period = math.lcm(period, int(pop.reset_interval))
    return period


def state_size(graph: ChipGraph) -> int:
    """Elements `reset` zeroes per sample (u, v of neurons, synaptic buffers)."""
    n = 2 * graph.num_neurons
    for proj in graph.projections.values():
        size = graph.populations[proj.dst].size
        n += size * (proj.max_delay + 1)
    return n


@dataclass
class LavaProgram:
    """A ChipGraph ready to run on Lava; every `run()` builds and runs the processes in a worker."""

    graph: ChipGraph
    tag: str = "fixed_pt"
    hardware: bool = False
    timeout: float | None = None
    strategy: str = "auto"
    progress: bool | None = None
    last_strategy: str | None = field(default=None, init=False)
    last_worker_pid: int | None = field(default=None, init=False)  # = process group of the last run

    def network(self, inputs: Mapping[str, np.ndarray] | None = None):
        """The Lava processes of this graph (a fresh `LavaNetwork`), for inspection or extension."""
        return emit(self.graph, tag=self.tag, inputs=inputs)

    def choose_strategy(self, steps: int, batch: int) -> tuple[str, int]:
        """(strategy, steps per sample incl. padding) for a batch."""
        period = reset_period(self.graph)
        padded = -(-steps // period) * period
        if self.strategy == "rebuild" or batch == 1:
            return "rebuild", steps
        if any(p.model == "atrlif" for p in self.graph.populations.values()):
            return "rebuild", steps  # Lava's ATRLIF sets theta = theta_0 at its first step only: no reset restores it
        if self.strategy == "reset":
            return "reset", padded
        small = state_size(self.graph) <= RESET_AUTO_LIMIT
        if small and padded - steps <= RESET_MAX_PADDING * steps:
            return "reset", padded
        return "rebuild", steps

    def run(
        self,
        inputs: np.ndarray | Mapping[str, np.ndarray] | None = None,
        steps: int | None = None,
        probes: Sequence[str] = (),
    ) -> RunResult:
        """Run a batch [batch, T, *shape] (or [T, *shape]) sample by sample, state reset between."""
        graph = self.graph
        data: dict[str, np.ndarray] = {}
        if not graph.inputs:
            if steps is None:
                raise BackendError("a network without inputs needs `steps`", hint="call run(None, steps=T)")
            batch = 1
            steps = int(steps)
        else:
            if inputs is None:
                raise BackendError("inputs are required", expected=sorted(graph.inputs))
            data, batch, steps = normalize_inputs(inputs, {n: i.shape for n, i in graph.inputs.items()}, steps)
            check_input_values(graph, data, self.tag)
        probe_keys = [key for key, _, _ in parse_record_keys(graph, probes)]
        port_keys = {name: f"{port.population}/{port.var}" for name, port in graph.outputs.items()}
        keys = list(dict.fromkeys([*port_keys.values(), *map(_canonical, probe_keys)]))
        shapes = {key: tuple(graph.source(key.split("/")[0]).shape) for key in keys}
        strategy, per_sample = self.choose_strategy(steps, batch)
        self.last_strategy = strategy
        tag, hardware = self.tag, self.hardware
        timeout = self.timeout if self.timeout is not None else default_timeout(batch, steps)

        def job(reporter):
            if strategy == "rebuild":
                return _run_rebuild(graph, tag, hardware, data, batch, steps, keys, shapes, reporter)
            return _run_reset(graph, tag, hardware, data, batch, steps, per_sample, keys, shapes, reporter)

        recorded = run_isolated(
            job,
            timeout=timeout,
            total_steps=batch * per_sample,
            steps_per_sample=per_sample,
            progress=self.progress,
            description=f"lava {tag}",
            on_start=lambda pid: setattr(self, "last_worker_pid", pid),
        )
        dtype = np.int64 if tag == "fixed_pt" else np.float64
        recorded = {k: v.astype(dtype) for k, v in recorded.items()}
        outputs = {name: recorded[key] for name, key in port_keys.items()}
        probes_out = {key: recorded[_canonical(key)] for key in probe_keys}
        return RunResult(
            outputs=outputs,
            probes=probes_out,
            activity=None,
            backend="lava",
            time_shift=int(graph.meta.get("time_shift", 0) or 0),
        )


def _canonical(key: str) -> str:
    pop, _, var = key.partition("/")
    return f"{pop}/{var or 's'}"


def _buffer(steps: int) -> int:
    return max(1, min(steps, 256))


def _run_rebuild(graph, tag, hardware, data, batch, steps, keys, shapes, reporter):
    """Compile a fresh network per sample: Lava starts from time step 1 with zero state."""
    out = {key: np.zeros((batch, steps, *shapes[key])) for key in keys}
    run_cfg = make_run_config(tag, hardware)
    for b in range(batch):
        reporter.where(b, 0)
        net = emit(graph, tag=tag, inputs={name: arr[b] for name, arr in data.items()})
        attach_taps(net, keys, buffer_size=_buffer(steps))
        session = Session(net, run_cfg)
        reporter.sessions.append(session)
        session.start(steps)
        reporter.actors(session)
        rec = session.drain(steps, reporter.steps)
        session.stop()
        reporter.sessions.remove(session)
        for key in keys:
            out[key][b] = rec[key]
    return out


def _run_reset(graph, tag, hardware, data, batch, steps, per_sample, keys, shapes, reporter):
    """One network for the whole batch: the RingBuffers hold every sample (padded to `per_sample`
    steps so LIFReset phases repeat), and u, v and synaptic buffers are zeroed between samples."""
    padded = {}
    for name, arr in data.items():
        full = np.zeros((batch, per_sample, *arr.shape[2:]), dtype=arr.dtype)
        full[:, :steps] = arr
        padded[name] = full.reshape(batch * per_sample, *arr.shape[2:])
    net = emit(graph, tag=tag, inputs=padded)
    attach_taps(net, keys, buffer_size=_buffer(per_sample))
    session = Session(net, make_run_config(tag, hardware))
    reporter.sessions.append(session)
    state = _state_vars(net)
    out = {key: np.zeros((batch, steps, *shapes[key])) for key in keys}
    for b in range(batch):
        reporter.where(b, 0)
        if b:
            for var in state:
                var.set(np.zeros(var.shape))
        session.start(per_sample)
        if b == 0:
            reporter.actors(session)
        rec = session.drain(per_sample, reporter.steps)
        for key in keys:
            out[key][b] = rec[key][:steps]
    session.stop()
    reporter.sessions.remove(session)
    return out


class LavaBackend:
    """Chip-level backend that builds real Lava processes and runs them with Lava's runtime."""

    name: ClassVar[str] = "lava"
    level: ClassVar[str] = "chip"

    def problems(self, graph: Any, **options: Any) -> list[str]:
        """Why this backend cannot run `graph` (empty when it can)."""
        out = []
        if not isinstance(graph, ChipGraph):
            return [f"the lava backend runs chip-level graphs (snnc.ir.chip.ChipGraph), got {type(graph).__name__}"]
        try:
            graph.validate()
        except Exception as exc:  # noqa: BLE001 - report, don't raise
            out.append(str(exc))
        if options.get("hardware"):
            missing = loihi_extension_missing()
            if missing:
                out.append("hardware=True needs Intel's Loihi extension for Lava (missing " + ", ".join(missing) + ")")
            for pop in graph.populations.values():
                if not pop.per_layer():
                    out.append(
                        f"population {pop.name!r}: per-neuron du/dv/vth; Loihi hardware holds one per layer "
                        "(Lava's CPU models accept arrays)"
                    )
        if not graph.populations and not graph.inputs:
            out.append("the chip graph is empty")
        return out

    def build(self, graph: Any, **options: Any) -> LavaProgram:
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise BackendError(
                "unknown lava backend option", expected=", ".join(OPTIONS), got=sorted(unknown),
                hint="check the spelling; options are never ignored silently",
            )
        if not isinstance(graph, ChipGraph):
            raise BackendError(
                "the lava backend runs chip-level graphs", expected="snnc.ir.chip.ChipGraph", got=type(graph).__name__,
                hint="compile the model first (snnc compile) or use the reference backend for NIR graphs",
            )
        tag = options.get("tag", "fixed_pt")
        if tag not in TAGS:
            raise BackendError("unknown Lava model tag", where="lava option 'tag'", expected=" or ".join(TAGS), got=tag)
        strategy = options.get("strategy", "auto")
        if strategy not in STRATEGIES:
            raise BackendError("unknown batch strategy", where="lava option 'strategy'", expected=STRATEGIES, got=strategy)
        timeout = options.get("timeout")
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise BackendError("timeout must be a positive number of seconds", where="lava option 'timeout'", got=timeout)
        hardware = bool(options.get("hardware", False))
        if hardware:
            make_run_config(tag, hardware=True)  # raises a clear BackendError without the extension
        graph.validate()
        return LavaProgram(
            graph=graph, tag=tag, hardware=hardware, timeout=timeout, strategy=strategy, progress=options.get("progress")
        )
