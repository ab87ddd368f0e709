"""Domain values passed between the readers, the city client, the rules and the rig loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

# id_or_code: typed at a terminal, asked as a cylinder id first, then as an information code
ReadingKind = Literal["qr_url", "info_code", "product_no", "rfid_uid", "badge", "invalid",
                      "id_or_code"]


@dataclass(frozen=True)
class Reading:
    """One parsed reading from a reader at a rig.

    `kind` says which city query it maps to; `invalid` readings carry the refusal code
    (TAG_UNREADABLE or TAG_FOREIGN) in `refusal` and are never sent to the city.
    """

    raw: str  # the text as read (may hold hostile characters: escape before logging)
    kind: ReadingKind
    value: str = ""  # the key to query by: info code, product number or RFID UID
    refusal: str | None = None
    detail: str = ""  # why a reading was refused, for the log (English)
    reader: str = ""

    def query(self) -> dict[str, str]:
        """The city query body condition for this reading."""
        return {
            "qr_url": {"info_code": self.value},
            "info_code": {"info_code": self.value},
            "product_no": {"product_no": self.value},
            "rfid_uid": {"rfid_uid": self.value},
        }[self.kind]


@dataclass(frozen=True)
class Lookup:
    """What the city (or the cache) said about a reading.

    outcome:
      found        – one record (`record`), from `source` ('city' or 'cache'), `age_s` old
      not_found    – the city does not know the cylinder (definitive)
      refused      – the city refused to tell (403: another unit's cylinder, definitive)
      invalid      – the city called our request invalid (400, definitive)
      unavailable  – no answer in time, and no cache entry young enough (see rules)
      ambiguous    – the city returned more than one cylinder for one tag
    `cached` carries the cache entry when the city was unavailable, for the rules to judge its age.
    """

    outcome: Literal["found", "not_found", "refused", "invalid", "unavailable", "ambiguous"]
    record: dict[str, Any] | None = None
    source: Literal["city", "cache", "none"] = "none"
    age_s: float = 0.0
    message: str = ""
    trace: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RigCondition:
    """What the rules need to know of the rig at the moment of the decision."""

    rig_id: str
    medium: str
    healthy: bool  # controller reachable, no scale fault/overload, no ESTOP
    fault: str = ""  # English detail when not healthy
    clock_problem: str = ""  # why the clock is not trusted (clockwatch.py); empty: trusted
    operator: str | None = None
    # The stable gross mass on the scale (g) when the reading was bound to the cylinder; None:
    # no cylinder standing stable (refused NO_CYLINDER). `weigh=False` only for what-if checks
    # away from a rig (`station check`), which judge the record without a cylinder.
    scale_g: int | None = None
    weigh: bool = True


@dataclass(frozen=True)
class Verdict:
    """The result of the rules: permit or refusal, with one reason and any warnings."""

    permit: bool
    reason: str | None = None  # refusal code, None when permitted
    warnings: tuple[str, ...] = ()
    cylinder_id: str | None = None
    detail: str = ""  # English detail for the log
    tare_g: int = 0  # with a permit: the tare and net target written to the controller
    target_g: int = 0

    @property
    def code(self) -> str:
        return "OK" if self.permit else str(self.reason)


@dataclass(frozen=True)
class Decision:
    """A verdict as the rig loop records it."""

    at: datetime
    rig_id: str
    reading: Reading
    verdict: Verdict
    source: str
    cache_age_s: float | None
    latency_ms: float
    operator: str | None
    id: int = 0  # the store's decision id, once recorded
