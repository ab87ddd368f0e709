"""Ask the city about a reading within the decision deadline; fall back to the cached record."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from .model import Lookup, Reading
from .store import Store

TAG_KEYS = {"qr_url": "info_code", "info_code": "info_code", "product_no": "product_no",
            "rfid_uid": "rfid_uid"}


def tag_key(reading: Reading) -> str:
    """The cache key of a reading: the kind of city query and its value."""
    return f"{TAG_KEYS[reading.kind]}:{reading.value}"


@dataclass(frozen=True)
class _Skipped:
    outcome: str = "transient"
    message: str = "city failed recently: not asked (offline recheck)"


SKIPPED = _Skipped()


class CityQuery(Protocol):
    def query(self, condition: dict[str, str], deadline_s: float | None = None) -> Any: ...


@dataclass(frozen=True)
class Answer:
    """A lookup and what it means for the cache (the store applies it with the decision)."""

    lookup: Lookup
    city_record: dict[str, Any] | None = None  # a fresh city record to cache
    forget_tag: bool = False  # the city said the tag is unknown: drop its cache entry
    elapsed_ms: float = 0.0


class LookupService:
    """City first, within the deadline; the cache only when the city cannot answer.

    After the city failed to answer, readings go straight to the cache for `recheck_s` (the
    operator should not wait out the deadline at every cylinder of an outage); the first
    reading after that asks the city again.
    """

    def __init__(self, city: CityQuery, store: Store, executor: Executor, deadline_s: float,
                 recheck_s: float = 0.0):
        self.city, self.store, self.executor, self.deadline_s = city, store, executor, deadline_s
        self.recheck_s = recheck_s
        self.city_down_until = 0.0

    async def lookup(self, reading: Reading) -> Answer:
        start = time.monotonic()
        if start < self.city_down_until:
            reply = SKIPPED
        else:
            reply = await self._ask(reading)
            if getattr(reply, "outcome", "transient") == "transient":
                self.city_down_until = time.monotonic() + self.recheck_s
        answer = self._interpret(reading, reply)
        return Answer(answer.lookup, answer.city_record, answer.forget_tag,
                      (time.monotonic() - start) * 1000)

    async def _ask(self, reading: Reading) -> Any:
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self.executor, self.city.query, reading.query(),
                                    self.deadline_s)
        try:
            return await asyncio.wait_for(call, self.deadline_s + 0.5)
        except TimeoutError:
            return None

    def _interpret(self, reading: Reading, reply: Any) -> Answer:
        outcome = getattr(reply, "outcome", "transient")
        message = getattr(reply, "message", "") or ("no answer within the deadline"
                                                     if reply is None else "")
        if outcome == "found":
            items = list(getattr(reply, "items", ()) or ())
            if len(items) == 1:
                return Answer(Lookup("found", record=items[0], source="city"),
                              city_record=items[0] if isinstance(items[0], dict) else None)
            if not items:
                return Answer(Lookup("not_found", source="city"), forget_tag=True)
            return Answer(Lookup("ambiguous", source="city", message=f"{len(items)} cylinders"))
        if outcome == "not_found":
            return Answer(Lookup("not_found", source="city", message=message), forget_tag=True)
        if outcome in ("refused", "invalid"):
            return Answer(Lookup(outcome, source="city", message=message))
        cached = self.store.cached(tag_key(reading))
        if cached is None:
            return Answer(Lookup("unavailable", source="none", message=message))
        record, fetched_at = cached
        return Answer(Lookup("unavailable", record=record, source="cache",
                             age_s=time.time() - fetched_at, message=message))
