"""One quantized CNN through every backend: integer-grid CNN -> chip-exact SNN -> sim, Lava -> energy.

What it shows (the README's `make demo`):

1. a small float CNN (conv -> ReLU -> avg pool, twice, then a linear readout) is trained on
   scikit-learn's bundled 8x8 digits (1,797 real images, no download);
2. `quantize_model` puts it on an integer grid (8-bit weights, integer biases, activations
   n = clamp(floor(z / D), 0, L) with L levels, sum pooling), then it is briefly fine-tuned with
   straight-through gradients (`IntGridNet.forward`, float32). That integer CNN is THE model:
   every row below is measured against its predictions (`IntGridNet.integer_forward`);
3. `convert_to_chip` turns it into Loihi 2 CUBA neurons (reset to zero, 8-bit weights) whose spike
   counts over a window of L steps equal the integer activations: the bit-exact `sim` backend runs
   the whole test split and must agree with the integer CNN on 100 % of it (every hidden neuron's
   count too); real Lava processes (`lava`, fixed_pt) run a few samples and must equal `sim` bit
   for bit;
4. the same integer CNN written as a float nn.Sequential (QuantReLU with scale D_1 ... D_k, integer
   weights, biases times the scale, AvgPool with the pool area folded into the next weights: all
   exact in float64) goes through the float converter `conversion.convert` onto the `reference`
   backend (integrate-and-fire with reset by subtraction), and must agree with it too;
5. energy and latency per inference on Loihi 2 are estimated from what `sim` counted
   (`snnc.compiler.analysis.evaluate`), and report.json + report.html are written to --out;
6. the float CNN (cnn.pt, torch.save) and the data are written to --out too, with the command
   that sweeps it over weight bits x time steps (`snnc budget cnn.pt ... --time-steps ...`).

Run:  .venv/bin/python examples/digits_conversion.py [--fast] [--out DIR] [--seed N]
Exit status 1 when a verification fails.
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
    load_digits_split,
    pct,
    seeded,
    train_classifier,
)

PIXEL_LEVELS = 16  # sklearn digits pixels are integers 0..16; load_digits_split divides by 16


def parse_args(argv):
    parser = base_parser(__doc__, "out/demo")
    parser.add_argument("--levels", type=int, default=8, help="activation levels L = spike window in steps (default 8)")
    parser.add_argument("--weight-bits", type=int, default=8, help="weight width of the integer CNN and the chip (default 8)")
    parser.add_argument("--lava-samples", type=int, default=None, help="test samples run on Lava (default 5, --fast 2)")
    args = parser.parse_args(argv)
    # full / fast sizes: conv channels, float epochs, fine-tuning (STE) epochs
    args.channels, args.epochs, args.ste_epochs = ((4, 8), 50, 6) if args.fast else ((8, 16), 120, 15)
    if args.lava_samples is None:
        args.lava_samples = 2 if args.fast else 5
    return args


def build_cnn(channels):
    """1x8x8 -> conv 3x3 -> ReLU -> avg pool 2 -> conv 3x3 -> ReLU -> avg pool 2 -> linear 10 (readout)."""
    import torch.nn as nn

    c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * 2 * 2, 10),
    )


def fine_tune(qnet, x, y, epochs: int, lr: float = 1e-3):
    """STE fine-tuning of an IntGridNet in float32 (its integer view is read in float64 after)."""
    from snnc.compiler.frontends.conversion.chip import IntGridLayer

    ops = [layer.op for layer in qnet.layers if isinstance(layer, IntGridLayer)]
    for op in ops:
        op.float()
    train_classifier(qnet, x, y, epochs, lr)
    for op in ops:
        op.double()
    return qnet


def float_equivalent(qnet):
    """The integer CNN as a float nn.Sequential for `conversion.convert`, exact in float64.

    Fed the pixel integers n0, layer k's activation is P_k * n_k with P_k = D_1 ... D_k: weights
    are the integers q (times the pool area after a sum pool, expressed as AvgPool2d), biases
    P_{k-1} B, QuantReLU scale P_k; the readout gives P_N z_int. Every value is an integer (or an
    integer / 4 after a pool), so float64 reproduces floor(z_int / D) exactly. Returns (model, P_N).
    """
    import torch
    import torch.nn as nn

    from snnc.compiler.frontends.conversion import QuantReLU
    from snnc.compiler.frontends.conversion.chip import IntGridLayer, SumPool2d

    mods, scale, fold = [], 1.0, 1.0
    for layer in qnet.layers:
        if isinstance(layer, IntGridLayer):
            op = layer.op
            if isinstance(op, nn.Conv2d):
                new = nn.Conv2d(op.in_channels, op.out_channels, op.kernel_size, op.stride, op.padding, op.dilation, op.groups)
            else:
                new = nn.Linear(op.in_features, op.out_features)
            new = new.double()
            with torch.no_grad():
                new.weight.copy_(layer.int_weight() * fold)
                new.bias.copy_(layer.int_bias() * scale)
            mods.append(new)
            fold = 1.0
            if layer.act:
                scale *= layer.step
                mods.append(QuantReLU(layer.levels, scale, learn_scale=False).double())
        elif isinstance(layer, SumPool2d):
            mods.append(nn.AvgPool2d(layer.kernel_size))
            fold *= layer.kernel_size[0] * layer.kernel_size[1]
        else:
            mods.append(nn.Flatten())
    return nn.Sequential(*mods).double(), scale


def main(argv=None) -> dict:
    """Run the story; return its verification results (also written to OUT/summary.json)."""
    args = parse_args(argv)
    with seeded(args.seed):
        return run(args)


def run(args) -> dict:
    """The story itself (seeded by `main`)."""
    con = console()
    timer = Timer()
    checks = Checks()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from snnc.backends.base import get_backend
    from snnc.compiler.analysis.evaluate import evaluate
    from snnc.compiler.frontends import conversion
    from snnc.compiler.frontends.conversion.chip import convert_to_chip, quantize_model
    from snnc.ir.errors import SnncError

    L = args.levels
    con.rule("[bold]snnc demo: one quantized CNN -> spiking network -> reference, sim, Lava, energy")
    x_train, x_test, y_train, y_test = load_digits_split(args.seed)
    x_train, x_test = x_train[:, None], x_test[:, None]  # [N, 1, 8, 8], pixels / 16
    n_test = len(y_test)
    c1, c2 = args.channels
    con.print(
        f"data   sklearn digits: {len(y_train)} train / {n_test} test images (8x8, pixels 0..16)\n"
        f"model  conv 3x3 x{c1} -> pool 2 -> conv 3x3 x{c2} -> pool 2 -> linear 10; "
        f"{args.weight_bits}-bit integer grid, L = {L}"
    )

    # 1. float CNN -> integer-grid CNN (calibrated, then STE fine-tuned): THE model
    with timer.stage("train+quantize"):
        fnet = train_classifier(build_cnn(args.channels), x_train, y_train, args.epochs, lr=3e-3)
        qnet = quantize_model(fnet, x_train, levels=L, input_scale=1.0 / PIXEL_LEVELS,
                              input_range=(0, PIXEL_LEVELS), weight_bits=args.weight_bits)
        pred_calib = qnet.predict(x_test)
        fine_tune(qnet, x_train, y_train, args.ste_epochs)
        import torch

        with torch.no_grad():
            pred_float = fnet(torch.from_numpy(x_test)).argmax(1).numpy()
        ints = qnet.integer_forward(x_test)  # exact integers per layer (float64)
        pred_q = ints[-1].reshape(n_test, -1).argmax(1).numpy()
    torch.save(fnet, out / "cnn.pt")  # what `snnc budget` converts at every weight bits x T point
    for name, arr in (("train_x", x_train), ("test_x", x_test), ("test_y", y_test)):
        np.save(out / f"{name}.npy", arr)
    budget_command = (f"snnc budget {out / 'cnn.pt'} --input {out / 'test_x.npy'} --labels {out / 'test_y.npy'} "
                      f"--calibrate {out / 'train_x.npy'} --input-scale {1 / PIXEL_LEVELS} --input-range 0,{PIXEL_LEVELS} "
                      f"--weight-bits 2,4,8 --time-steps 6,10,18 --plot {out / 'budget.png'}")
    acc = {
        "float_cnn": float(np.mean(pred_float == y_test)),
        "quantized_cnn_calibrated": float(np.mean(pred_calib == y_test)),
        "quantized_cnn": float(np.mean(pred_q == y_test)),
    }
    result: dict = {"accuracy": acc, "agreement": {}, "test_size": n_test, "levels": L, "weight_bits": args.weight_bits,
                    "budget_command": budget_command}

    # 2. chip-exact conversion, whole test split on the bit-exact sim
    conv = None
    try:
        with timer.stage("convert"):
            conv = convert_to_chip(qnet, (1, 8, 8))
        result["steps"] = conv.steps
        checks.add("convert to chip", True,
                   f"{conv.chip.num_neurons:,} neurons, {conv.chip.num_synapses:,} synapses, T = {conv.steps} steps")
    except SnncError as err:
        checks.add("convert to chip", False, str(err))

    if conv is not None:
        with timer.stage("sim"):
            sim = conv.run(x_test, backend="sim")
        pred_sim = conv.decode(sim)
        agree_sim = int(np.sum(pred_sim == pred_q))
        acc["snn_sim"] = float(np.mean(pred_sim == y_test))
        result["agreement"]["sim"] = agree_sim / n_test
        readout_equal = bool(np.array_equal(conv.activations(sim), ints[-1].reshape(n_test, -1).numpy().astype(np.int64)))
        checks.add("SNN (sim) = quantized CNN", agree_sim == n_test and readout_equal,
                   f"{agree_sim}/{n_test} predictions equal; readout logits identical: {readout_equal}")
        counts = conv.layer_counts(sim)
        hidden = [layer for layer in conv.layers if layer["act"]]
        bad = [layer["name"] for layer, n in zip(hidden, ints)
               if not np.array_equal(counts[layer["name"]].reshape(n_test, -1), n.reshape(n_test, -1).numpy())]
        checks.add("spike counts = integer activations", not bad,
                   f"every neuron of {len(hidden)} hidden layers over {n_test} images" if not bad else f"differ in {bad}")

    # 3. the same integer CNN as a float QuantReLU model -> float NIR SNN on `reference`
    with timer.stage("reference"):
        seq, scale = float_equivalent(qnet)
        snn = conversion.convert(seq, (1, 8, 8))
        info = conversion.conversion_info(snn)
        n0 = np.rint(x_test * PIXEL_LEVELS)  # the integer pixels the integer CNN sees
        ref = get_backend("reference").build(snn).run(conversion.encode(info, n0))
    ref_values = conversion.decode(info, ref.output)[:, 0]
    pred_ref = ref_values.argmax(1)
    agree_ref = int(np.sum(pred_ref == pred_q))
    acc["snn_reference"] = float(np.mean(pred_ref == y_test))
    result["agreement"]["reference"] = agree_ref / n_test
    result["reference_steps"] = conversion.num_steps(info)
    err = float(np.max(np.abs(ref_values / scale - ints[-1].reshape(n_test, -1).numpy())))
    checks.add("SNN (reference) = quantized CNN", agree_ref == n_test,
               f"{agree_ref}/{n_test} predictions equal; max |readout - logit| = {err:.2g} (integer units)")

    # 4. Lava (fixed_pt) on a few samples: bit for bit equal to sim
    if conv is not None:
        n_lava = min(args.lava_samples, n_test)
        with timer.stage("lava"):
            lava = conv.run(x_test[:n_lava], backend="lava", probes=False, progress=False)
        name = conv.output_name
        lava_equal = int(sum(np.array_equal(lava.outputs[name][i], sim.outputs[name][i]) for i in range(n_lava)))
        pred_lava = conv.decode(lava)
        result["lava_samples"] = n_lava
        result["lava_equal"] = lava_equal
        result["agreement"]["lava"] = float(np.mean(pred_lava == pred_q[:n_lava]))
        checks.add("lava = sim (bit-exact)", lava_equal == n_lava,
                   f"{lava_equal}/{n_lava} samples with identical readout voltages over {conv.steps} steps")

        # 5. energy and report (sim activity over the whole test split, priced for Loihi 2)
        with timer.stage("energy+report"):
            ev = evaluate(conv.chip, conv.encode(x_test), chip="loihi2", steps=conv.steps)
            paths = ev.write_report(out, meta={
                "example": "digits_conversion", "accuracy": acc, "levels": L, "weight_bits": args.weight_bits,
                "seed": args.seed, "energy_over": f"{n_test} test images",
            })
        result["energy"] = energy_numbers(ev.energy)
        result["cores"] = int(ev.mapping.cores_used)
        result["report_html"] = str(paths["html"])
        result["report_json"] = str(paths["json"])
        checks.add("report written", paths["html"].exists() and paths["json"].exists(), str(paths["html"]))

    # -- the summary -------------------------------------------------------------------------------
    from rich.table import Table

    agree = result["agreement"]
    table = Table(title=f"Digits test split: {n_test} images", title_justify="left")
    table.add_column("model")
    table.add_column("accuracy", justify="right")
    table.add_column("same prediction as quantized CNN", justify="right")
    table.add_row("float CNN (ReLU, avg pool)", pct(acc["float_cnn"]), "")
    table.add_row("quantized CNN, calibrated only", pct(acc["quantized_cnn_calibrated"]), "")
    table.add_row(f"[bold]quantized CNN[/bold] (+ {args.ste_epochs} STE epochs; integer, L = {L})",
                  pct(acc["quantized_cnn"]), "= itself")
    table.add_row(f"SNN on reference (float IF, T = {result['reference_steps']} steps)", pct(acc["snn_reference"]),
                  f"{agree_ref}/{n_test}")
    if "snn_sim" in acc:
        table.add_row(f"SNN on sim ({args.weight_bits}-bit Loihi 2, T = {conv.steps} steps)", pct(acc["snn_sim"]),
                      f"{agree_sim}/{n_test}")
    if "lava_samples" in result:
        n_lava = result["lava_samples"]
        table.add_row(f"SNN on lava (fixed_pt, first {n_lava} images)", "",
                      f"{int(round(agree['lava'] * n_lava))}/{n_lava}")
    con.print(table)
    if "energy" in result:
        e = result["energy"]
        con.print(
            f"energy per inference on Loihi 2: [bold]{fmt_energy(e['total_j'])}[/bold] "
            f"(dynamic {fmt_energy(e['dynamic_j'])}, static {fmt_energy(e['static_j'])}), "
            f"latency {fmt_time(e['latency_s'])}\n"
            f"       {result['cores']} cores, {e['synaptic_ops']:,.0f} synaptic ops; sim activity, mean over {n_test} test images"
        )
    con.print(checks.table())
    if "report_html" in result:
        con.print(f"report: [bold]{result['report_html']}[/bold] (+ report.json)")
    con.print(f"bit budget over weight bits x time steps of this CNN:\n  {budget_command}", highlight=False, markup=False)
    con.print(f"[dim]{timer.line()}[/dim]")

    result.update(ok=checks.ok, checks=checks.as_dict(), seconds=timer.total)
    (out / "summary.json").write_text(json.dumps(jsonable(result), indent=1))
    return result


def cli(argv=None) -> int:
    """Exit status of the script: 1 when any verification failed."""
    return 0 if main(argv)["ok"] else 1


if __name__ == "__main__":
    sys.exit(cli())
