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
