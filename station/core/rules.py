"""The interlock rules: one pure function from (reading, lookup, rig, policy, now) to a verdict."""

from __future__ import annotations

import calendar
import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from station.config import CylinderType, RulesConfig, ServiceLife
from station.core.codes import CYLINDER_FIELD_MAX, MEDIA, STATUS_IN_USE, STATUS_SCRAPPED, VARIETIES
from station.core.model import Lookup, Reading, RigCondition, Verdict
from station.today import station_today

YEAR_MONTH = re.compile(r"(\d{4})-(\d{2})")
YEAR_MONTH_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
REQUIRED = ("id", "user_unit_name", "variety", "medium_code", "manufacture_date",
            "next_inspection_date", "last_inspection_date", "status")


@dataclass(frozen=True)
class Policy:
    """The station's side of the rules: who it fills for and the configured tables."""

    units: frozenset[str]  # this station's unit name and the units it may fill for
    rules: RulesConfig


@dataclass(frozen=True)
class Cylinder:
    """The fields of a city record that the rules need, parsed and checked."""

    id: str
    unit: str
    variety: str
    medium: str
    status: str
    registration_cert_no: str
    manufactured: tuple[int, int]
    next_inspection: tuple[int, int]


def month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _year_month(value: Any) -> tuple[int, int] | None:
    match = YEAR_MONTH.fullmatch(value) if isinstance(value, str) else None
    if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1900:
        return None
    return int(match[1]), int(match[2])


def _valid_day(value: Any) -> bool:
    if not isinstance(value, str) or not YEAR_MONTH_DAY.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def parse_record(rec: Any) -> Cylinder | str:
    """A checked Cylinder, or an English reason why the record is malformed (BAD_RECORD)."""
    if not isinstance(rec, dict):
        return "record is not an object"
    for key in REQUIRED:
        if not isinstance(rec.get(key), str) or not rec[key]:
            return f"{key} missing or not a string"
    for key, limit in CYLINDER_FIELD_MAX.items():
        value = rec.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            return f"{key} not a string of at most {limit} characters"
    made, due = _year_month(rec["manufacture_date"]), _year_month(rec["next_inspection_date"])
    if made is None or due is None:
        return "manufacture_date or next_inspection_date is not yyyy-mm"
    if not _valid_day(rec["last_inspection_date"]):
        return "last_inspection_date is not yyyy-mm-dd"
    if rec["medium_code"] not in MEDIA:
        return f"unknown medium code {rec['medium_code']!r}"
    if rec["variety"] not in VARIETIES:
        return f"unknown variety {rec['variety']!r}"
    return Cylinder(id=rec["id"], unit=rec["user_unit_name"], variety=rec["variety"],
                    medium=rec["medium_code"], status=rec["status"],
                    registration_cert_no=(rec.get("registration_cert_no") or "").strip(),
                    manufactured=made, next_inspection=due)


def service_life_years(table: tuple[ServiceLife, ...], variety: str, medium: str) -> int | None:
    """The first row of the table that matches variety and medium (empty media: any)."""
    for row in table:
        if row.variety == variety and (not row.media or medium in row.media):
            return row.years
    return None


def refuse(reason: str, detail: str = "", cylinder_id: str | None = None) -> Verdict:
    return Verdict(permit=False, reason=reason, detail=detail, cylinder_id=cylinder_id)


def screen(reading: Reading, rig: RigCondition, blocklist: Collection[str]) -> Verdict | None:
    """Rules 1–5, which need no city answer; None when the reading may be looked up."""
    if not rig.healthy:
        return refuse("RIG_FAULT", rig.fault or "rig not healthy")
    if rig.clock_problem:
        return refuse("RIG_FAULT", rig.clock_problem)
    if not rig.operator:
        return refuse("NO_OPERATOR")
    if reading.refusal:
        return refuse(reading.refusal, reading.detail)
    if reading.value in blocklist:
        return refuse("BLOCKLISTED", "tag on the block list")
    if rig.weigh and rig.scale_g is None:
        return refuse("NO_CYLINDER", "no cylinder standing stable on the scale")
    return None


