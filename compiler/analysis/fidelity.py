"""The fidelity guard: every compile checks its chip graph against the float model and says what it lost.

Why: quantization can fail quietly (weights of 1e-12 become 0 synapses, a zero threshold fires every
step, v saturates, u wraps). `check_fidelity` runs the float model and the chip graph (`sim`, one
bit-exact run) on the same input - the calibration data (at most MAX_SAMPLES samples and
MAX_SAMPLE_STEPS sample-steps of it), or without any a generated input of 1 x (32 + time shift)
steps that drives every layer (stated as an assumption) - and measures per layer (population paired
with the float population of the same name). The float side is the float model (snnc.ir.float_model,
the evaluator the reference backend runs and the quantizer calibrates with) on the canonical graph
the quantizer lowered, through netlist.simulate; it runs a feed-forward network a layer at a time
(or, on all of the quantizer's calibration data, is the quantizer's own run, which the compile hands over).
  agreement      spike agreement, Dice of spike sets, exact timing after `CompileResult.align`
                 (snnc.compiler.analysis.sweep.spike_fidelity): `agreement` compares spike counts per
                 neuron (rate codes), `timing` the exact spike sets (Dice)
  trace_error    for non-spiking outputs: RMS error / RMS of the float trace (chip trace scaled
                 back by meta["output_scale"])
  weight_error   the quantizer's relative weight error (its report)
  saturation     fraction of (sample, step, neuron) where v was clipped at +(2**23 - 1) (counted
                 exactly, also where the clipped v then spikes and resets; `saturation_events`)
  floor          the same at -(2**23 - 1) (strong inhibition; spikes may still agree; `floor_events`)
  wraps          u wrap events, exact: steps where the 24-bit current (or the int32 sum before it)
                 differs from decay(u) + (a << 6) in exact integers (`overflow_events`, from the
                 sim's own input sums a and snnc.ir.fixed_point.step_overflows)
  firing         fraction of (sample, step, neuron) that spike; a layer at ~1 fires every step
  dead           the layer never fires on the chip, or all its weights quantized to zero
  vth            the smallest quantized threshold of a spiking layer (0: fires on any input)
Each measurement has a limit (`DEFAULT_TOLERANCE`, changed with `tolerance={...}` or
`--tolerance KEY=VALUE,...`); a breach becomes a `Breach` naming the layer, the value, the limit
and the likely fix, emitted as a `FidelityWarning` (shown as `snnc: warning:`; `--strict` fails).
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from snnc.ir.fixed_point import NEURON_KINDS
from snnc.ir.errors import ParameterError
from snnc.ir.reset_mode import AssumptionWarning, reset_mode_of, SPIKING

from .sweep import spike_fidelity

# key -> (default limit, "max" or "min", what it measures)
TOLERANCES: dict[str, tuple[float, str, str]] = {
    "weight_error": (0.25, "max", "relative weight error of a layer after quantization"),
    "agreement": (0.5, "min", "spike count agreement with the float model (1 = same counts)"),
    "timing": (0.0, "min", "exact spike agreement, Dice over (sample, step, neuron) (off by default: a spike one step late costs two)"),
    "trace_error": (0.25, "max", "RMS error of a non-spiking output relative to the float trace"),
    "saturation": (0.01, "max", "fraction of neuron-steps where v is clipped at its upper 24-bit limit"),
    "floor": (0.5, "max", "fraction of neuron-steps where v is clipped at its lower 24-bit limit (strong inhibition)"),
    "wraps": (0, "max", "u wrap events (24-bit current overflow)"),
    "firing": (0.99, "max", "fraction of neuron-steps that spike (a layer at 1 fires every step)"),
    "dead": (0, "max", "1 if the layer never fires or all its weights quantized to zero"),
    "vth": (1, "min", "smallest quantized threshold mantissa of a spiking layer (0 fires on any positive input)"),
}
DEFAULT_TOLERANCE: dict[str, float] = {k: v[0] for k, v in TOLERANCES.items()}
GENERATED_STEPS = 32  # plus the chip's time shift, so that the deepest layer sees 32 driven steps
MAX_SAMPLE_STEPS = 512  # the guard runs at most this many (sample x step) of the calibration data
MAX_SAMPLES = 8  # and at most this many samples (the first ones): its cost stays a fraction of a compile
GUARD_FAILED = "the fidelity guard could not run"


class FidelityWarning(AssumptionWarning):
    """A compile lost more than a tolerance allows (shown as `snnc: warning:`; `--strict` fails)."""


@dataclass
class Breach:
    layer: str
    check: str
    value: float
    limit: float
    fix: str

    @property
    def message(self) -> str:
        kind = TOLERANCES[self.check][1]
        rel = "below the minimum" if kind == "min" else "above the limit"
        return (f"layer {self.layer!r}: {self.check} {_num(self.value)} is {rel} {_num(self.limit)} "
                f"({TOLERANCES[self.check][2]}); {self.fix}")

    def to_dict(self) -> dict:
        return {"layer": self.layer, "check": self.check, "value": self.value, "limit": self.limit,
                "fix": self.fix, "message": self.message}


@dataclass
class FidelityReport:
    """Per-layer measurements, the limits used, breaches and the run's stated assumptions."""

    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    tolerance: dict[str, float] = field(default_factory=dict)
    breaches: list[Breach] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    input_source: str = ""
    steps: int = 0
    batch: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.breaches

    def to_dict(self) -> dict:
        return {
            "ok": self.ok, "input": self.input_source, "steps": self.steps, "batch": self.batch,
            "seconds": round(self.seconds, 4), "tolerance": dict(self.tolerance), "assumptions": list(self.assumptions),
            "layers": self.layers, "breaches": [b.to_dict() for b in self.breaches],
        }

    def lines(self) -> list[str]:
        """The summary's text: input, assumptions, one line per layer, verdict."""
        out = [f"fidelity guard: {self.input_source}, {self.batch} x {self.steps} steps"]
        out += [f"assumed: {a}" for a in self.assumptions]
        for name, m in self.layers.items():
            parts = [f"{k} {_num(m[k])}" for k in ("agreement", "timing", "trace_error", "weight_error", "firing", "saturation", "floor", "wraps")
                     if m.get(k) is not None]
            out.append(f"  {name}: " + ", ".join(parts) + (" DEAD" if m.get("dead") else ""))
        out.append("fidelity: ok (no tolerance breached)" if self.ok else f"fidelity: {len(self.breaches)} breach(es)")
        return out


