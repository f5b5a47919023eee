"""A tiny spiking state-space model on 8x8 digits read row by row, compiled for Loihi 2.

What it shows: a diagonal SSM with a spiking gate on the chip. Each channel keeps
h_t = a h_t-1 + B x_t with its own real decay a (S4D's real diagonal case; a = 1 - dv/4096 is the
chip's decay grid), a spiking gate g_t = IF(G x_t) selects what passes, y_t = h_t * g_t (a Lava
ProdNeuron population), and a Linear readout summed over time gives the logits. The chip truncates
the decay each step where the float model multiplies exactly: the printed gap measures that.
S4D's complex diagonal states have only a float model in Lava 0.10 (lava.proc.s4d) and are not
compiled. The steps are those of examples/_digit_sequences.py.

Run:  .venv/bin/python examples/ssm_digits.py [--fast] [--out DIR] [--seed N]
Exit status 1 when a verification fails.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, seeded  # noqa: E402
from _digit_sequences import tell  # noqa: E402


def parse_args(argv):
    parser = base_parser(__doc__, "out/ssm_digits")
    args = parser.parse_args(argv)
    args.d_state, args.epochs, args.lr = (32, 4, 3e-3) if args.fast else (48, 12, 3e-3)
    return args


def main(argv=None) -> dict:
    """Run the story; return its verification results (also written to OUT/summary.json)."""
    args = parse_args(argv)
    from snnc.compiler.frontends.attention import SequenceClassifier, SpikingSSM

    def make_model():
        return SequenceClassifier(SpikingSSM(8, args.d_state, frac_bits=10), 10, frac_bits=9)

    with seeded(args.seed):
        return tell(args, "Spiking SSM on digit rows -> NIR -> Loihi 2", make_model,
                    f"8 -> diagonal recurrence ({args.d_state} channels) x spiking gate -> readout 10")


def cli(argv=None) -> int:
    """Exit status of the script: 1 when any verification failed."""
    return 0 if main(argv)["ok"] else 1


if __name__ == "__main__":
    sys.exit(cli())
