#!/usr/bin/env python
"""Compile time of large dense layers (a plain script; nothing is asserted).

    .venv/bin/python benchmarks/bench_compile.py [--quick]

For a NIR graph Input -> Affine(n x n) -> LIF with 1M and 10M synapses (--quick: 1M only), each
size compiled in a fresh child process so that peak memory is that compile's own: wall time of
`compile()` (imports excluded), the floor (one float64 pass that rounds every weight to 8 bits,
the least work any quantizer does) and their ratio, and the child's peak RSS.
Targets (issue 16): 1M synapses < 0.3 s, 10M < 3 s.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, nir
from snnc.compiler.pipeline import compile
n = int(sys.argv[1])
rng = np.random.default_rng(0)
w = rng.normal(0, 0.1, (n, n)).astype(np.float32)
g = nir.NIRGraph(nodes={"input": nir.Input(np.array([n])), "fc": nir.Affine(w, np.zeros(n, np.float32)),
     "lif": nir.LIF(tau=np.full(n, 0.02), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n)),
     "output": nir.Output(np.array([n]))}, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
compile(nir.NIRGraph(nodes={"input": nir.Input(np.array([4])), "fc": nir.Affine(np.ones((4, 4)), np.zeros(4)),
        "lif": nir.LIF(tau=np.full(4, 0.02), r=np.ones(4), v_leak=np.zeros(4), v_threshold=np.ones(4)),
        "output": nir.Output(np.array([4]))}, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")]))  # lazy imports
t = time.perf_counter(); chip = compile(g); wall = time.perf_counter() - t
t = time.perf_counter(); np.clip(np.rint(w.astype(np.float64) * 300.0), -255, 255).astype(np.int64); floor = time.perf_counter() - t
print(json.dumps({"synapses": int(chip.chip.num_synapses), "wall": wall, "floor": floor,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [1000] if args.quick else [1000, 3163]
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores")
    print(f"{'synapses':>12} {'compile':>10} {'floor':>9} {'ratio':>7} {'peak RSS':>10}  target")
    for n in sizes:
        out = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        target = "< 0.3 s" if n == 1000 else "< 3 s"
        print(f"{r['synapses']:>12,} {r['wall']:>9.3f}s {r['floor']:>8.3f}s {r['wall'] / r['floor']:>6.1f}x {r['peak_mib']:>8.0f} MiB  {target}")


if __name__ == "__main__":
    main()
