"""Mapping a chip graph onto cores: core-sized blocks, locality-aware placement on the mesh,
several chips when one is full, and a `ResourceError` naming what does not fit (`placement`)."""
from snnc.compiler.passes.registry import register_pass

from .placement import RESOURCES, Block, Link, MapToCores, Mapping, map_to_cores

register_pass(MapToCores)

__all__ = ["RESOURCES", "Block", "Link", "MapToCores", "Mapping", "map_to_cores"]
