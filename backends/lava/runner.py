"""Running Lava networks: run configs, time limits, crash detection and teardown.

Lava runs every process model in its own OS process (plus a shared-memory manager and a runtime
service). A model that raises leaves the others blocked forever, and a network that is merely slow
looks the same from outside. So a run happens in an isolated *worker* (a forked child that is the
leader of a new process group):

* the worker builds the Lava network, runs it non-blocking and drains the recorders while
  watching that every Lava OS process is alive; a process that died is reported by the snnc
  name of the Lava process it ran, with its exception;
* the parent enforces the time limit. When it expires it records which Lava process used the most
  CPU (the likely culprit), asks the worker to shut Lava down (SIGTERM: the worker kills its Lava
  processes and shuts the shared-memory manager down so no /dev/shm segment leaks), then kills
  whatever is left of the process group and waits until the group is empty;
* KeyboardInterrupt or any error in the parent tears the group down the same way.

No process outlives a run: tests check that with psutil.
"""
from __future__ import annotations

import importlib.util
import multiprocessing as mp
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from snnc.ir.errors import BackendError, SnncError

# Modules that exist only with Intel's Loihi extension of Lava (lava-loihi, distributed to INRC
# members): Lava itself imports them inside try/except ImportError (see lava/magma/compiler/
# compiler.py and lava/magma/core/run_configs.py).
LOIHI_EXTENSION_MODULES = (
    "lava.magma.core.model.nc.model",
    "lava.magma.compiler.subcompilers.nc.ncproc_compiler",
)


def loihi_extension_missing() -> list[str]:
    """The Loihi-extension modules that cannot be imported (empty when the extension is there)."""
    missing = []
    for module in LOIHI_EXTENSION_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    return missing


def make_run_config(tag: str = "fixed_pt", hardware: bool = False):
    """Loihi2SimCfg(select_tag=tag), or Loihi2HwCfg when `hardware` (needs the Loihi extension)."""
    from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg

    if hardware:
        missing = loihi_extension_missing()
        if missing:
            raise BackendError(
                "Loihi2HwCfg needs Intel's Loihi extension for Lava, which is not installed",
                where="lava backend option hardware=True",
                expected="importable " + ", ".join(LOIHI_EXTENSION_MODULES),
                got="missing " + ", ".join(missing),
                hint="install the lava-loihi package (with NxCore/NxSDK) that Intel distributes to INRC "
                "members and run on a Loihi host; or drop hardware=True to simulate with Loihi2SimCfg",
            )
        return Loihi2HwCfg(select_tag=tag)
    return Loihi2SimCfg(select_tag=tag)


# -- the Lava session inside the worker ------------------------------------------------------------
class LavaProcessFailed(Exception):
    """A Lava OS process died during a run; carries the snnc description and its exception."""

    def __init__(self, description: str, error: str, trace: str):
        super().__init__(description, error, trace)
        self.description, self.error, self.trace = description, error, trace


