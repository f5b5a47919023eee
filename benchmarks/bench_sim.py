#!/usr/bin/env python
"""Benchmark of the `sim` backend against Lava 0.10.0 fixed_pt (a plain script; nothing is asserted).

    .venv/bin/python benchmarks/bench_sim.py [--quick]

Measures, in one run, and prints as a table:
1. Dense 784-256-10 LIF network, 10% input spike rate, 1000 steps (--quick: 300):
   Lava fixed_pt wall time (whole `run`, one Monitor on the output) vs the sim at batch 1;
   the sim's sample-steps/s at batch 256 vs Lava's single-sample rate; the sim's time per
   sample-step vs the bare float32 numpy matmul work of the same layers (inputs prepared).
2. A CNN of the shape of the NIR paper's cnn_sinabs.nir (input 2x34x34; sum-pools folded into
   the following layer, weights quantized from the file), driven by the N-MNIST sample binned to
   1 ms: Lava vs sim at batch 1, the batch-256 throughput, the sim vs the bare torch-conv/matmul
   work, and the peak memory (max RSS of a child process) of the sim at batch 256.
3. The first dense run at batch 1 in a fresh process (subprocess) with numba's cache empty and
   with the cache `python -m snnc.backends.sim.warmup` (run by `make venv`) filled.
Each row also says whether the sim's output spikes equal Lava's bit for bit.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import lava_oracle  # noqa: E402  (import Lava before numba starts its threads)
import numpy as np  # noqa: E402

from snnc.backends.sim import SimBackend  # noqa: E402
from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, OutputPort, Population, Projection  # noqa: E402

DATA = Path(os.environ.get("SNNC_REFDATA", REPO.parent / "shared" / "data"))


# -- networks -----------------------------------------------------------------------------------------
def dense_graph(seed: int = 0) -> ChipGraph:
    rng = np.random.default_rng(seed)
    g = ChipGraph()
    g.add(InputPopulation("in", (784,)))
    g.add(Population("hidden", (256,), du=100, dv=200, vth=200))
    g.add(Population("out", (10,), du=100, dv=200, vth=200))
    g.add(Projection("w1", "in", "hidden", rng.integers(-128, 128, (256, 784)) * 2))
    g.add(Projection("w2", "hidden", "out", rng.integers(-128, 128, (10, 256)) * 2))
    g.outputs["out"] = OutputPort("out", "s")
    return g


def _quantize(w: np.ndarray) -> tuple[np.ndarray, float]:
    """Even (mixed-mode exact) integer weights and the scale used."""
    scale = 127.0 / float(np.abs(w).max())
    return (2 * np.round(w * scale)).astype(np.int64), 2 * scale


def cnn_graph() -> ChipGraph:
    """cnn_sinabs.nir as a chip graph: conv(2->16, 5x5, s2, p1) -> IF 16x16x16 -> conv(16->16,
    3x3, p1) -> IF 16x16x16 -> [sumpool 2x2 + conv(16->8, 3x3, p1) = conv 6x6, s2, p2] -> IF 8x8x8
    -> [sumpool 2x2 + flatten + affine 128->256 = dense 512->256] -> IF 256 -> dense -> IF 10.
    IF neurons: du=4095 (no current state), dv=0 (no leak), vth = v_threshold in weight units."""
    import nir

    nodes = nir.read(str(DATA / "nir-paper" / "cnn" / "cnn_sinabs.nir")).nodes
    g = ChipGraph()
    g.add(InputPopulation("in", (2, 34, 34)))

    def layer(name, shape, scale, threshold=1.0):
        g.add(Population(name, shape, du=4095, dv=0, vth=int(round(threshold * scale))))

    w0, s0 = _quantize(nodes["0"].weight)
    layer("c1", (16, 16, 16), s0)
    g.add(Projection("k1", "in", "c1", w0, kind="conv", conv=ConvGeometry((2, 34, 34), (16, 16, 16), (5, 5), (2, 2), (1, 1))))
    w2, s2 = _quantize(nodes["2"].weight)
    layer("c2", (16, 16, 16), s2)
    g.add(Projection("k2", "c1", "c2", w2, kind="conv", conv=ConvGeometry((16, 16, 16), (16, 16, 16), (3, 3), (1, 1), (1, 1))))
    w5, s5 = _quantize(nodes["5"].weight)
    pooled = np.repeat(np.repeat(w5, 2, axis=2), 2, axis=3)  # sumpool 2x2 folded: 3x3 -> 6x6
    layer("c3", (8, 8, 8), s5)
    g.add(Projection("k3", "c2", "c3", pooled, kind="conv", conv=ConvGeometry((16, 16, 16), (8, 8, 8), (6, 6), (2, 2), (2, 2))))
    w9, s9 = _quantize(nodes["9"].weight)  # [256, 8*4*4]
    idx = np.arange(8 * 8 * 8).reshape(8, 8, 8)
    c, y, x = np.meshgrid(np.arange(8), np.arange(8), np.arange(8), indexing="ij")
    pooled_cols = (c * 16 + (y // 2) * 4 + (x // 2)).ravel()
    dense9 = np.zeros((256, 512), np.int64)
    dense9[:, idx.ravel()] = w9[:, pooled_cols]
    layer("f1", (256,), s9)
    g.add(Projection("d1", "c3", "f1", dense9))
    w11, s11 = _quantize(nodes["11"].weight)
    layer("f2", (10,), s11)
    g.add(Projection("d2", "f1", "f2", w11))
    g.outputs["out"] = OutputPort("f2", "s")
    return g


def nmnist(steps: int) -> np.ndarray:
    """events/sample_nmnist.bin (x, y, polarity, 23-bit microsecond time per 5 bytes) binned into
    1 ms steps: [steps, 2, 34, 34] binary spikes."""
    raw = np.fromfile(DATA / "events" / "sample_nmnist.bin", dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    x, y = raw[:, 0], raw[:, 1]
    pol = raw[:, 2] >> 7
    ts = ((raw[:, 2] & 127) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    out = np.zeros((steps, 2, 34, 34), np.uint8)
    t = ts // 1000
    keep = t < steps
    out[t[keep], pol[keep], y[keep], x[keep]] = 1
    return out


def cnn_batch(frames: np.ndarray, batch: int, seed: int = 1) -> np.ndarray:
    """`batch` copies of the sample, each shifted by a random number of steps and flipped or not."""
    rng = np.random.default_rng(seed)
    out = np.empty((batch, *frames.shape), np.bool_)
    for b in range(batch):
        f = np.roll(frames, rng.integers(0, frames.shape[0]), axis=0)
        out[b] = f[..., ::-1] if rng.random() < 0.5 else f
    return out


# -- timing -------------------------------------------------------------------------------------------
def best_of(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def lava_time(graph: ChipGraph, x: np.ndarray, steps: int, out_pop: str):
    t = time.perf_counter()
    rec = lava_oracle.run_lava(graph, x, steps, watch={out_pop: ["s"]})
    return time.perf_counter() - t, rec.s[out_pop]


def dense_floor(x_rows: np.ndarray, hidden_rows: np.ndarray, graph: ChipGraph) -> float:
    """Bare float32 matmul work of the two dense layers on prepared float32 inputs."""
    w1 = np.ascontiguousarray(graph.projections["w1"].weights.T.astype(np.float32))
    w2 = np.ascontiguousarray(graph.projections["w2"].weights.T.astype(np.float32))
    t, _ = best_of(lambda: (x_rows @ w1, hidden_rows @ w2), 2)
    return t


def cnn_floor(graph: ChipGraph, x: np.ndarray, spikes: dict[str, np.ndarray]) -> float:
    """Bare torch conv2d + numpy matmul work of every layer on prepared float32 inputs."""
    import torch

    feeds = {"k1": x, "k2": spikes["c1"], "k3": spikes["c2"], "d1": spikes["c3"], "d2": spikes["f1"]}
    prepared = {}
    for name, arr in feeds.items():
        proj = graph.projections[name]
        rows = arr.reshape(-1, *arr.shape[2:]).astype(np.float32)
        if proj.kind == "conv":
            prepared[name] = (torch.from_numpy(rows), torch.from_numpy(proj.weights.astype(np.float32)), proj.conv)
        else:
            prepared[name] = (rows.reshape(rows.shape[0], -1), np.ascontiguousarray(proj.weights.T.astype(np.float32)), None)

    def work():
        with torch.no_grad():
            for inp, w, geo in prepared.values():
                if geo is None:
                    inp @ w
                else:
                    torch.nn.functional.conv2d(inp, w, stride=geo.stride, padding=geo.padding, dilation=geo.dilation)

    t, _ = best_of(work, 2)
    return t


def _memory_kb() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process in KiB, from /proc (VmHWM is per address space,
    unlike getrusage's ru_maxrss, which keeps the parent's peak across fork + exec)."""
    fields = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS", "VmHWM")):
                name, value = line.split(":")
                fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def random_frames(batch: int, steps: int, rate: float = 0.1, seed: int = 2) -> np.ndarray:
    """[batch, steps, 2, 34, 34] Bernoulli(rate) spikes, made sample by sample (no big float temp)."""
    rng = np.random.default_rng(seed)
    out = np.empty((batch, steps, 2, 34, 34), np.bool_)
    for b in range(batch):
        out[b] = rng.random((steps, 2, 34, 34), dtype=np.float32) < rate
    return out


