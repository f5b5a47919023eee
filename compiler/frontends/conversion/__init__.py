"""Lossless ANN-to-SNN conversion.

Two converters share the integer-grid idea (activations are integer multiples of a step):
- `float_model` (re-exported here): a QuantReLU/QuantRNN network -> an IF network exact on the
  float NIR model (reset by subtraction, analog integrators; NIR the chip cannot express);
- `chip` (CNN/MLP) and `chip_rnn` (Elman RNN): an integer-grid quantized network -> a ChipGraph of
  two-phase gated IF neurons whose spike counts equal the integer activations on `sim` and Lava.
"""
from .float_model import (
    QuantReLU,
    QuantRNN,
    calibrate,
    conversion_info,
    convert,
    decode,
    encode,
    num_steps,
)

__all__ = ["QuantReLU", "QuantRNN", "calibrate", "conversion_info", "convert", "decode", "encode", "num_steps"]
