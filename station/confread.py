"""Typed, strict getters over one TOML table: every error names file, section and key."""

from __future__ import annotations

import difflib
import re
from typing import Any

from station.errors import ConfigError

_MISSING = object()


class Section:
    """One TOML table being read; `done()` refuses any key nobody asked for (a typo)."""

    def __init__(self, file: str, name: str, data: dict[str, Any]):
        if not isinstance(data, dict):
            raise ConfigError(file, name, None, "must be a table")
        self.file, self.name, self.data = file, name, data
        self.used: set[str] = set()

    def error(self, key: str | None, problem: str) -> ConfigError:
        return ConfigError(self.file, self.name or "top level", key, problem)

    def _raw(self, key: str, default: Any) -> Any:
        self.used.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            near = difflib.get_close_matches(key, [k for k in self.data if k not in self.used])
            if near:
                raise self.error(near[0], f"unknown key (did you mean {key!r}?)")
            raise self.error(key, "is required but missing")
        return default

    def get_str(self, key: str, default: Any = _MISSING, *, maxlen: int = 1000,
                pattern: str | None = None, choices: tuple[str, ...] | None = None,
                allow_empty: bool = False) -> str:
        value = self._raw(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {type(value).__name__}")
        if not value and not allow_empty:
            raise self.error(key, "must not be empty")
        if len(value) > maxlen:
            raise self.error(key, f"is {len(value)} characters long; at most {maxlen} allowed")
        if choices is not None and value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}; got {value!r}")
        if pattern and value and not re.fullmatch(pattern, value):
            raise self.error(key, f"{value!r} does not have the expected form")
        return value

    def get_number(self, key: str, default: Any = _MISSING, *, minval: float | None = None,
                   maxval: float | None = None, integer: bool = False) -> Any:
        value = self._raw(key, default)
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            want = "a whole number" if integer else "a number"
            raise self.error(key, f"must be {want}, got {value!r}")
        if minval is not None and value < minval:
            raise self.error(key, f"must be at least {minval}, got {value}")
        if maxval is not None and value > maxval:
            raise self.error(key, f"must be at most {maxval}, got {value}")
        return value

    def get_int(self, key: str, default: Any = _MISSING, **limits: Any) -> int:
        return int(self.get_number(key, default, integer=True, **limits))

    def get_float(self, key: str, default: Any = _MISSING, **limits: Any) -> float:
        return float(self.get_number(key, default, **limits))

    def get_bool(self, key: str, default: Any = _MISSING) -> bool:
        value = self._raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def get_str_list(self, key: str, default: Any = _MISSING, **kw: Any) -> list[str]:
        value = self._raw(key, default)
        if not isinstance(value, list):
            raise self.error(key, "must be a list of strings")
        out = []
        for i, item in enumerate(value):
            probe = Section(self.file, self.name, {f"{key}[{i}]": item})
            out.append(probe.get_str(f"{key}[{i}]", **kw))
        return out

    def sub(self, key: str, *, required: bool = False) -> Section:
        """A nested table; absent and not required gives an empty one."""
        value = self._raw(key, _MISSING if required else {})
        return Section(self.file, f"{self.name}.{key}" if self.name else key, value)

    def subs(self, key: str, *, required: bool = False) -> list[Section]:
        """An array of tables ([[key]]), each named with its index."""
        value = self._raw(key, _MISSING if required else [])
        if not isinstance(value, list):
            raise self.error(key, "must be an array of tables ([[...]])")
        return [Section(self.file, f"{self.name}.{key}[{i}]" if self.name else f"{key}[{i}]", v)
                for i, v in enumerate(value)]

    def done(self) -> None:
        """Refuse unknown keys, so that a typo stops start-up instead of running on a default."""
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key (a typo?)")