def cnn_memory_child(steps: int, batch: int, kind: str) -> None:
    """Run in a child process: the CNN at `batch` on N-MNIST-derived or random 10% input; print
    time and peak RSS as JSON."""
    graph = cnn_graph()
    x = cnn_batch(nmnist(steps), batch) if kind == "nmnist" else random_frames(batch, steps)
    program = SimBackend().build(graph)
    program.run(x[:1, :8])  # compile / warm up
    base, _ = _memory_kb()
    t = time.perf_counter()
    res = program.run(x)
    elapsed = time.perf_counter() - t
    _, peak = _memory_kb()
    print(json.dumps({"time": elapsed, "peak_kb": peak, "before_kb": base, "input_mb": x.nbytes / 2**20,
                      "spikes": int(res.activity.total_spikes)}))


def first_run_child(steps: int) -> None:
    """Run in a fresh child process: the dense network at batch 1 twice; print the first run
    (numba loads or compiles the kernels) and the second (steady) run as JSON."""
    x = np.random.default_rng(0).random((1, steps, 784)) < 0.1
    program = SimBackend().build(dense_graph())
    t = time.perf_counter()
    program.run(x)
    first = time.perf_counter() - t
    t = time.perf_counter()
    program.run(x)
    print(json.dumps({"first": first, "steady": time.perf_counter() - t}))


