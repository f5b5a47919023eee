"""The story both sequence examples tell (spikformer_digits.py, ssm_digits.py), written once.

1. scikit-learn's bundled digits (1,797 real 8x8 images, no download) as sequences: each image's 8
   rows are 8 time steps of 8 integer pixels (0..16, sent as 5-bit graded spikes);
2. a `SequenceClassifier` around the example's block is trained briefly in float torch (weights on
   the chip's power-of-two grid from the start, surrogate gradients);
3. `attention.to_nir` writes it as NIR (standard nodes + the snnc_ext product carriers) and
   `nir.read` + `attention.nir_to_chip` read that file back into a chip graph of LIF, relay and
   product populations (Lava's ProdNeuron);
4. the bit-exact `sim` runs the whole test split; Lava runs a few test images with its own
   processes: their logits must equal the sim's;
5. float vs chip accuracy (the gap must stay under 2 points) and the energy per inference
   (Loihi 2, mapped with the measured activity) go into the table and OUT/summary.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from _common import (
    Checks,
    Timer,
    console,
    energy_numbers,
    fmt_energy,
    jsonable,
    load_digits_split,
    pct,
    train_classifier,
)

GAP_LIMIT = 0.02


def digit_rows(seed: int):
    """(x_train, x_test, y_train, y_test) with x as [N, 8 rows = 8 steps, 8] integer pixels 0..16."""
    x_train, x_test, y_train, y_test = load_digits_split(seed)
    to_rows = lambda x: np.rint(x * 16).astype(np.int64)  # noqa: E731 - the dataset's own integers
    return to_rows(x_train), to_rows(x_test), y_train, y_test


def tell(args, title: str, make_model, describe: str) -> dict:
    """Train, export, lower, run and price the model `make_model()`; return the summary."""
    import nir
    import torch

    from snnc.backends.base import get_backend
    from snnc.backends.sim import SimBackend
    from snnc.compiler.analysis.energy import estimate_energy
    from snnc.compiler.frontends import attention
    from snnc.compiler.mapping import map_to_cores

    con, timer, checks = console(), Timer(), Checks()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    con.rule(f"[bold]{title}")
    x_train, x_test, y_train, y_test = digit_rows(args.seed)
    con.print(f"data   sklearn digits: {len(x_train)} train / {len(x_test)} test images, 8 rows = 8 time steps of 8 pixels\n"
              f"model  {describe}, {args.epochs} epochs")

    with timer.stage("train"):
        model = make_model().double()
        for epoch in range(args.epochs):  # Adam, the learning rate falling linearly to nothing
            train_classifier(model, x_train.astype(np.float64), y_train, 1, lr=args.lr * (1 - epoch / args.epochs) + 1e-4, batch=16)
        with torch.no_grad():
            float_logits = model(torch.from_numpy(x_test).double()).numpy()
    pred_float = float_logits.argmax(1)

    with timer.stage("export"):
        path = out / "model.nir"
        nir.write(path, attention.to_nir(model, x_train.shape[-1]))
        seq = attention.nir_to_chip(nir.read(path), where=str(path), calibration=x_train)
    chip = seq.chip
    kinds = {}
    for pop in chip.populations.values():
        kinds[pop.model] = kinds.get(pop.model, 0) + pop.size

    with timer.stage("sim"):
        run = SimBackend().build(chip).run(seq.pad(x_test))
    chip_logits = seq.logits(run.outputs["logits"])
    pred_chip = chip_logits.argmax(1)

    with timer.stage("lava"):
        n_lava = 2 if args.fast else 4
        lava = get_backend("lava").build(chip).run(seq.pad(x_test[:n_lava]))
    lava_equal = bool(np.array_equal(lava.outputs["logits"], run.outputs["logits"][:n_lava]))

    with timer.stage("energy"):
        mapping = map_to_cores(chip, "loihi2", traffic=run.activity)
        energy = energy_numbers(estimate_energy(run.activity, mapping))

    acc = {"float": float(np.mean(pred_float == y_test)), "chip": float(np.mean(pred_chip == y_test))}
    gap = acc["float"] - acc["chip"]
    agree = float(np.mean(pred_float == pred_chip))
    max_logit_error = float(np.abs(chip_logits - float_logits).max())
    checks.add("float model learned the task", acc["float"] >= (0.5 if args.fast else 0.7), f"float accuracy {pct(acc['float'])} (chance 10 %)")
    checks.add("float-vs-chip gap under 2 points", abs(gap) < GAP_LIMIT,
               f"chip {pct(acc['chip'])} vs float {pct(acc['float'])} (gap {100 * gap:+.2f} points)")
    checks.add("lava = sim (bit-exact)", lava_equal, f"{n_lava} test images, the logits integrator at every one of {seq.steps(8)} steps")

    from rich.table import Table

    table = Table(title=f"Test split ({len(y_test)} images)", title_justify="left")
    for col in ("model", "accuracy", "agrees with float"):
        table.add_column(col, justify="left" if col == "model" else "right")
    table.add_row("float torch (float64)", pct(acc["float"]), "—")
    table.add_row("chip (sim, Loihi 2 fixed point)", pct(acc["chip"]), f"{int(np.sum(pred_chip == pred_float))}/{len(y_test)}")
    con.print(table)
    con.print(checks.table())
    con.print(
        f"chip   {', '.join(f'{n} {k}' for k, n in kinds.items())} neurons; {len(chip.projections)} projections; "
        f"latency {seq.latency} steps ({'; '.join(seq.notes) or 'no delays'})\n"
        f"gap    float {pct(acc['float'])} - chip {pct(acc['chip'])} = {100 * gap:+.2f} points; largest logit difference {max_logit_error:.4g}\n"
        f"energy per inference on Loihi 2: [bold]{fmt_energy(energy['total_j'])}[/bold] "
        f"({energy['synaptic_ops']:,.0f} synaptic ops, {energy['cost_table']})"
    )
    con.print(f"[dim]{timer.line()}[/dim]")
    result = {
        "ok": checks.ok,
        "checks": checks.as_dict(),
        "accuracy": acc,
        "gap_points": 100 * gap,
        "float_chip_agreement": agree,
        "max_logit_error": max_logit_error,
        "lava_equals_sim": lava_equal,
        "lava_images": n_lava,
        "latency_steps": seq.latency,
        "neurons_by_kind": kinds,
        "energy": energy,
        "test_size": int(len(y_test)),
        "nir_file": str(path),
        "seconds": timer.total,
    }
    (out / "summary.json").write_text(json.dumps(jsonable(result), indent=1))
    return result
