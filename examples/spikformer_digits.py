"""A tiny Spikformer-style classifier on 8x8 digits read row by row, compiled for Loihi 2's product neurons.

What it shows: spiking self-attention on the chip. Spike-driven Q, K, V (Linear + IF neurons)
and Q.K^T.V WITHOUT softmax, as Spikformer computes it, causal over the 8 rows (tokens are time
steps): S_t = S_t-1 + k_t v_t^T and out_t = q_t S_t, then a Linear readout summed over time.
On the chip, k_i v_j and q_i S_ij are Lava ProdNeuron populations (product of two input ports),
S is an integrating relay; the block's numbers are the float model's own, so the chip's logits
equal the float model's. The steps are those of examples/_digit_sequences.py.

Run:  .venv/bin/python examples/spikformer_digits.py [--fast] [--out DIR] [--seed N]
Exit status 1 when a verification fails.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, seeded  # noqa: E402
from _digit_sequences import tell  # noqa: E402


def parse_args(argv):
    parser = base_parser(__doc__, "out/spikformer_digits")
    args = parser.parse_args(argv)
    args.d_model, args.epochs, args.lr = (8, 4, 3e-3) if args.fast else (32, 12, 3e-3)
    return args


def main(argv=None) -> dict:
    """Run the story; return its verification results (also written to OUT/summary.json)."""
    args = parse_args(argv)
    from snnc.compiler.frontends.attention import SequenceClassifier, SpikingSelfAttention

    def make_model():
        return SequenceClassifier(SpikingSelfAttention(8, args.d_model), 10, frac_bits=9)

    with seeded(args.seed):
        return tell(args, "Spikformer-style attention on digit rows -> NIR -> Loihi 2", make_model,
                    f"8 -> Q, K, V ({args.d_model} IF each) -> causal Q.K^T.V (no softmax) -> readout 10")


def cli(argv=None) -> int:
    """Exit status of the script: 1 when any verification failed."""
    return 0 if main(argv)["ok"] else 1


if __name__ == "__main__":
    sys.exit(cli())