def parse_tolerance(spec: str | Mapping[str, Any] | None) -> dict[str, float]:
    """`"weight_error=0.1,agreement=0.9"` or a dict -> the full tolerance table (defaults filled in)."""
    out = dict(DEFAULT_TOLERANCE)
    if spec is None:
        return out
    items: list[tuple[str, Any]]
    if isinstance(spec, str):
        items = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                raise ParameterError("tolerance entries are KEY=VALUE", where="--tolerance", got=part,
                                     hint=f"e.g. weight_error=0.1,agreement=0.9; keys: {', '.join(TOLERANCES)}")
            items.append((key.strip(), value.strip()))
    else:
        items = list(dict(spec).items())
    for key, value in items:
        if key not in TOLERANCES:
            raise ParameterError("unknown tolerance", where="--tolerance / tolerance=", expected=", ".join(TOLERANCES), got=key)
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise ParameterError("a tolerance must be a finite number >= 0", where=f"tolerance {key}", got=value,
                                 hint=f"{key}: {TOLERANCES[key][2]}")
        out[key] = number
    return out


@contextlib.contextmanager
def recorded_warnings() -> Iterator[list]:
    """Collect snnc's stated assumptions (AssumptionWarning, FidelityWarning) raised in the block, and
    show them again afterwards (so the CLI still prints each once) - `--strict` looks at the list."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AssumptionWarning)
        records: list = []
        yield records
    for w in caught:
        if issubclass(w.category, AssumptionWarning):
            records.append(w)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)  # the caller's filters decide


# -- measuring -------------------------------------------------------------------------------------
def generated_input(shapes: Mapping[str, tuple[int, ...]], seed: int = 0, steps: int = GENERATED_STEPS) -> dict[str, np.ndarray]:
    """Random spikes [1, T, *shape], one in four on: drives every layer of a sane network."""
    rng = np.random.default_rng(seed)
    return {name: (rng.random((1, steps, *shape)) < 0.25).astype(np.float64) for name, shape in shapes.items()}


def check_fidelity(result: Any, calibrate: Any = None, tolerance: Mapping[str, float] | None = None,
                   assumptions: list[str] | None = None) -> FidelityReport:
    """Run float and chip on `calibrate` (or a generated input) and measure `result` (a CompileResult).

    The float side is `snnc.compiler.passes.netlist.simulate` on the graph the quantizer lowered:
    the float model (snnc.ir.float_model, which the reference backend runs; on the canonical graph,
    with the source graph's spikes, as tests/compiler/test_fidelity.py checks on every model it
    builds), run once, a feed-forward network layer at a time, so a CNN's convolutions run once per
    layer instead of once per step. The chip side is one run of the bit-exact `sim` program."""
    import time

    from snnc.backends.base import normalize_inputs
    from snnc.backends.program_cache import build_cached
    from snnc.compiler.passes.netlist import lower, simulate

    start = time.perf_counter()
    tol = parse_tolerance(tolerance)
    chip = result.chip
    graph = result.graph if result.graph is not None else result.source
    handoff: dict[str, Any] = next((rec.handoff for rec in result.records if rec.name == "quantize"), {})
    net = handoff["net"] if "net" in handoff and handoff["net"].graph is graph else lower(graph)
    shapes = {name: tuple(p.shape) for name, p in net.pops.items() if p.kind == "input"}
    if calibrate is None:
        data = generated_input(shapes, steps=GENERATED_STEPS + result.time_shift)
        what = "generated input (no calibration data: random spikes, p=0.25, seed 0)"
    else:
        data = calibrate
        what = "calibration data"
    data, batch, steps = normalize_inputs(data, shapes, None)
    keep_steps = min(steps, MAX_SAMPLE_STEPS)
    keep = max(1, min(batch, MAX_SAMPLES, MAX_SAMPLE_STEPS // keep_steps))
    if (keep, keep_steps) != (batch, steps):
        data = {k: v[:keep, :keep_steps] for k, v in data.items()}
        what += f" (first {keep} of {batch} samples, {keep_steps} of {steps} steps)"
        batch, steps = keep, keep_steps
    floats = _quantizers_run(handoff, net, data)
    if floats is None:
        floats = simulate(net, data, ranges=False)
    spiking = [n for n in chip.populations if n in floats.resets]
    shift = max([result.time_shift, *result.output_shifts.values()] or [0])
    chip_data = data if set(data) == set(chip.inputs) else dict(zip(chip.inputs, data.values()))
    # every population's spikes (what its targets receive); state and input sums of the measured
    # ones (not the constant-bias helper, which has nothing to compare)
    measured = [p for p, pop in chip.populations.items() if pop.meta.get("role") != "bias"]
    looped = _in_loops(chip) & set(measured)
    probes = [f"{p}/s" for p in chip.populations] + [f"{p}/{var}" for p in measured for var in ("u", "v")]
    probes += [f"{p}/a" for p in measured if chip.populations[p].model in NEURON_KINDS and p not in looped]
    # the plain chip run (integers, unaligned), long enough that every population covers all steps
    latest = max([shift, *(int(p.meta.get("latency") or 0) for p in chip.populations.values())])
    encoded = result.encode_inputs(chip_data)
    program = build_cached(chip, "sim")  # result.run() reuses it
    run = program.run(encoded, steps=steps + latest, probes=probes, activity=False)
    events = overflow_events(chip, run, encoded, looped, program.plan)

    report = FidelityReport(tolerance=tol, input_source=what, steps=steps, batch=batch,
                            assumptions=list(assumptions or []))
    qlayers = result.layers
    out_of = {port.population: name for name, port in chip.outputs.items()}
    for name in measured:
        pop = chip.populations[name]
        m: dict[str, Any] = {"neurons": int(pop.size)}
        q = qlayers.get(name, {})
        if "weight_error" in q:
            m["weight_error"] = float(q["weight_error"])
        spikes = run.probes[f"{name}/s"]
        aligned = result.align(spikes, name)[:, :steps]
        graded_out = name in out_of and chip.outputs[out_of[name]].var != "s"
        if graded_out:
            port = out_of[name]
            scale = np.asarray((chip.meta.get("output_scale") or {}).get(port, 1.0), dtype=np.float64)
            offset = np.asarray((chip.meta.get("output_offset") or {}).get(port, 0.0), dtype=np.float64)
            raw = result.align(run.outputs[port], output=port)[:, :steps]
            trace = raw * scale.reshape(raw.shape[2:] if scale.size > 1 else ()) + offset.reshape(raw.shape[2:] if offset.size > 1 else ())
            want = _float_output(net, floats, port)
            if want is not None and want.shape == trace.shape:
                norm = float(np.sqrt(np.mean(want**2)))
                m["trace_error"] = float(np.sqrt(np.mean((trace - want) ** 2)) / norm) if norm > 0 else 0.0
        elif name in spiking:  # paired with a spiking float population (relays and helpers are graded)
            fired = np.asarray(aligned) != 0
            m["spikes"] = np.count_nonzero(fired)
            m["firing"] = m["spikes"] / fired.size if fired.size else 0.0
            f = spike_fidelity(name, aligned, _float_series(net, floats, name))
            m.update(agreement=float(f.count_agreement), timing=float(f.agreement),
                     reference_spikes=int(f.reference_spikes))
        if name in events:
            wrapped, above, below = events[name]
            n_above, n_below = np.count_nonzero(above), np.count_nonzero(below)
            m["saturation"] = n_above / above.size if above.size else 0.0
            m["floor"] = n_below / below.size if below.size else 0.0
            m.update(wraps=np.count_nonzero(wrapped), saturation_events=n_above, floor_events=n_below)
        zero_weights = "synapses" in q and q["synapses"] == 0 and bool(q.get("projections"))
        m["dead"] = int(zero_weights or m.get("spikes", 1) == 0)
        vth = q.get("vth")
        if name in spiking and vth is not None:
            m["vth"] = int(vth.get("min", 0)) if isinstance(vth, dict) else int(vth)
        report.layers[name] = m
        _breaches(report, name, m, q, tol)
    report.seconds = time.perf_counter() - start
    return report


def _quantizers_run(handoff: Mapping[str, Any], net: Any, data: Mapping[str, np.ndarray]) -> Any:
    """The quantizer's float run (handed over by the compile) when it ran on `net` with exactly
    these inputs (all of the calibration data: value for value, shape for shape), else None."""
    calib, run = handoff.get("float_run", (None, None))
    if run is None or handoff.get("net") is not net or calib.keys() != data.keys():
        return None
    same = all(np.shape(x) == np.shape(calib[n]) and np.array_equal(x, calib[n]) for n, x in data.items())
    return run if same else None


def overflow_events(chip: Any, run: Any, inputs: Mapping[str, np.ndarray], looped: set[str] | None = None,
                    plan: Any = None) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Exact overflow events of a sim run, per population of the LIF family (NEURON_KINDS):
    (u wrapped, v clipped at the top, v clipped at the bottom), boolean [batch, steps, neurons].

    `run` must hold the probes s, u, v of every population and `a` (the int32 input sum) of the
    feed-forward ones; `inputs` are the chip inputs it ran on. Each step is checked by
    snnc.ir.fixed_point.step_overflows from the recorded previous state and that step's input.
    A population inside a recurrent loop adds the loop's input within the sim's kernel, so its `a`
    is read from a second run of the looped populations alone, their sources replayed as inputs
    from `run` (the loop opened; the replay must reproduce `run`'s u exactly, or this raises).
    `looped`: the populations in recurrent loops, if the caller has them (`_in_loops`); `plan`: the
    sim program's plan of `chip` (`SimProgram.plan`), if the caller has one.
    A population whose recorded magnitudes rule every event out (`_overflow_free`) is not stepped."""
    from snnc.backends.sim import SimBackend
    from snnc.backends.sim.plan import Plan

    sums = {name[: -len("/a")]: a for name, a in run.probes.items() if name.endswith("/a")}
    in_loops = [p for p in (_in_loops(chip) if looped is None else looped) if chip.populations[p].model in NEURON_KINDS]
    if in_loops and plan is None:
        plan = Plan(chip)
    out = {}
    for name in [p for p in in_loops if _wrap_free(chip, p, run, inputs, plan)]:  # no replay needed: u cannot have wrapped
        wrapped, above, below = _population_overflows(chip.populations[name], run, np.zeros_like(run.probes[f"{name}/u"]))
        out[name] = (np.zeros_like(wrapped), above, below)  # (v's clipping does not depend on a)
    replayed = [p for p in in_loops if p not in out]
    if replayed:
        opened = _opened(chip, replayed)
        steps = next(iter(run.probes.values())).shape[1]
        replay = {name: run.probes[f"{name[len(REPLAY):]}/s"] if name.startswith(REPLAY) else _padded(inputs[name], steps)
                  for name in opened.inputs}
        again = SimBackend().build(opened).run(replay, steps=steps, probes=[f"{p}/{var}" for p in replayed for var in ("a", "u")],
                                               activity=False)
        for p in replayed:
            if not np.array_equal(again.probes[f"{p}/u"], run.probes[f"{p}/u"]):
                raise RuntimeError(f"replaying the loop of population {p!r} did not reproduce its current u")
            sums[p] = again.probes[f"{p}/a"]
    return out | {name: _population_overflows(chip.populations[name], run, a) for name, a in sums.items()}


