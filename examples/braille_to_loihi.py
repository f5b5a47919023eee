"""Braille reading RNN of the NIR paper, compiled for Loihi 2 and run on three backends.

What it shows: a published, recurrent NIR model (12 tactile inputs -> 38 recurrent CubaLIF ->
7 CubaLIF, from the NIR paper's `paper/03_rnn`) goes through snnc unchanged:

1. the float `reference` backend reproduces the hidden-layer spikes snnTorch recorded for test
   sample 0 (0 of 119 differ): the golden model is right;
2. `snnc.compiler.pipeline.compile` quantizes it to 8-bit weights for Loihi 2;
3. the bit-exact simulator `sim` and real Lava processes (`lava`, fixed_pt) run the chip graph and
   must agree spike for spike (hidden and output layers);
4. their spikes, shifted back by `RunResult.time_shift`, are compared with the float model;
5. the energy and latency of one inference are estimated from what `sim` counted, and a report
   (report.json + report.html) is written.

Run:  .venv/bin/python examples/braille_to_loihi.py [--fast] [--out DIR] [--seed N]
(--fast runs Lava on the first 128 steps only; nothing here is random, --seed is accepted for a
command line uniform with the other examples.) Exit status 1 when a verification fails.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    Checks,
    Timer,
    base_parser,
    console,
    energy_numbers,
    fmt_energy,
    fmt_time,
    jsonable,
    pct,
    refdata_dir,
    spike_count_predictions,
)

LABEL = 1  # class of test sample 0 (README of the reference data)
HIDDEN = "lif1.lif"  # the recurrent layer's neurons in the NIR file
DT = 1e-4  # the NIR paper's step


def parse_args(argv):
    parser = base_parser(__doc__, "out/braille")
    parser.add_argument("--weight-bits", type=int, default=8, help="weight width of the compiled network (default 8)")
    parser.add_argument("--data", default=None, help="reference data folder (default: $SNNC_REFDATA or ../shared/data)")
    return parser.parse_args(argv)


def mismatches(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.count_nonzero((np.asarray(a) != 0) != (np.asarray(b) != 0)))


def main(argv=None) -> dict:
    """Run the story; return its verification results (also written to OUT/summary.json)."""
    args = parse_args(argv)
    con = console()
    timer = Timer()
    checks = Checks()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    folder = Path(args.data) if args.data else refdata_dir() / "nir-paper" / "braille"
    if not (folder / "braille_noDelay_bias_zero.nir").exists():
        folder = folder / "nir-paper" / "braille"
    model_path = folder / "braille_noDelay_bias_zero.nir"
    x = np.load(folder / "sample0_input.npy").astype(np.float32)  # [256, 12] spikes
    snntorch_hidden = np.load(folder / "snntorch_activity_noDelay_bias_zero.npy")  # [256, 38]
    steps = x.shape[0]
    batch = x[None]  # [1, T, 12]

    from snnc.backends.base import get_backend
    from snnc.compiler.analysis.evaluate import evaluate
    from snnc.compiler.pipeline import compile as snnc_compile
    from snnc.compiler.report import print_energy_table

    con.rule("[bold]Braille RNN (NIR paper) -> Loihi 2")
    con.print(f"model  {model_path}\ninput  sample 0: {steps} steps x {x.shape[1]} channels, {int(x.sum())} input spikes, label {LABEL}")

    # 1. float golden model
    with timer.stage("reference"):
        ref = get_backend("reference").build(model_path, dt=DT).run(batch, probes=[HIDDEN])
    ref_hidden, ref_out = ref.probes[HIDDEN][0], ref.output[0]
    n_diff = mismatches(ref_hidden, snntorch_hidden)
    checks.add(
        "reference = snnTorch (hidden spikes)",
        n_diff == 0,
        f"{n_diff} of {int(snntorch_hidden.sum())} recorded spikes differ",
    )

    # 2. compile
    with timer.stage("compile"):
        compiled = snnc_compile(str(model_path), target="loihi2", weight_bits=args.weight_bits, dt=DT)
    chip = compiled.chip
    shift = compiled.time_shift
    hidden_pop = HIDDEN  # the compiler keeps the NIR node names for its populations
    run_steps = steps + shift

    # 3. sim (with mapping, energy and bit budget of that run) and lava on the chip graph; the chip
    #    needs `shift` more steps for the same answer
    with timer.stage("sim+energy"):
        ev = evaluate(model_path, batch, chip="loihi2", compiled=compiled, steps=steps, probes=[hidden_pop])  # evaluate runs steps + shift
    sim, energy = ev.run, ev.energy
    lava_steps = run_steps if not args.fast else min(run_steps, 128 + shift)
    with timer.stage("lava"):
        lava = compiled.run(batch, backend="lava", steps=lava_steps, probes=[hidden_pop], progress=False, raw=True)
    out_name = next(iter(chip.outputs))
    d_hidden = mismatches(sim.probes[hidden_pop][:, :lava_steps], lava.probes[hidden_pop])
    d_out = mismatches(sim.outputs[out_name][:, :lava_steps], lava.outputs[out_name])
    checks.add(
        "sim = lava (bit-exact)",
        d_hidden == 0 and d_out == 0,
        f"{d_hidden} hidden and {d_out} output spikes differ over {lava_steps} chip steps",
    )
    # Every population lags the float model by its own latency (the outputs by time_shift).
    n = lava_steps - shift
    sim_hidden = compiled.align(sim.probes[hidden_pop], hidden_pop)[0, :steps]
    sim_out = compiled.align(sim.outputs[out_name])[0, :steps]
    lava_hidden = compiled.align(lava.probes[hidden_pop], hidden_pop)[0, :n]
    lava_out = compiled.align(lava.outputs[out_name])[0, :n]

    # 4. chip vs float
    from snnc.compiler.analysis.sweep import spike_fidelity

    fid_hidden = spike_fidelity("hidden", sim_hidden, ref_hidden)
    fid_out = spike_fidelity("output", sim_out, ref_out)
    preds = {
        "reference": int(spike_count_predictions(ref_out[None])[0]),
        "sim": int(spike_count_predictions(sim_out[None])[0]),
        "lava": int(spike_count_predictions(lava_out[None])[0]),
    }
    if args.weight_bits == 8:  # measured: 8 bits reproduce this sample's float spikes exactly
        checks.add(
            "8-bit chip = float model (spikes)",
            fid_hidden.mismatches == 0 and fid_out.mismatches == 0,
            f"{fid_hidden.mismatches} hidden and {fid_out.mismatches} output spikes differ",
        )
    checks.add("reference predicts the label", preds["reference"] == LABEL, f"class {preds['reference']}, label {LABEL}")
    checks.add(
        f"chip ({args.weight_bits}-bit) predicts the label",
        preds["sim"] == LABEL,
        f"sim class {preds['sim']}, label {LABEL}",
    )

    # 5. report
    with timer.stage("report"):
        paths = ev.write_report(out, meta={"example": "braille_to_loihi", "model": str(model_path)})
    checks.add("report written", paths["html"].exists() and paths["json"].exists(), str(paths["html"]))

    # -- print -----------------------------------------------------------------------------------
    from rich.table import Table

    table = Table(title="Spikes on sample 0 (chip aligned by time_shift = %d)" % shift, title_justify="left")
    for col in ("backend", "hidden spikes", "output spikes", "output counts", "class"):
        table.add_column(col, justify="right" if col != "backend" else "left")
    table.add_row("snnTorch (recorded)", f"{int(snntorch_hidden.sum())}", "", "", "")
    table.add_row("reference (float)", f"{int(ref_hidden.sum())}", f"{int(ref_out.sum())}", _counts(ref_out), str(preds["reference"]))
    table.add_row(f"sim ({args.weight_bits}-bit)", f"{int(sim_hidden.sum())}", f"{int(sim_out.sum())}", _counts(sim_out), str(preds["sim"]))
    table.add_row(
        f"lava fixed_pt{' (%d steps)' % n if n != steps else ''}",
        f"{int(lava_hidden.sum())}",
        f"{int(lava_out.sum())}",
        _counts(lava_out),
        str(preds["lava"]),
    )
    con.print(table)

    fid = Table(title="Chip vs float model (exact spike timing)", title_justify="left")
    for col in ("layer", "agreement (Dice)", "count agreement", "differing entries"):
        fid.add_column(col, justify="right" if col != "layer" else "left")
    for name, f in (("hidden (38)", fid_hidden), ("output (7)", fid_out)):
        fid.add_row(name, pct(f.agreement), pct(f.count_agreement), f"{f.mismatches:,}")
    con.print(fid)
    print_energy_table(energy, console=con)
    con.print(checks.table())
    e = energy_numbers(energy)
    con.print(
        f"energy per inference [bold]{fmt_energy(e['total_j'])}[/bold] "
        f"(dynamic {fmt_energy(e['dynamic_j'])}), latency {fmt_time(e['latency_s'])}; "
        f"report: [bold]{paths['html']}[/bold]"
    )
    con.print(f"[dim]{timer.line()}[/dim]")

    result = {
        "ok": checks.ok,
        "checks": checks.as_dict(),
        "reference_vs_snntorch_mismatches": n_diff,
        "sim_vs_lava_mismatches": d_hidden + d_out,
        "lava_steps": n,
        "time_shift": shift,
        "hidden_agreement": fid_hidden.agreement,
        "output_agreement": fid_out.agreement,
        "predictions": preds,
        "label": LABEL,
        "energy": e,
        "report_html": str(paths["html"]),
        "report_json": str(paths["json"]),
        "seconds": timer.total,
    }
    (out / "summary.json").write_text(json.dumps(jsonable(result), indent=1))
    return result


def _counts(spikes: np.ndarray) -> str:
    return " ".join(str(int(c)) for c in np.asarray(spikes).sum(axis=0))


def cli(argv=None) -> int:
    """Exit status of the script: 1 when any verification failed."""
    return 0 if main(argv)["ok"] else 1


if __name__ == "__main__":
    sys.exit(cli())