def _usable(lookup: Lookup, policy: Policy) -> Verdict | dict[str, Any]:
    """The record to judge, or the refusal that the lookup outcome itself means."""
    if lookup.outcome == "found" and lookup.record is not None:
        return lookup.record
    if lookup.outcome == "unavailable":
        max_age_s = policy.rules.offline_max_age_h * 3600
        if lookup.record is not None and max_age_s > 0 and 0 <= lookup.age_s <= max_age_s:
            return lookup.record
        why = "no cached record" if lookup.record is None else f"cache {lookup.age_s:.0f}s old"
        return refuse("CITY_UNAVAILABLE", f"{lookup.message}; {why}".strip("; "))
    reasons = {"not_found": "NOT_REGISTERED", "refused": "FOREIGN_UNIT",
               "invalid": "TAG_UNREADABLE", "ambiguous": "BAD_RECORD"}
    return refuse(reasons.get(lookup.outcome, "CITY_UNAVAILABLE"), lookup.message)


def _record_rules(cyl: Cylinder, rig: RigCondition, policy: Policy, today: date) -> Verdict | None:
    """Rules 9–15 on a well-formed record."""
    if not cyl.registration_cert_no:
        return refuse("NO_USE_REGISTRATION", cylinder_id=cyl.id)
    if cyl.status == STATUS_SCRAPPED:
        return refuse("SCRAPPED", cylinder_id=cyl.id)
    if cyl.status != STATUS_IN_USE:
        return refuse("STOPPED", f"status {cyl.status!r}", cyl.id)
    if cyl.unit not in policy.units:
        return refuse("FOREIGN_UNIT", "user unit not served by this station", cyl.id)
    if cyl.medium != rig.medium:
        return refuse("WRONG_MEDIUM", f"cylinder {cyl.medium}, rig {rig.medium}", cyl.id)
    if today > month_end(*cyl.next_inspection):
        return refuse("INSPECTION_OVERDUE", f"due {cyl.next_inspection}", cyl.id)
    years = service_life_years(policy.rules.service_life, cyl.variety, cyl.medium)
    if years is None:
        return refuse("BAD_RECORD", "no service life configured for this variety", cyl.id)
    year, month = cyl.manufactured
    if (today.year, today.month) > (year + years, month):
        return refuse("SERVICE_LIFE_EXCEEDED", f"made {year}-{month:02d}, life {years} y", cyl.id)
    return None


def _warnings(cyl: Cylinder, policy: Policy, now: datetime,
              last_fill_at: datetime | None) -> tuple[str, ...]:
    out = []
    days_left = (month_end(*cyl.next_inspection) - station_today(now)).days
    if days_left <= policy.rules.inspection_warning_days:
        out.append("INSPECTION_DUE_SOON")
    window = timedelta(minutes=policy.rules.refill_warning_min)
    if last_fill_at is not None and timedelta(0) <= now - last_fill_at <= window:
        out.append("RECENT_REFILL")
    return tuple(out)