@dataclass
class Session:
    """One compiled Lava network with a runtime; runs steps non-blocking and drains the recorders."""

    net: Any  # LavaNetwork
    run_cfg: Any
    runtime: Any = None
    actors: list = field(default_factory=list)  # (pid, description, SystemProcess)

    def start(self, steps: int) -> None:
        """Compile (first call), start the runtime and begin `steps` steps without blocking."""
        from lava.magma.core.run_conditions import RunSteps

        proc = self.net.any_process()
        proc.run(condition=RunSteps(num_steps=steps, blocking=False), run_cfg=self.run_cfg)
        if self.runtime is None:
            self.runtime = proc.runtime
            self.actors = self._describe_actors()

    def _describe_actors(self) -> list:
        infra = self.runtime._messaging_infrastructure
        actors = list(infra.actors)
        builders = self.runtime._executable.proc_builders
        described = []
        procs = list(builders)
        for i, actor in enumerate(actors):
            if i < len(procs):
                proc = procs[i]
                model = getattr(builders[proc], "proc_model", None)
                desc = self.net.snnc_name(proc)
                if model is not None:
                    desc += f" running {model.__name__}"
            else:
                desc = "Lava runtime service"
            described.append((actor.pid, desc, actor))
        return described

    def check_alive(self) -> None:
        """Raise LavaProcessFailed naming the first Lava process that is no longer running."""
        for _pid, desc, actor in self.actors:
            if actor.exitcode is not None:
                error, trace = f"exited with code {actor.exitcode}", ""
                try:
                    exc = actor.exception
                except (OSError, EOFError, ValueError):
                    exc = None
                if exc:
                    err, trace = exc
                    error = f"{type(err).__name__}: {err}"
                raise LavaProcessFailed(desc, error, trace)

    def drain(self, steps: int, on_step: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
        """Collect `steps` messages from every recorder, then wait for the runtime to finish."""
        taps = self.net.taps
        ports = {key: tap.recv_port() for key, tap in taps.items()}
        got: dict[str, list] = {key: [] for key in taps}
        services = list(self.runtime.service_to_runtime)
        done_reported = 0
        idle = 0
        while True:
            progressed = False
            for key, port in ports.items():
                while len(got[key]) < steps and port.probe():
                    got[key].append(port.recv())
                    progressed = True
            done = min((len(v) for v in got.values()), default=0)
            if on_step is not None and done > done_reported:
                on_step(done - done_reported)
                done_reported = done
            if done >= steps or not taps:
                if all(p.probe() for p in services):
                    break
            check_abort()
            if progressed:
                idle = 0
                continue
            idle += 1
            if idle % 20 == 0:
                self.check_alive()
            time.sleep(0.0005 if idle < 200 else 0.005)
        self.runtime.wait()
        if on_step is not None and not taps:
            on_step(steps)
        return {key: np.stack(v) for key, v in got.items()}

    def stop(self) -> None:
        """Stop Lava normally (STOP to every process, join them, shut shared memory down)."""
        if self.runtime is not None:
            self.runtime.stop()
            self.runtime = None

    def kill(self) -> None:
        """Tear Lava down without its cooperation: SIGKILL its processes, release shared memory.

        Works at any stage, also while Lava is still starting its processes.
        """
        rt, self.runtime = self.runtime, None
        if rt is None:
            try:
                rt = self.net.any_process().runtime
            except Exception:  # noqa: BLE001
                rt = None
        if rt is None:
            return
        infra = rt._messaging_infrastructure
        actors = list(getattr(infra, "actors", []) or [])
        for actor in actors:
            try:
                os.kill(actor.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, TypeError):
                pass
        for actor in actors:
            try:
                os.waitpid(actor.pid, 0)
            except (ChildProcessError, TypeError):
                pass
        rt._is_started = False  # Runtime.__del__ would otherwise send STOP to dead processes
        rt._is_running = False
        try:
            if infra is not None and infra.smm is not None:
                infra.smm.shutdown()  # the manager unlinks every shared-memory segment it made
        except Exception:  # noqa: BLE001 - best effort, the parent kills the process group anyway
            pass


# -- the worker -----------------------------------------------------------------------------------
class _Abort(BaseException):
    """Raised in the worker's main thread by SIGTERM from the parent."""


_ABORT_REQUESTED = False


def _on_term(signum, frame):
    global _ABORT_REQUESTED
    _ABORT_REQUESTED = True
    raise _Abort()


def check_abort() -> None:
    """Re-raise an abort whose exception was swallowed (e.g. inside an at-fork hook or __del__)."""
    if _ABORT_REQUESTED:
        raise _Abort()


class Reporter:
    """The worker's side of the pipe to the parent."""

    def __init__(self, conn):
        self.conn = conn
        self.sessions: list[Session] = []
        self._last = 0.0
        self._pending = 0

    def send(self, *msg) -> None:
        check_abort()
        self.conn.send(msg)

    def actors(self, session: Session) -> None:
        self.send("actors", [(pid, desc) for pid, desc, _ in session.actors])

    def where(self, sample: int, step: int) -> None:
        self.send("where", sample, step)

    def steps(self, n: int) -> None:
        """Count finished steps; sent at most every 0.2 s to keep the pipe quiet."""
        self._pending += n
        now = time.monotonic()
        if now - self._last > 0.2:
            self.send("steps", self._pending)
            self._pending, self._last = 0, now

    def flush(self) -> None:
        if self._pending:
            self.send("steps", self._pending)
            self._pending = 0


def _worker_main(conn, job: Callable[[Reporter], Any]) -> None:
    try:
        os.setpgid(0, 0)
    except OSError:
        pass

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    import warnings

    from scipy.sparse import SparseEfficiencyWarning

    # Lava's DelaySparse edits CSR structure in every step; keep its processes' stderr quiet.
    warnings.filterwarnings("ignore", category=SparseEfficiencyWarning)
    # Lava's processes are forked from here: they must not inherit the abort handler.
    os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    reporter = Reporter(conn)
    status = 1
    try:
        result = job(reporter)
        reporter.flush()
        conn.send(("result", result))
        status = 0
    except _Abort:
        pass
    except LavaProcessFailed as exc:
        _send_error(conn, dict(
            what=f"Lava process for {exc.description} failed: {exc.error}",
            hint="the run was stopped and every Lava process ended; "
            + (f"its traceback ends with: {_tail(exc.trace)}" if exc.trace else "no traceback was captured"),
        ))
    except SnncError as exc:
        _send_error(conn, dict(what=exc.what, where=exc.where, expected=exc.expected, got=exc.got, hint=exc.hint),
                    cls=type(exc).__name__)
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent as a BackendError
        _send_error(conn, dict(
            what=f"Lava failed: {type(exc).__name__}: {exc}",
            hint=f"traceback ends with: {_tail(traceback.format_exc())}",
        ))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # cleanup must not be interrupted
        for session in reporter.sessions:
            try:
                session.kill()
            except BaseException:  # noqa: BLE001
                pass
        try:
            conn.close()
        finally:
            os._exit(status)  # skip atexit/GC: Lava's __del__ handlers would talk to dead processes


def _send_error(conn, fields: dict, cls: str = "BackendError") -> None:
    try:
        conn.send(("error", cls, {k: _plain(v) for k, v in fields.items()}))
    except Exception:  # noqa: BLE001 - unpicklable detail: send text only
        conn.send(("error", "BackendError", {"what": str(fields.get("what"))}))


def _plain(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value) if not isinstance(value, (list, tuple)) else [_plain(v) for v in value]


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


# -- the parent -----------------------------------------------------------------------------------
def _processes():
    """(pid, pgid, is_zombie, cmdline) of every process we can see: /proc on Linux, else psutil."""
    if os.path.isdir("/proc"):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read().decode(errors="replace")
                fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            yield int(entry), int(fields[2]), fields[0] == "Z", cmd
        return
    import psutil

    for proc in psutil.process_iter(["pid", "status"]):
        try:
            yield (proc.info["pid"], os.getpgid(proc.info["pid"]), proc.info["status"] == psutil.STATUS_ZOMBIE,
                   " ".join(proc.cmdline()))
        except (OSError, psutil.Error):
            continue


def group_pids(pgid: int, trackers: bool = True) -> list[int]:
    """Live processes of process group `pgid` (zombies excluded; `trackers=False` leaves out
    Python's shared-memory resource tracker)."""
    return [
        pid
        for pid, group, zombie, cmd in _processes()
        if group == pgid and not zombie and (trackers or "multiprocessing.resource_tracker" not in cmd)
    ]


def _kill_pids(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def kill_group(pgid: int, wait: float = 5.0, spare_trackers: bool = False) -> list[int]:
    """SIGKILL the group's processes until none is left (or `wait` runs out); returns stragglers.

    With `spare_trackers`, Python's resource tracker is left alone: once every other process is
    gone it unlinks the shared-memory segments they leaked and exits by itself.
    """
    deadline = time.monotonic() + wait
    while True:
        pids = group_pids(pgid, trackers=not spare_trackers)
        if not pids:
            return []
        _kill_pids(pids)
        if time.monotonic() > deadline:
            return pids
        time.sleep(0.02)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except Exception:  # noqa: BLE001 - psutil missing or process gone
        return None


def _busiest(actors: list) -> tuple[str, float] | None:
    """The Lava process (runtime service aside) that used the most CPU: the likely culprit."""
    best = None
    models = [(pid, desc) for pid, desc in actors if desc != "Lava runtime service"] or actors
    for pid, desc in models:
        cpu = _cpu_seconds(pid)
        if cpu is not None and (best is None or cpu > best[1]):
            best = (desc, cpu)
    return best


def import_lava() -> None:
    """Import Lava's runtime in this (parent) process before forking workers.

    Lava calls `multiprocessing.set_start_method('fork')` when its message infrastructure is first
    imported. That call raises once anything fixed the start method (a forked child always has;
    numba does when its threading layer starts), so the import happens here, forcing 'fork' if a
    start method was already chosen (Lava cannot run with another one anyway).
    """
    import sys

    if "lava.magma.runtime.message_infrastructure.multiprocessing" in sys.modules:
        return
    original = mp.set_start_method
    if mp.get_start_method(allow_none=True) is not None:
        mp.set_start_method = lambda method, force=False: original(method, force=True)
    try:
        import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
        import lava.magma.runtime.runtime  # noqa: F401
    except ImportError as exc:
        raise BackendError(f"Lava is not importable: {exc}", hint="pip install lava-nc==0.10.0 (Python 3.10)") from exc
    finally:
        mp.set_start_method = original


def run_isolated(
    job: Callable[[Reporter], Any],
    *,
    timeout: float,
    total_steps: int,
    steps_per_sample: int,
    progress: bool | None = None,
    description: str = "lava",
    on_start: Callable[[int], None] | None = None,
) -> Any:
    """Run `job(reporter)` in a forked worker with its own process group; return its result.

    Raises BackendError when the job fails, a Lava process dies, or `timeout` seconds pass; in every
    case all processes of the worker's group are gone when this returns or raises.
    """
    import_lava()
    ctx = mp.get_context("fork")
    recv_conn, send_conn = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=_worker_main, args=(send_conn, job), name="snnc-lava-worker", daemon=False)
    bar = None
    start = time.monotonic()
    worker.start()
    pgid = worker.pid
    send_conn.close()
    if pgid is None:  # start() returns with a pid; without one there is no process group to end
        recv_conn.close()
        raise BackendError("the Lava worker process did not start", hint="check the system's process limits")
    try:
        os.setpgid(pgid, pgid)  # also done by the child: whichever runs first wins
    except OSError:
        pass
    if on_start is not None:
        on_start(pgid)
    actors: list = []
    where = (0, 0)
    done_steps = 0
    outcome: tuple[Any, ...] | None = None  # ("result", value), ("error", class, fields), ("timeout",), ("died",)
    try:
        if progress is not False:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_steps, unit="step", desc=description, delay=0 if progress else 2.0, leave=False)
        while outcome is None:
            remaining = timeout - (time.monotonic() - start)
            if remaining <= 0:
                outcome = ("timeout",)
                break
            try:
                ready = recv_conn.poll(min(remaining, 0.25))
            except (EOFError, OSError):
                ready = False
            if ready:
                try:
                    msg = recv_conn.recv()
                except (EOFError, OSError):
                    outcome = ("died",)
                    break
                kind = msg[0]
                if kind == "steps":
                    done_steps += msg[1]
                    if bar is not None:
                        bar.update(msg[1])
                elif kind == "actors":
                    actors = msg[1]
                elif kind == "where":
                    where = (msg[1], msg[2])
                elif kind in ("result", "error"):
                    outcome = msg
            elif not worker.is_alive():
                outcome = ("died",)
    except BaseException:
        _teardown(worker, pgid, "kill")
        raise
    finally:
        if bar is not None:
            bar.close()
        recv_conn.close()

    elapsed = time.monotonic() - start
    if outcome[0] == "result":
        _teardown(worker, pgid, "finished")
        return outcome[1]
    if outcome[0] == "error":
        _teardown(worker, pgid, "finished")
        cls = {c.__name__: c for c in _error_classes()}.get(outcome[1], BackendError)
        fields = outcome[2]
        raise cls(fields.pop("what"), **fields)
    if outcome[0] == "timeout":
        busiest = _busiest(actors)
        stopped = len(actors)
        _teardown(worker, pgid, "abort")
        sample, _ = where
        step_in_sample = done_steps - sample * steps_per_sample if done_steps >= sample * steps_per_sample else 0
        culprit = (
            f"the busiest Lava process was {busiest[0]} ({busiest[1]:.2f} s CPU)"
            if busiest
            else "Lava had not started its processes yet (still compiling or building)"
        )
        raise BackendError(
            "Lava run exceeded its time limit and was stopped",
            where=f"sample {sample}, after {step_in_sample} of {steps_per_sample} steps",
            expected=f"at most {timeout:g} s",
            got=f"{elapsed:.2f} s",
            hint=f"{culprit}; all {stopped} Lava processes were ended. "
            "Raise the `timeout` option if the network is just slow",
        )
    # the worker died without a word (e.g. killed by the OOM killer)
    code = worker.exitcode
    _teardown(worker, pgid, "kill")
    raise BackendError(
        "the Lava worker process died unexpectedly",
        got=f"exit code {code}",
        hint="check memory use; the run was cleaned up",
    )


def _error_classes():
    from snnc.ir import errors

    return [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, SnncError)]


def _teardown(worker, pgid: int, mode: str, grace: float = 3.0) -> None:
    """End the worker and every process of its group, and wait until none is left.

    mode "finished": the worker sent its result and exits by itself. "abort": ask it (SIGTERM) to
    stop Lava cleanly, which releases shared memory; if it does not manage within a second, or in
    mode "kill", SIGKILL the worker and every Lava process, sparing Python's resource tracker so
    it can unlink the shared memory they leave behind, then wait for the tracker to exit.
    """
    if mode == "abort" and worker.is_alive():
        try:
            os.kill(worker.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        worker.join(1.0)
    elif mode == "finished":
        worker.join(grace)
    if worker.is_alive():
        worker.kill()  # first, so that it cannot fork new Lava processes
        worker.join(1.0)
    kill_group(pgid, wait=grace, spare_trackers=True)
    deadline = time.monotonic() + grace
    while group_pids(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = kill_group(pgid, wait=grace)
    worker.join(1.0)
    if left:
        raise BackendError(
            "could not end every Lava process", got=f"pids {left} still alive", hint="kill them by hand"
        )
