#!/usr/bin/env python
"""What the fidelity guard costs: compile time with and without it (a plain script; nothing is asserted).

    .venv/bin/python benchmarks/bench_guard.py [--repeat N] [--quick]

First the compiles of the repo's examples that run the guard: examples/braille_to_loihi.py (the NIR
paper's braille file, no calibration data: the guard runs on a generated input) and
examples/digits_snntorch.py --fast (its snnTorch network, trained one epoch here, calibrated on 128
training digits); then the NIR paper's lif and cnn files, braille with its sample as calibration,
and (without --quick) a 1M-synapse dense layer (1000 LIF neurons that fire on the generated input).
In this process after a warm-up, `compile(guard=False)` and `compile()` (guard on) alternate
`--repeat` times. Printed per model: the median unguarded compile, the median of the guard's own
time inside the guarded compiles (`result.fidelity.seconds`: the float run, the chip run and the
measurements), their ratio (target, issue 15: < 10 % on the repo's examples), the same ratio in
CPU time (this process's, all threads: steadier than wall time on a busy machine), the median
difference guarded - unguarded (a noisier cross-check: two wall times on a shared machine), the
guard's verdict and the slice it ran on. Then where the guard's time goes, per model (medians,
wall time): the float model's run (netlist.simulate; on all of the quantizer's calibration data the
quantizer's own run, handed over), the sim program's build (which `CompileResult.run` then
reuses), the sim runs, and the rest (generated input and encoding, graph digest, overflow checks,
per-layer measurements). The load average is printed first: compare ratios, not seconds, between
runs. Then, in a fresh process, the one-time cost a command pays the first time the guard runs
(numba's start and loading the sim's compiled kernels), which a warm in-process number does not show.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import nir
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT.parent / "shared" / "data" / "nir-paper"


def dense(n: int) -> nir.NIRGraph:
    rng = np.random.default_rng(0)
    return nir.NIRGraph.from_list(
        nir.Affine(rng.normal(0, 0.1, (n, n)).astype(np.float32), np.zeros(n, np.float32)),
        nir.LIF(tau=np.full(n, 2e-4), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n), metadata={"reset_mode": "zero"}),
    )


def digits_snntorch():
    """The compile of examples/digits_snntorch.py --fast: its 64-48-10 snnTorch network (trained one
    epoch here, not four), exported with from_torch and calibrated on 128 rate-encoded training digits."""
    sys.path.insert(0, str(ROOT / "examples"))
    import torch
    from _common import load_digits_split
    from digits_snntorch import DT, build_net, rate_encode, train

    from snnc.compiler.frontends.torch import from_torch

    torch.manual_seed(0)
    x_train, _, y_train, _ = load_digits_split(0)
    s_train = rate_encode(x_train, 16, np.random.default_rng(0))
    net = train(build_net(48), s_train, y_train, 1)
    return from_torch(net, (64,), dt=DT), s_train[:128], {"target": "loihi2", "weight_bits": 8, "dt": DT}


def models(quick: bool):
    """(name, model, calibration data, compile options): the repo's examples' own compiles first."""
    braille = str(REF / "braille/braille_noDelay_bias_zero.nir")
    example = {"target": "loihi2", "weight_bits": 8, "dt": 1e-4}  # examples/braille_to_loihi.py's call
    yield "example braille_to_loihi", braille, None, example
    graph, calib, options = digits_snntorch()
    yield "example digits_snntorch --fast", graph, calib, options
    yield "nir-paper lif", str(REF / "lif/lif_norse.nir"), None, {}
    yield "nir-paper braille + calibration", braille, np.load(REF / "braille/sample0_input.npy"), example
    yield "nir-paper cnn", str(REF / "cnn/cnn_sinabs.nir"), None, {}
    if not quick:
        yield "dense 1000x1000 (1M synapses)", dense(1000), None, {}


GUARD_CPU: list[float] = []  # CPU seconds of each check_fidelity call (recorded by the wrapper in main)
PHASES: list[dict[str, float]] = []  # per check_fidelity call: wall seconds of its phases (see timed_phases)
PHASE_NAMES = {"float": "float run", "build": "chip build", "run": "chip run"}


def timed_phases() -> None:
    """Record, inside each guard call, the wall time of the float model's run (netlist.simulate),
    the sim program's build (SimBackend.build) and the sim runs (SimProgram.run) in PHASES[-1]."""
    from snnc.backends.sim import SimBackend
    from snnc.backends.sim.program import SimProgram
    from snnc.compiler.passes import netlist

    def timed(owner, name: str, phase: str) -> None:
        original = getattr(owner, name)

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                if PHASES and "active" in PHASES[-1]:  # inside a guard call
                    PHASES[-1][phase] = PHASES[-1].get(phase, 0.0) + time.perf_counter() - t
        setattr(owner, name, wrapper)

    timed(netlist, "simulate", "float")  # the guard imports it from the module when it runs
    timed(SimBackend, "build", "build")
    timed(SimProgram, "run", "run")