def first_run(steps: int, cache_dir: str | None) -> dict:
    """`first_run_child` in a fresh process; `cache_dir`: an empty numba cache (None: the
    installed one, which `warmup` filled)."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run([sys.executable, __file__, "--first-run-child", str(steps)], capture_output=True, text=True,
                         check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- main ---------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (about a minute)")
    ap.add_argument("--cnn-memory-child", nargs=3, metavar=("STEPS", "BATCH", "KIND"), help=argparse.SUPPRESS)
    ap.add_argument("--first-run-child", type=int, metavar="STEPS", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.first_run_child:
        first_run_child(args.first_run_child)
        return
    if args.cnn_memory_child:
        steps, batch, kind = args.cnn_memory_child
        cnn_memory_child(int(steps), int(batch), kind)
        return

    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores")
    steps = 300 if args.quick else 1000
    cnn_steps = 100 if args.quick else 300
    big = 256
    rows: list[tuple[str, str, str]] = []
    started = time.perf_counter()

    # 1. dense 784-256-10
    graph = dense_graph()
    rng = np.random.default_rng(0)
    x1 = rng.random((steps, 784)) < 0.1
    console.print(f"[dim]dense: Lava fixed_pt, {steps} steps ...[/dim]")
    t_lava, lava_out = lava_time(graph, x1.astype(np.int64), steps, "out")
    program = SimBackend().build(graph)
    program.run(x1[None, :20])  # compile / warm up
    t_sim1, res1 = best_of(lambda: program.run(x1[None], probes=("hidden",)), 5)
    exact = np.array_equal(res1.outputs["out"][0], lava_out)
    xb = rng.random((big, steps, 784)) < 0.1
    program.run(xb[:, :20])
    t_simb, resb = best_of(lambda: program.run(xb, probes=("hidden",)), 2)
    floor_b = dense_floor(xb.reshape(-1, 784).astype(np.float32), resb.probes["hidden"].reshape(-1, 256).astype(np.float32), graph)
    floor_1 = dense_floor(x1.reshape(-1, 784).astype(np.float32), res1.probes["hidden"].reshape(-1, 256).astype(np.float32), graph)
    lava_rate = steps / t_lava
    rows += [
        ("dense: Lava fixed_pt, batch 1", f"{t_lava:.3f} s ({1e3 * t_lava / steps:.3f} ms/step)", f"{lava_rate:,.0f} sample-steps/s"),
        ("dense: sim, batch 1", f"{t_sim1 * 1e3:.2f} ms", f"[bold]{t_lava / t_sim1:,.0f}x[/bold] faster than Lava (target >= 50x); spikes equal Lava: {exact}"),
        ("dense: sim, batch 256", f"{t_simb:.3f} s = {big * steps / t_simb:,.0f} sample-steps/s",
         f"[bold]{big * steps / t_simb / lava_rate:,.0f}x[/bold] Lava's single-sample rate (target >= 250x)"),
        ("dense: bare float32 matmul, batch 256", f"{floor_b:.3f} s", f"sim / floor = [bold]{t_simb / floor_b:.2f}[/bold] (target <= 3)"),
        ("dense: bare float32 matmul, batch 1", f"{floor_1 * 1e3:.2f} ms", f"sim / floor = {t_sim1 / floor_1:.2f}"),
    ]

    # 1b. the first run in a fresh process: numba's cache empty vs filled by warmup
    import tempfile

    from snnc.backends.sim import warmup

    warmup.compile_all()  # what `make venv` does after installing (a no-op load when already cached)
    with tempfile.TemporaryDirectory() as empty:
        console.print("[dim]first run in a fresh process, empty numba cache ...[/dim]")
        cold = first_run(steps, empty)
    warm = sorted((first_run(steps, None) for _ in range(3)), key=lambda r: r["first"])[1]  # median of 3
    rows += [
        ("dense: first run in a fresh process (subprocess), empty cache", f"{cold['first']:.2f} s",
         f"{cold['first'] / cold['steady']:,.0f}x the steady run ({cold['steady'] * 1e3:.2f} ms): numba compiling"),
        ("dense: first run in a fresh process (subprocess), warm cache", f"{warm['first']:.2f} s",
         f"{warm['first'] / warm['steady']:,.0f}x the steady run; [bold]{warm['first'] - warm['steady']:.2f} s[/bold] "
         f"loading kernels (target < 1 s); empty / warm = {cold['first'] / warm['first']:.0f}x"),
    ]

    # 2. CNN of the cnn_sinabs shape
    cnn = cnn_graph()
    frames = nmnist(cnn_steps)
    console.print(f"[dim]cnn: Lava fixed_pt, {cnn_steps} steps ...[/dim]")
    t_lava_c, lava_c = lava_time(cnn, frames.astype(np.int64), cnn_steps, "f2")
    cprog = SimBackend().build(cnn)
    cprog.run(frames[None, :8])
    probes = ("c1", "c2", "c3", "f1")
    t_simc, resc = best_of(lambda: cprog.run(frames[None], probes=probes), 3)
    exact_c = np.array_equal(resc.outputs["out"][0], lava_c)
    fb = 16
    xf = cnn_batch(frames, fb)
    resf = cprog.run(xf, probes=probes)
    t_floor_c = cnn_floor(cnn, xf, {k: resf.probes[k] for k in probes}) / fb
    def child(kind: str) -> dict:
        out = subprocess.run(
            [sys.executable, __file__, "--cnn-memory-child", str(cnn_steps), str(big), kind],
            capture_output=True, text=True, check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    console.print("[dim]cnn: batch 256 in child processes (time, peak memory) ...[/dim]")
    info = child("nmnist")
    info_r = child("random")
    # bare work for the random 10% input, per sample
    xr = random_frames(fb, cnn_steps)
    resr = cprog.run(xr, probes=probes)
    t_floor_r = cnn_floor(cnn, xr, {k: resr.probes[k] for k in probes}) / fb
    lava_rate_c = cnn_steps / t_lava_c
    rate_c = big * cnn_steps / info["time"]
    rate_r = big * cnn_steps / info_r["time"]
    act = resc.activity
    rates = ", ".join(f"{k} {act.populations[k].spikes / (act.populations[k].neurons * cnn_steps):.3f}" for k in act.populations)
    rows += [
        ("cnn: Lava fixed_pt, batch 1 (N-MNIST)", f"{t_lava_c:.2f} s ({1e3 * t_lava_c / cnn_steps:.1f} ms/step)",
         f"{lava_rate_c:,.1f} sample-steps/s; spike rates {rates}"),
        ("cnn: sim, batch 1 (N-MNIST)", f"{t_simc * 1e3:.1f} ms", f"[bold]{t_lava_c / t_simc:,.0f}x[/bold] faster than Lava; spikes equal Lava: {exact_c}"),
        ("cnn: sim, batch 256 (N-MNIST)", f"{info['time']:.2f} s = {rate_c:,.0f} sample-steps/s",
         f"[bold]{rate_c / lava_rate_c:,.0f}x[/bold] Lava's single-sample rate; "
         f"per sample / bare torch conv + matmul work ({t_floor_c * 1e3:.1f} ms) = [bold]{info['time'] / big / t_floor_c:.2f}[/bold]"),
        ("cnn: sim, batch 256 (random 10% input)", f"{info_r['time']:.2f} s = {rate_r:,.0f} sample-steps/s",
         f"{rate_r / lava_rate_c:,.0f}x Lava's single-sample rate; "
         f"per sample / bare work ({t_floor_r * 1e3:.1f} ms) = [bold]{info_r['time'] / big / t_floor_r:.2f}[/bold]"),
    ]
    for label, i in (("N-MNIST", info), ("random 10%", info_r)):
        rows.append((
            f"cnn: peak memory, batch 256 ({label})", f"{i['peak_kb'] / 2**20:.2f} GiB max RSS",
            f"whole child process: Python, numba, torch, the {i['input_mb']:.0f} MiB input; "
            f"{i['before_kb'] / 2**20:.2f} GiB before the run (target < 2 GB)",
        ))

    table = Table(title=f"sim backend vs Lava 0.10.0 fixed_pt ({'quick' if args.quick else 'full'} run, {os.cpu_count()} CPUs)")
    table.add_column("measurement")
    table.add_column("value", justify="right")
    table.add_column("ratio / note")
    for r in rows:
        table.add_row(*r)
    console.print(table)
    console.print(f"[dim]total benchmark time {time.perf_counter() - started:.0f} s[/dim]")


if __name__ == "__main__":
    main()
