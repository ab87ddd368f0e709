"""The faults a tester injects into the city simulator's API calls, and their validation."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Faults:
    """Faults injected into API calls; `count` makes them clear themselves after N calls."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    status: int | None = None
    retry_after_s: float | None = None
    hang: bool = False
    garbage: bool = False
    reset: bool = False
    data_as_object: bool = False
    reset_after: bool = False  # handle the call (a filling is stored), then reset: no answer
    hang_after: bool = False  # handle the call, then never answer
    reject_tokens: bool = False  # every bearer token refused as expired (401); tokens still issued
    paths: tuple[str, ...] | None = None
    count: int | None = None

    def applies_to(self, path: str) -> bool:
        return self.paths is None or any(path.endswith(s) for s in self.paths)


def _check_fault(key: str, value: Any) -> Any:
    """Validate one fault setting; raise ValueError naming the key."""
    if key not in {f.name for f in fields(Faults)}:
        raise ValueError(f"unknown fault {key!r}")
    bools = ("hang", "garbage", "reset", "data_as_object", "reset_after", "hang_after",
             "reject_tokens")
    if key in bools and not isinstance(value, bool):
        raise ValueError(f"fault {key} must be true or false")
    if key in ("latency_ms", "error_rate") and (isinstance(value, bool) or
                                               not isinstance(value, int | float) or value < 0):
        raise ValueError(f"fault {key} must be a non-negative number")
    if key == "error_rate" and value > 1:
        raise ValueError("fault error_rate must be between 0 and 1")
    if key in ("status", "count") and value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"fault {key} must be a positive integer or null")
    if key == "status" and value is not None and not 100 <= value <= 599:
        raise ValueError("fault status must be an HTTP status (100..599)")
    if key == "retry_after_s" and value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
        raise ValueError("fault retry_after_s must be a non-negative number or null")
    if key == "paths" and value is not None:
        if isinstance(value, str) or not all(isinstance(p, str) and p for p in value):
            raise ValueError("fault paths must be a list of path suffixes or null")
        return tuple(value)
    return value
