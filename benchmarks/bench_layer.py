#!/usr/bin/env python
"""A compiled 1M-synapse layer on the sim vs the float32 matmul floor (a plain script; nothing is asserted).

    .venv/bin/python benchmarks/bench_layer.py [--quick] [--repeat N]

The layer is what `snnc.compiler.compile` makes of a NIR Input -> Affine(1000 x 1000) -> LIF graph:
with the default split_sign, an excitatory and an inhibitory projection. For input spike rates
1-50 % and batch 1 and 64 (T = 100 steps) it prints the median sim run time (program built once)
and its ratio to the floor: one float32 numpy matmul of the same inputs, prepared as float32,
with the layer's weights (targets, issue 16: <= 1.3 at 50 %, <= 0.5 at 1-5 %). Every sim run
is checked bit for bit against a run forced onto the dense (BLAS) path; at batch 1 and 10 % the
same layer also runs in Lava 0.10.0 fixed_pt (sim vs Lava, spikes compared). Then the cost of building
the program per call (what `CompileResult.run` did before programs were cached) against the cached
program (`snnc.backends.program_cache`), at 1 % and batch 1.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import lava_oracle  # noqa: E402  (import Lava before numba starts its threads)
import nir  # noqa: E402
import numpy as np  # noqa: E402

from snnc.backends.program_cache import build_cached, clear  # noqa: E402
from snnc.backends.sim import SimBackend  # noqa: E402
from snnc.compiler.pipeline import compile  # noqa: A004, E402

N = 1000
STEPS = 100
RATES = (0.01, 0.02, 0.05, 0.10, 0.50)
BATCHES = (1, 64)


def layer() -> nir.NIRGraph:
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.1, (N, N)).astype(np.float32)
    return nir.NIRGraph.from_list(
        nir.Affine(w, np.zeros(N, np.float32)),
        nir.LIF(tau=np.full(N, 0.02), r=np.ones(N), v_leak=np.zeros(N), v_threshold=np.ones(N), metadata={"reset_mode": "zero"}),
    )


def median_times(fns, repeat: int) -> list[float]:
    """Median wall time of each function, the functions run interleaved (so that load from other
    processes hits all of them alike)."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def calibrate(chip, w_t: np.ndarray, repeat: int) -> None:
    """Measure the cost model's constants (backends/sim/program.py) on this machine, on the layer's
    own (merged) link at 50 % density (near where the choice is made): BLAS per multiply-add, the
    event kernel per weight added (binary and graded messages), `accumulate` per result."""
    from snnc.backends.sim import kernels as K
    from snnc.backends.sim import program as P

    batch = 16
    rows = batch * STEPS
    rng = np.random.default_rng(5)
    x = (rng.random((rows, N)) < 0.5).astype(np.float32)
    g = x * rng.integers(1, 256, x.shape)
    y = x @ w_t
    (link,) = SimBackend().build(chip).plan.components[0].links
    events = [P._ChunkSource(m.reshape(batch, STEPS, N), float(m.max()), int(np.count_nonzero(m))).events(graded)
              for m, graded in ((x, False), (g, True))]
    acc = np.zeros((batch, STEPS + 1, N), np.int32)
    skip = np.zeros(batch, np.uint8)
    samples = np.arange(batch)
    t_mac, t_ev, t_gr, t_acc = median_times([
        lambda: x @ w_t,
        lambda: K.gather_dense(*events[0], False, skip, *link.event_weights(), STEPS, acc, 1, 0, 0, 0),
        lambda: K.gather_dense(*events[1], True, skip, *link.event_weights(), STEPS, acc, 1, 0, 0, 0),
        lambda: K.accumulate(y, samples, STEPS, acc, 1, 0, 0, 0),
    ], repeat)
    adds = events[0][0][-1] * N
    mac, ev, gr, accu = 1e9 * t_mac / (rows * N * N), 1e9 * t_ev / adds, 1e9 * t_gr / adds, 1e9 * t_acc / (rows * N)
    print(f"cost model, measured (ns): MAC {mac:.4f}, EVENT {ev:.4f}, EVENT_GRADED {gr:.4f}, ACCUMULATE {accu:.3f}; "
          f"in program.py: {P.MAC_NS}, {P.EVENT_NS}, {P.EVENT_GRADED_NS}, {P.ACCUMULATE_NS}")
    for name, used in (("binary", P.EVENT_NS), ("graded", P.EVENT_GRADED_NS)):
        measured = ev if name == "binary" else gr
        print(f"crossover density for a {N}-source layer, {name} messages: measured {(N * mac + accu) / measured / N:.1%}, "
              f"used {(N * P.MAC_NS + P.ACCUMULATE_NS) / used / N:.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--calibrate", action="store_true", help="measure the cost model's constants only")
    args = ap.parse_args()
    repeat = args.repeat or (3 if args.quick else 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chip = compile(layer(), guard=False).chip
    projs = list(chip.projections.values())
    weights = sum(p.effective_weights().toarray() if hasattr(p.effective_weights(), "toarray") else p.effective_weights()
                  for p in projs)
    w_t = np.ascontiguousarray(weights.T.astype(np.float32))
    if args.calibrate:
        calibrate(chip, w_t, repeat)
        return
    program = SimBackend().build(chip)
    dense = SimBackend().build(chip, synapses="dense")
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} (the sim's default: PASSIVE)")
    print(f"compiled layer: {len(projs)} projections ({', '.join(p.name for p in projs)}), "
          f"{chip.num_synapses:,} synapses; T = {STEPS}; median of {repeat}")
    print(f"{'batch':>5} {'rate':>5} {'sim':>10} {'floor':>10} {'sim/floor':>9}  exact")
    rng = np.random.default_rng(1)
    for batch in BATCHES:
        for rate in RATES:
            x = rng.random((batch, STEPS, N)) < rate
            x32 = x.reshape(-1, N).astype(np.float32)
            program.run(x[:, :5])  # warm
            t_sim, t_floor = median_times([lambda x=x: program.run(x), lambda x32=x32: x32 @ w_t], repeat)
            exact = np.array_equal(program.run(x).outputs["output"], dense.run(x).outputs["output"])
            print(f"{batch:>5} {rate:>5.0%} {t_sim * 1e3:>8.2f}ms {t_floor * 1e3:>8.2f}ms {t_sim / t_floor:>9.2f}  {exact}")

    x = rng.random((1, STEPS, N)) < 0.10
    t = time.perf_counter()
    rec = lava_oracle.run_lava(chip, x[0].astype(np.int64), STEPS, watch={"lif": ["s"]})
    t_lava = time.perf_counter() - t
    (t_sim,) = median_times([lambda: program.run(x)], repeat)
    same = np.array_equal(program.run(x).outputs["output"][0], rec.s["lif"])
    print(f"Lava fixed_pt, batch 1, 10%: {t_lava:.2f} s; sim {t_sim * 1e3:.2f} ms: {t_lava / t_sim:,.0f}x faster; spikes equal Lava: {same}")

    x = rng.random((1, STEPS, N)) < 0.01
    clear()
    build_cached(chip, "sim").run(x)
    t_build, t_cached = median_times([lambda: SimBackend().build(chip).run(x), lambda: build_cached(chip, "sim").run(x)], repeat)
    print(f"program per call (build + run), batch 1, 1%: {t_build * 1e3:.2f} ms; cached program (digest + run): "
          f"{t_cached * 1e3:.2f} ms; per call / cached = {t_build / t_cached:.1f}x")


if __name__ == "__main__":
    main()
