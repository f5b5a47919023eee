"""Compile the sim's numba kernels (and the float model's compiled scan) once, at install time, into numba's on-disk cache.

    python -m snnc.backends.sim.warmup        (run by `make venv` after installing)

A numba kernel is compiled on its first call for each distinct set of argument types, which costs
seconds per kernel; with ``cache=True`` the result is written next to the module (`__pycache__`)
and later processes load it in milliseconds. Every kernel module of this package
(`kernels*.py`) that declares `SIGNATURES` ({kernel name: [argument type tuples]}: the types the
program calls it with, see `arg_types.MESSAGE_DTYPES`) is compiled here for exactly those, so that
the first simulation in a fresh process loads instead of compiling.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
import time


def kernel_modules() -> list:
    """The kernel modules of the sim package that declare their signatures, and the float model's
    compiled scan (`snnc.ir.float_scan`, which every guarded compile runs beside the sim)."""
    from snnc.backends import sim

    mods = []
    for info in pkgutil.iter_modules(sim.__path__):
        if info.name.startswith("kernels"):
            mod = importlib.import_module(f"{sim.__name__}.{info.name}")
            if hasattr(mod, "SIGNATURES"):
                mods.append(mod)
    return [*mods, importlib.import_module("snnc.ir.float_scan")]


def compile_all(verbose: bool = False) -> int:
    """Compile (or load from the cache) every declared signature; returns how many."""
    count = 0
    for mod in kernel_modules():
        for name, signatures in mod.SIGNATURES.items():
            kernel = getattr(mod, name)
            for sig in signatures:
                t = time.perf_counter()
                kernel.compile(sig)
                count += 1
                if verbose:
                    print(f"  {mod.__name__.rsplit('.', 1)[-1]}.{name}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return count


def main() -> None:
    t = time.perf_counter()
    n = compile_all(verbose="-v" in sys.argv)
    print(f"snnc: {n} sim kernel signatures compiled into numba's cache in {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
