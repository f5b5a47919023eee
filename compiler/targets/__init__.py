"""Chip profiles: the resources of a Loihi-class chip and the cost of each operation on it.

A `ChipProfile` says how many cores a chip has, how they sit on the mesh, what one core can hold
(neurons, synaptic memory, input/output axons) and which `CostTable` prices its operations. The
mapping pass reads the resources; the energy model reads the costs. Loihi 1 and Loihi 2 ship
as data files in `builtin/` (numbers from docs/loihi-fixed-point.md and the papers cited in each
file), read by the same loader as anyone's own chip (`load_profile`, TOML or JSON), so a
built-in profile is an example of the format, not a special case.

Cost tables shipped:
- `loihi1-davies2018`: Davies et al. 2018, IEEE Micro 38(1), Table 2 (pre-silicon, 0.75 V).
- `loihi1-sanafe`: Loihi 1 silicon-calibrated figures of SANA-FE (Boyle et al., IEEE TCAD;
  numbers from its `loihi.yaml` architecture file).
- `loihi2-assumed`: no per-operation Loihi 2 figures are published; SANA-FE's Loihi 1 figures
  stand in, and the table says so in every report.
Fields that no source gives (chip-to-chip crossings, static power of Loihi 2) are listed in the
table's `assumptions`, which every energy report repeats.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from snnc.ir.errors import ModelFileError, ParameterError

PJ = 1e-12
NS = 1e-9
MW = 1e-3

HOROWITZ_2014 = "M. Horowitz, 'Computing's energy problem', ISSCC 2014 (45 nm, 0.9 V)"


@dataclass(frozen=True)
class CostTable:
    """Energy (J) and time (s) of each chip operation, with the source of the numbers.

    Message model: a spike leaving a core costs `e_spike_out` once per spike (soma side) and
    `e_message` once per destination core (one message per output axon), plus `e_hop_ew` /
    `e_hop_ns` per router hop on the mesh and `e_chip_crossing` per chip boundary crossed.
    Neuron updates cost `e_neuron_inactive` (state all zero) or `e_neuron_active`.
    `barrier` lists (tiles in use, seconds) points of the end-of-step barrier, interpolated
    linearly (and extrapolated from the last two points beyond them).
    """

    name: str
    label: str
    source: str
    e_syn_dense: float
    e_syn_sparse: float
    e_syn_conv: float
    e_neuron_inactive: float
    e_neuron_active: float
    e_spike_out: float
    e_message: float
    e_hop_ew: float
    e_hop_ns: float
    e_chip_crossing: float
    t_syn_dense: float
    t_syn_sparse: float
    t_syn_conv: float
    t_neuron_inactive: float
    t_neuron_active: float
    t_spike_out: float
    t_message: float
    t_hop_ew: float
    t_hop_ns: float
    t_chip_crossing: float
    barrier: tuple[tuple[int, float], ...]
    static_power_w: float
    static_source: str
    assumptions: tuple[str, ...] = ()

    def e_syn(self, kind: str) -> float:
        return {"dense": self.e_syn_dense, "sparse": self.e_syn_sparse, "conv": self.e_syn_conv}[kind]

    def t_syn(self, kind: str) -> float:
        return {"dense": self.t_syn_dense, "sparse": self.t_syn_sparse, "conv": self.t_syn_conv}[kind]

    def barrier_time(self, tiles: int) -> float:
        """End-of-step barrier time for `tiles` tiles in use (piecewise linear in tiles)."""
        pts = sorted(self.barrier)
        if len(pts) == 1:
            return pts[0][1]
        tiles = max(int(tiles), 1)
        if tiles <= pts[0][0]:
            return pts[0][1]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            if tiles <= x1:
                return y0 + (y1 - y0) * (tiles - x0) / (x1 - x0)
        (x0, y0), (x1, y1) = pts[-2], pts[-1]
        return y1 + (y1 - y0) * (tiles - x1) / (x1 - x0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["barrier"] = [list(p) for p in self.barrier]
        d["assumptions"] = list(self.assumptions)
        return d


COST_TABLES: dict[str, CostTable] = {}


# Generic 45 nm figures for the conventional baselines (Horowitz 2014).
E_FP32_ADD = 0.9 * PJ
E_FP32_MULT = 3.7 * PJ
E_FP32_MAC = E_FP32_ADD + E_FP32_MULT  # 4.6 pJ
E_INT32_MAC = (0.1 + 3.1) * PJ
E_INT8_MAC = (0.03 + 0.2) * PJ


@dataclass(frozen=True)
class ChipProfile:
    """Resources of one chip and of each of its cores, plus the cost table that prices them.

    Cores sit on a mesh of `mesh_shape` = (rows, cols) router tiles with `cores_per_tile` cores
    each; several chips tile a larger mesh, `chips_per_row` chips per row. Synaptic memory is in
    bits, stored in words of `synapse_word_bits` (each input axon's synapse list takes whole words).
    `shared_conv_kernels`: the core stores a conv kernel once (Loihi 2 conv encoding) instead of
    one synapse per connection.
    """

    name: str
    description: str
    cores_per_chip: int
    mesh_shape: tuple[int, int]
    cores_per_tile: int
    neurons_per_core: int
    synaptic_memory_bits: int
    synapse_word_bits: int
    input_axons_per_core: int
    output_axons_per_core: int
    max_weight_bits: int = 8
    max_delay: int = 62
    max_message_bits: int = 0
    shared_conv_kernels: bool = False
    max_chips: int | None = None
    chips_per_row: int = 4
    costs: CostTable = None  # type: ignore[assignment]  # set by every loader
    sources: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def tiles_per_chip(self) -> int:
        return self.mesh_shape[0] * self.mesh_shape[1]

    def core_position(self, chip: int, core: int) -> tuple[int, int]:
        """Global (row, col) of the router tile that holds `core` of `chip`."""
        tile = core // self.cores_per_tile
        rows, cols = self.mesh_shape
        r, c = divmod(tile, cols)
        cr, cc = divmod(chip, self.chips_per_row)
        return cr * rows + r, cc * cols + c

    def chip_position(self, chip: int) -> tuple[int, int]:
        return divmod(chip, self.chips_per_row)

    def limits(self) -> dict[str, int]:
        """Per-core limits by resource name (what the mapping checks)."""
        return {
            "neurons": self.neurons_per_core,
            "synaptic_memory_bits": self.synaptic_memory_bits,
            "input_axons": self.input_axons_per_core,
            "output_axons": self.output_axons_per_core,
        }

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("costs", "sources")}
        d["mesh_shape"] = list(self.mesh_shape)
        d["costs"] = self.costs.to_dict()
        d["sources"] = dict(self.sources)
        return d


PROFILES: dict[str, ChipProfile] = {}


# -- user profiles ---------------------------------------------------------------------------------
# file key -> (ChipProfile field, type, minimum, maximum, scale)
_PROFILE_KEYS: dict[str, tuple[str, type, float | None, float | None, float]] = {
    "name": ("name", str, None, None, 1),
    "description": ("description", str, None, None, 1),
    "cores_per_chip": ("cores_per_chip", int, 1, None, 1),
    "cores_per_tile": ("cores_per_tile", int, 1, None, 1),
    "neurons_per_core": ("neurons_per_core", int, 1, None, 1),
    "synaptic_memory_bits": ("synaptic_memory_bits", int, 1, None, 1),
    "synaptic_memory_kib": ("synaptic_memory_bits", float, 0, None, 8 * 1024),
    "synapse_word_bits": ("synapse_word_bits", int, 1, 4096, 1),
    "input_axons_per_core": ("input_axons_per_core", int, 1, None, 1),
    "output_axons_per_core": ("output_axons_per_core", int, 1, None, 1),
    "max_weight_bits": ("max_weight_bits", int, 1, 8, 1),
    "max_delay": ("max_delay", int, 0, 62, 1),
    "max_message_bits": ("max_message_bits", int, 0, 32, 1),
    "shared_conv_kernels": ("shared_conv_kernels", bool, None, None, 1),
    "max_chips": ("max_chips", int, 1, None, 1),
    "chips_per_row": ("chips_per_row", int, 1, None, 1),
}
_SPECIAL_KEYS = {"base", "mesh_shape", "costs", "sources"}

# [costs] key -> (CostTable field, scale to SI): energies in pJ, times in ns.
_COST_OPS = ("syn_dense", "syn_sparse", "syn_conv", "neuron_inactive", "neuron_active", "spike_out",
             "message", "hop_ew", "hop_ns", "chip_crossing")
_COST_KEYS: dict[str, tuple[str, float]] = {
    **{f"{op}_pj": (f"e_{op}", PJ) for op in _COST_OPS},
    **{f"{op}_ns": (f"t_{op}", NS) for op in _COST_OPS},
}
_COST_KEYS["static_mw"] = ("static_power_w", MW)
_COST_SPECIAL = {"base", "name", "label", "source", "static_source", "assumptions", "barrier_ns"}


def _fail(path: str, key: str, what: str, expected: Any = None, got: Any = None) -> ParameterError:
    return ParameterError(
        what,
        where=f"chip profile {path}: key {key!r}",
        expected=expected,
        got=got,
        hint="fix the value in the profile file (see README: chip profiles)",
    )


def _check_value(path: str, key: str, value: Any, typ: type, lo, hi, strict_lo: bool = False) -> Any:
    """Check one scalar of a profile file: type, then range (`strict_lo`: value must exceed lo)."""
    if typ is bool:
        if not isinstance(value, bool):
            raise _fail(path, key, "must be true or false", expected="a boolean", got=value)
        return value
    if typ is str:
        if not isinstance(value, str) or not value.strip():
            raise _fail(path, key, "must be a non-empty string", expected="a string", got=value)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, key, "has the wrong type", expected="an integer" if typ is int else "a number", got=value)
    if typ is int and (isinstance(value, float) and not value.is_integer()):
        raise _fail(path, key, "must be a whole number", expected="an integer", got=value)
    if not math.isfinite(value):
        raise _fail(path, key, "must be finite", got=value)
    too_low = lo is not None and (value <= lo if strict_lo else value < lo)
    if too_low or (hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else (f"> {lo}" if strict_lo else f">= {lo}")
        raise _fail(path, key, "is out of range", expected=rng, got=value)
    return int(value) if typ is int else float(value)


def _read_file(path: Path) -> dict:
    if not path.exists():
        raise ModelFileError("chip profile file not found", where=str(path), hint="check the path, or use 'loihi1' / 'loihi2'")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(path.read_text())
        elif suffix == ".toml":
            try:
                import tomli
            except ImportError as exc:  # pragma: no cover - tomli ships with the test extras
                raise ModelFileError(
                    "reading a TOML profile needs the 'tomli' package",
                    where=str(path),
                    hint="pip install tomli, or write the profile as JSON",
                ) from exc
            data = tomli.loads(path.read_text())
        else:
            raise ModelFileError("unknown chip profile format", where=str(path), expected=".toml or .json", got=suffix or "no suffix")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"chip profile is not valid JSON: {exc}", where=str(path)) from exc
    except Exception as exc:
        if type(exc).__name__ == "TOMLDecodeError":
            raise ModelFileError(f"chip profile is not valid TOML: {exc}", where=str(path)) from exc
        raise
    if not isinstance(data, dict):
        raise ModelFileError("chip profile must be a table/object at the top level", where=str(path), got=type(data).__name__)
    return data


def _full_cost_table(path: str, raw: dict) -> CostTable:
    """A cost table that names every figure itself (the built-in tables without a base)."""
    values: dict[str, Any] = {attr: 0.0 for attr, _ in _COST_KEYS.values()}
    values.update(name="", label="", source="", static_source="", barrier=((1, 0.0),), assumptions=())
    placeholder = CostTable(**values)
    return _parse_costs(path, {k: v for k, v in raw.items() if k != "base"}, placeholder, keep_name=True)


def _parse_costs(path: str, raw: Any, default: CostTable | None, keep_name: bool = False) -> CostTable:
    if not isinstance(raw, dict):
        raise _fail(path, "costs", "must be a table of per-operation figures", expected="a table", got=type(raw).__name__)
    unknown = set(raw) - set(_COST_KEYS) - _COST_SPECIAL
    if unknown:
        raise _fail(path, f"costs.{sorted(unknown)[0]}", "unknown cost key", expected=sorted([*_COST_KEYS, *_COST_SPECIAL]))
    base = default
    if "base" in raw:
        name = _check_value(path, "costs.base", raw["base"], str, None, None)
        if name not in COST_TABLES:
            raise _fail(path, "costs.base", "unknown cost table", expected=sorted(COST_TABLES), got=name)
        base = COST_TABLES[name]
    elif base is None:
        missing = sorted(k for k in [*_COST_KEYS, "name", "label", "source", "static_source", "barrier_ns"] if k not in raw)
        if missing:
            raise _fail(path, f"costs.{missing[0]}", "a cost table without a base needs every figure", expected=", ".join(missing))
        return _full_cost_table(path, raw)
    updates: dict[str, Any] = {}
    for key, (attr, scale) in _COST_KEYS.items():
        if key in raw:
            updates[attr] = _check_value(path, f"costs.{key}", raw[key], float, 0, None) * scale
    for key in ("name", "label", "source", "static_source"):
        if key in raw:
            updates[key] = _check_value(path, f"costs.{key}", raw[key], str, None, None)
    if "assumptions" in raw:
        a = raw["assumptions"]
        if not isinstance(a, list) or not all(isinstance(x, str) for x in a):
            raise _fail(path, "costs.assumptions", "must be a list of strings", got=a)
        updates["assumptions"] = tuple(a)
    if "barrier_ns" in raw:
        b = raw["barrier_ns"]
        pts: tuple[tuple[int, float], ...] | None = None
        if isinstance(b, (int, float)) and not isinstance(b, bool):
            pts = ((1, _check_value(path, "costs.barrier_ns", b, float, 0, None) * NS),)
        elif isinstance(b, dict) and b:
            try:
                pts = tuple(sorted((int(k), float(v) * NS) for k, v in b.items()))
            except (TypeError, ValueError):
                pts = None
        elif isinstance(b, list) and b and all(isinstance(p, list) and len(p) == 2 for p in b):
            try:
                pts = tuple(sorted((int(t), float(v) * NS) for t, v in b))
            except (TypeError, ValueError):
                pts = None
        if not pts or any(t < 1 or v < 0 for t, v in pts):
            raise _fail(
                path, "costs.barrier_ns", "must be a number or {tiles: ns} / [[tiles, ns], ...] with tiles >= 1",
                expected='e.g. 300 or {"1": 113, "32": 465}', got=b,
            )
        updates["barrier"] = pts
    if keep_name:
        return replace(base, **updates)
    if updates and "name" not in updates:
        updates["name"] = f"{base.name}+custom"
    if updates and "source" not in updates and any(k in updates for k in (a for a, _ in _COST_KEYS.values())):
        updates["source"] = f"user-defined figures in {path}, other figures from {base.name}"
    return replace(base, **updates)


def load_profile(path: str | Path, *, builtin: bool = False) -> ChipProfile:
    """Read a user chip profile (TOML or JSON). Keys are those of `ChipProfile` (see README);
    `base = "loihi1"` starts from a built-in profile; `[costs]` sets energies in pJ, times in ns,
    `static_mw` per chip, `barrier_ns` as {tiles: ns}; or `costs = "<table name>"`; `[sources]`
    says what each number rests on."""
    path = Path(path)
    raw = _read_file(path)
    where = str(path)
    unknown = set(raw) - set(_PROFILE_KEYS) - _SPECIAL_KEYS
    if unknown:
        raise _fail(where, sorted(unknown)[0], "unknown profile key", expected=sorted([*_PROFILE_KEYS, *_SPECIAL_KEYS]))
    base = None
    if "base" in raw:
        name = _check_value(where, "base", raw["base"], str, None, None)
        if name not in PROFILES:
            raise _fail(where, "base", "unknown base profile", expected=sorted(PROFILES), got=name)
        base = PROFILES[name]
    values: dict[str, Any] = {} if base is None else {f.name: getattr(base, f.name) for f in fields(base)}
    if base is not None:
        values["sources"] = dict(base.sources)
    if "synaptic_memory_bits" in raw and "synaptic_memory_kib" in raw:
        raise _fail(where, "synaptic_memory_kib", "give synaptic memory once", expected="synaptic_memory_bits or synaptic_memory_kib")
    for key, (attr, typ, lo, hi, scale) in _PROFILE_KEYS.items():
        if key in raw:
            v = _check_value(where, key, raw[key], typ, lo, hi, strict_lo=(typ is float))
            values[attr] = int(round(v * scale)) if scale != 1 else v
    if "mesh_shape" in raw:
        m = raw["mesh_shape"]
        if (
            not isinstance(m, list) or len(m) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in m)
        ):
            raise _fail(where, "mesh_shape", "must be two positive integers", expected="[rows, cols]", got=m)
        values["mesh_shape"] = (m[0], m[1])
    required = ["name", "cores_per_chip", "mesh_shape", "neurons_per_core", "synaptic_memory_bits",
                "input_axons_per_core", "output_axons_per_core"]
    missing = [k for k in required if k not in values]
    if missing:
        key = missing[0] if missing[0] != "synaptic_memory_bits" else "synaptic_memory_kib"
        raise _fail(where, key, "required key is missing", expected=f"all of {required} (or a 'base' profile)")
    values.setdefault("description", f"user profile from {path.name}")
    values.setdefault("cores_per_tile", 1)
    values.setdefault("synapse_word_bits", 64)
    costs = raw.get("costs", {})
    if isinstance(costs, str):
        if costs not in COST_TABLES:
            raise _fail(where, "costs", "unknown cost table", expected=sorted(COST_TABLES), got=costs)
        values["costs"] = COST_TABLES[costs]
    else:
        values["costs"] = _parse_costs(where, costs, values.get("costs", COST_TABLES["loihi1-davies2018"]))
    sources = raw.get("sources", {})
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise _fail(where, "sources", "must be a table of strings (what each number rests on)", got=sources)
    values["sources"] = {**values.get("sources", {}), **sources}
    if not builtin:
        values["sources"]["file"] = str(path)
    rows, cols = values["mesh_shape"]
    if values["cores_per_chip"] != rows * cols * values["cores_per_tile"]:
        raise _fail(
            where, "cores_per_chip", "does not match the mesh",
            expected=f"mesh rows x cols x cores_per_tile = {rows} x {cols} x {values['cores_per_tile']} = {rows * cols * values['cores_per_tile']}",
            got=values["cores_per_chip"],
        )
    return ChipProfile(**values)


def get_profile(spec: str | Path | ChipProfile) -> ChipProfile:
    """A profile by built-in name ('loihi1', 'loihi2'), by file path, or passed through."""
    if isinstance(spec, ChipProfile):
        return spec
    text = str(spec)
    key = text.lower().replace("_", "").replace(" ", "")
    if key in PROFILES:
        return PROFILES[key]
    if Path(text).suffix.lower() in (".toml", ".json"):
        return load_profile(text)
    raise ParameterError(
        "unknown chip profile",
        where="target",
        expected=f"one of {sorted(PROFILES)} or a .toml/.json profile file",
        got=text,
    )


def get_cost_table(spec: str | CostTable) -> CostTable:
    """A cost table by name ('loihi1-davies2018', 'loihi1-sanafe', 'loihi2-assumed')."""
    if isinstance(spec, CostTable):
        return spec
    if spec in COST_TABLES:
        return COST_TABLES[spec]
    raise ParameterError("unknown cost table", expected=sorted(COST_TABLES), got=spec)


def cost_table_from_dict(d: dict) -> CostTable:
    """Inverse of `CostTable.to_dict()`."""
    d = dict(d)
    d["barrier"] = tuple((int(t), float(v)) for t, v in d["barrier"])
    d["assumptions"] = tuple(d.get("assumptions", ()))
    return CostTable(**d)


def profile_from_dict(d: dict) -> ChipProfile:
    """Inverse of `ChipProfile.to_dict()` (used to reload a mapping from report.json)."""
    d = dict(d)
    d["mesh_shape"] = tuple(d["mesh_shape"])
    d["costs"] = cost_table_from_dict(d["costs"])
    return ChipProfile(**d)


def load_cost_table(path: str | Path) -> CostTable:
    """Read a cost table file: every figure (pJ, ns, mW), or `base = "<table>"` plus the changes."""
    path = Path(path)
    raw = _read_file(path)
    base = None
    if "base" in raw:
        name = _check_value(str(path), "base", raw["base"], str, None, None)
        if name not in COST_TABLES:
            raise _fail(str(path), "base", "unknown cost table", expected=sorted(COST_TABLES), got=name)
        base = COST_TABLES[name]
        raw = {k: v for k, v in raw.items() if k != "base"}
    return _parse_costs(str(path), raw, base, keep_name=True)


BUILTIN_DIR = Path(__file__).with_name("builtin")


def _load_builtins() -> None:
    """Cost tables first (a table may name another as its base), then the chip profiles."""
    pending = sorted(BUILTIN_DIR.glob("*.toml"))
    tables = [p for p in pending if "-" in p.stem]
    while tables:
        ready = [p for p in tables if _read_file(p).get("base", None) in (None, *COST_TABLES)]
        if not ready:
            raise ModelFileError("built-in cost tables name bases that do not exist", where=str(BUILTIN_DIR))
        for p in ready:
            table = load_cost_table(p)
            COST_TABLES[table.name] = table
            tables.remove(p)
    for p in pending:
        if "-" not in p.stem:
            profile = load_profile(p, builtin=True)
            PROFILES[profile.name] = profile


_load_builtins()
LOIHI1 = PROFILES["loihi1"]
LOIHI2 = PROFILES["loihi2"]
