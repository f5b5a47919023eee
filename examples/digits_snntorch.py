"""Train a small snnTorch network on 8x8 digits, export it with snnc, compile it, compare accuracy.

What it shows: the path of a user who trains a spiking network in snnTorch.

1. scikit-learn's bundled digits (1,797 real 8x8 images, no download) are rate-encoded: each
   pixel is a Bernoulli spike train over T steps with probability = intensity (fixed seed);
2. a 64 -> H -> 10 network of snnTorch `Leaky` neurons (reset to zero, the NIR semantics) is
   trained with BPTT on the spike count (cross-entropy);
3. `snnc.compiler.frontends.torch.from_torch` exports one time step of it to NIR;
4. the float `reference` backend runs the NIR graph on the test split: its predictions must equal
   snnTorch's own (the export is faithful);
5. `compile(..., weight_bits=8)` quantizes it for Loihi 2 and the bit-exact `sim` backend runs it;
   the table shows float vs. 8-bit accuracy and how many test predictions agree.

Run:  .venv/bin/python examples/digits_snntorch.py [--fast] [--out DIR] [--seed N]
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
    jsonable,
    load_digits_split,
    pct,
    seeded,
    spike_count_predictions,
)

DT = 1e-4  # snnTorch's export convention: tau = dt / (1 - beta)


def parse_args(argv):
    parser = base_parser(__doc__, "out/digits_snntorch")
    parser.add_argument("--weight-bits", type=int, default=8, help="weight width of the compiled network (default 8)")
    args = parser.parse_args(argv)
    # full / fast sizes: time steps, hidden neurons, epochs
    args.steps, args.hidden, args.epochs = (16, 48, 4) if args.fast else (25, 64, 15)
    return args


def rate_encode(images: np.ndarray, steps: int, rng: np.random.Generator) -> np.ndarray:
    """[N, 8, 8] intensities in [0, 1] -> [N, T, 64] binary spikes (Bernoulli, p = intensity)."""
    p = images.reshape(len(images), 1, -1)
    return (rng.random((len(images), steps, p.shape[-1])) < p).astype(np.float32)


def build_net(hidden: int, beta: float = 0.9):
    import snntorch as snn
    import torch.nn as nn

    return nn.Sequential(
        nn.Linear(64, hidden),
        snn.Leaky(beta=beta, init_hidden=True, reset_mechanism="zero"),
        nn.Linear(hidden, 10),
        snn.Leaky(beta=beta, init_hidden=True, output=True, reset_mechanism="zero"),
    )


def run_net(net, spikes):
    """Output spikes [T, batch, 10] of the snnTorch network for input spikes [batch, T, 64]."""
    import torch
    from snntorch import utils

    utils.reset(net)
    out = []
    for t in range(spikes.shape[1]):
        spk, _ = net(spikes[:, t])
        out.append(spk)
    return torch.stack(out)


def train(net, x: np.ndarray, y: np.ndarray, epochs: int, batch: int = 64):
    import torch
    from snntorch import functional as SF

    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    loss_fn = SF.ce_count_loss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(perm), batch):
            idx = perm[i : i + batch]
            loss = loss_fn(run_net(net, xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


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
    from snnc.compiler.frontends.torch import from_torch
    from snnc.compiler.pipeline import compile as snnc_compile

    con.rule("[bold]snnTorch digits -> NIR -> Loihi 2")
    x_train, x_test, y_train, y_test = load_digits_split(args.seed)
    rng = np.random.default_rng(args.seed)
    s_train, s_test = rate_encode(x_train, args.steps, rng), rate_encode(x_test, args.steps, rng)
    con.print(
        f"data   sklearn digits: {len(x_train)} train / {len(x_test)} test images, rate-encoded over "
        f"T = {args.steps} steps\nmodel  64 -> {args.hidden} Leaky -> 10 Leaky (beta 0.9, reset to zero), "
        f"{args.epochs} epochs"
    )

    with timer.stage("train"):
        net = train(build_net(args.hidden), s_train, y_train, args.epochs)
        with torch.no_grad():
            torch_spikes = run_net(net, torch.from_numpy(s_test)).numpy().transpose(1, 0, 2)
    pred_torch = spike_count_predictions(torch_spikes)

    with timer.stage("export"):
        graph = from_torch(net, (64,), dt=DT)
    with timer.stage("reference"):
        ref = get_backend("reference").build(graph, dt=DT).run(s_test)
    pred_ref = spike_count_predictions(ref.output)
    same_ref = float(np.mean(pred_ref == pred_torch))
    spike_diff = int(np.count_nonzero((ref.output != 0) != (torch_spikes != 0)))
    checks.add(
        "reference = snnTorch predictions",
        same_ref == 1.0,
        f"{int(np.sum(pred_ref == pred_torch))}/{len(pred_ref)} equal; {spike_diff} of {int(torch_spikes.sum())} output spikes differ",
    )

    with timer.stage("compile"):
        compiled = snnc_compile(graph, target="loihi2", weight_bits=args.weight_bits, dt=DT, calibrate=s_train[:128])
    shift = compiled.time_shift  # the chip's output lags the float model by this many steps
    with timer.stage("sim+energy"):
        from snnc.compiler.analysis.evaluate import evaluate

        ev = evaluate(graph, s_test, chip="loihi2", compiled=compiled, steps=args.steps, probes=())  # evaluate extends the run by the latency
    sim = ev.run
    sim_out = sim.aligned(sim.output)[:, : args.steps]
    pred_sim = spike_count_predictions(sim_out)

    acc = {
        "snntorch": float(np.mean(pred_torch == y_test)),
        "reference": float(np.mean(pred_ref == y_test)),
        "sim": float(np.mean(pred_sim == y_test)),
    }
    agree_sim = float(np.mean(pred_sim == pred_ref))
    checks.add("float model learned the task", acc["reference"] >= (0.75 if args.fast else 0.85), f"reference accuracy {pct(acc['reference'])}")
    drop = acc["reference"] - acc["sim"]
    checks.add(
        f"{args.weight_bits}-bit chip keeps the accuracy",
        drop <= 0.03,
        f"sim {pct(acc['sim'])} vs float {pct(acc['reference'])} (drop {100 * drop:+.1f} points, limit 3)",
    )

    with timer.stage("lava"):
        n_lava = 2 if args.fast else 4
        lava = compiled.run(s_test[:n_lava], backend="lava", steps=args.steps + shift, raw=True)
    lava_equal = bool(np.array_equal(lava.output, sim.output[:n_lava]))
    checks.add("lava = sim (bit-exact)", lava_equal, f"{n_lava} test images, every output spike over {args.steps + shift} steps")

    energy = energy_numbers(ev.energy)

    from rich.table import Table

    table = Table(title=f"Test split ({len(y_test)} images)", title_justify="left")
    for col in ("model", "accuracy", "agrees with float"):
        table.add_column(col, justify="left" if col == "model" else "right")
    table.add_row("snnTorch (torch, float32)", pct(acc["snntorch"]), f"{int(np.sum(pred_torch == pred_ref))}/{len(y_test)}")
    table.add_row("NIR on reference (float64)", pct(acc["reference"]), "—")
    table.add_row(f"sim, {args.weight_bits}-bit Loihi 2", pct(acc["sim"]), f"{int(np.sum(pred_sim == pred_ref))}/{len(y_test)}")
    con.print(table)
    con.print(checks.table())
    con.print(
        f"energy per inference on Loihi 2: [bold]{fmt_energy(energy['total_j'])}[/bold] "
        f"({energy['synaptic_ops']:,.0f} synaptic ops); chip output lags the float model by {shift} steps"
    )
    con.print(f"[dim]{timer.line()}[/dim]")

    result = {
        "ok": checks.ok,
        "checks": checks.as_dict(),
        "accuracy": acc,
        "reference_vs_snntorch": same_ref,
        "sim_vs_reference": agree_sim,
        "lava_equals_sim": lava_equal,
        "time_shift": shift,
        "energy": energy,
        "test_size": int(len(y_test)),
        "seconds": timer.total,
    }
    (out / "summary.json").write_text(json.dumps(jsonable(result), indent=1))
    return result


def cli(argv=None) -> int:
    """Exit status of the script: 1 when any verification failed."""
    return 0 if main(argv)["ok"] else 1


if __name__ == "__main__":
    sys.exit(cli())
