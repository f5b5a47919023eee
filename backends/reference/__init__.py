"""The reference backend: float NIR semantics (forward Euler), the golden model.

The per-step conventions (evaluation order, reset, dt) are `snnc.ir.float_model`'s, which this
backend runs.
"""
from .backend import DEFAULT_DT, ReferenceBackend, ReferenceProgram

__all__ = ["DEFAULT_DT", "ReferenceBackend", "ReferenceProgram"]
