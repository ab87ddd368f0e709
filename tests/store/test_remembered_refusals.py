"""What the city refused stays refused through an outage, by every key of the cylinder (lookup +
store, with a stub in place of the city's HTTP: the wire is tested in tests/city)."""
import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace

from station.city.lookup import LookupService, tag_key
from station.core.model import Decision, Reading, Verdict
from station.core.reading import TYPED_KIND
from station.store.db import Store

REC = {"id": "CYL-000001", "info_code": "500112A1B2C3D4E5F6", "rfid_uid": "E280AA"}
QR = Reading(raw="https://x/c/500112A1B2C3D4E5F6", kind="qr_url", value="500112A1B2C3D4E5F6",
             reader="s1")
TYPED = Reading(raw="CYL-000001", kind=TYPED_KIND, value="CYL-000001", reader="manual:cli")
RFID = Reading(raw="E280AA", kind="rfid_uid", value="E280AA", reader="rf")


class City:
    """The city's replies as the client returns them (outcome, items, message)."""

    reply = None

    def query(self, condition, deadline_s):
        return self.reply


def record(store, reading, answer):
    d = Decision(datetime.now(UTC), "rig-01", reading, Verdict(permit=False, reason="X"),
                 "city", None, 1.0, None)
    store.record_decision(d, answer.city_record, tag_key(reading), answer.forget_tag,
                          answer.remember)


def run(outcome_after, reading_down, tmp_path):
    store, city = Store(str(tmp_path / "s.db")), City()
    svc = LookupService(city, store, ThreadPoolExecutor(1), 0.5)
    city.reply = SimpleNamespace(outcome="found", items=[REC], message="")
    record(store, QR, asyncio.run(svc.lookup(QR)))             # filled yesterday: cached
    city.reply = SimpleNamespace(outcome=outcome_after, items=[], message="")
    refused = asyncio.run(svc.lookup(QR))
    record(store, QR, refused)                                  # remembered for info_code:...
    city.reply = None                                           # the city goes down
    assert asyncio.run(svc.lookup(QR)).lookup.outcome != "unavailable"   # same key: refused
    return asyncio.run(svc.lookup(reading_down)).lookup


def test_not_registered_then_outage_the_typed_id_is_not_registered_too(tmp_path):
    lk = run("not_found", TYPED, tmp_path)
    assert (lk.outcome, lk.source, lk.record) == ("not_found", "cache", None)


def test_refused_403_then_outage_the_rfid_tag_is_refused_too(tmp_path):
    lk = run("refused", RFID, tmp_path)
    assert (lk.outcome, lk.source, lk.record) == ("refused", "cache", None)


def test_a_record_from_the_city_by_another_key_clears_every_remembered_refusal(tmp_path):
    store, city = Store(str(tmp_path / "s.db")), City()
    svc = LookupService(city, store, ThreadPoolExecutor(1), 0.5)
    city.reply = SimpleNamespace(outcome="found", items=[REC], message="")
    record(store, RFID, asyncio.run(svc.lookup(RFID)))
    city.reply = SimpleNamespace(outcome="refused", items=[], message="")
    record(store, RFID, asyncio.run(svc.lookup(RFID)))  # 403 remembered for the RFID tag
    city.reply = SimpleNamespace(outcome="found", items=[REC], message="")
    record(store, QR, asyncio.run(svc.lookup(QR)))  # the city gives the record by its QR
    city.reply = None  # and goes down
    lk = asyncio.run(svc.lookup(RFID)).lookup
    assert (lk.outcome, lk.source) == ("unavailable", "cache") and lk.record["id"] == "CYL-000001"
