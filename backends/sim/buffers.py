"""Large chunk buffers of the sim, kept for the next chunk, run and program of this process.

Why: a run's per-chunk buffers (input sums, messages) are tens of MB. Allocated afresh, each is
mapped from the OS and every page is faulted in on first write, and freed it is unmapped again:
on the loaded development machine that was 30-40 % of a PilotNet SDNN run (113 MB of page faults
per run). Taken from here they are written in place. A `Lease` hands buffers to one run and
takes them back when the run ends; the pool keeps at most `POOL_BYTES` between runs.
"""
from __future__ import annotations

import threading

import numpy as np

MIN_BYTES = 1 << 20  # smaller arrays come from numpy directly (its allocator reuses those)
POOL_BYTES = 128 * 2**20  # the most bytes kept between runs (twice the default chunk budget; the largest go first)


class Pool:
    """Free flat byte buffers, handed out best fit; thread-safe."""

    def __init__(self, limit: int = POOL_BYTES):
        self.limit = limit
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> np.ndarray:
        """A flat uint8 buffer of at least `nbytes` (the smallest free one that fits, else a new one)."""
        with self._lock:
            fits = [i for i, b in enumerate(self._free) if b.nbytes >= nbytes]
            if fits:
                return self._free.pop(min(fits, key=lambda i: self._free[i].nbytes))
        return np.empty(nbytes, np.uint8)

    def give(self, buffers: list[np.ndarray]) -> None:
        """Take buffers back, keeping at most `limit` bytes (the smallest)."""
        with self._lock:
            kept = sorted(self._free + buffers, key=lambda b: b.nbytes)
            total, self._free = 0, []
            for b in kept:
                if total + b.nbytes <= self.limit:
                    self._free.append(b)
                    total += b.nbytes


POOL = Pool()


class Lease:
    """The buffers one run has taken from a pool; `release` gives them all back."""

    def __init__(self, pool: Pool = POOL):
        self.pool = pool
        self.taken: list[np.ndarray] = []

    def empty(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialized C-contiguous array (a view of a pooled buffer when large)."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if nbytes < MIN_BYTES:
            return np.empty(shape, dtype)
        buf = self.pool.take(nbytes)
        self.taken.append(buf)
        return buf[:nbytes].view(dtype).reshape(shape)

    def zeros(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        out = self.empty(shape, dtype)
        out.fill(0)
        return out

    def release(self) -> None:
        """Every buffer taken goes back to the pool: the arrays handed out must not be used after."""
        taken, self.taken = self.taken, []
        self.pool.give(taken)
