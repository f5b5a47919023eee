"""Compiler passes: small named graph-to-graph transformations run by the PassManager.

The default pipeline is canonicalize -> fuse -> timing -> quantize -> split -> legalize; `map` (core
placement) runs after it where mapping is wanted. Every pass is registered by name
(`registry.PASSES`), so a pipeline can be written as text: `parse_pipeline("fuse,timing")`.
"""
from .canonicalize import Canonicalize
from .fuse import Fuse
from .legalize import Legalize
from .quantize import Quantize
from .registry import PASSES, parse_pipeline, pipeline_text, register_pass
from .split import Split
from .timing import Timing

for _cls in (Canonicalize, Fuse, Timing, Quantize, Split, Legalize):  # `map` registers in snnc.compiler.mapping
    register_pass(_cls)

__all__ = ["PASSES", "parse_pipeline", "pipeline_text", "register_pass"]
