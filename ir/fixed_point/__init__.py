"""The chip's arithmetic, written once.

Lava 0.10.0's bit-accurate models (`lava/proc/lif/models.py`, fixed_pt; checked by Intel against
Loihi silicon) define what a Loihi neuron computes. This package is snnc's single statement of it:

- `units`: bit widths, the x64 state unit (synaptic input and thresholds are shifted left by 6),
  the 4096 decay unit, and the conversions between float time constants / thresholds and the
  integers the chip holds;
- `arith`: the integer operations (decay truncating toward zero, the 24-bit wrap of u, the
  saturation of v, int32 wrap), written with plain operators so that the same function runs on
  numpy arrays (the numpy step below) and, compiled by numba, inside the simulator's kernels;
- `sigma_delta`: the sigma-delta (SDNN) kinds of Lava's `lava.proc.sdn` (Delta, SigmaDelta,
  Sigma), their element operations and numpy step;
- `prodneuron`, `atrlif`: Lava's `ProdNeuron` (graded product of two input ports) and `ATRLIF`
  (adaptive threshold and refractory state), their element operations and numpy step;
- `refractory`: Lava's `LIFRefractory` (v held for a number of steps after each spike) in the
  chip's integers (Lava 0.10 has only its float model);
- `resonator`: Lava's resonate-and-fire `RF` and `RF_IZ` (a complex state rotated and decayed each
  step, two input ports), their element operations and numpy step;
- `neuron`: one numpy step of a population for every neuron kind the chip has (`NEURON_KINDS`):
  the specification that the `sim` kernels, the quantizer's integer re-simulator and snnc's own
  Lava process all follow, and that the tests compare them against.

Adding a neuron kind: write its step in `neuron.py` (or its own module here, registered in
`NEURON_KINDS`), give `ir.chip.Population` its parameters, implement it in the sim kernel using
`arith`, emit it from `backends/lava/emit.py` (snnc's own process in `backends/lava/procs/` when Lava
has none), and add it to `tests/chip_strategies.py` so the differential tests cover it.
"""
from .arith import decay, saturate_v, wrap32, wrap_u
from .atrlif import ATRLIFState, atrlif_step, atrlif_update
from .neuron import NEURON_KINDS, RESET_MODES, NeuronState, ResetMode, neuron_step
from .prodneuron import PRODUCT_PORTS, product_step
from .refractory import RefractoryState, refractory_step, refractory_update
from .resonator import RF_KINDS, RF_PORTS, ResonatorState, resonator_step, resonator_update
from .sigma_delta import ACT_MODES, SIGMA_DELTA_KINDS, SigmaDeltaState, sigma_delta_step
from .units import (
    DECAY_ONE,
    DECAY_SHIFT,
    STATE_SHIFT,
    U_HALF,
    U_WRAP,
    V_MAX,
    beta_from_dv,
    alpha_from_du,
    du_from_alpha,
    dv_from_beta,
    threshold_value,
)

__all__ = [
    "ATRLIFState", "PRODUCT_PORTS", "RefractoryState", "refractory_step", "refractory_update", "atrlif_step", "atrlif_update", "product_step",
    "RF_KINDS", "RF_PORTS", "ResonatorState", "resonator_step", "resonator_update",
    "ACT_MODES", "SIGMA_DELTA_KINDS", "SigmaDeltaState", "sigma_delta_step",
    "DECAY_ONE", "DECAY_SHIFT", "NEURON_KINDS", "NeuronState", "RESET_MODES", "ResetMode", "STATE_SHIFT", "U_HALF", "U_WRAP", "V_MAX",
    "alpha_from_du", "beta_from_dv", "decay", "du_from_alpha", "dv_from_beta", "neuron_step", "saturate_v",
    "threshold_value", "wrap32", "wrap_u",
]
