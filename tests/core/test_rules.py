"""The interlock rules as a table: one row per rule and per edge (interlock-rules.md)."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from support import RULES_RECORD as RECORD  # noqa: E402
from support import UNIT  # noqa: E402

from station.config import RulesConfig
from station.core.model import Lookup, Reading, RigCondition
from station.core.rules import Policy, fill_plan, judge, parse_record, screen
from station.core.texts import REASONS
from station.today import LOCAL_TZ

PARTNER = "重庆两江液化气有限公司"
POLICY = Policy(frozenset({UNIT, PARTNER}), RulesConfig())
# 2026-11-25 10:00 in Chongqing.
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=LOCAL_TZ)
READING = Reading(raw="https://qr.example/c/X1", kind="qr_url", value="X1", reader="s1")
PRODUCT_NO = Reading(raw="118230000001", kind="product_no", value="118230000001", reader="kb")
# An empty 35.5 L LPG cylinder stands on the scale: RECORD has no tare_kg, so the type table's
# nominal 15.0 kg tare (window 15 %: 12.75 kg) and 14.5 kg target apply.
RIG = RigCondition(rig_id="rig-01", medium="G13", healthy=True, operator="张三", scale_g=15000)
STAMPED = {"tare_kg": 15.2, "fill_capacity_kg": 14.5}  # window 5 %: 14.44–29.70 kg


def weighing(grams):
    return replace(RIG, scale_g=grams)



def rec(**over):
    out = dict(RECORD)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def found(**over):
    return Lookup("found", record=rec(**over), source="city")


def at(y, m, d, h=10):
    return datetime(y, m, d, h, 0, tzinfo=LOCAL_TZ)


CASES = [
    # name, rig, reading, lookup, blocklist, now, expected (reason or "OK"), warnings
    ("valid", RIG, READING, found(), (), NOW, "OK", ()),
    ("partner unit", RIG, READING, found(user_unit_name=PARTNER), (), NOW, "OK", ()),
    ("rule1 unhealthy", replace(RIG, healthy=False, fault="ESTOP active"), READING, found(), (),
     NOW, "RIG_FAULT", ()),
    ("rule1 clock went back", replace(RIG, clock_problem="clock went back"), READING, found(), (), NOW,
     "RIG_FAULT", ()),
    ("rule1 before rule2", replace(RIG, healthy=False, operator=None), READING, found(), (), NOW,
     "RIG_FAULT", ()),
    ("rule2 no operator", replace(RIG, operator=None), READING, found(), (), NOW,
     "NO_OPERATOR", ()),
    ("rule3 unreadable", RIG, Reading(raw="\x00", kind="invalid", refusal="TAG_UNREADABLE"),
     found(), (), NOW, "TAG_UNREADABLE", ()),
    ("rule4 foreign", RIG, Reading(raw="https://x/c/1", kind="invalid", refusal="TAG_FOREIGN"),
     found(), (), NOW, "TAG_FOREIGN", ()),
    ("rule5 blocked by tag", RIG, READING, found(), ("X1",), NOW, "BLOCKLISTED", ()),
    ("rule5 blocked by id", RIG, READING, found(), ("CYL-1",), NOW, "BLOCKLISTED", ()),
    ("rule5 blocked by product no", RIG, READING, found(), ("118230000001",), NOW,
     "BLOCKLISTED", ()),
    ("rule6 city down no cache", RIG, READING, Lookup("unavailable"), (), NOW,
     "CITY_UNAVAILABLE", ()),
    ("rule6 cache too old", RIG, READING,
     Lookup("unavailable", record=rec(), source="cache", age_s=72 * 3600 + 1), (), NOW,
     "CITY_UNAVAILABLE", ()),
    ("rule6 cache at max age", RIG, READING,
     Lookup("unavailable", record=rec(), source="cache", age_s=72 * 3600), (), NOW, "OK", ()),
    ("rule6 cache young but scrapped", RIG, READING,
     Lookup("unavailable", record=rec(status="报废"), source="cache", age_s=60), (), NOW,
     "SCRAPPED", ()),
    ("rule7 not registered", RIG, READING, Lookup("not_found", source="city"), (), NOW,
     "NOT_REGISTERED", ()),
    ("city 403 is not overridable", RIG, READING, Lookup("refused", source="city"), (), NOW,
     "FOREIGN_UNIT", ()),
    ("city 400", RIG, READING, Lookup("invalid", source="city"), (), NOW, "TAG_UNREADABLE", ()),
    ("two cylinders for one tag", RIG, READING, Lookup("ambiguous", source="city"), (), NOW,
     "BAD_RECORD", ()),
    ("rule8 bad manufacture date", RIG, READING, found(manufacture_date="2023/06"), (), NOW,
     "BAD_RECORD", ()),
    ("rule8 month 13", RIG, READING, found(next_inspection_date="2029-13"), (), NOW,
     "BAD_RECORD", ()),
    ("rule8 missing next inspection", RIG, READING, found(next_inspection_date=None), (), NOW,
     "BAD_RECORD", ()),
    ("rule8 bad last inspection day", RIG, READING, found(last_inspection_date="2025-02-30"),
     (), NOW, "BAD_RECORD", ()),
    ("rule8 unknown medium", RIG, READING, found(medium_code="G99"), (), NOW, "BAD_RECORD", ()),
    ("rule8 over-long id", RIG, READING, found(id="X" * 51), (), NOW, "BAD_RECORD", ()),
    ("rule8 id of 50 is fine", RIG, READING, found(id="X" * 50), (), NOW, "OK", ()),
    ("rule8 status not a string", RIG, READING, found(status=1), (), NOW, "BAD_RECORD", ()),
    ("rule8 record not an object", RIG, READING, Lookup("found", record=[1], source="city"),
     (), NOW, "BAD_RECORD", ()),
    ("rule9 no registration", RIG, READING, found(registration_cert_no=""), (), NOW,
     "NO_USE_REGISTRATION", ()),
    ("rule9 registration blank", RIG, READING, found(registration_cert_no="  "), (), NOW,
     "NO_USE_REGISTRATION", ()),
    ("rule9 registration absent", RIG, READING, found(registration_cert_no=None), (), NOW,
     "NO_USE_REGISTRATION", ()),
    ("rule10 scrapped", RIG, READING, found(status="报废"), (), NOW, "SCRAPPED", ()),
    ("rule11 stopped", RIG, READING, found(status="停用"), (), NOW, "STOPPED", ()),
    ("rule11 unknown status", RIG, READING, found(status="维修"), (), NOW, "STOPPED", ()),
    ("rule12 foreign unit", RIG, READING, found(user_unit_name="别家公司"), (), NOW,
     "FOREIGN_UNIT", ()),
    ("rule13 wrong medium", RIG, READING, found(medium_code="G1", variety="2310"), (), NOW,
     "WRONG_MEDIUM", ()),
    ("rule14 due this month, last day", RIG, READING, found(next_inspection_date="2026-11"), (),
     at(2026, 11, 30, 23), "OK", ("INSPECTION_DUE_SOON",)),
    ("rule14 first day after", RIG, READING, found(next_inspection_date="2026-11"), (),
     at(2026, 12, 1, 0), "INSPECTION_OVERDUE", ()),
    ("rule14 local date, not UTC", RIG, READING, found(next_inspection_date="2026-11"), (),
     datetime(2026, 11, 30, 16, 30, tzinfo=UTC), "INSPECTION_OVERDUE", ()),
    ("rule14 due in February, leap day", RIG, READING, found(next_inspection_date="2028-02"), (),
     at(2028, 2, 29), "OK", ("INSPECTION_DUE_SOON",)),
    ("rule14 March 1st after February", RIG, READING, found(next_inspection_date="2028-02"), (),
     at(2028, 3, 1), "INSPECTION_OVERDUE", ()),
    ("warning window edge: 30 days", RIG, READING, found(next_inspection_date="2026-12"), (),
     at(2026, 12, 1), "OK", ("INSPECTION_DUE_SOON",)),
    ("warning window: 31 days, none", RIG, READING, found(next_inspection_date="2026-12"), (),
     at(2026, 11, 30), "OK", ()),
    ("rule15 LPG welded at end-of-life month", RIG, READING, found(manufacture_date="2011-11"),
     (), NOW, "OK", ()),
    ("rule15 LPG welded one month past", RIG, READING, found(manufacture_date="2011-10"), (), NOW,
     "SERVICE_LIFE_EXCEEDED", ()),
    ("rule15 23T0 lives 20 years", RIG, READING,
     found(variety="23T0", manufacture_date="2006-11"), (), NOW, "OK", ()),
    ("rule15 23T0 past 20 years", RIG, READING,
     found(variety="23T0", manufacture_date="2006-10"), (), NOW, "SERVICE_LIFE_EXCEEDED", ()),
    ("rule15 seamless 30 years", RIG, READING,
     found(variety="2310", manufacture_date="1996-10"), (), NOW, "SERVICE_LIFE_EXCEEDED", ()),
    ("traceable number, year digits match", RIG, PRODUCT_NO, found(), (), NOW, "OK", ()),
    ("traceable number, year digits mistyped", RIG, replace(PRODUCT_NO, value="118220000001"),
     found(), (), NOW, "TAG_UNREADABLE", ()),
    ("rule order: scrapped before foreign unit", RIG, READING,
     found(status="报废", user_unit_name="别家"), (), NOW, "SCRAPPED", ()),
    # The cylinder on the scale weighs like its record (rules 16–17).
    ("no cylinder on the scale", weighing(None), READING, found(), (), NOW, "NO_CYLINDER", ()),
    ("reading refusal before no cylinder", weighing(None),
     Reading(raw="\x00", kind="invalid", refusal="TAG_UNREADABLE"), found(), (), NOW,
     "TAG_UNREADABLE", ()),
    ("two tags in view", RIG, Reading(raw="A", kind="invalid", refusal="AMBIGUOUS_TAGS"),
     found(), (), NOW, "AMBIGUOUS_TAGS", ()),
    ("6.5 kg wearing a 15.2 kg record's tag", weighing(6500), READING, found(**STAMPED), (), NOW,
     "MASS_MISMATCH", ()),
    ("stamped tare, 1 g under the 5 % window", weighing(14439), READING, found(**STAMPED), (),
     NOW, "MASS_MISMATCH", ()),
    ("stamped tare, at the window's low edge", weighing(14440), READING, found(**STAMPED), (),
     NOW, "OK", ()),
    ("stamped tare, exactly the tare", weighing(15200), READING, found(**STAMPED), (), NOW,
     "OK", ()),
    ("full: at tare + target", weighing(29700), READING, found(**STAMPED), (), NOW, "OK", ()),
    ("full: 1 g above tare + target", weighing(29701), READING, found(**STAMPED), (), NOW,
     "CYLINDER_FULL", ()),
    ("type table tare, 15 % window edge", weighing(12750), READING, found(), (), NOW, "OK", ()),
    ("type table tare, 1 g under 15 %", weighing(12749), READING, found(), (), NOW,
     "MASS_MISMATCH", ()),
    ("small tare: the 0.3 kg floor", weighing(4700), READING,
     found(tare_kg=5.0, fill_capacity_kg=5.0), (), NOW, "OK", ()),
    ("small tare: under the floor", weighing(4699), READING,
     found(tare_kg=5.0, fill_capacity_kg=5.0), (), NOW, "MASS_MISMATCH", ()),
    ("mass checked after the record rules", weighing(6500), READING,
     found(status="报废", **STAMPED), (), NOW, "SCRAPPED", ()),
    ("what-if check without a cylinder", replace(RIG, scale_g=None, weigh=False), READING,
     found(**STAMPED), (), NOW, "OK", ()),
    ("rule order: overdue before life", RIG, READING,
     found(next_inspection_date="2020-01", manufacture_date="1990-01"), (), NOW,
     "INSPECTION_OVERDUE", ()),
]


@pytest.mark.parametrize("name,rig,reading,lookup,blocked,now,expect,warnings", CASES,
                         ids=[c[0] for c in CASES])
def test_rules_table(name, rig, reading, lookup, blocked, now, expect, warnings):
    verdict = judge(reading, rig, lookup, POLICY, set(blocked), now)
    assert verdict.code == expect, verdict.detail
    assert verdict.warnings == warnings
    assert verdict.permit == (expect == "OK")
    if verdict.permit:
        assert verdict.tare_g > 0 and verdict.target_g > 0


def test_every_reason_code_is_reachable_in_the_table():
    reached = {c[6] for c in CASES}
    assert set(REASONS) <= reached


def test_recent_refill_warning_window():
    last = NOW - timedelta(minutes=29)
    v = judge(READING, RIG, found(), POLICY, set(), NOW, last_fill_at=last)
    assert v.permit and v.warnings == ("RECENT_REFILL",)
    v = judge(READING, RIG, found(), POLICY, set(), NOW, last_fill_at=NOW - timedelta(minutes=31))
    assert v.permit and v.warnings == ()


def test_strict_offline_mode_refuses_any_cache():
    strict = Policy(POLICY.units, RulesConfig(offline_max_age_h=0))
    lookup = Lookup("unavailable", record=rec(), source="cache", age_s=1)
    assert judge(READING, RIG, lookup, strict, set(), NOW).reason == "CITY_UNAVAILABLE"


def test_a_mass_refusal_records_both_masses():
    v = judge(READING, weighing(6500), found(**STAMPED), POLICY, set(), NOW)
    assert "gross 6.50 kg" in v.detail and "tare 15.20 kg" in v.detail
    assert v.cylinder_id == "CYL-1"


def test_screen_passes_a_good_reading_to_the_city():
    assert screen(READING, RIG, set()) is None


def test_fill_plan_prefers_the_record_then_the_type_table():
    types = RulesConfig().cylinder_types
    assert fill_plan(rec(tare_kg=15.2, fill_capacity_kg=14.5), types) == (15200, 14500)
    assert fill_plan(rec(), types) == (15000, 14500)  # LPG 35.5 L from the table
    assert fill_plan(rec(volume_l=118.0), types) is None  # no row fits a 118 L cylinder
    assert fill_plan(rec(tare_kg=True), types) == (15000, 14500)  # a bool is not a mass


def test_no_fill_target_is_a_refusal():
    v = judge(READING, RIG, found(volume_l=118.0), POLICY, set(), NOW)
    assert v.reason == "BAD_RECORD" and "target" in v.detail


def test_parse_record_names_the_problem():
    assert "manufacture_date" in parse_record(rec(manufacture_date="x"))
    assert parse_record(rec()).id == "CYL-1"
