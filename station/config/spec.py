"""Each key's default and limits stated once, on its dataclass field; one reader for them all."""

from __future__ import annotations

import dataclasses
from typing import Any

from station.confread import Section


def opt(default: Any, lo: float | None = None, hi: float | None = None, **check: Any) -> Any:
    """A configuration key's dataclass field: its default, range [lo, hi] and getter checks.

    `check` takes confread's getter options (maxlen, pattern, choices, allow_empty); the TOML key
    is the field's name. The getter follows the default's type (bool, int, float, str, tuple).
    """
    limits = {"minval": lo, "maxval": hi} if lo is not None or hi is not None else {}
    return dataclasses.field(default=default, metadata={"key": limits | check})


def default(cls: type, name: str) -> Any:
    """The default of field `name` of dataclass `cls` (the one place it is stated)."""
    return {f.name: f for f in dataclasses.fields(cls)}[name].default


def get(sec: Section, cls: type, name: str, **over: Any) -> Any:
    """One key of `sec`, read as field `name` of `cls` declares it; `over` replaces a check."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    check = f.metadata.get("key", {}) | over
    value = f.default
    if isinstance(value, bool):
        return sec.get_bool(name, value)
    if isinstance(value, int):
        return sec.get_int(name, value, **check)
    if isinstance(value, float):
        return sec.get_float(name, value, **check)
    if isinstance(value, str):
        return sec.get_str(name, value, **check)
    if isinstance(value, tuple):
        return tuple(sec.get_str_list(name, list(value), **check))
    raise TypeError(f"{cls.__name__}.{name}: no getter for {type(value).__name__}")


def read(sec: Section, cls: type, **given: Any) -> dict[str, Any]:
    """Every `opt` field of `cls` not in `given`, read from `sec`; plus `given` (kwargs for cls)."""
    out = {f.name: get(sec, cls, f.name) for f in dataclasses.fields(cls)
           if "key" in f.metadata and f.name not in given}
    return out | given


def unique(sec: Section, key: str, values: list, what: str) -> None:
    """Refuse a repeated value (rig ids, badges, reader ports …), naming the key."""
    seen = set()
    for v in values:
        if v in seen:
            raise sec.error(key, f"{what} {v!r} appears twice")
        seen.add(v)
