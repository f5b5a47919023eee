"""The lava backend: chip-level graphs as real Lava processes.

`LavaBackend().build(graph).run(x)` runs on Lava's CPU simulator (`Loihi2SimCfg`, fixed_pt by
default); `emit(graph)` gives you the Lava processes themselves to connect your own.
"""
from .backend import LavaBackend, LavaProgram
from .emit import LavaNetwork, attach_taps, conv_kernel_from_lava, conv_kernel_to_lava, emit
from .runner import make_run_config

__all__ = [
    "LavaBackend",
    "LavaProgram",
    "LavaNetwork",
    "emit",
    "attach_taps",
    "make_run_config",
    "conv_kernel_to_lava",
    "conv_kernel_from_lava",
]
