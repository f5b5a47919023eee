#!/usr/bin/env python
"""Conv links on the sim: the event-driven kernel vs torch's conv2d, by message density (a plain script).

    .venv/bin/python benchmarks/bench_conv.py [--quick] [--calibrate] [--repeat N]

For the conv geometries of lava-dl's PilotNet SDNN (3x3; strides 2, 2, (2, 1), 1) and a 1x1, a
depthwise and a dilated conv, with graded messages at random positions, batch 1 x 76 steps
(one chunk of the PilotNet SDNN at the default memory budget), it times `kernels_conv.scatter_conv` (int32 buffer) and the dense path the program
takes instead (a sigma-delta source's float64 messages to float32, torch conv2d on one thread,
`kernels.accumulate`), both
checked equal, and prints their ratio and which one the cost model (`program.conv_event_limit`)
picks. Times are the CPU time of this thread (the machine is shared: CPU time does not count the
time other processes hold the core), medians of --repeat runs, interleaved. Before each timed call
the C allocator gives its free memory back to the OS (glibc's malloc_trim), as happens between two
chunks of a real run, where the other layers' buffers come and go: the dense path's float copy and
torch's columns and output are then mapped afresh, page by page, as in the pipeline.

--calibrate fits the cost model's constants (program.CONV_*_NS) to these measurements by least
squares and prints them.
"""
from __future__ import annotations

import argparse
import ctypes
import statistics
import time

import numpy as np
import torch

from snnc.backends.sim import kernels as K
from snnc.backends.sim import kernels_conv
from snnc.backends.sim import program as P
from snnc.backends.sim.plan import Plan
from snnc.ir.chip import ChipGraph, ConvGeometry, InputPopulation, Population, Projection

ROWS = 76
GEOMETRIES = {  # name: (in_shape, out channels, kernel, stride, padding, dilation, groups)
    "pilotnet 1": ((3, 33, 100), 24, (3, 3), (2, 2), (0, 0), (1, 1), 1),
    "pilotnet 2": ((24, 16, 49), 36, (3, 3), (2, 2), (0, 0), (1, 1), 1),
    "pilotnet 3": ((36, 7, 24), 64, (3, 3), (2, 1), (1, 0), (1, 1), 1),
    "pilotnet 4": ((64, 4, 22), 64, (3, 3), (1, 1), (0, 0), (1, 1), 1),
    "1x1": ((32, 16, 16), 32, (1, 1), (1, 1), (0, 0), (1, 1), 1),
    "depthwise": ((32, 16, 16), 32, (3, 3), (1, 1), (1, 1), (1, 1), 32),
    "dilated": ((16, 16, 16), 16, (3, 3), (1, 1), (2, 2), (2, 2), 1),
}
DENSITIES = (0.01, 0.05, 0.2, 0.5)