def _wrap_free(chip: Any, name: str, run: Any, inputs: Mapping[str, np.ndarray], plan: Any) -> bool:
    """Whether population `name`'s u provably never wrapped in `run`: at every step |decay(u before)|
    plus 64 x a bound of |a| stays inside (-2**23, 2**23), and the bound of |a| << 6 inside int32.
    First with one bound for every step (`plan.input_bound`, the sim plan of `chip`: per summed
    block its largest row sum of |W| times the largest |message| its source sent), then, if that is
    not enough, per step: |W| x |messages| from the recorded messages, the projections from one
    source at one lag with weight_exp >= 0 bounded together (one product of the sum of their |W|
    2**weight_exp: the same integers)."""
    import scipy.sparse as sp

    from snnc.backends.sim.plan import SMALL_DENSE, shifted_bound
    from snnc.ir.fixed_point import DECAY_ONE, decay

    u = np.asarray(run.probes[f"{name}/u"], np.int64)
    batch, steps = u.shape[:2]
    pop = chip.populations[name]
    factor = DECAY_ONE - 1 - np.broadcast_to(np.asarray(pop.du, np.int64), pop.shape).reshape(-1)
    incoming = chip.incoming(name)
    messages: dict[str, np.ndarray] = {}
    for src in dict.fromkeys(p.src for p in incoming):
        msg = _padded(inputs[src], steps)[:, :steps] if src in chip.inputs else run.probes[f"{src}/s"]
        messages[src] = np.abs(np.asarray(msg, np.int64)).reshape(batch * steps, -1)
    top = plan.input_bound(name, {src: int(m.max(initial=0)) for src, m in messages.items()})
    kept_max = int(_kept(np.abs(u).reshape(batch * steps, -1).max(axis=0, initial=0), factor).max(initial=0))
    if 64 * top < 2**31 and kept_max + 64 * top < 2**23:
        return True
    if any(np.ndim(p.delay) for p in incoming):
        return False  # per-synapse delays: not bounded per step here
    kept = np.abs(decay(np.concatenate([np.zeros_like(u[:, :1]), u[:, :-1]], axis=1).reshape(batch, steps, -1), factor))

    def magnitudes(p) -> Any:  # |effective weights| (the plan's): a dense array where small (no scipy product), else sparse
        m = plan.matrix(p.name)
        if not sp.issparse(m):
            return np.abs(m)
        return np.abs(m.toarray()) if m.shape[0] * m.shape[1] <= SMALL_DENSE else abs(m)

    weights = [(p, magnitudes(p)) for p in incoming]
    bound = np.zeros((batch, steps, pop.size), np.int64)
    summed: dict[tuple[str, int], Any] = {}  # (source, lag) -> sum of |W| 2**weight_exp (weight_exp >= 0)
    parts: list[tuple[str, int, Any, int]] = []  # (source, lag, |W|, weight_exp < 0)
    for p, w in weights:
        lag = (0 if p.direct else 1) + int(p.delay)
        if p.weight_exp >= 0:
            key = (p.src, lag)
            w = w * (1 << int(p.weight_exp))
            summed[key] = w if key not in summed else summed[key] + w
        else:
            parts.append((p.src, lag, w, int(p.weight_exp)))
    for (src, lag), w, exp in [(k, w, 0) for k, w in summed.items()] + [((s_, lag_), w_, e) for s_, lag_, w_, e in parts]:
        y = shifted_bound(np.asarray(w @ messages[src].T).T.reshape(batch, steps, -1), exp)  # exact integers
        if lag < steps:
            bound[:, lag:] += y[:, : steps - lag]
    return bool(np.all(bound * 64 < 2**31) and np.all(kept + bound * 64 < 2**23))


