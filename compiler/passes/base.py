"""Pass infrastructure: what a pass is, and the manager that runs a list of them.

A pass is a small named object, a frozen dataclass whose fields are its options (as xDSL's
`ModulePass`), with `run(graph) -> PassResult(graph, report)` (as torch.fx's `PassBase`). Passes
are pure: they read their input graph, never edit it in place (they copy first), do no I/O and
keep no global state, so the same pass object can run on many graphs and a failing pass leaves
the caller's graph untouched.

The `PassManager` runs a list of passes, re-validates the graph after each (so a pass that breaks
an invariant is caught at that pass, not three passes later), times them, collects their reports
and can dump the graph after any named pass (NIR-level graphs with `Graph.write`, chip-level
graphs with `snnc.ir.chip_nir`). Any failure is re-raised as `PassError` naming the pass, with
the cause's message kept and the cause chained.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

from snnc.ir.chip import ChipGraph
from snnc.ir.errors import PassError, SnncError
from snnc.ir.graph import Graph


@dataclass
class PassResult:
    """What a pass returns: the new graph and a JSON-friendly report of what it did.

    `handoff`: objects a pass hands to later stages of the same compile, in memory only (the
    quantizer's lowered view and float run, which the fidelity guard would otherwise compute
    again); never serialized or compared, and dropped when `compile` returns."""

    graph: Any
    report: dict = field(default_factory=dict)
    handoff: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Pass:
    """Base of all passes. Subclasses are frozen dataclasses; their fields are their options."""

    name: ClassVar[str] = "pass"
    level: ClassVar[str] = "nir"  # the graph level the pass accepts: "nir", "chip" or "any"

    def run(self, graph: Any) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, graph: Any) -> PassResult:
        return self.run(graph)

    def options(self) -> dict:
        """The pass's options as plain values (arrays summarized), for reports."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value = f"array{list(value.shape)}"
            elif isinstance(value, (list, tuple)):
                value = list(value)
            out[f.name] = value
        return out

    def check_level(self, graph: Any) -> None:
        """Refuse a graph of the wrong level with a message that says which pass wants what."""
        want = {"nir": Graph, "chip": ChipGraph}.get(self.level)
        if want is not None and not isinstance(graph, want):
            raise PassError(
                f"pass {self.name!r} runs on {'NIR-level Graph' if want is Graph else 'ChipGraph'} objects",
                where=f"pass {self.name!r}",
                got=type(graph).__name__,
                hint="check the order of the pass list (quantize turns a Graph into a ChipGraph)",
            )


@dataclass
class PassRecord:
    """One executed pass: its name, options, wall time and report."""

    name: str
    options: dict
    seconds: float
    report: dict
    dumped: str | None = None
    handoff: dict = field(default_factory=dict, repr=False, compare=False)  # PassResult.handoff (not in to_dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "options": _jsonable(self.options),
            "seconds": round(self.seconds, 6),
            "report": _jsonable(self.report),
            "dumped": self.dumped,
        }


@dataclass
class ManagerResult:
    """The final graph, one record per pass, and in-memory dumps (`dump_dir=None`)."""

    graph: Any
    records: list[PassRecord]
    dumps: dict[str, Any] = field(default_factory=dict)

    def report(self, name: str) -> dict:
        for rec in self.records:
            if rec.name == name:
                return rec.report
        raise KeyError(name)


class PassManager:
    """Run passes in order, validating, timing and optionally dumping after each.

    `dump_after`: pass names after which to dump the graph. With `dump_dir`, the graph is written
    as a NIR file `<dump_dir>/<index>_<pass>.nir`; without, a deep copy is kept in
    `ManagerResult.dumps[name]`. `keep`: pass names whose output graph is kept in `dumps` too
    (by reference, no copy: passes never modify their input).
    """

    def __init__(
        self,
        passes: Sequence[Pass],
        *,
        validate: bool = True,
        dump_after: str | Iterable[str] | None = None,
        dump_dir: str | Path | None = None,
        keep: Iterable[str] = (),
    ):
        self.passes = list(passes)
        names = [p.name for p in self.passes]
        if isinstance(dump_after, str):
            dump_after = [dump_after]
        self.dump_after = set(dump_after or ())
        unknown = self.dump_after - set(names)
        if unknown:
            raise PassError(
                "dump requested after a pass that is not in the pipeline",
                where="pass manager",
                expected=", ".join(names),
                got=sorted(unknown),
            )
        self.validate = validate
        self.dump_dir = Path(dump_dir) if dump_dir is not None else None
        self.keep = set(keep)

    def run(self, graph: Any) -> ManagerResult:
        records: list[PassRecord] = []
        dumps: dict[str, Any] = {}
        for index, p in enumerate(self.passes):
            start = time.perf_counter()
            try:
                result = p.run(graph)
            except PassError as err:
                if err.where and f"pass {p.name!r}" in err.where:
                    raise
                raise _wrap(p.name, err) from err
            except SnncError as err:
                raise _wrap(p.name, err) from err
            except Exception as err:  # noqa: BLE001 - a bug in a pass must still name the pass
                raise PassError(
                    f"internal error ({type(err).__name__}: {err})",
                    where=f"pass {p.name!r}",
                    hint="this is a bug in snnc; please report it with the model",
                ) from err
            if not isinstance(result, PassResult):
                raise PassError("pass did not return a PassResult", where=f"pass {p.name!r}", got=type(result).__name__)
            if self.validate:
                try:
                    _validate(result.graph)
                except SnncError as err:
                    raise PassError(
                        f"produced an invalid graph: {err}",
                        where=f"pass {p.name!r}",
                        hint="this is a bug in the pass",
                    ) from err
            seconds = time.perf_counter() - start
            graph = result.graph
            dumped = None
            if p.name in self.dump_after:
                if self.dump_dir is None:
                    dumps[p.name] = copy.deepcopy(graph)
                else:
                    dumped = str(self.dump_dir / f"{index:02d}_{p.name}.nir")
                    write_graph(graph, dumped)
            if p.name in self.keep and p.name not in dumps:
                dumps[p.name] = graph  # passes never modify their input, so a reference is safe
            records.append(PassRecord(p.name, p.options(), seconds, dict(result.report), dumped, result.handoff))
        return ManagerResult(graph, records, dumps)


def _wrap(name: str, err: SnncError) -> PassError:
    wrapped = PassError(str(err), where=f"pass {name!r}")
    wrapped.cause = err
    return wrapped


def _validate(graph: Any) -> None:
    if isinstance(graph, (Graph, ChipGraph)):
        graph.validate()
    else:
        raise PassError("pass returned something that is not a graph", got=type(graph).__name__)


def write_graph(graph: Any, path: str | Path) -> None:
    """Write a NIR-level or chip-level graph as a NIR file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(graph, Graph):
        graph.write(path)
        return
    from snnc.ir.chip_nir import chip_to_nir
    from snnc.ir.graph import write_nir

    write_nir(chip_to_nir(graph), path)


def _jsonable(value: Any) -> Any:
    """Reports as plain JSON values (numpy scalars/arrays converted, tuples to lists)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"array{list(value.shape)}"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


jsonable = _jsonable
