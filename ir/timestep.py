"""The simulation time step `dt`: one check shared by every place that accepts it.

NIR graphs are continuous-time; `dt` (seconds per step) is what turns them into the discrete
models of the reference backend, the compiler and the chip. A zero, negative, NaN or non-numeric
dt would silently produce a different network, so it is refused where it enters.
"""
from __future__ import annotations

import math
from typing import Any

from .errors import ParameterError


def check_dt(value: Any, where: str) -> float:
    """`value` as a positive, finite float number of seconds, or a ParameterError naming `where`."""
    try:
        dt = float(value)
    except (TypeError, ValueError):
        dt = float("nan")
    if not math.isfinite(dt) or dt <= 0:
        raise ParameterError(
            "dt must be a positive number of seconds", where=where, expected="e.g. 1e-4", got=value
        )
    return dt
