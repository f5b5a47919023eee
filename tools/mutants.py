#!/usr/bin/env python
"""Mutation check of the tests that guard the chip's arithmetic.

    .venv/bin/python tools/mutants.py [--only NAME]

Each mutant is one textual change to the source (a wrong wrap boundary, a lost reset, ...). The
script applies it, runs the tests named for it, and restores the file whatever happens. A mutant
the tests do not notice ("SURVIVED") means the suite cannot tell that arithmetic from a wrong one.
Exit status 1 when any mutant survives.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = [
    # the 24-bit wrap of u, in the recurrent kernel only (the shared helper stays right)
    Mutant("recurrent kernel: u not wrapped", "backends/sim/kernels.py",
           "u = wrap_u(wrap32(decay(np.int64(u_state[b, j])", "u = (wrap32(decay(np.int64(u_state[b, j])",
           ("tests/backends/test_sim_fixed_point.py",)),
    # the same, and the recurrent kernel's own wrap boundary (u = +2**23 wrapping), against Lava on a
    # recurrent component whose u reaches and crosses 2**23
    Mutant("recurrent kernel: u not wrapped (Lava)", "backends/sim/kernels.py",
           "u = wrap_u(wrap32(decay(np.int64(u_state[b, j])", "u = (wrap32(decay(np.int64(u_state[b, j])",
           ("tests/backends/test_sim_lava.py::test_recurrent_extremes_against_lava",)),
    Mutant("recurrent kernel: wrap boundary moved (Lava)", "backends/sim/kernels.py",
           "wrap32(wrap32(a[j]) << STATE_SHIFT)))\n", "wrap32(wrap32(a[j]) << STATE_SHIFT)) + 1) - 1\n",
           ("tests/backends/test_sim_lava.py::test_recurrent_extremes_against_lava",)),
    Mutant("recurrent kernel: wrap boundary moved", "backends/sim/kernels.py",
           "wrap32(wrap32(a[j]) << STATE_SHIFT)))\n", "wrap32(wrap32(a[j]) << STATE_SHIFT)) + 1) - 1\n",
           ("tests/backends/test_sim_fixed_point.py::test_both_kernels_at_the_wrap_boundary",)),
    # the wrap boundary itself: +2**23 stays, +2**23 + 1 wraps
    Mutant("wrap boundary moved", "ir/fixed_point/arith.py", "U_WRAP * (x > U_HALF)", "U_WRAP * (x >= U_HALF)",
           ("tests/ir/test_fixed_point.py",)),
    # the quantizer's teacher-forced re-simulator
    Mutant("teacher: float reset not applied", "compiler/passes/quantize.py",
           "state.v = np.where(fired, v_reset, state.v)", "state.v = state.v",
           ("tests/compiler/passes/test_quantize_teacher.py",)),
    Mutant("threshold mantissa rounded down", "compiler/passes/quantize.py",
           "np.maximum(np.rint(k * thr / STATE_UNIT), 1)", "np.maximum(np.floor(k * thr / STATE_UNIT), 1)",  # vth_mantissa
           ("tests/compiler/passes/test_quantize_teacher.py",)),
    Mutant("teacher: flips not counted", "compiler/passes/quantize.py",
           "flips += int(np.count_nonzero((spikes != 0) != fired))", "flips += int(np.count_nonzero(fired & (spikes != 0)) * 0)",
           ("tests/compiler/passes/test_quantize_teacher.py",)),
    Mutant("teacher: subtract reset forgotten", "compiler/passes/quantize.py",
           'reset_mode="subtract" if mode == "subtract" else "none",', 'reset_mode="none",',
           ("tests/compiler/passes/test_quantize_teacher.py",)),
    # the decay (shared by kernels, teacher and Lava process)
    Mutant("decay floors instead of truncating", "ir/fixed_point/arith.py",
           "return (p + ((p >> 63) & _DECAY_MASK)) >> DECAY_SHIFT", "return p >> DECAY_SHIFT",
           ("tests/ir/test_fixed_point.py",)),
    # product and adaptive-threshold neurons (spec shared by the numpy step and the kernels: only Lava
    # itself can tell these apart)
    Mutant("product: no int32 wrap", "ir/fixed_point/prodneuron.py",
           "return wrap32(wrap32(a1) * wrap32(a2)) >> exp", "return (a1 * a2) >> exp",
           ("tests/backends/test_programmable_lava.py::test_extremes_equal_lava",)),
    Mutant("product: threshold inclusive", "ir/fixed_point/prodneuron.py",
           "return v * (wrap32(np.abs(v)) > vth)", "return v * (wrap32(np.abs(v)) >= vth)",
           ("tests/backends/test_programmable_lava.py::test_product_threshold_is_strict_like_lava",)),
    Mutant("atrlif: strict threshold", "ir/fixed_point/atrlif.py",
           "s = (wrap32(v - r) >= theta) * 1", "s = (wrap32(v - r) > theta) * 1",
           ("tests/ir/test_programmable_kinds.py::test_atrlif_hand_values",)),
    Mutant("atrlif: refractory raised by one theta", "ir/fixed_point/atrlif.py",
           "r = wrap32(r + s * wrap32(2 * theta))", "r = wrap32(r + s * theta)",
           ("tests/backends/test_programmable_lava.py::test_extremes_equal_lava",)),
    Mutant("lif_refractory: period one step short", "ir/fixed_point/refractory.py",
           "c = (1 - s) * c + s * period", "c = (1 - s) * c + s * (period - 1)",
           ("tests/backends/test_sim_refractory.py::test_sim_equals_lava_lifrefractory",)),
    Mutant("lif_refractory: v integrates while refractory", "ir/fixed_point/refractory.py",
           "held = (c > 0) * 1", "held = (c < 0) * 1",
           ("tests/backends/test_sim_refractory.py::test_sim_equals_lava_lifrefractory",)),
    # resonate-and-fire (Lava RF / RF_IZ): the spec is shared by the numpy step and the kernel, so Lava decides
    Mutant("rf: rotation floors instead of truncating toward zero", "ir/fixed_point/resonator.py",
           "return np.sign(x) * (np.abs(x) >> decay_bits)", "return x >> decay_bits",
           ("tests/backends/test_resonator_lava.py::test_spec_equals_lava_rf_processes",)),
    Mutant("rf: phase spike without the zero crossing", "ir/fixed_point/resonator.py",
           "phase = (re >= vth_e) * (im >= 0) * (imag < 0) * 1", "phase = (re >= vth_e) * (im >= 0) * 1",
           ("tests/backends/test_resonator_lava.py::test_spec_equals_lava_rf_processes",)),
    # the sim plan sums the projections of one layer (sign and exponent splits) into one matrix:
    # each part scaled by its shift over the smallest, never across a right shift (a floor)
    Mutant("plan: exponent-split parts summed unscaled", "backends/sim/plan.py",
           "total += np.asarray(w.toarray() if _is_sparse(w) else w, np.int64) << (shift - s0)",
           "total += np.asarray(w.toarray() if _is_sparse(w) else w, np.int64)",
           ("tests/backends/test_sim_units.py::test_exponent_split_parts_are_planned_as_one_link_scaled_by_their_shifts",
            "tests/backends/test_sim_lava.py::test_sign_split_pairs_planned_as_one_signed_matrix")),
    # the guard's quick wrap bound: a bound below the true input sum would skip the exact check
    Mutant("plan: input bound without the blocks' shifts", "backends/sim/plan.py",
           "return sum(shifted_bound(l1 * int(peaks[src]), shift) for l1, src, shift in parts)",
           "return sum(l1 * int(peaks[src]) for l1, src, shift in parts)",
           ("tests/backends/test_sim_units.py::test_input_bound_sums_each_blocks_row_l1_times_its_sources_peak_shifted",)),
    Mutant("plan: parts merged across a negative weight_exp", "backends/sim/plan.py",
           "return mode != K.MODE_WRAP24 and shift >= 0",
           "return mode != K.MODE_WRAP24",
           ("tests/backends/test_sim_units.py::test_sign_split_halves_are_planned_as_one_link_and_one_recurrent_block",
            "tests/backends/test_sim_lava.py::test_sign_split_pairs_planned_as_one_signed_matrix")),
]


def run_mutant(m: Mutant) -> bool:
    """True when the tests kill the mutant."""
    path = REPO / m.path
    original = path.read_text()
    if original.count(m.old) != 1:
        raise SystemExit(f"mutant {m.name!r}: expected exactly one {m.old!r} in {m.path}")
    try:
        path.write_text(original.replace(m.old, m.new))
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *m.tests]
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True).returncode != 0
    finally:
        path.write_text(original)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="run only mutants whose name contains this text")
    args = ap.parse_args()
    survived = 0
    for m in MUTANTS:
        if args.only and args.only not in m.name:
            continue
        killed = run_mutant(m)
        survived += not killed
        print(f"{'killed  ' if killed else 'SURVIVED'}  {m.name}  ({m.path}; {', '.join(m.tests)})", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
