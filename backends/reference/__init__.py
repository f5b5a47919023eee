"""The reference backend: float NIR semantics (forward Euler), the golden model.

See `backend.py` for the exact per-step conventions (evaluation order, reset, dt).
"""
from .backend import DEFAULT_DT, ReferenceBackend, ReferenceProgram

__all__ = ["DEFAULT_DT", "ReferenceBackend", "ReferenceProgram"]
