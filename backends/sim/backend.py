"""`SimBackend`: the registry entry of the cycle-accurate fixed-point simulator."""
from __future__ import annotations

from typing import Any, ClassVar

from snnc.ir.errors import BackendError

from .plan import check_supported
from .program import SimProgram

_OPTIONS = {
    "chunk": "time steps evaluated per chunk (default: chosen from memory_budget_mb)",
    "memory_budget_mb": "approximate size of the per-chunk buffers (default 256)",
    "max_chunk": "upper bound on the chunk length (default 1024)",
    "synapses": "'auto' (default: by activity), 'events' (event-driven) or 'dense' (BLAS/torch where exact)",
}


class SimBackend:
    """Bit-exact Lava fixed_pt simulation of a `snnc.ir.chip.ChipGraph`, batched and vectorized."""

    name: ClassVar[str] = "sim"
    level: ClassVar[str] = "chip"

    def problems(self, graph: Any) -> list[str]:
        return check_supported(graph)

    def build(self, graph: Any, **options: Any) -> SimProgram:
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise BackendError(
                "unknown build option", where="sim backend", expected=sorted(_OPTIONS), got=unknown,
                hint="; ".join(f"{k}: {v}" for k, v in _OPTIONS.items()),
            )
        problems = self.problems(graph)
        if problems:
            raise BackendError(
                "the sim backend cannot run this graph: " + "; ".join(problems),
                where="sim backend",
                hint="fix the graph (snnc compile validates it) or choose another backend",
            )
        for key in ("chunk", "max_chunk"):
            if key in options and options[key] is not None and int(options[key]) < 1:
                raise BackendError(f"{key} must be a positive number of steps", where="sim backend", got=options[key])
        return SimProgram(graph, **options)
