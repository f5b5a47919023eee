"""What a spiking neuron does to its voltage after a spike, at the NIR level.

NIR 1.0 has no field for it: its LIF/CubaLIF/IF reset v to v_reset in the step of the spike. The
tools that write NIR differ: snnTorch's default `reset_mechanism="subtract"` takes the threshold off
v at the next step, "none" never resets. snnc keeps the mode in the node's metadata
(`metadata["reset_mode"]`: "zero", "subtract" or "none"), writes it there whenever it knows it (the
torch frontend, compiled files), and for files that cannot say, applies the mode the user gives
(`--reset-mode`, `reset_mode=`) or assumes "zero" (NIR's own meaning) and says so in a warning
naming the nodes, every time such a file is read.

Semantics, in the reference backend's Euler step (x = summed input, after integrating it):
- "zero":     z = v > v_threshold; v = v_reset where z (same step; NIR's reset)
- "subtract": v -= (v_threshold - v_leak) * z_prev before comparing; z = v > v_threshold; v kept
              (snnTorch, reset_delay=True: mem = beta mem + x - thr * [mem_prev > thr])
- "none":     z = v > v_threshold; v kept
"""
from __future__ import annotations

import warnings

import nir

from .errors import ParameterError
from .fixed_point.neuron import RESET_MODES, ResetMode

META_KEY = "reset_mode"
SPIKING = (nir.LIF, nir.CubaLIF, nir.IF)


class AssumptionWarning(UserWarning):
    """snnc had to assume something a model file cannot state (shown as `snnc: warning:` by the CLI)."""


def check_mode(mode: str, where: str) -> ResetMode:
    for known in RESET_MODES:
        if mode == known:
            return known
    raise ParameterError("unknown reset mode", where=where, expected=", ".join(RESET_MODES), got=mode,
                         hint="zero: NIR's reset to v_reset; subtract: snnTorch's default; none: no reset")


def reset_mode_of(node) -> ResetMode:
    """The reset mode of a spiking NIR node ("zero" when its metadata does not say)."""
    meta = getattr(node, "metadata", None) or {}
    mode = meta.get(META_KEY, "zero") if isinstance(meta, dict) else "zero"
    if isinstance(mode, bytes):
        mode = mode.decode()
    return check_mode(str(mode), f"node metadata {META_KEY!r}")


def state_reset_modes(nodes: dict, mode: str | None = None, source: str = "model") -> list[str]:
    """Give every spiking node without a stated mode `mode` (default "zero") in its metadata.

    Returns the names that had none. When `mode` is None and there were any, warns once naming
    the assumption and how to change it."""
    if mode is not None:
        check_mode(mode, "reset_mode option")
    unstated = []
    for name, node in nodes.items():
        if not isinstance(node, SPIKING):
            continue
        meta = node.metadata if isinstance(getattr(node, "metadata", None), dict) else {}
        if META_KEY in meta:
            reset_mode_of(node)  # validate what the file says
            continue
        meta = dict(meta)
        meta[META_KEY] = mode or "zero"
        node.metadata = meta
        unstated.append(name)
    if unstated and mode is None:
        shown = ", ".join(repr(n) for n in unstated[:5]) + (f" (+{len(unstated) - 5} more)" if len(unstated) > 5 else "")
        warnings.warn(
            f"{source}: NIR cannot state how spiking neurons reset; assumed reset to v_reset ('zero') for node(s) {shown}. "
            "If the model was trained otherwise (snnTorch's default is 'subtract'), pass --reset-mode subtract "
            "(or none); API: reset_mode=",
            AssumptionWarning,
            stacklevel=3,
        )
    return unstated
