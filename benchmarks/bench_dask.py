#!/usr/bin/env python
"""Scaling of dataset evaluation and the bit-budget sweep: one process vs a Dask LocalCluster (a plain
script; nothing is asserted).

    .venv/bin/python benchmarks/bench_dask.py [--quick] [--workers N]

Measures, in one run, on this machine:
1. `snnc evaluate`'s engine on the NIR paper CNN (cnn_sinabs.nir, compiled once at 8 bits) over
   N-MNIST-like frames (the real sample's events through tonic transforms, binned to 1 ms, 60
   steps): samples/s in this process vs on a LocalCluster of N single-threaded workers (default:
   one per core), both after a warm-up pass (numba compiled, programs built on every worker), and
   the ratio. The results must be equal (checked and printed).
2. The bit-budget sweep of the Braille RNN (4 widths x batches of the 256-step test sample,
   repeated): seconds per sweep in this process vs on the cluster (compiles run as tasks too), and
   the ratio; equal tables checked.
The ratio is the measured speed-up; near N means near-linear scaling. On a machine shared with
other work both numbers are noisy: compare ratios from the same run only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
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


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def bench_evaluate(engine, samples: int, steps: int, batch: int) -> dict:
    from snnc.compiler.analysis.dataset_eval import prepare, run_prepared
    from snnc.compiler.data.dataset import ArrayDataset
    from snnc.compiler.analysis.distributed import LocalEngine

    x = _frames(samples, steps)
    labels = np.arange(samples) % 10
    prepared = prepare(DATA / "nir-paper/cnn/cnn_sinabs.nir", calibrate=x[:16], reset_mode="zero", guard=False)
    data = ArrayDataset(x, labels)
    local = LocalEngine()
    run_prepared(prepared, ArrayDataset(x[:batch], labels[:batch]), batch_size=batch, engine=local)  # warm-up
    one, t_one = _timed(lambda: run_prepared(prepared, data, batch_size=batch, engine=local))
    run_prepared(prepared, ArrayDataset(x[: batch * engine.workers], labels[: batch * engine.workers]), batch_size=batch,
                 engine=engine)  # every worker builds its program
    many, t_many = _timed(lambda: run_prepared(prepared, data, batch_size=batch, engine=engine))
    same = json.dumps(one.to_dict()) == json.dumps(many.to_dict())
    return {"samples": samples, "steps": steps, "batch": batch, "one_s": t_one, "many_s": t_many,
            "one_rate": samples / t_one, "many_rate": samples / t_many, "ratio": t_one / t_many, "equal": same}


def bench_sweep(engine, repeats: int) -> dict:
    from snnc.compiler.analysis.sweep import budget_sweep
    from snnc.compiler.analysis.distributed import LocalEngine

    model = DATA / "nir-paper/braille/braille_noDelay_bias_zero.nir"
    x = np.repeat(np.load(DATA / "nir-paper/braille/sample0_input.npy")[None], repeats, axis=0)
    opts = {"reset_mode": "zero", "calibrate": x[:1], "guard": False}
    widths = (2, 4, 6, 8)
    one, t_one = _timed(lambda: budget_sweep(model, widths, x, engine=LocalEngine(), batch_size=max(1, repeats // 2), **opts))
    many, t_many = _timed(lambda: budget_sweep(model, widths, x, engine=engine, batch_size=max(1, repeats // 2), **opts))
    same = json.dumps(one.to_dict()) == json.dumps(many.to_dict())
    return {"widths": len(widths), "samples": repeats, "one_s": t_one, "many_s": t_many, "ratio": t_one / t_many,
            "equal": same}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: one per core)")
    args = parser.parse_args(argv)
    import warnings

    from rich.console import Console
    from rich.table import Table

    from snnc.compiler.analysis.distributed import DaskEngine, machine_workers

    warnings.simplefilter("ignore")
    samples, steps, batch, repeats = (32, 60, 4, 4) if args.quick else (128, 60, 8, 8)
    with DaskEngine(workers=args.workers or machine_workers()) as engine:
        ev = bench_evaluate(engine, samples, steps, batch)
        sw = bench_sweep(engine, repeats)
        name, workers = engine.name, engine.workers
    table = Table(title=f"bench_dask: 1 process vs {name} ({os.cpu_count()} cores)")
    for col in ("job", "1 process", f"{workers} workers", "ratio (speed-up)", "same results"):
        table.add_column(col, justify="right")
    table.add_row(f"evaluate NIR CNN, {ev['samples']} samples x {ev['steps']} steps, batch {ev['batch']}",
                  f"{ev['one_rate']:.1f} samples/s", f"{ev['many_rate']:.1f} samples/s", f"{ev['ratio']:.2f}x",
                  str(ev["equal"]))
    table.add_row(f"budget sweep Braille RNN, {sw['widths']} widths x {sw['samples']} samples",
                  f"{sw['one_s']:.1f} s", f"{sw['many_s']:.1f} s", f"{sw['ratio']:.2f}x", str(sw["equal"]))
    Console().print(table)
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")
    return 0 if ev["equal"] and sw["equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
