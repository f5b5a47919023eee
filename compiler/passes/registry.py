"""Passes by name, and pipelines written as text.

A pipeline spec is what a user types: `canonicalize,fuse,timing,quantize(weight_bits=6),legalize`.
Each entry is a registered pass name, optionally with keyword options in parentheses (Python
literals; a bare word is a string). `compile(passes=SPEC)` and `snnc compile --passes SPEC` take it,
so a pass order or option can be tried without writing code. A third-party pass joins with
`register_pass(MyPass)`.
"""
from __future__ import annotations

import ast
import dataclasses
import re

from snnc.ir.errors import ParameterError

from .base import Pass

PASSES: dict[str, type[Pass]] = {}


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Make `cls` available by its `name` in pipeline specs (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Pass)) or cls.name == Pass.name:
        raise ParameterError("only Pass subclasses with their own `name` can be registered", got=repr(cls))
    PASSES[cls.name] = cls
    return cls


_ENTRY = re.compile(r"\s*([A-Za-z_][\w-]*)\s*(?:\((.*?)\))?\s*(?:,|$)", re.S)


def _split_entries(spec: str) -> list[tuple[str, str]]:
    """[(name, options text)] of a spec, honouring parentheses (options may contain commas)."""
    entries, depth, start = [], 0, 0
    for i, ch in enumerate(spec + ","):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            part = spec[start:i].strip()
            start = i + 1
            if not part:
                continue
            m = _ENTRY.fullmatch(part)
            if m is None:
                raise ParameterError("cannot read this pipeline entry", where=f"pipeline {spec!r}", got=part,
                                     hint="write name or name(option=value, ...), entries separated by commas")
            entries.append((m.group(1), m.group(2) or ""))
    if depth != 0:
        raise ParameterError("unbalanced parentheses", where=f"pipeline {spec!r}")
    return entries


def _options(name: str, text: str, cls: type[Pass]) -> dict:
    fields = {f.name for f in dataclasses.fields(cls)}
    where = f"pass {name!r}"
    try:
        call = ast.parse(f"f({text})", mode="eval").body
    except SyntaxError:
        raise ParameterError("cannot read the pass options", where=where, got=text, hint="write option=value, ...") from None
    assert isinstance(call, ast.Call)
    if call.args:
        raise ParameterError("pass options must be named", where=where, got=text, hint=f"options: {', '.join(sorted(fields))}")
    out = {}
    for kw in call.keywords:
        if kw.arg not in fields:
            raise ParameterError("unknown pass option", where=where, got=kw.arg, expected=", ".join(sorted(fields)) or "no options")
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            if isinstance(kw.value, ast.Name):  # a bare word: a string option such as target=loihi1
                out[kw.arg] = kw.value.id
            else:
                raise ParameterError("option values must be literals", where=f"{where}.{kw.arg}", got=ast.unparse(kw.value)) from None
    return out


def parse_pipeline(spec: str) -> list[Pass]:
    """The passes a text spec names, in order, with their options."""
    import snnc.compiler.mapping  # noqa: F401  (registers the `map` pass)

    if not isinstance(spec, str) or not spec.strip():
        raise ParameterError("empty pipeline", got=repr(spec), hint=f"name passes from: {', '.join(PASSES)}")
    passes = []
    for name, text in _split_entries(spec):
        cls = PASSES.get(name)
        if cls is None:
            raise ParameterError("unknown pass", where=f"pipeline {spec!r}", got=name, expected=", ".join(PASSES))
        try:
            passes.append(cls(**_options(name, text, cls)))
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"bad options ({exc})", where=f"pass {name!r}") from exc
    return passes


def pipeline_text(passes) -> str:
    """The spec of a pass list: options that differ from their defaults, for reports and --dump."""
    parts = []
    for p in passes:
        opts = []
        for f in dataclasses.fields(p):
            value = getattr(p, f.name)
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
            if isinstance(value, (bool, int, float, str, tuple, type(None))) and value != default:
                opts.append(f"{f.name}={value!r}")
        parts.append(p.name + (f"({', '.join(opts)})" if opts else ""))
    return ",".join(parts)
