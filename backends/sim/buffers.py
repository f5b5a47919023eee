"""Large chunk buffers of the sim, kept for the next chunk, run and program of this process.

Why: a run's per-chunk buffers (input sums, messages) are tens of MB. Allocated afresh, each is
mapped from the OS and every page is faulted in on first write, and freed it is unmapped again:
on the loaded development machine that was 30-40 % of a PilotNet SDNN run (113 MB of page faults
per run). Taken from here they are written in place. A `Lease` hands buffers to one run and
takes them back when the run ends; the pool keeps at most `POOL_BYTES` between runs.

A buffer given back with every byte zero (the input sums, which the neuron kernels clear as they
read them: `Lease.release(clean=...)`) is kept as clean, and `Lease.zeros` hands it out without
writing it again (a batch-64 run of benchmarks/bench_layer.py's layer zeroed 10 MB per run, a
batch-1 run faulted in 0.4 MB of fresh pages).
"""
from __future__ import annotations

import math
import threading
from typing import Sequence

import numpy as np

MIN_BYTES = 1 << 16  # smaller arrays come from numpy directly (its allocator reuses those without new pages)
POOL_BYTES = 128 * 2**20  # the most bytes kept between runs (twice the default chunk budget; the largest go first)


class Pool:
    """Free flat byte buffers, handed out best fit, each known to be all zero (clean) or not; thread-safe."""

    def __init__(self, limit: int = POOL_BYTES):
        self.limit = limit
        self._free: list[tuple[np.ndarray, bool]] = []  # (buffer, clean)
        self._lock = threading.Lock()

    def take(self, nbytes: int, clean: bool = False) -> tuple[np.ndarray, bool]:
        """A flat uint8 buffer of at least `nbytes` and whether it is all zero: the smallest free one
        that fits (the smallest clean one if `clean` is asked for and one fits), else a new one."""
        with self._lock:
            best, best_clean = -1, -1  # the smallest that fits, the smallest clean one that fits
            for i, (b, is_clean) in enumerate(self._free):
                if b.nbytes >= nbytes:
                    if best < 0 or b.nbytes < self._free[best][0].nbytes:
                        best = i
                    if is_clean and (best_clean < 0 or b.nbytes < self._free[best_clean][0].nbytes):
                        best_clean = i
            if clean and best_clean >= 0:
                best = best_clean
            if best >= 0:
                return self._free.pop(best)
        return np.empty(nbytes, np.uint8), False

    def give(self, buffers: Sequence[tuple[np.ndarray, bool]]) -> None:
        """Take (buffer, clean) pairs back, keeping at most `limit` bytes (the smallest)."""
        with self._lock:
            kept = [*self._free, *buffers]
            if sum(e[0].nbytes for e in kept) > self.limit:
                kept.sort(key=lambda e: e[0].nbytes)
                total, self._free = 0, []
                for entry in kept:
                    if total + entry[0].nbytes <= self.limit:
                        self._free.append(entry)
                        total += entry[0].nbytes
            else:
                self._free = kept


POOL = Pool()


class Lease:
    """The buffers one run has taken from a pool; `release` gives them all back."""

    def __init__(self, pool: Pool = POOL):
        self.pool = pool
        self.taken: list[tuple[np.ndarray, np.ndarray, bool]] = []
        """(buffer, the array handed out of it, whether `zeros` handed it out: all of the buffer zero)"""

    def _take(self, shape: tuple[int, ...], dtype, clean: bool) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes < MIN_BYTES:
            return (np.zeros if clean else np.empty)(shape, dtype)
        buf, was_clean = self.pool.take(nbytes, clean)
        if clean and not was_clean:
            buf.fill(0)  # all of it, so that it is clean when given back with its view zero
        out = buf[:nbytes].view(dtype).reshape(shape)
        self.taken.append((buf, out, clean))
        return out

    def empty(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialized C-contiguous array (a view of a pooled buffer when large)."""
        return self._take(shape, dtype, False)

    def zeros(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A zeroed C-contiguous array: a clean pooled buffer is not written again."""
        return self._take(shape, dtype, True)

    def release(self, clean: Sequence[np.ndarray] = ()) -> None:
        """Every buffer taken goes back to the pool: the arrays handed out must not be used after.
        Those of the arrays in `clean` (handed out by `zeros` and all zero again) are kept as clean."""
        entries = [(buf, zeroed and any(out is c for c in clean)) for buf, out, zeroed in self.taken]
        self.taken = []
        self.pool.give(entries)
