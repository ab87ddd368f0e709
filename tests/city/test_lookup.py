"""City first, cache when the city cannot answer: the lookup service over real HTTP and SQLite."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from station.city.client import CityClient
from station.city.lookup import LookupService, tag_key
from station.config import CityConfig
from station.core.model import Decision, Reading, Verdict
from station.store.db import Store

READING = Reading(raw="IC-C001", kind="info_code", value="ICC001", reader="s1")


def service(sim, data, store, recheck_s=0.0, deadline_s=0.6):
    cred = data["credentials"][0]
    cfg = CityConfig(base_url=sim.url, app_key=cred["app_key"], app_secret=cred["app_secret"],
                     connect_timeout_s=0.3, read_timeout_s=0.3, decision_deadline_s=deadline_s)
    pool = ThreadPoolExecutor(2)
    return LookupService(CityClient(cfg, cred["unit_code"]), store, pool, deadline_s, recheck_s)


def remember(store, answer):
    """Record a decision the way the rig loop does, so the cache learns the city's answer."""
    d = Decision(datetime.now(UTC), "rig-01", READING, Verdict(permit=False, reason="X"), "city",
                 None, 1.0, None)
    store.record_decision(d, answer.city_record, tag_key(READING), answer.forget_tag)


def test_city_then_cache_then_city_again(city_sim, city_data, tmp_path):
    store = Store(str(tmp_path / "s.db"))
    lookups = service(city_sim, city_data, store, recheck_s=30)
    first = asyncio.run(lookups.lookup(READING))
    assert first.lookup.outcome == "found" and first.lookup.source == "city"
    remember(store, first)

    city_sim.set_faults(status=503)
    start = time.monotonic()
    down = asyncio.run(lookups.lookup(READING))
    waited = time.monotonic() - start
    assert down.lookup.outcome == "unavailable" and down.lookup.source == "cache"
    assert down.lookup.record["id"] == "C001" and down.lookup.age_s < 60
    assert 0.3 < waited < 0.6 + 0.6  # the deadline was spent asking the city

    asked = city_sim.requests.get("/api/v1/cylinders/query", 0)
    start = time.monotonic()
    quick = asyncio.run(lookups.lookup(READING))
    assert quick.lookup.source == "cache" and time.monotonic() - start < 0.2
    assert city_sim.requests.get("/api/v1/cylinders/query", 0) == asked  # not asked: recheck

    city_sim.clear_faults()
    lookups.city_down_until = 0.0  # the recheck window has passed
    again = asyncio.run(lookups.lookup(READING))
    assert again.lookup.source == "city"


def test_not_found_wins_over_the_cache(city_sim, city_data, tmp_path):
    store = Store(str(tmp_path / "s.db"))
    lookups = service(city_sim, city_data, store)
    remember(store, asyncio.run(lookups.lookup(READING)))
    assert store.cached(tag_key(READING)) is not None
    # The city forgets the tag: a definitive 404 must drop the cached entry.
    assert city_sim.delete_cylinder("C001")
    answer = asyncio.run(lookups.lookup(READING))
    assert answer.lookup.outcome == "not_found" and answer.forget_tag
    remember(store, answer)
    assert store.cached(tag_key(READING)) is None


def typed(value):
    return Reading(raw=value, kind="id_or_code", value=value, reader="manual:cli")


def test_a_typed_key_is_asked_as_a_cylinder_id_then_as_an_information_code(city_sim, city_data,
                                                                           tmp_path):
    store = Store(str(tmp_path / "s.db"))
    lookups = service(city_sim, city_data, store)
    queries = lambda: city_sim.requests.get("/api/v1/cylinders/query", 0)  # noqa: E731
    asked = queries()
    by_id = asyncio.run(lookups.lookup(typed("C001")))  # an id: found by id, one question
    assert by_id.lookup.outcome == "found" and by_id.lookup.record["id"] == "C001"
    assert queries() == asked + 1
    by_code = asyncio.run(lookups.lookup(typed("ICC001")))  # no such id: then the info code
    assert by_code.lookup.outcome == "found" and by_code.lookup.record["id"] == "C001"
    assert queries() == asked + 3
    unknown = asyncio.run(lookups.lookup(typed("ZZ9")))
    assert unknown.lookup.outcome == "not_found" and queries() == asked + 5
    foreign = asyncio.run(lookups.lookup(typed("C003")))  # another unit's: 403 ends the search
    assert foreign.lookup.outcome == "refused" and queries() == asked + 6


def test_a_typed_id_falls_back_to_the_cache_by_id_when_the_city_is_down(city_sim, city_data,
                                                                        tmp_path):
    store = Store(str(tmp_path / "s.db"))
    lookups = service(city_sim, city_data, store)
    remember(store, asyncio.run(lookups.lookup(READING)))  # cached as info code ICC001
    city_sim.set_faults(status=503)
    for key in ("C001", "ICC001"):
        down = asyncio.run(lookups.lookup(typed(key)))
        assert down.lookup.outcome == "unavailable" and down.lookup.source == "cache"
        assert down.lookup.record["id"] == "C001"
    assert asyncio.run(lookups.lookup(typed("C002"))).lookup.record is None  # never cached
