"""Quantized CNN -> lossless spiking conversion -> 8-bit Loihi 2 -> sim and Lava -> energy report.

What it shows (the README's `make demo`):

1. a small CNN is trained on scikit-learn's bundled 8x8 digits (1,797 real images, no download),
   then fine-tuned with `QuantReLU` activations (L levels, straight-through gradients);
2. `snnc.compiler.frontends.conversion.convert` turns it into an integrate-and-fire SNN (NIR)
   whose spike counts over windows of T = L steps equal the quantized activations, the image
   being presented as a constant current; on the float `reference` backend the SNN's predictions
   must equal the quantized CNN's on 100 % of the test split;
3. `compile(..., weight_bits=8)` maps it onto Loihi 2's fixed-point neurons; the bit-exact `sim`
   backend runs the whole test split, real Lava processes (`lava`, fixed_pt) a few samples, and
   the two must agree bit for bit;
4. energy and latency per inference are estimated from what `sim` counted, and report.json +
   report.html are written to --out.

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
)


def parse_args(argv):
    parser = base_parser(__doc__, "out/demo")
    parser.add_argument("--levels", type=int, default=8, help="quantization levels L of QuantReLU = steps per window (default 8)")
    parser.add_argument("--weight-bits", type=int, default=8, help="weight width of the compiled network (default 8)")
    parser.add_argument("--lava-samples", type=int, default=None, help="test samples run on Lava (default 5, --fast 2)")
    args = parser.parse_args(argv)
    # full / fast sizes: conv channels, float epochs, quantization-aware epochs
    args.channels, args.epochs, args.qat_epochs = ((4, 8), 6, 3) if args.fast else ((8, 16), 20, 10)
    if args.lava_samples is None:
        args.lava_samples = 2 if args.fast else 5
    return args


def build_cnn(channels, activation):
    """1x8x8 -> conv 3x3 -> act -> conv 3x3 stride 2 -> act -> linear 10 (a spiking readout)."""
    import torch.nn as nn

    c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1),
        activation(),
        nn.Conv2d(c1, c2, 3, stride=2, padding=1),
        activation(),
        nn.Flatten(),
        nn.Linear(c2 * 4 * 4, 10),
    )


def train(net, x, y, epochs: int, lr: float, batch: int = 64):
    import torch
    import torch.nn.functional as F

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(perm), batch):
            idx = perm[i : i + batch]
            loss = F.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def logits(net, x: np.ndarray, double: bool = False) -> np.ndarray:
    import copy

    import torch

    model = copy.deepcopy(net).double() if double else net
    with torch.no_grad():
        xt = torch.from_numpy(x).double() if double else torch.from_numpy(x)
        return model(xt).numpy()


def chip_outputs(compiled, run, steps: int) -> np.ndarray:
    """The chip's output in float units, aligned with the float model: [batch, steps, ...].

    A spiking output is returned as spikes; a voltage readout is converted back with the scale
    and offset the quantizer chose (chip.meta["output_scale"/"output_offset"]).
    """
    (name, port), = compiled.chip.outputs.items()
    out = compiled.align(run.outputs[name])[:, :steps].astype(np.float64)
    if port.var == "s":
        return out
    scale = np.asarray(compiled.chip.meta.get("output_scale", {}).get(name, 1.0), dtype=np.float64)
    offset = np.asarray(compiled.chip.meta.get("output_offset", {}).get(name, 0.0), dtype=np.float64)
    return out * scale + offset


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

    import torch.nn as nn

    from snnc.backends.base import get_backend
    from snnc.compiler.frontends.conversion import QuantReLU, calibrate, conversion_info, convert, decode, encode, num_steps
    from snnc.ir.errors import SnncError

    L = args.levels
    con.rule("[bold]snnc demo: quantized CNN -> spiking network -> Loihi 2")
    x_train, x_test, y_train, y_test = load_digits_split(args.seed)
    x_train, x_test = x_train[:, None], x_test[:, None]  # [N, 1, 8, 8]
    n_test = len(y_test)
    c1, c2 = args.channels
    con.print(
        f"data   sklearn digits: {len(y_train)} train / {n_test} test images (8x8)\n"
        f"model  conv 3x3 x{c1} -> conv 3x3/2 x{c2} -> linear 10; QuantReLU with L = {L} levels; "
        f"{args.weight_bits}-bit weights on Loihi 2"
    )

    # 1. float CNN, then the same CNN with quantized activations (initialized from it)
    with timer.stage("train"):
        fnet = train(build_cnn(args.channels, nn.ReLU), x_train, y_train, args.epochs, lr=3e-3)
        qnet = build_cnn(args.channels, lambda: QuantReLU(L))
        qnet.load_state_dict(fnet.state_dict(), strict=False)
        import torch

        calibrate(qnet, torch.from_numpy(x_train[:512]))
        train(qnet, x_train, y_train, args.qat_epochs, lr=1e-3)
    pred_float = logits(fnet, x_test).argmax(1)
    q_logits = logits(qnet, x_test, double=True)  # float64: the arithmetic the SNN is checked in
    pred_q = q_logits.argmax(1)

    # 2. lossless conversion, checked on the float reference backend
    with timer.stage("convert+reference"):
        snn = convert(qnet, (1, 8, 8))
        info = conversion_info(snn)
        steps = num_steps(info)
        enc_test = encode(info, x_test)  # [N, steps, 1, 8, 8]: constant current in window 0
        ref = get_backend("reference").build(snn).run(enc_test)
    snn_values = decode(info, ref.output)[:, 0]
    pred_ref = snn_values.argmax(1)
    agree_ref = int(np.sum(pred_ref == pred_q))
    checks.add(
        "SNN (reference) = quantized CNN",
        agree_ref == n_test,
        f"{agree_ref}/{n_test} predictions equal; max |readout - logit| = {np.max(np.abs(snn_values - q_logits)):.2g}",
    )

    result = {
        "accuracy": {
            "float_cnn": float(np.mean(pred_float == y_test)),
            "quantized_cnn": float(np.mean(pred_q == y_test)),
            "snn_reference": float(np.mean(pred_ref == y_test)),
        },
        "agreement": agree_ref / n_test,
        "test_size": n_test,
        "levels": L,
        "steps": steps,
    }

    # 3. compile for Loihi 2 and run on sim (whole test split) and Lava (a few samples)
    compiled = None
    try:
        with timer.stage("compile"):
            enc_train = encode(info, x_train[:64])
            compiled = snnc_compile_for(snn, args.weight_bits, enc_train)
        checks.add(f"compile at {args.weight_bits} bits", True, f"{compiled.chip.num_neurons:,} neurons, {compiled.chip.num_synapses:,} synapses")
    except SnncError as err:
        checks.add(f"compile at {args.weight_bits} bits", False, str(err))

    if compiled is not None:
        shift = compiled.time_shift
        with timer.stage("sim"):
            sim = compiled.run(enc_test, backend="sim", steps=steps + shift)
        sim_values = decode(info, chip_outputs(compiled, sim, steps))[:, 0]
        pred_sim = sim_values.argmax(1)
        agree_sim = int(np.sum(pred_sim == pred_ref))
        result["accuracy"]["snn_sim"] = float(np.mean(pred_sim == y_test))
        result["sim_agreement"] = agree_sim / n_test
        checks.add(
            f"{args.weight_bits}-bit chip keeps the accuracy",
            result["accuracy"]["snn_sim"] >= result["accuracy"]["snn_reference"] - 0.02,
            f"sim {pct(result['accuracy']['snn_sim'])} vs float SNN {pct(result['accuracy']['snn_reference'])}; "
            f"{agree_sim}/{n_test} predictions equal",
        )

        n_lava = min(args.lava_samples, n_test)
        with timer.stage("lava"):
            lava = compiled.run(enc_test[:n_lava], backend="lava", steps=steps + shift, progress=False)
        same = [
            bool(np.array_equal(lava.outputs[k], sim.outputs[k][:n_lava])) for k in sim.outputs
        ]
        lava_pred = decode(info, chip_outputs(compiled, lava, steps))[:, 0].argmax(1)
        lava_equal = int(sum(np.array_equal(lava.outputs[k][i], sim.outputs[k][i]) for k in sim.outputs for i in range(n_lava)))
        result["lava_samples"] = n_lava
        result["lava_agreement"] = float(np.mean(lava_pred == pred_sim[:n_lava]))
        checks.add(
            "lava = sim (bit-exact)",
            all(same),
            f"{lava_equal}/{n_lava} samples with identical outputs over {steps + shift} steps",
        )

        # 4. energy and report
        with timer.stage("energy+report"):
            from snnc.compiler.budget import bit_budget
            from snnc.compiler.energy import estimate_energy
            from snnc.compiler.passes.mapping import map_to_cores
            from snnc.compiler.report import write_report

            mapping = map_to_cores(compiled.chip, "loihi2", traffic=sim.activity)
            energy = estimate_energy(sim.activity, mapping)
            budget = bit_budget(compiled.chip, sim.activity, warn=False)
            paths = write_report(
                out,
                graph=compiled.chip,
                mapping=mapping,
                energy=energy,
                run_result=sim,
                budget=budget,
                quant_errors=compiled.layers,
                meta={"example": "digits_conversion", "accuracy": result["accuracy"], "levels": L,
                      "weight_bits": args.weight_bits, "seed": args.seed},
            )
        result["energy"] = energy_numbers(energy)
        result["cores"] = int(mapping.cores_used)
        result["report_html"] = str(paths["html"])
        result["report_json"] = str(paths["json"])
        checks.add("report written", paths["html"].exists() and paths["json"].exists(), str(paths["html"]))

    # -- the summary -------------------------------------------------------------------------------
    from rich.table import Table

    acc = result["accuracy"]
    table = Table(title=f"Digits test split: {n_test} images", title_justify="left")
    table.add_column("model")
    table.add_column("accuracy", justify="right")
    table.add_column("same prediction as", justify="right")
    table.add_row("float CNN (ReLU)", pct(acc["float_cnn"]), "")
    table.add_row(f"quantized CNN (QuantReLU, L = {L})", pct(acc["quantized_cnn"]), "")
    table.add_row(f"SNN on reference (float, T = {steps} steps)", pct(acc["snn_reference"]), f"quantized CNN: {agree_ref}/{n_test}")
    if "snn_sim" in acc:
        table.add_row(f"SNN on sim ({args.weight_bits}-bit Loihi 2)", pct(acc["snn_sim"]), f"SNN reference: {agree_sim}/{n_test}")
        table.add_row(
            f"SNN on lava (fixed_pt, {result['lava_samples']} samples)",
            "",
            f"sim: {int(round(result['lava_agreement'] * result['lava_samples']))}/{result['lava_samples']}",
        )
    con.print(table)
    if "energy" in result:
        e = result["energy"]
        con.print(
            f"energy per inference on Loihi 2: [bold]{fmt_energy(e['total_j'])}[/bold] "
            f"(dynamic {fmt_energy(e['dynamic_j'])}, static {fmt_energy(e['static_j'])}), "
            f"latency {fmt_time(e['latency_s'])}, {result['cores']} cores, {e['synaptic_ops']:,.0f} synaptic ops"
        )
    con.print(checks.table())
    if "report_html" in result:
        con.print(f"report: [bold]{result['report_html']}[/bold] (+ report.json)")
    con.print(f"[dim]{timer.line()}[/dim]")

    result.update(ok=checks.ok, checks=checks.as_dict(), seconds=timer.total)
    (out / "summary.json").write_text(json.dumps(jsonable(result), indent=1))
    return result


def snnc_compile_for(snn, weight_bits: int, calibration: np.ndarray):
    """Compile the converted SNN for Loihi 2 (calibrated on training images)."""
    from snnc.compiler.pipeline import compile as snnc_compile

    return snnc_compile(snn, target="loihi2", weight_bits=weight_bits, calibrate=calibration)


def cli(argv=None) -> int:
    """Exit status of the script: 1 when any verification failed."""
    return 0 if main(argv)["ok"] else 1


if __name__ == "__main__":
    sys.exit(cli())
