"""A quantized Elman RNN on sequential digits (rows as time steps) -> chip-exact SNN -> reference, sim, Lava.

What it shows (the recurrent counterpart of digits_conversion.py):

1. scikit-learn's bundled 8x8 digits read as sequences, sequential-MNIST style: each image is 8
   frames (its rows) of 8 pixels; a float Elman RNN (`nn.RNN`, relu) reads them and a linear
   readout classifies the last frame's hidden state;
2. `quantize_rnn` puts it on an integer grid (8-bit weights, integer biases, hidden activations
   h_tau = clamp(floor((Wq x_tau + Uq h_{tau-1} + B) / D), 0, L), a power-of-two step D), then it is
   briefly fine-tuned with straight-through gradients. That integer RNN is THE model: every row
   below is measured against its predictions (`IntGridRNN.integer_forward`);
3. `convert_rnn_to_chip` turns it into Loihi 2 CUBA neurons: per frame an integrate and a fire
   window (period 2 L - 1 steps), the hidden layer resets between frames (LIFReset), its
   recurrent synapses are delayed by L - 1 steps so that the previous frame's spikes arrive in the
   current frame's integrate window. The bit-exact `sim` runs the whole test split and must agree
   with the integer RNN on 100 % of it, every hidden count of every frame and every logit
   included; real Lava processes (fixed_pt) run a few samples and must equal `sim` bit for bit;
4. the same integer RNN as a float `conversion.QuantRNN` + Linear (exact in float64 because D is a
   power of two) goes through the float converter onto the `reference` backend, and must agree too;
5. energy and latency per sequence on Loihi 2 are estimated from what `sim` counted.

Run:  .venv/bin/python examples/digits_rnn_conversion.py [--fast] [--out DIR] [--seed N]
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
    parser = base_parser(__doc__, "out/digits_rnn")
    parser.add_argument("--levels", type=int, default=16, help="activation levels L (fire window, steps; default 16)")
    parser.add_argument("--hidden", type=int, default=None, help="hidden neurons (default 64, --fast 32)")
    parser.add_argument("--weight-bits", type=int, default=8, help="weight width of the integer RNN and the chip (default 8)")
    parser.add_argument("--lava-samples", type=int, default=None, help="test samples run on Lava (default 3, --fast 1)")
    args = parser.parse_args(argv)
    # full / fast sizes: float epochs, fine-tuning (STE) epochs, reference samples (None: all)
    args.epochs, args.ste_epochs = (80, 20) if args.fast else (150, 40)
    if args.hidden is None:
        args.hidden = 32 if args.fast else 64
    if args.lava_samples is None:
        args.lava_samples = 1 if args.fast else 3
    return args


def build_rnn(hidden: int):
    """nn.RNN 8 -> hidden (relu) over the rows + a linear readout (10) of the last frame's hidden state."""
    import torch.nn as nn

    class FloatRNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(8, hidden, nonlinearity="relu", batch_first=True)
            self.head = nn.Linear(hidden, 10)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    return FloatRNN()