def judge(reading: Reading, rig: RigCondition, lookup: Lookup, policy: Policy,
          blocklist: Collection[str], now: datetime,
          last_fill_at: datetime | None = None) -> Verdict:
    """Every rule in order; the first that fails is the one reason. Pure: no I/O, no clock.

    `last_fill_at` is when this cylinder was last permitted at this station (the caller looks
    it up by the record's id), for the refill warning.
    """
    early = screen(reading, rig, blocklist)
    if early is not None:
        return early
    usable = _usable(lookup, policy)
    if isinstance(usable, Verdict):
        return usable
    cyl = parse_record(usable)
    if isinstance(cyl, str):
        cid = usable.get("id") if isinstance(usable, dict) else None
        cid = cid if isinstance(cid, str) else None
        return refuse("BAD_RECORD", cyl, cid)
    if reading.kind == "product_no" and len(reading.value) == 12 and \
            reading.value[3:5] != f"{cyl.manufactured[0] % 100:02d}":
        return refuse("TAG_UNREADABLE", "the traceable number's year digits do not match the "
                      "record's manufacture year (mistyped?)", cyl.id)
    keys = {cyl.id, *(str(usable.get(k)) for k in ("info_code", "product_no", "rfid_uid")
                      if usable.get(k))}
    if keys & set(blocklist):
        return refuse("BLOCKLISTED", "cylinder on the block list", cyl.id)
    refusal = _record_rules(cyl, rig, policy, station_today(now))
    if refusal is not None:
        return refusal
    plan = fill_plan(usable, policy.rules.cylinder_types)
    if plan is None:
        return refuse("BAD_RECORD", "no tare/target: record has none and no cylinder type fits",
                      cyl.id)
    if rig.weigh:
        wrong = mass_rule(rig.scale_g, plan, stamped_tare(usable), policy.rules)
        if wrong is not None:
            return replace(wrong, cylinder_id=cyl.id)
    return Verdict(permit=True, cylinder_id=cyl.id, tare_g=plan[0], target_g=plan[1],
                   warnings=_warnings(cyl, policy, now, last_fill_at))


def stamped_tare(rec: dict[str, Any]) -> bool:
    """Whether the tare comes from the record (its stamped tare_kg), not the type table."""
    return _positive(rec.get("tare_kg")) is not None


def tare_tolerance_g(tare_g: int, stamped: bool, rules: RulesConfig) -> int:
    """How far below its tare (g) a cylinder may weigh: a % of the tare, at least the floor.

    Defaults (5 %, 15 % for a type table's nominal tare, 0.3 kg floor) in README's
    "The cylinder on the scale"."""
    pct = rules.tare_tolerance_pct if stamped else rules.nominal_tare_tolerance_pct
    return max(round(tare_g * pct / 100), round(rules.tare_tolerance_min_kg * 1000))


def mass_rule(scale_g: int | None, plan: tuple[int, int], stamped: bool,
              rules: RulesConfig) -> Verdict | None:
    """Rules 16–17: the stable gross (g) against the plan's (tare_g, target_g).

    Below tare − tolerance: MASS_MISMATCH (another cylinder's tag, another size); above
    tare + target: CYLINDER_FULL. None when the mass fits. Pure.
    """
    tare_g, target_g = plan
    if scale_g is None:
        return refuse("NO_CYLINDER", "no cylinder standing stable on the scale")
    low, high = tare_g - tare_tolerance_g(tare_g, stamped, rules), tare_g + target_g
    masses = (f"gross {scale_g / 1000:.2f} kg, {'record' if stamped else 'type table'} tare "
              f"{tare_g / 1000:.2f} kg, window {low / 1000:.2f}–{high / 1000:.2f} kg")
    if scale_g < low:
        return refuse("MASS_MISMATCH", masses)
    if scale_g > high:
        return refuse("CYLINDER_FULL", masses)
    return None


def _positive(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 10000
    return float(value) if ok else None


def fill_plan(rec: dict[str, Any], types: tuple[CylinderType, ...]) -> tuple[int, int] | None:
    """(tare_g, target_net_g): the record's tare_kg/fill_capacity_kg, else the type table."""
    medium, volume = rec.get("medium_code"), _positive(rec.get("volume_l"))
    rows = [t for t in types if t.medium == medium]
    exact = [t for t in rows if t.volume_l is not None and volume is not None
             and abs(t.volume_l - volume) <= 0.5]
    default = exact or [t for t in rows if t.volume_l is None] or (rows if volume is None else [])
    tare = _positive(rec.get("tare_kg")) or (default[0].tare_kg if default else None)
    net = _positive(rec.get("fill_capacity_kg")) or (default[0].net_kg if default else None)
    if tare is None or net is None:
        return None
    return round(tare * 1000), round(net * 1000)
