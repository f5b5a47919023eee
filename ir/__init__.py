"""snnc.ir: the graphs snnc compiles (NIR level and chip level) and its error types."""
from .errors import (  # noqa: F401
    BackendError,
    GraphError,
    ModelFileError,
    ParameterError,
    PassError,
    QuantizationError,
    ResourceError,
    ShapeError,
    SnncError,
    UnsupportedNodeError,
)
from typing import TYPE_CHECKING

_CHIP_NAMES = ("ChipGraph", "ConvGeometry", "ConvProjection", "DenseProjection", "InputPopulation", "OutputPort", "Population",
               "Projection", "SparseProjection")
if TYPE_CHECKING:
    from .chip import (  # noqa: F401
        ChipGraph,
        ConvGeometry,
        ConvProjection,
        DenseProjection,
        InputPopulation,
        OutputPort,
        Population,
        Projection,
        SparseProjection,
    )


def __getattr__(name: str):
    """The chip-level classes, imported on first use: `snnc.ir.errors` alone stays light (no scipy)."""
    if name in _CHIP_NAMES:
        from . import chip

        return getattr(chip, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
