#!/usr/bin/env python
"""Scaling of dataset evaluation and the bit-budget sweep: one process vs a Dask LocalCluster (a plain
script; nothing is asserted).

    .venv/bin/python benchmarks/bench_dask.py [--quick] [--workers N]

Measures, in one run, on this machine:
1. `snnc evaluate`'s engine on the NIR paper CNN (cnn_sinabs.nir, compiled once at 8 bits) over
   N-MNIST-like frames (the real sample's events through tonic transforms, binned to 1 ms, 60
   steps): samples/s in this process (whose sim already uses every core: numba parallel loops,
   BLAS), on a LocalCluster of 1 single-threaded worker, and on one of N (default: one per core),
   each after a warm-up pass (numba compiled, programs built on every worker). Results must be
   equal (checked and printed).
2. The bit-budget sweep of the Braille RNN (4 widths x batches of the 256-step test sample,
   repeated) on the same three engines (compiles run as tasks too); equal tables checked.
Speed-ups: N workers vs 1 worker (the scaling of the engine; near N is near-linear) and N workers
vs this process. On a machine shared with other work all numbers are noisy: compare ratios from
the same run only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SNNC_REFDATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO / "tests" / "compiler"))


def _frames(samples: int, steps: int) -> np.ndarray:
    from dataset_cases import synthetic_events

    from snnc.compiler.data.events import events_to_frames, load_events

    recording, size = load_events(DATA / "events/sample_nmnist.bin")
    events = synthetic_events(recording, np.random.default_rng(0), samples)
    out = np.zeros((samples, steps, 2, 34, 34), np.float32)
    for i, ev in enumerate(events):
        f = events_to_frames(ev, size, bin_ms=1.0)[:steps]
        out[i, : len(f)] = f
    return out


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def bench_evaluate(engines, samples: int, steps: int, batch: int) -> dict:
    """Seconds for the same evaluation on each engine (after a warm-up that builds every program)."""
    from snnc.compiler.analysis.dataset_eval import prepare, run_prepared
    from snnc.compiler.data.dataset import ArrayDataset, NpzDataset

    x = _frames(samples, steps)
    labels = np.arange(samples) % 10
    prepared = prepare(DATA / "nir-paper/cnn/cnn_sinabs.nir", calibrate=x, reset_mode="zero", guard=False)
    with tempfile.TemporaryDirectory() as tmp:  # read by the workers a batch at a time, as `snnc evaluate --data`
        np.savez(Path(tmp) / "frames.npz", x=x, y=labels)
        data = NpzDataset.open(Path(tmp) / "frames.npz")
        seconds, results = {}, {}
        for name, engine in engines.items():
            warm = batch * engine.workers * 2
            run_prepared(prepared, ArrayDataset(x[:warm], labels[:warm]), batch_size=batch, engine=engine)
            results[name], seconds[name] = _timed(run_prepared, prepared, data, batch_size=batch, engine=engine)
    first = json.dumps(next(iter(results.values())).to_dict())
    return {"samples": samples, "steps": steps, "batch": batch, "seconds": seconds,
            "equal": all(json.dumps(r.to_dict()) == first for r in results.values())}


def bench_sweep(engines, repeats: int) -> dict:
    """Seconds for the same Braille bit-budget sweep on each engine."""
    from snnc.compiler.analysis.sweep import budget_sweep

    model = DATA / "nir-paper/braille/braille_noDelay_bias_zero.nir"
    x = np.repeat(np.load(DATA / "nir-paper/braille/sample0_input.npy")[None], repeats, axis=0)
    opts = {"reset_mode": "zero", "calibrate": x[:1], "guard": False}
    widths = (2, 4, 6, 8)
    seconds, results = {}, {}
    for name, engine in engines.items():
        results[name], seconds[name] = _timed(budget_sweep, model, widths, x, engine=engine,
                                              batch_size=max(1, repeats // 2), **opts)
    first = json.dumps(next(iter(results.values())).to_dict())
    return {"widths": len(widths), "samples": repeats, "seconds": seconds,
            "equal": all(json.dumps(r.to_dict()) == first for r in results.values())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: one per core)")
    args = parser.parse_args(argv)
    import warnings

    from rich.console import Console
    from rich.table import Table

    from snnc.compiler.analysis.distributed import DaskEngine, LocalEngine, machine_workers

    warnings.simplefilter("ignore")
    samples, steps, batch, repeats = (32, 60, 4, 4) if args.quick else (128, 60, 8, 8)
    n = args.workers or machine_workers()
    with DaskEngine(workers=1) as one, DaskEngine(workers=n) as many:
        engines = {"this process": LocalEngine(), "LocalCluster, 1 worker": one, f"LocalCluster, {n} workers": many}
        ev = bench_evaluate(engines, samples, steps, batch)
        sw = bench_sweep(engines, repeats)
    names = list(engines)
    table = Table(title=f"bench_dask: one process vs Dask LocalClusters ({os.cpu_count()} cores; workers single-threaded, "
                        "this process uses all cores)")
    for col in ("job", *names, f"speed-up {n} workers vs 1 worker", f"speed-up {n} workers vs this process", "same results"):
        table.add_column(col, justify="right")
    t = ev["seconds"]
    table.add_row(f"evaluate NIR CNN, {ev['samples']} samples x {ev['steps']} steps, batch {ev['batch']}",
                  *(f"{ev['samples'] / t[k]:.1f} samples/s" for k in names),
                  f"{t[names[1]] / t[names[2]]:.2f}x", f"{t[names[0]] / t[names[2]]:.2f}x", str(ev["equal"]))
    t = sw["seconds"]
    table.add_row(f"budget sweep Braille RNN, {sw['widths']} widths x {sw['samples']} samples",
                  *(f"{t[k]:.1f} s" for k in names),
                  f"{t[names[1]] / t[names[2]]:.2f}x", f"{t[names[0]] / t[names[2]]:.2f}x", str(sw["equal"]))
    Console(width=200).print(table)
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")
    return 0 if ev["equal"] and sw["equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
