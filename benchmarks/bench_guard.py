#!/usr/bin/env python
"""What the fidelity guard costs: compile time with and without it (a plain script; nothing is asserted).

    .venv/bin/python benchmarks/bench_guard.py [--repeat N] [--quick]

For the NIR paper's files (../shared/data/nir-paper: lif, braille with and without its sample as
calibration, cnn) and a 1M-synapse dense layer: median wall time of `compile(guard=False)` and of
`compile()` (guard on) in this process after a warm-up, the guard's extra time as a fraction of the
unguarded compile (target, issue 15: < 10 %), and the guard's verdict. Then, in a fresh process, the
one-time cost a command pays the first time the guard runs (importing the reference backend's torch
and loading the sim's compiled kernels), which a warm in-process number does not show.
"""
from __future__ import annotations

import argparse
import json
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
        nir.LIF(tau=np.full(n, 0.02), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n), metadata={"reset_mode": "zero"}),
    )


def models(quick: bool):
    yield "nir-paper lif", str(REF / "lif/lif_norse.nir"), None
    yield "nir-paper braille", str(REF / "braille/braille_noDelay_bias_zero.nir"), None
    yield "nir-paper braille + calibration", str(REF / "braille/braille_noDelay_bias_zero.nir"), np.load(REF / "braille/sample0_input.npy")
    yield "nir-paper cnn", str(REF / "cnn/cnn_sinabs.nir"), None
    if not quick:
        yield "dense 1000x1000 (1M synapses)", dense(1000), None


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


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
    from snnc.compiler.pipeline import compile

    warnings.simplefilter("ignore")
    print(f"{'model':34} {'compile':>9} {'guarded':>9} {'guard':>8} {'fraction':>9}  verdict")
    fractions = []
    for name, model, calib in models(args.quick):
        compile(model, calibrate=calib)  # warm-up: imports, kernel loading
        plain, _ = timed(lambda m=model, c=calib: compile(m, calibrate=c, guard=False), args.repeat)
        guarded, result = timed(lambda m=model, c=calib: compile(m, calibrate=c), args.repeat)
        extra = max(guarded - plain, 0.0)
        fractions.append(extra / plain)
        verdict = "ok" if result.fidelity.ok else f"{len(result.fidelity.breaches)} breach(es)"
        print(f"{name:34} {plain:8.3f}s {guarded:8.3f}s {extra:7.3f}s {100 * extra / plain:8.1f}%  {verdict} "
              f"({result.fidelity.input_source.split(' (')[0]}, {result.fidelity.batch}x{result.fidelity.steps} steps)")
    print(f"median guard cost: {100 * statistics.median(fractions):.1f}% of the unguarded compile "
          f"(max {100 * max(fractions):.1f}%); target < 10%")
    out = subprocess.run([sys.executable, "-c", COLD, str(REF / "braille/braille_noDelay_bias_zero.nir")],
                         capture_output=True, text=True, check=True)
    cold = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"fresh process, braille: compile without guard {cold['plain']:.3f}s; the first guarded compile "
          f"{cold['first_guarded']:.3f}s, of which the guard {cold['guard_first']:.3f}s (one-time: torch import "
          f"for the reference backend, sim kernel loading)")


if __name__ == "__main__":
    main()
