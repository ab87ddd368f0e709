"""City first, cache when the city cannot answer: the lookup service over real HTTP and SQLite."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from station.city import CityClient
from station.config import CityConfig
from station.lookup import LookupService, tag_key
from station.model import Decision, Reading, Verdict
from station.store import Store

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