def fine_tune(qrnn, x, y, epochs: int, lr: float = 1e-3):
    """STE fine-tuning of an IntGridRNN in float32 (its integer view is read in float64 after)."""
    qrnn.float()
    train_classifier(qrnn, x, y, epochs, lr, clip_norm=5.0)
    qrnn.double()
    return qrnn


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

    import torch

    from snnc.backends.base import get_backend
    from snnc.compiler.analysis.evaluate import evaluate
    from snnc.compiler.frontends import conversion
    from snnc.compiler.frontends.conversion.chip_rnn import convert_rnn_to_chip, float_equivalent_rnn, quantize_rnn
    from snnc.ir.errors import SnncError

    L, H = args.levels, args.hidden
    con.rule("[bold]snnc: a quantized RNN on sequential digits -> spiking network -> reference, sim, Lava")
    x_train, x_test, y_train, y_test = load_digits_split(args.seed)  # [N, 8, 8]: 8 frames (rows) of 8 pixels
    n_test, frames = len(y_test), x_test.shape[1]
    con.print(
        f"data   sklearn digits as sequences: {len(y_train)} train / {n_test} test, {frames} frames (rows) of 8 pixels 0..16\n"
        f"model  Elman RNN 8 -> {H} (relu) over the rows, linear readout 10 of the last frame; "
        f"{args.weight_bits}-bit integer grid, L = {L}"
    )

    # 1. float RNN -> integer-grid RNN (calibrated, then STE fine-tuned): THE model
    with timer.stage("train+quantize"):
        fnet = train_classifier(build_rnn(H), x_train, y_train, args.epochs, lr=3e-3, clip_norm=5.0)  # clipped: unrolled ReLU RNN gradients can explode
        qrnn = quantize_rnn(fnet.rnn, fnet.head, x_train, levels=L, input_scale=1.0 / PIXEL_LEVELS,
                            input_range=(0, PIXEL_LEVELS), weight_bits=args.weight_bits, pow2_step=True)
        pred_calib = qrnn.predict(x_test)
        fine_tune(qrnn, x_train, y_train, args.ste_epochs)
        with torch.no_grad():
            pred_float = fnet(torch.from_numpy(x_test)).argmax(1).numpy()
        h_int, y_int = qrnn.integer_forward(x_test)  # exact integers, every frame (float64)
        h_int, y_int = h_int.numpy().astype(np.int64), y_int.numpy().astype(np.int64)
        pred_q = y_int[:, -1].argmax(1)
    acc = {
        "float_rnn": float(np.mean(pred_float == y_test)),
        "quantized_rnn_calibrated": float(np.mean(pred_calib == y_test)),
        "quantized_rnn": float(np.mean(pred_q == y_test)),
    }
    result: dict = {"accuracy": acc, "agreement": {}, "test_size": n_test, "levels": L, "hidden": H,
                    "step_D": qrnn.step, "weight_bits": args.weight_bits, "frames": frames}

    # 2. chip-exact conversion, whole test split on the bit-exact sim
    conv = None
    try:
        with timer.stage("convert"):
            conv = convert_rnn_to_chip(qrnn, frames)
        result["steps"] = conv.steps
        checks.add("convert to chip", True,
                   f"{conv.chip.num_neurons:,} neurons, {conv.chip.num_synapses:,} synapses, "
                   f"T = {conv.steps} steps ({frames} frames of {conv.period})")
    except SnncError as err:
        checks.add("convert to chip", False, str(err))

    if conv is not None:
        with timer.stage("sim"):
            sim = conv.run(x_test, backend="sim")
        pred_sim = conv.decode(sim)
        agree_sim = int(np.sum(pred_sim == pred_q))
        acc["snn_sim"] = float(np.mean(pred_sim == y_test))
        result["agreement"]["sim"] = agree_sim / n_test
        logits_equal = bool(np.array_equal(conv.activations(sim), y_int))
        checks.add("SNN (sim) = quantized RNN", agree_sim == n_test and logits_equal,
                   f"{agree_sim}/{n_test} predictions equal; readout logits of all {frames} frames identical: {logits_equal}")
        counts = conv.hidden_counts(sim)
        counts_equal = bool(np.array_equal(counts, h_int))
        stray = conv.stray_spikes(sim)
        result["hidden_counts_equal"] = counts_equal
        checks.add("spike counts = integer hidden states", counts_equal and stray == 0,
                   f"{H} neurons x {frames} frames x {n_test} sequences; {stray} spikes outside the fire windows")

    # 3. the same integer RNN as a float QuantRNN model -> float NIR SNN on `reference`
    with timer.stage("reference"):
        seq = float_equivalent_rnn(qrnn)
        snn = conversion.convert(seq, (8,))
        info = conversion.conversion_info(snn)
        n0 = np.rint(x_test * PIXEL_LEVELS)  # the integer pixels the integer RNN sees
        ref = get_backend("reference").build(snn).run(conversion.encode(info, n0))
    ref_values = conversion.decode(info, ref.output, frames=frames) / qrnn.step  # [N, frames, 10]
    pred_ref = ref_values[:, -1].argmax(1)
    agree_ref = int(np.sum(pred_ref == pred_q))
    acc["snn_reference"] = float(np.mean(pred_ref == y_test))
    result["agreement"]["reference"] = agree_ref / n_test
    result["reference_steps"] = conversion.num_steps(info, frames)
    err = float(np.max(np.abs(ref_values - y_int)))
    checks.add("SNN (reference) = quantized RNN", agree_ref == n_test and err == 0,
               f"{agree_ref}/{n_test} predictions equal; max |readout - logit| = {err:.2g} (integer units, all frames)")

    # 4. Lava (fixed_pt) on a few samples: bit for bit equal to sim
    if conv is not None and args.lava_samples > 0:
        n_lava = min(args.lava_samples, n_test)
        with timer.stage("lava"):
            lava = conv.run(x_test[:n_lava], backend="lava", probes=False, progress=False)
        name = conv.output_name
        lava_equal = int(sum(np.array_equal(lava.outputs[name][i], sim.outputs[name][i]) for i in range(n_lava)))
        result["lava_samples"] = n_lava
        result["lava_equal"] = lava_equal
        result["agreement"]["lava"] = float(np.mean(conv.decode(lava) == pred_q[:n_lava]))
        checks.add("lava = sim (bit-exact)", lava_equal == n_lava,
                   f"{lava_equal}/{n_lava} samples with identical readout voltages over {conv.steps} steps")

    # 5. energy (sim activity over the whole test split, priced for Loihi 2)
    if conv is not None:
        try:
            with timer.stage("energy"):
                ev = evaluate(conv.chip, conv.encode(x_test), chip="loihi2", steps=conv.steps)
            result["energy"] = energy_numbers(ev.energy)
            result["cores"] = int(ev.mapping.cores_used)
        except SnncError as exc:  # an estimate, not a verification
            result["energy_error"] = str(exc)

    # -- the summary -------------------------------------------------------------------------------
    from rich.table import Table

    agree = result["agreement"]
    table = Table(title=f"Sequential digits test split: {n_test} sequences of {frames} rows", title_justify="left")
    table.add_column("model")
    table.add_column("accuracy", justify="right")
    table.add_column("same prediction as quantized RNN", justify="right")
    table.add_row(f"float RNN (nn.RNN relu, {H} hidden)", pct(acc["float_rnn"]), "")
    table.add_row("quantized RNN, calibrated only", pct(acc["quantized_rnn_calibrated"]), "")
    table.add_row(f"[bold]quantized RNN[/bold] (+ {args.ste_epochs} STE epochs; integer, L = {L}, D = {qrnn.step})",
                  pct(acc["quantized_rnn"]), "= itself")
    table.add_row(f"SNN on reference (float IF, T = {result['reference_steps']} steps)", pct(acc["snn_reference"]),
                  f"{agree_ref}/{n_test}")
    if "snn_sim" in acc:
        table.add_row(f"SNN on sim ({args.weight_bits}-bit Loihi 2, T = {conv.steps} steps)", pct(acc["snn_sim"]),
                      f"{agree_sim}/{n_test}")
    if "lava_samples" in result:
        n_lava = result["lava_samples"]
        table.add_row(f"SNN on lava (fixed_pt, first {n_lava} sequences)", "",
                      f"{int(round(agree['lava'] * n_lava))}/{n_lava}")
    con.print(table)
    if "energy" in result:
        e = result["energy"]
        con.print(
            f"energy per sequence on Loihi 2: [bold]{fmt_energy(e['total_j'])}[/bold] "
            f"(dynamic {fmt_energy(e['dynamic_j'])}, static {fmt_energy(e['static_j'])}), "
            f"latency {fmt_time(e['latency_s'])}; {result['cores']} cores, {e['synaptic_ops']:,.0f} synaptic ops"
        )
    con.print(checks.table())
    con.print(f"[dim]{timer.line()}[/dim]")

    result.update(ok=checks.ok, checks=checks.as_dict(), seconds=timer.total)
    (out / "summary.json").write_text(json.dumps(jsonable(result), indent=1))
    return result


def cli(argv=None) -> int:
    """Exit status of the script: 1 when any verification failed."""
    return 0 if main(argv)["ok"] else 1


if __name__ == "__main__":
    sys.exit(cli())
