"""Where the tasks of a dataset evaluation or a sweep run: in this process, or on dask.distributed.

Both engines take the same three calls, so the evaluation and the sweep are written once:
`submit(fn, *args)` returns a handle (an argument may be the handle of an earlier task: the engine
passes its result), `as_completed(handles)` yields (handle, result) as tasks finish (and lets the
workers forget each result once yielded), `close()`.

- `LocalEngine`: runs each task in this process when its result is first asked for, in order.
- `DaskEngine`: a `LocalCluster` of `workers` single-threaded processes (default: one per core),
  or an existing cluster by scheduler address (`dask scheduler`, `dask worker ADDRESS`); snnc never
  starts remote machines. A worker that dies takes no result with it: the scheduler re-runs its
  tasks elsewhere (dask's `distributed.scheduler.allowed-failures`, default 3 deaths per task).
  Task functions and arguments must be picklable and importable on the workers.

Programs are expensive to build (compile, numba plans, Lava processes) and cheap to run, so a task
gets its program from `worker_program(key, build)`: a per-process cache keyed by a hash of what was
compiled. Each worker builds a program once and runs every batch it is given on it.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from typing import Any, Callable, Iterable, Iterator

from snnc.ir.errors import BackendError, ParameterError

_CACHE_SIZE = 8  # programs kept per process (a sweep has one per point); least recently used dropped
_PROGRAMS: "OrderedDict[str, Any]" = OrderedDict()
_STATS = {"builds": 0, "hits": 0}


def worker_program(key: str, build: Callable[[], Any]) -> Any:
    """The program cached under `key` in this process, built by `build()` the first time."""
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        _STATS["hits"] += 1
        return _PROGRAMS[key]
    program = build()
    _STATS["builds"] += 1
    _PROGRAMS[key] = program
    while len(_PROGRAMS) > _CACHE_SIZE:
        _PROGRAMS.popitem(last=False)
    return program


def cache_stats() -> dict[str, int]:
    """Programs built and cache hits in this process, and its pid (what `Engine.stats()` gathers)."""
    return {**_STATS, "pid": os.getpid()}


def machine_workers() -> int:
    """Cores this process may use: the default size of a LocalCluster."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class _Task:
    """A LocalEngine handle: the call, run on first `result()`."""

    __slots__ = ("fn", "args", "done", "value")

    def __init__(self, fn: Callable, args: tuple):
        self.fn, self.args, self.done, self.value = fn, args, False, None

    def result(self) -> Any:
        if not self.done:
            self.value = self.fn(*(a.result() if isinstance(a, _Task) else a for a in self.args))
            self.done = True
            self.args = ()
        return self.value


class LocalEngine:
    """Every task in this process, in submission order (no parallelism, no extra processes)."""

    name = "in-process"
    workers = 1

    def submit(self, fn: Callable, *args: Any) -> _Task:
        return _Task(fn, args)

    def as_completed(self, handles: Iterable[_Task]) -> Iterator[tuple[_Task, Any]]:
        for handle in handles:
            yield handle, handle.result()

    def stats(self) -> dict[Any, dict[str, int]]:
        return {"local": cache_stats()}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DaskEngine:
    """Tasks on dask.distributed: a LocalCluster of `workers` processes, or the cluster at `scheduler`."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None, *, memory_limit: str | None = "auto"):
        from dask.distributed import Client, LocalCluster

        self.cluster = None
        self._environ = dict(os.environ)  # a Nanny writes its workers' variables into ours: put them back
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="10s", set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise BackendError(f"cannot reach the Dask scheduler ({type(exc).__name__}: {' '.join(str(exc).split())})",
                                   where=f"--scheduler {scheduler}",
                                   hint="start one with `dask scheduler` and workers with `dask worker ADDRESS`, "
                                        "or drop --scheduler to run on this machine") from exc
            self.name = f"Dask cluster at {scheduler}"
        else:
            n = machine_workers() if workers is None else workers
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ParameterError("the number of workers must be a positive integer", where="--workers", got=workers)
            import dask

            # non-daemonic workers may start processes of their own (the lava backend runs Lava in one);
            # one thread per worker: numba's parallel loops too (dask already sets OMP/MKL/OpenBLAS to 1)
            with dask.config.set({"distributed.worker.daemon": False,
                                  "distributed.nanny.pre-spawn-environ.NUMBA_NUM_THREADS": 1}):
                self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                            silence_logs=logging.ERROR, memory_limit=memory_limit)
            self._restore_environ()
            self.client = Client(self.cluster, set_as_default=False)
            self.name = f"LocalCluster of {n} worker processes (dashboard {self.client.dashboard_link})"
        self.workers = max(1, len(self.client.scheduler_info(n_workers=-1).get("workers", {})))

    def submit(self, fn: Callable, *args: Any):
        return self.client.submit(fn, *args, pure=False)

    def as_completed(self, handles: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        from dask.distributed import as_completed

        for future, result in as_completed(list(handles), loop=self.client.loop, with_results=True):
            yield future, result
            future.release()  # the result is the caller's now: the worker may drop it (tasks needing it keep it)

    def stats(self) -> dict[Any, dict[str, int]]:
        """`cache_stats()` of every worker, by worker address."""
        return self.client.run(cache_stats)

    def _restore_environ(self) -> None:
        """Undo what Nanny.start leaves in this process's environment (NUMBA_NUM_THREADS=1, OMP_NUM_THREADS=1,
        ...): numba re-reads it when it compiles, and refuses a thread count other than the one it started."""
        for key in set(os.environ) - set(self._environ):
            del os.environ[key]
        os.environ.update(self._environ)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self._restore_environ()  # a worker restarted during the run set them again

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


Engine = LocalEngine | DaskEngine


def engine_for(workers: int | None = None, scheduler: str | None = None) -> Engine:
    """The engine the CLI options ask for: `scheduler` -> that cluster; `workers` > 1 -> a LocalCluster
    of that many processes (0: one per core); else in this process."""
    if scheduler:
        if workers is not None:
            raise ParameterError("--workers and --scheduler exclude each other", where=f"--scheduler {scheduler}",
                                 hint="the cluster's workers are started with `dask worker ADDRESS`")
        return DaskEngine(scheduler=scheduler)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ParameterError("the number of workers must be 0 (one per core) or a positive integer", where="--workers", got=workers)
    if workers == 0:
        return DaskEngine(machine_workers())
    if workers is not None and workers > 1:
        return DaskEngine(workers)
    return LocalEngine()
