#!/usr/bin/env python
"""Compile time of large dense layers (a plain script; nothing is asserted).

    .venv/bin/python benchmarks/bench_compile.py [--quick] [--repeat N]

For a NIR graph Input -> Affine(n x n) -> LIF with 1M and 10M synapses (--quick: 1M only), each
compile runs in a fresh child process so that peak memory is that compile's own, `--repeat` times
(default 3) with the fidelity guard (what a plain `compile(graph)` runs) and without it
(`guard=False`). Printed, as medians over the runs: wall time of `compile()` (imports excluded),
the floor (one float64 pass that rounds every weight to 8 bits, the least work any quantizer does,
timed in the same child right after the compile) and their ratio, the child's peak RSS, and where
the time went (each pass, and the guard). Issue 16's targets are for the plain compile():
1M synapses < 0.3 s, 10M < 3 s.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, warnings
import numpy as np, nir
from snnc.compiler.pipeline import compile
warnings.simplefilter("ignore")
n, guard = int(sys.argv[1]), sys.argv[2] == "1"
def graph(n, w):
    return nir.NIRGraph(nodes={"input": nir.Input(np.array([n])), "fc": nir.Affine(w, np.zeros(n, w.dtype)),
        "lif": nir.LIF(tau=np.full(n, 0.02), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n)),
        "output": nir.Output(np.array([n]))}, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
rng = np.random.default_rng(0)
w = rng.normal(0, 0.1, (n, n)).astype(np.float32)
compile(graph(4, np.ones((4, 4), np.float32)), guard=guard)  # lazy imports
t = time.perf_counter(); result = compile(graph(n, w), guard=guard); wall = time.perf_counter() - t
t = time.perf_counter(); np.clip(np.rint(w.astype(np.float64) * 300.0), -255, 255).astype(np.int64); floor = time.perf_counter() - t
stages = {r.name: r.seconds for r in result.records}
stages["guard"] = wall - sum(stages.values()) if guard else 0.0
print(json.dumps({"synapses": int(result.chip.num_synapses), "wall": wall, "floor": floor, "stages": stages,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(n: int, guard: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), "1" if guard else "0"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1M synapses only")
    ap.add_argument("--repeat", type=int, default=3, help="fresh-process runs per size and mode (medians are printed)")
    args = ap.parse_args()
    sizes = [1000] if args.quick else [1000, 3163]
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores; "
          f"medians of {args.repeat} fresh processes")
    print(f"{'synapses':>12} {'guard':>5} {'compile':>9} {'floor':>8} {'ratio':>7} {'peak RSS':>9}  target   where the time went (s)")
    for n in sizes:
        for guard in (True, False):
            runs = [run(n, guard) for _ in range(args.repeat)]
            med = {key: statistics.median(r[key] for r in runs) for key in ("wall", "floor", "peak_mib")}
            ratio = statistics.median(r["wall"] / r["floor"] for r in runs)
            stages = {k: statistics.median(r["stages"][k] for r in runs) for k in runs[0]["stages"]}
            where = ", ".join(f"{k} {v:.3f}" for k, v in stages.items() if v >= 0.0005)
            target = "< 0.3 s" if n == 1000 else "< 3 s"
            print(f"{runs[0]['synapses']:>12,} {'on' if guard else 'off':>5} {med['wall']:>8.3f}s {med['floor']:>7.3f}s {ratio:>6.0f}x "
                  f"{med['peak_mib']:>6.0f} MiB  {target:7s}  {where}")


if __name__ == "__main__":
    main()
