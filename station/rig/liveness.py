"""Whether every rig loop still makes progress: the daemon pings systemd's watchdog only then.

A rig loop makes progress when it completes a poll (RigLoop.state.alive_at) or, while its
controller is unreachable, when a connection attempt completes (the Watched controller's
`exchanged_at`): a rig that is down is a fault the loop is handling, not a hang. A loop that
does neither for longer than `hung_after_s` is hung, and systemd restarts the daemon.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from station.errors import RigFault

RECONNECT_MAX_S = 5.0  # RigLoop's and ModbusLink's longest wait between connection attempts


@dataclass(frozen=True)
class Progress:
    """What the daemon knows of one rig loop's last sign of life (time.monotonic seconds)."""

    rig: str
    alive_at: float  # last completed poll
    exchanged_at: float  # last completed controller call, answered or failed
    connected: bool | None
    watchdog_ms: int
    timeout_ms: int


def hung_after_s(p: Progress) -> float:
    """Silence longer than this is a hang: 3 rig-watchdog periods and 2 s; a rig being
    reconnected also gets the reconnect backoff and one connect timeout."""
    limit = 3 * p.watchdog_ms / 1000 + 2.0
    if not p.connected:
        limit += RECONNECT_MAX_S + p.timeout_ms / 1000
    return limit


def hung_rigs(progress: list[Progress], now: float) -> list[str]:
    """The rigs whose loops show no progress within their limit (empty: ping the watchdog)."""
    hung = []
    for p in progress:
        last = p.alive_at if p.connected else max(p.alive_at, p.exchanged_at)
        if now - last > hung_after_s(p):
            hung.append(p.rig)
    return hung


class Watched:
    """A rig controller whose completed calls (answered, or failed with RigFault) are stamped."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.exchanged_at = time.monotonic()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr
        return self._stamped(attr)

    def _stamped(self, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def stamped(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await call(*args, **kwargs)
            except RigFault:
                self.exchanged_at = time.monotonic()
                raise
            self.exchanged_at = time.monotonic()
            return result
        return stamped

    def __repr__(self) -> str:
        return f"Watched({self._inner!r})"
