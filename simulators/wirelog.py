"""What a simulated controller saw on the wire: Modbus transactions per unit and function code, timed."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

WRITE_FCS = (5, 6, 15, 16)
KEEP = 200_000  # transactions kept in the log (a bench's worth: ~10 min of a busy line)


@dataclass(frozen=True)
class Transaction:
    """One request as the controller received it: monotonic time (s), unit id, function code,
    first address and count (of coils, inputs or registers)."""

    at: float
    unit: int
    fc: int
    address: int
    count: int

    def writes(self, address: int) -> bool:
        """A write request covering holding register or coil `address`."""
        return self.fc in WRITE_FCS and self.address <= address < self.address + max(self.count, 1)


class WireLog:
    """Counts and times every request the simulator's units answer (thread-safe: the server runs
    in its own thread; tests and benches read from theirs)."""

    def __init__(self, keep: int = KEEP) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[int, int]] = Counter()
        self._log: deque[Transaction] = deque(maxlen=keep)

    def record(self, unit: int, fc: int, address: int, count: int) -> None:
        with self._lock:
            self._counts[(unit, fc)] += 1
            self._log.append(Transaction(time.monotonic(), unit, fc, address, count))

    def counts(self, unit: int | None = None) -> dict[int, int]:
        """Transactions per function code, of one unit or (None) of every unit."""
        with self._lock:
            out: Counter[int] = Counter()
            for (u, fc), n in self._counts.items():
                if unit is None or u == unit:
                    out[fc] += n
            return dict(out)

    def total(self, unit: int | None = None) -> int:
        """Transactions of one unit or (None) of every unit."""
        return sum(self.counts(unit).values())

    def since(self, t: float, unit: int | None = None) -> list[Transaction]:
        """The logged transactions at or after monotonic time `t` (s), oldest first."""
        with self._lock:
            return [x for x in self._log if x.at >= t and (unit is None or x.unit == unit)]

    def writes_to(self, unit: int, address: int, since: float = 0.0) -> list[float]:
        """When (monotonic s) `unit` received a write covering holding register `address` (FC06
        or FC16), oldest first: the heartbeats when `address` is HEARTBEAT."""
        return [x.at for x in self.since(since, unit) if x.fc in (6, 16) and x.writes(address)]

    def trace(self, sending: bool, pdu):
        """pymodbus servers' `trace_pdu` hook: record each request received, pass it on."""
        if not sending:
            self.record(pdu.dev_id, pdu.function_code, getattr(pdu, "address", 0),
                        getattr(pdu, "count", 0))
        return pdu

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
            self._log.clear()


def max_gap(times: list[float], until: float | None = None) -> float:
    """The longest interval (s) between consecutive times, and from the last one to `until`."""
    points = sorted(times) + ([until] if until is not None else [])
    return max((b - a for a, b in zip(points, points[1:], strict=False)), default=0.0)
