#!/usr/bin/env python
"""Sigma-delta (SDNN) network: snnc's `sim` vs lava-dl netx in Lava 0.10.0 fixed_pt, batch 1.

    .venv/bin/python benchmarks/bench_sdnn.py [--quick] [--steps N]

The layer shapes of lava-dl's PilotNet SDNN tutorial network (Delta input 3x33x100 -> sigma-delta
convs 24, 36, 64, 64 channels (3x3; strides 2, 2, (2, 1), 1) -> flatten (2560) -> dense 100 ->
dense 10 -> Sigma output 1) are built with lava-dl slayer's own `block.sigma_delta` blocks (random weights,
seeded) and written with their `export_hdf5`. The input is a slowly changing integer "video" (what
sigma-delta networks are for). Measured in this one run, on the same file and input:

- Lava: lava-dl netx `hdf5.Network` run in Lava fixed_pt, whole (process build, compile, run,
  read the output: what a user waits for), and its `run` call alone;
- sim, whole (`load_netx` + build + run) and its `run` call alone, after one warm-up run (numba
  kernels compiled): the median of --repeat runs before and as many after Lava's run (the machine
  may be shared; a load that changes during the run then weighs on both sides).

Prints both times, the ratios Lava / sim, and whether every output value at every step is equal.
Nothing is asserted (a plain script; see tests/compiler/frontends/test_netx_sdnn.py for the tests).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import lavadl_oracle as oracle  # noqa: E402  (imports Lava before numba starts its threads)
import numpy as np  # noqa: E402

from snnc.backends.base import get_backend  # noqa: E402
from snnc.compiler.frontends.netx import load_netx  # noqa: E402

SHAPE = (3, 33, 100)  # C, H, W of PilotNet's frames
CONVS = (  # (out channels, stride, padding) of lava-dl's PilotNet SDNN tutorial network, 3x3 kernels
    (24, 2, 0),
    (36, 2, 0),
    (64, (2, 1), (1, 0)),
    (64, 1, 0),
)


def pilotnet_blocks():
    blocks, c = [oracle.sdnn_input()], SHAPE[0]
    h, w = SHAPE[1:]
    for i, (c_out, stride, padding) in enumerate(CONVS):
        blocks.append(oracle.sdnn_conv(c, c_out, 3, stride=stride, padding=padding, seed=10 + i, weight_scale=2))
        (sh, sw), (ph, pw) = np.broadcast_to(stride, 2), np.broadcast_to(padding, 2)
        c, h, w = c_out, int((h + 2 * ph - 3) // sh + 1), int((w + 2 * pw - 3) // sw + 1)
    blocks.append(oracle.flatten())
    blocks.append(oracle.sdnn_dense(c * h * w, 100, seed=20))
    blocks.append(oracle.sdnn_dense(100, 10, seed=21))
    blocks.append(oracle.sdnn_dense(10, 1, seed=22, output=True))
    return blocks


def video(steps: int, seed: int = 0) -> np.ndarray:
    """[T, C, H, W] integers 0..255: a smooth image drifting one pixel every few steps, plus noise."""
    rng = np.random.default_rng(seed)
    c, h, w = SHAPE
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(steps):
        shift = t // 4
        img = 128 + 100 * np.sin((xx + shift) / 7.0)[None] * np.cos(yy / 5.0)[None] * np.ones((c, 1, 1))
        frames.append(np.clip(img + rng.integers(-3, 4, (c, h, w)), 0, 255))
    return np.asarray(frames, np.int32)


def lava_run(path: Path, x: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(whole seconds, run-call seconds, output [T, 10]) of lava-dl netx in Lava fixed_pt."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    steps = x.shape[0]
    start = time.perf_counter()
    net = netx.hdf5.Network(net_config=str(path))
    oracle.wire_input_layer(net)
    source = io.source.RingBuffer(data=np.moveaxis(x.transpose(0, 3, 2, 1), 0, -1).astype(np.int32))  # (W, H, C, T)
    sink = io.sink.RingBuffer(shape=net.out.shape, buffer=steps)
    source.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    try:
        t_run = time.perf_counter()
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        run_s = time.perf_counter() - t_run
        out = np.asarray(sink.data.get()).reshape(-1, steps).T
    finally:
        net.stop()
    return time.perf_counter() - start, run_s, out


def sim_run(path: Path, x: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(whole seconds: load_netx + build + run, run-call seconds, output [T, 10]) of snnc's sim."""
    start = time.perf_counter()
    program = get_backend("sim").build(load_netx(path))
    t_run = time.perf_counter()
    out = program.run({"input": x[None]}).outputs["output"][0]
    end = time.perf_counter()
    return end - start, end - t_run, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="60 steps instead of 300")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3, help="sim runs before and after Lava's (default 3)")
    args = ap.parse_args()
    steps = args.steps or (60 if args.quick else 300)
    with tempfile.TemporaryDirectory() as tmp:
        path = oracle.export(pilotnet_blocks(), Path(tmp) / "pilotnet_sdnn.net", SHAPE)
        x = video(steps)
        g = load_netx(path)
        neurons = sum(p.size for p in g.populations.values())
        print(f"PilotNet SDNN layer shapes: {len(g.populations)} layers, {neurons} neurons, {g.num_synapses} synapses; "
              f"input {SHAPE} graded, {steps} steps, batch 1")
        sim_run(path, x)  # warm-up: numba kernels compiled (or loaded from the cache)
        before = [sim_run(path, x) for _ in range(args.repeat)]
        lava_s, lava_run_s, lava_out = lava_run(path, x)
        after = [sim_run(path, x) for _ in range(args.repeat)]
    runs = before + after  # around Lava's run, so that a change of the machine's load hits both
    sim_s, sim_run_s = (float(np.median([r[i] for r in runs])) for i in (0, 1))
    equal = all(np.array_equal(r[2], lava_out) for r in runs)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; sim: median of {len(runs)} runs, "
          f"{args.repeat} before and {args.repeat} after Lava's")
    print(f"{'':28}{'wall s':>10}{'ms/step':>10}")
    rows = [("Lava netx fixed_pt (whole)", lava_s), ("Lava netx fixed_pt (run)", lava_run_s),
            ("snnc sim (whole)", sim_s), ("snnc sim (run)", sim_run_s)]
    for label, secs in rows:
        print(f"{label:28}{secs:10.3f}{1e3 * secs / steps:10.3f}")
    print(f"speed-up sim vs Lava: {lava_s / sim_s:.0f}x whole (file to outputs: Lava's process build, compile and "
          f"run vs snnc's load_netx, build and run), {lava_run_s / sim_run_s:.0f}x run call vs run call")
    print(f"outputs equal at every step: {'yes' if equal else 'NO'} "
          f"({np.count_nonzero(lava_out)} nonzero output values of {lava_out.size})")


if __name__ == "__main__":
    main()