def alternating(model, calib, options: dict, repeat: int):
    """Unguarded and guarded compiles in turn: (plain times, guarded times, guard times, plain CPU
    times, guard CPU times, last result)."""
    from snnc.compiler.pipeline import compile

    plain, guarded, guard, plain_cpu, guard_cpu, result = [], [], [], [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        compile(model, calibrate=calib, guard=False, **options)
        plain.append(time.perf_counter() - t)
        plain_cpu.append(time.process_time() - c)
        t = time.perf_counter()
        result = compile(model, calibrate=calib, **options)
        guarded.append(time.perf_counter() - t)
        guard.append(result.fidelity.seconds)
        guard_cpu.append(GUARD_CPU[-1])
    return plain, guarded, guard, plain_cpu, guard_cpu, result


COLD = r"""
import json, time, warnings
warnings.simplefilter("ignore")
from snnc.compiler.pipeline import compile
path = __import__("sys").argv[1]
t = time.perf_counter(); compile(path, guard=False); plain = time.perf_counter() - t
t = time.perf_counter(); r = compile(path); first = time.perf_counter() - t
print(json.dumps({"plain": plain, "first_guarded": first, "guard_first": r.fidelity.seconds}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="skip the 1M-synapse layer")
    args = ap.parse_args()
    from snnc.compiler.analysis import fidelity
    from snnc.compiler.pipeline import compile

    check = fidelity.check_fidelity

    def timed_check(*a, **k):
        c = time.process_time()
        PHASES.append({"active": 1.0})
        try:
            return check(*a, **k)
        finally:
            GUARD_CPU.append(time.process_time() - c)
            PHASES[-1].pop("active")

    fidelity.check_fidelity = timed_check  # guard_compile calls it by this name
    timed_phases()
    warnings.simplefilter("ignore")
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores")
    print(f"{'model':34} {'compile':>9} {'guard':>8} {'ratio':>7} {'cpu':>7} {'diff':>8}  verdict (input, slice)")
    ratios, cpu_ratios, phases = [], [], {}
    examples = []
    for name, model, calib, options in models(args.quick):
        compile(model, calibrate=calib, **options)  # warm-up: imports, kernel loading
        start = len(PHASES)
        plain, guarded, guard, plain_cpu, guard_cpu, result = alternating(model, calib, options, args.repeat)
        phases[name] = [{**p, "other": g - sum(p.values())} for p, g in zip(PHASES[start:], guard)]
        base, own = statistics.median(plain), statistics.median(guard)
        cpu = statistics.median(guard_cpu) / statistics.median(plain_cpu)
        diff = statistics.median(g - p for g, p in zip(guarded, plain))
        ratios.append(own / base)
        cpu_ratios.append(cpu)
        if name.startswith("example"):
            examples.append(own / base)
        verdict = "ok" if result.fidelity.ok else f"{len(result.fidelity.breaches)} breach(es)"
        print(f"{name:34} {base:8.3f}s {own:7.3f}s {100 * own / base:6.1f}% {100 * cpu:6.1f}% {diff:+7.3f}s  {verdict} "
              f"({result.fidelity.input_source.split(' (')[0]}, {result.fidelity.batch}x{result.fidelity.steps} steps)")
    print(f"guard / compile: the repo's examples {', '.join(f'{100 * r:.1f}%' for r in examples)} (target, issue 15: < 10%); "
          f"all models median {100 * statistics.median(ratios):.1f}%, max {100 * max(ratios):.1f}% "
          f"(CPU time: median {100 * statistics.median(cpu_ratios):.1f}%, max {100 * max(cpu_ratios):.1f}%)")
    print("where the guard's time goes (medians, ms and share of the guard; other: the generated input and its "
          "encoding, the graph digest, the overflow checks and the per-layer measurements):")
    names = [*PHASE_NAMES, "other"]
    print(f"{'model':34} " + " ".join(f"{PHASE_NAMES.get(k, k):>15}" for k in names))
    for name, calls in phases.items():
        total = statistics.median(sum(c.values()) for c in calls)
        cells = [statistics.median(c.get(k, 0.0) for c in calls) for k in names]
        print(f"{name:34} " + " ".join(f"{1e3 * v:8.2f} ({100 * v / total:3.0f}%)" for v in cells))
    print("load average after: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    out = subprocess.run([sys.executable, "-c", COLD, str(REF / "braille/braille_noDelay_bias_zero.nir")],
                         capture_output=True, text=True, check=True)
    cold = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"fresh process, braille: compile without guard {cold['plain']:.3f}s; the first guarded compile "
          f"{cold['first_guarded']:.3f}s, of which the guard {cold['guard_first']:.3f}s (one-time: numba's start and the sim's kernels loaded)")


if __name__ == "__main__":
    main()