def _population_overflows(pop: Any, run: Any, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """step_overflows of one population over a whole run: every step from its recorded previous state
    (skipped, all False, where `_overflow_free` proves it would find nothing)."""
    from snnc.ir.fixed_point.neuron import NeuronState, step_overflows
    from snnc.ir.fixed_point.units import bias_value, threshold_value

    batch, steps = a.shape[:2]

    def flat(x, dtype=None) -> np.ndarray:
        return np.asarray(x, dtype).reshape(batch, steps, -1)

    def before(x: np.ndarray) -> np.ndarray:  # each step's previous value (zero before the first step)
        return np.concatenate([np.zeros_like(x[:, :1]), x[:, :-1]], axis=1)

    def param(value) -> Any:  # an int (broadcast by the arithmetic), or an array per neuron
        if isinstance(value, (int, np.integer)):
            return int(value)
        return np.broadcast_to(np.asarray(value, np.int64), pop.shape).reshape(-1)

    u, v, a = flat(run.probes[f"{pop.name}/u"]), flat(run.probes[f"{pop.name}/v"]), flat(a)  # as recorded (int32)
    bias, vth_e = bias_value(param(pop.bias_mant), param(pop.bias_exp)), threshold_value(param(pop.vth))
    du, dv = param(pop.du), param(pop.dv)
    if _overflow_free(u, v, a, du, dv, bias, vth_e if pop.reset_mode == "subtract" else 0):  # u, v: every step's previous state too
        none = np.zeros(a.shape, bool)
        return none, none, none
    s, u, v, a = flat(run.probes[f"{pop.name}/s"], np.int64), flat(u, np.int64), flat(v, np.int64), flat(a, np.int64)
    prev = NeuronState(u=before(u), v=before(v), spiked=before(s != 0) & pop.spiking)
    return step_overflows(
        prev, a, du=du, dv=dv, bias=bias, vth_e=vth_e, kind=pop.model, reset_mode=pop.reset_mode,
        step=np.arange(1, steps + 1)[None, :, None], reset_interval=pop.reset_interval, reset_offset=pop.reset_offset,
    )


def _overflow_free(u: np.ndarray, v: np.ndarray, a: np.ndarray, du: Any, dv: Any, bias: Any, subtracted: Any) -> bool:
    """Whether no step of a recorded run can have left exact arithmetic, from magnitudes alone (then
    step_overflows finds nothing, and need not run). `u`, `v`, `a` are [batch, steps, n] (each step's
    previous state and input sum), the parameters per neuron (or one int for all). Per neuron, with U, V, A its largest
    |u|, |v|, |a|: |decay(u)| <= U (4095 - du) / 4096, so u' = decay(u) + (a << 6) wraps nowhere
    while 64 A < 2**31 and R = U (4095 - du) / 4096 + 64 A < 2**23; and |decay(v)| <= V (4096 - dv)
    / 4096, so v = decay(v) + u' + bias (- vth after a spike with a subtract reset, `subtracted`)
    is clipped nowhere while V (4096 - dv) / 4096 + R + |bias| + subtracted <= V_MAX."""
    from snnc.ir.fixed_point.units import DECAY_ONE, V_MAX

    n = u.shape[-1]

    def peak(x) -> Any:  # per neuron, the largest |x| (an array's in its own integer type, then int64); an int's |x|
        if isinstance(x, int):
            return abs(x)
        x = np.asarray(x)
        if x.ndim != 3:
            return np.broadcast_to(np.abs(np.asarray(x, np.int64)), (n,))
        rows = x.reshape(-1, n)
        return np.maximum(rows.max(axis=0, initial=0).astype(np.int64), -rows.min(axis=0, initial=0).astype(np.int64))

    pushed = 64 * peak(a)
    reach = _kept(peak(u), DECAY_ONE - 1 - np.asarray(du, np.int64)) + pushed
    total = _kept(peak(v), DECAY_ONE - np.asarray(dv, np.int64)) + reach + peak(bias) + peak(subtracted)
    return bool(np.all(pushed < 2**31) and np.all(reach < 2**23) and np.all(total <= V_MAX))


def _kept(top: Any, factor: Any) -> np.ndarray:
    """The largest |decay(x)| for |x| <= top: (top factor) >> 12, Lava's decay truncating toward zero."""
    return (top * np.asarray(factor, np.int64)) >> 12


def _padded(x: np.ndarray, steps: int) -> np.ndarray:
    """[batch, T, ...] input extended with silent steps to `steps` (as a run longer than its input sees it)."""
    x = np.asarray(x)
    return np.concatenate([x, np.zeros((x.shape[0], steps - x.shape[1], *x.shape[2:]), x.dtype)], axis=1) if x.shape[1] < steps else x


REPLAY = "replay:"  # name prefix of the inputs that replay a population's recorded messages


def _in_loops(chip: Any) -> set[str]:
    """Populations of the chip graph that sit in a recurrent component."""
    return {p for comp in chip.population_order() if chip.is_recurrent(comp) for p in comp}


def _opened(chip: Any, members: Sequence[str]) -> Any:
    """`members` alone, every population they receive from replaced by an input of the same shape
    (graded with the projections' payload bits where they carry payloads)."""
    import dataclasses

    from snnc.ir.chip import ChipGraph, InputPopulation

    g = ChipGraph(meta=dict(chip.meta))
    incoming = [p for p in chip.projections.values() if p.dst in members]
    for src in dict.fromkeys(p.src for p in incoming):
        if src in chip.inputs:
            g.add(chip.inputs[src])
        else:
            bits = max(p.num_message_bits for p in incoming if p.src == src)
            g.add(InputPopulation(REPLAY + src, chip.populations[src].shape, num_message_bits=bits))
    for name in members:
        g.add(chip.populations[name])
    for p in incoming:
        g.add(dataclasses.replace(p, src=REPLAY + p.src) if p.src in chip.populations else p)
    return g


def _float_series(net: Any, floats: Any, pop: str) -> np.ndarray:
    """A float population's output (spikes, or a non-spiking neuron's state v') as [batch, T, *shape]."""
    out = floats.outputs[pop]  # [T, batch, n]
    return out.transpose(1, 0, 2).reshape(out.shape[1], out.shape[0], *net.pops[pop].shape)


def _float_output(net: Any, floats: Any, port: str) -> np.ndarray | None:
    """The float model's value at an output port, in its units (a voltage is v' + the neuron's offset)."""
    if port not in net.outputs:
        return None
    pop, var = net.outputs[port]
    series = _float_series(net, floats, pop)
    cuba = net.pops[pop].cuba
    if var == "v" and cuba is not None:
        series = series + np.broadcast_to(np.asarray(cuba.offset, dtype=np.float64), net.pops[pop].shape)
    return series


def _breaches(report: FidelityReport, name: str, m: dict, q: dict, tol: Mapping[str, float]) -> None:
    def add(check: str, fix: str) -> None:
        value = m.get(check)
        if value is None:
            return
        limit = tol[check]
        bad = value < limit if TOLERANCES[check][1] == "min" else value > limit
        if bad:
            report.breaches.append(Breach(name, check, float(value), float(limit), fix))

    tiny = q.get("synapses") == 0
    add("weight_error", "the weights are too small or too spread for the chip's exponent range: rescale the "
        "layer's weights and threshold together" if tiny else "raise --weight-bits, or calibrate with --calibrate")
    add("agreement", "calibrate with --calibrate, raise --weight-bits, or check --reset-mode")
    add("timing", "spikes move in time: raise --weight-bits or calibrate with --calibrate")
    add("trace_error", "calibrate with --calibrate or raise --weight-bits")
    add("saturation", "v hits its 24-bit limit: calibrate with --calibrate (scales from real ranges) or lower the layer's input weights")
    add("floor", "v sits at its lower limit (strong inhibition): calibrate with --calibrate or check the inhibitory weights")
    add("wraps", "u overflows its 24 bits: calibrate with --calibrate or lower the layer's input weights")
    zero_vth = m.get("vth") == 0
    add("vth", "check the threshold: the float model's threshold is 0 or too small for the layer's scale")
    add("firing", "check the threshold (a threshold of 0 fires on any input)" if zero_vth
        else "check the threshold and the bias; the layer fires on every step")
    add("dead", "all weights quantized to zero: raise --weight-bits or rescale the weights" if tiny
        else "check the threshold and the input scale (try --calibrate with real data)")


def reset_modes(graph: Any) -> dict[str, int]:
    """How many spiking nodes of a NIR-level graph use each reset mode."""
    counts: dict[str, int] = {}
    for node in getattr(graph, "nodes", {}).values():
        if isinstance(node, SPIKING):
            mode = reset_mode_of(node)
            counts[mode] = counts.get(mode, 0) + 1
    return counts


def _num(x: float) -> str:
    if isinstance(x, (int, np.integer)) or (isinstance(x, float) and x.is_integer() and abs(x) >= 1):
        return str(int(x))
    return f"{x:.4g}"


# -- assumptions -----------------------------------------------------------------------------------
def stated_assumptions(result: Any, unstated: Sequence[str] = ()) -> list[str]:
    """What this compile assumed, once: reset mode, dt, input encoding, timing changes.

    `unstated`: messages of assumptions made while loading (e.g. a NIR file that cannot state its
    reset mode, see snnc.ir.reset_mode)."""
    out = []
    modes = reset_modes(result.source)
    if modes:
        guessed = any("reset" in m for m in unstated)
        out.append("reset: " + ", ".join(f"{m} ({n} spiking node(s))" for m, n in modes.items())
                   + (" - not stated by the model file, assumed (change with --reset-mode / reset_mode=)" if guessed
                      else ""))
    out += [m for m in unstated if "reset" not in m]
    out.append(f"dt: {result.dt:g} s per step (NIR is continuous time; change with --dt)")
    try:
        inputs = result.report("quantize").get("inputs", {})
    except KeyError:
        inputs = {}
    for name, info in inputs.items():
        if info.get("encoding") == "graded":
            out.append(f"input {name!r}: graded, {info.get('num_message_bits')}-bit payload, scale {_num(float(info.get('input_scale', 1)))} "
                       f"chip units per float unit (range {_num(float(info.get('range', 0)))})")
        else:
            out.append(f"input {name!r}: binary spikes (values other than 0/1 are not expected)")
    try:
        timing = result.report("timing")
    except KeyError:
        timing = None
    if timing is not None:
        shift = int(timing.get("time_shift", 0))
        out.append(f"timing: the chip's outputs lag the float model by {shift} step(s) (one per layer; shifted back in every comparison)")
        extra = {k: v for k, v in (timing.get("extra_delay") or {}).items() if v}
        if extra:
            out.append("timing: extra synaptic delay added on " + ", ".join(f"{k} (+{v})" for k, v in extra.items()))
        out += [f"timing: {n}" for n in timing.get("notes", [])]
    return out


def guard_compile(result: Any, *, calibrate: Any = None, tolerance: Any = None, assumed: Sequence[str] = (),
                  run: bool = True, strict: bool = False) -> None:
    """What `compile` does after its passes: state the assumptions, run the guard, warn per breach
    (FidelityWarning), and with `strict` raise one QuantizationError listing every problem."""
    result.assumptions = stated_assumptions(result, list(assumed))
    parse_tolerance(tolerance)  # refuse a malformed tolerance before anything runs
    if run:
        try:
            result.fidelity = check_fidelity(result, calibrate, tolerance, result.assumptions)
        except Exception as exc:  # noqa: BLE001 - the guard must not block a compile; it says it could not check
            message = (f"{GUARD_FAILED} ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); "
                       "this compile is unchecked - compare it with the float model yourself (snnc budget)")
            result.assumptions.append(message)
            assumed = [*assumed, message]
            warnings.warn(message, FidelityWarning, stacklevel=3)
        else:
            for b in result.fidelity.breaches:
                warnings.warn(b.message, FidelityWarning, stacklevel=3)
    if strict:
        raise_if_strict(strict_problems(result, assumed))


def strict_problems(result: Any, assumed: Sequence[str] = ()) -> list[str]:
    """Every warning `--strict` turns into an error: breaches and assumptions the model did not state."""
    problems = list(assumed)
    if result is not None:
        problems += [a for a in getattr(result, "assumptions", []) if a.startswith(GUARD_FAILED)]
        if result.fidelity is not None:
            problems += [b.message for b in result.fidelity.breaches]
    return list(dict.fromkeys(problems))


def raise_if_strict(problems: list[str]) -> None:
    if problems:
        from snnc.ir.errors import QuantizationError

        raise QuantizationError(
            f"strict: {len(problems)} warning(s) treated as errors: " + " | ".join(problems),
            where="fidelity guard",
            hint="fix the causes named above, or relax the limits with --tolerance KEY=VALUE (tolerance= in the API)",
        )
