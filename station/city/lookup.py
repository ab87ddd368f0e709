"""Ask the city about a reading within the decision deadline; fall back to the cached record."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from station.core.model import Lookup, Reading
from station.core.reading import TYPED_KIND
from station.store.db import Store

TAG_KEYS = {"qr_url": "info_code", "info_code": "info_code", "product_no": "product_no",
            "rfid_uid": "rfid_uid", TYPED_KIND: "id"}
# Outcomes after which a typed key is asked about as the next kind of key (an id unknown to
# the city may be an information code).
_TRY_NEXT = ("not_found", "invalid")
_MIN_ASK_S = 0.05  # less left of the deadline than this: not worth a second question


def tag_key(reading: Reading) -> str:
    """The cache key of a reading: the kind of city query and its value (`id:` for a typed
    cylinder id or information code, which no reader's reading ever gives)."""
    return f"{TAG_KEYS[reading.kind]}:{reading.value}"


def city_conditions(reading: Reading) -> list[dict[str, str]]:
    """The city queries for a reading, asked in order until one is not `not_found`/`invalid`.

    A typed `id_or_code` (station.core.reading.parse_scan) is asked as a cylinder id first, then as
    an information code (city-api.md §2: `{"id": …}` and `{"info_code": …}`); every other
    reading is its one query (`Reading.query`).
    """
    if reading.kind == TYPED_KIND:
        return [{"id": reading.value}, {"info_code": reading.value}]
    return [reading.query()]


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
    remember: tuple[str, str] | None = None  # a definitive city refusal of the tag, to keep


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
                      (time.monotonic() - start) * 1000, answer.remember)

    async def _ask(self, reading: Reading) -> Any:
        """The city's reply to the reading's queries, all within one decision deadline."""
        end = time.monotonic() + self.deadline_s
        first = None
        for condition in city_conditions(reading):
            left = end - time.monotonic()
            if first is not None and left < _MIN_ASK_S:
                return None  # the deadline is spent: as if the city had not answered
            reply = await self._ask_one(condition, left)
            outcome = getattr(reply, "outcome", "transient")
            if outcome not in _TRY_NEXT:
                return reply
            if first is None or (outcome == "not_found" and first.outcome != "not_found"):
                first = reply  # a definitive "unknown" wins over "invalid as this kind of key"
        return first

    async def _ask_one(self, condition: dict[str, str], deadline_s: float) -> Any:
        """One query, ended by the deadline however long it waited for a free city thread: the
        time spent queued comes off its budget, so a worker thread is never held past it."""
        loop = asyncio.get_running_loop()
        end = time.monotonic() + deadline_s

        def ask() -> Any:
            left = end - time.monotonic()
            return None if left <= 0 else self.city.query(condition, left)

        call = loop.run_in_executor(self.executor, ask)
        try:
            return await asyncio.wait_for(call, deadline_s + 0.5)
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
            return Answer(Lookup("not_found", source="city", message=message), forget_tag=True,
                          remember=("not_found", message))
        if outcome == "refused":
            return Answer(Lookup(outcome, source="city", message=message),
                          remember=("refused", message))
        if outcome == "invalid":
            return Answer(Lookup(outcome, source="city", message=message))
        cached = self._cached(reading)
        remembered = self.store.city_refusal(tag_key(reading))
        if remembered is None and cached is not None and isinstance(cached[0].get("id"), str):
            remembered = self.store.city_refusal(f"cylinder:{cached[0]['id']}")
        if remembered is not None:  # what the city refused stays refused through an outage
            was, said, at = remembered
            kind = "not_found" if was == "not_found" else "refused"
            return Answer(Lookup(kind, source="cache", age_s=time.time() - at,
                                 message=f"the city's answer of {time.time() - at:.0f} s ago, "
                                         f"remembered: {said}".strip(": ")))
        if cached is None:
            return Answer(Lookup("unavailable", source="none", message=message))
        record, fetched_at = cached
        return Answer(Lookup("unavailable", record=record, source="cache",
                             age_s=time.time() - fetched_at, message=message))

    def _cached(self, reading: Reading) -> tuple[dict[str, Any], float] | None:
        """The cached record for a reading; a typed key by cylinder id, then information code."""
        if reading.kind != TYPED_KIND:
            return self.store.cached(tag_key(reading))
        return self.store.cached_by_id(reading.value) or \
            self.store.cached(f"info_code:{reading.value}")