def link_of(name: str):
    """The plan's link of a graded input -> sigma population conv with random 8-bit weights."""
    in_shape, c_out, kernel, stride, padding, dilation, groups = GEOMETRIES[name]
    hw = ConvGeometry.output_hw(in_shape[1:], kernel, stride, padding, dilation)
    geom = ConvGeometry(in_shape, (c_out, *hw), kernel, stride, padding, dilation, groups)
    w = np.random.default_rng(0).integers(-128, 128, (c_out, in_shape[0] // groups, *kernel)) * 2
    g = ChipGraph()
    g.add(InputPopulation("x", in_shape, num_message_bits=16))
    g.add(Population("s", geom.out_shape, model="sigma"))
    g.add(Projection("c", "x", "s", w, kind="conv", num_message_bits=16, conv=geom))
    return Plan(g.validate()).components[0].links[0]


def _trim():
    """Free memory back to the OS (glibc; elsewhere nothing), so the next allocations are fresh pages."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def cpu_medians(fns, repeat: int) -> list[float]:
    """Median CPU time of this thread for each function, run interleaved, each after `_trim`."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            _trim()
            t = time.thread_time()
            fn()
            times[i].append(time.thread_time() - t)
    return [statistics.median(t) for t in times]


def measure(link, density: float, repeat: int) -> dict:
    g = link.conv.conv
    n_src, n_dst = int(np.prod(g.in_shape)), int(np.prod(g.out_shape))
    rng = np.random.default_rng(1)
    x = (rng.integers(-2000, 2001, (ROWS, n_src)) * (rng.random((ROWS, n_src)) < density)).astype(np.float64)
    args = link.conv_kernel()
    skip = np.zeros(1, np.uint8)
    acc_ev, acc_dense = (np.zeros((1, ROWS + 1, n_dst), np.int32) for _ in range(2))
    weight = link.conv_weight(torch, torch.float32)

    def events():
        kernels_conv.scatter_conv(x, skip, True, False, *args, ROWS, acc_ev, 1, 0)

    def dense():
        x32 = np.ascontiguousarray(x, np.float32)
        with torch.no_grad(), torch.backends.nnpack.flags(enabled=False):
            y = torch.nn.functional.conv2d(torch.from_numpy(x32).reshape(ROWS, *g.in_shape), weight, stride=g.stride,
                                           padding=g.padding, dilation=g.dilation, groups=g.groups)
        K.accumulate(y.reshape(ROWS, -1).numpy(), np.zeros(1, np.int64), ROWS, acc_dense, 1, 0, 0, K.MODE_WRAP24)

    events()
    dense()
    exact = np.array_equal(acc_ev, acc_dense)
    t_ev, t_dense = cpu_medians([events, dense], repeat)
    wt, geo, _, ny, tx, nx = args
    nnz = np.count_nonzero(x)
    lanes = float(tx[:, :, 2].sum(axis=1).mean()) * (g.out_shape[0] // g.groups)
    return dict(events=t_ev, dense=t_dense, exact=exact, nnz=nnz, runs=nnz * float(ny.mean()) * float(nx.mean()),
                lanes=nnz * float(ny.mean()) * lanes, macs=ROWS * link.dense_macs, limit=P.conv_event_limit(link),
                send=ROWS * n_dst, scan=ROWS * n_src)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats and the PilotNet shapes only")
    ap.add_argument("--calibrate", action="store_true", help="fit the cost model's constants")
    ap.add_argument("--repeat", type=int, default=None)
    args = ap.parse_args()
    repeat = args.repeat or (3 if args.quick else 7)
    torch.set_num_threads(1)
    import numba

    numba.set_num_threads(1)
    names = [n for n in GEOMETRIES if n.startswith("pilotnet")] if args.quick else list(GEOMETRIES)
    rows = []
    print(f"batch 1 x {ROWS} steps (one chunk), CPU ms of one thread (median of {repeat}); events = kernels_conv.scatter_conv, "
          "dense = float32 torch conv2d + accumulate")
    print(f"{'conv':>11} {'density':>7} {'events':>8} {'dense':>8} {'ev/dense':>8}  {'model picks':>11}  right  exact")
    for name in names:
        link = link_of(name)
        for density in DENSITIES:
            r = measure(link, density, repeat)
            rows.append(r)
            picks_dense = r["nnz"] / ROWS > r["limit"]
            right = picks_dense == (r["dense"] < r["events"])
            print(f"{name:>11} {density:>7.0%} {r['events'] * 1e3:>8.2f} {r['dense'] * 1e3:>8.2f} "
                  f"{r['events'] / r['dense']:>8.2f}  {'dense' if picks_dense else 'events':>11}  {'yes' if right else 'NO':>5}  {r['exact']}")
    if args.calibrate:
        # dense = macs * MAC + targets * TARGET; events = messages * EVENT + runs * RUN + lanes * LANE + targets * SEND
        d = np.array([[r["macs"], r["send"]] for r in rows])
        (mac, accu), *_ = np.linalg.lstsq(d, np.array([r["dense"] for r in rows]), rcond=None)
        e = np.array([[r["nnz"], r["runs"], r["lanes"], r["send"]] for r in rows])
        (event, run, lane, send), *_ = np.linalg.lstsq(e, np.array([r["events"] for r in rows]), rcond=None)
        print(f"cost model, measured (ns): CONV_MAC_NS {mac * 1e9:.4f}, CONV_TARGET_NS {accu * 1e9:.2f}, CONV_EVENT_NS {event * 1e9:.2f}, "
              f"CONV_RUN_NS {run * 1e9:.2f}, CONV_LANE_NS {lane * 1e9:.4f}, CONV_SEND_NS {send * 1e9:.3f}")
        print(f"  program.py has CONV_MAC_NS {P.CONV_MAC_NS}, CONV_TARGET_NS {P.CONV_TARGET_NS}, CONV_EVENT_NS {P.CONV_EVENT_NS}, "
              f"CONV_RUN_NS {P.CONV_RUN_NS}, CONV_LANE_NS {P.CONV_LANE_NS}, CONV_SEND_NS {P.CONV_SEND_NS}")

if __name__ == "__main__":
    main()
