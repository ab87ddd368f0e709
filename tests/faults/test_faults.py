"""Faults mid-fill (the short campaign): the Modbus link cut and restored, the city failing every
way while records wait, the scanner unplugged and replugged. After each: no permit left set, the
fill recorded once, delivered once."""

from datetime import UTC, datetime

import pytest

from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for

CYL = demo_cylinders(datetime.now(UTC).date())
VALID = qr_url(CYL["valid"]["info_code"])


@pytest.fixture
def station(tmp_path):
    st = SimStation(tmp_path, (RigSpec("rig-01", 1),), watchdog_ms=900, deadline_s=0.5,
                    rig_options={"start_delay_s": 0.1, "flow_g_per_s": 2000},
                    extra_config="[sync]\nrate_per_s = 0\nbackoff_cap_s = 1\n"
                                 "submit_timeout_s = 1\n").start()
    st.badge("rig-01", OPERATORS[0][1])
    yield st
    st.stop()


def test_modbus_link_cut_mid_fill_ends_in_an_interrupted_record(station):
    model = station.rig_sim.rig(1)
    station.place("rig-01")
    d = station.scan("rig-01", VALID)
    wait_for(lambda: model.snapshot()["gross_g"] > 15200 + 1000, 5, "mass climbing")
    station.rig_sim.stop()  # the cable is pulled (or the controller reboots)
    wait_for(lambda: "event=rig_lost rig=rig-01" in station.log_tail(), 5, "the link lost")
    station.rig_sim.start()  # back; the controller's watchdog has run out meanwhile
    f = station.wait_fill("rig-01", d["id"], timeout=15)
    assert f["state"] == "closed" and f["post_check"] == "interrupted" and f["net_g"] > 1000
    assert not station.coils("rig-01")["permit"]
    wait_for(lambda: station.city.fillings, 10, "the record at the city")
    assert [x["record_id"] for x in station.city.fillings] == [f["record_id"]]


@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 429, "retry_after_s": 1},
                                   {"hang": True}, {"reset": True}, {"garbage": True},
                                   {"latency_ms": 1500}])
def test_city_failing_while_fills_complete_then_every_record_arrives_once(station, fault):
    model = station.rig_sim.rig(1)
    model.flow_g_per_s = 30000
    codes = [CYL[k]["info_code"] for k in ("valid_partner", "valid")]
    ids = []

    def fill(code):
        station.remove("rig-01")
        station.place("rig-01")
        d = station.scan("rig-01", qr_url(code))
        assert d["permit"] == 1, d
        ids.append(station.wait_fill("rig-01", d["id"])["record_id"])
        return d

    for code in codes:  # judged while the city is up: both now in the cache
        fill(code)
    station.city.set_faults(**fault)
    for code in codes:  # from the cache (or the slow city) within the deadline
        assert fill(code)["source"] in ("cache", "city")
    station.city.clear_faults()
    station.db.execute("UPDATE outbox SET next_at = 0 WHERE state = 'pending'")
    station.db.commit()
    wait_for(lambda: not station.rows("SELECT 1 FROM outbox WHERE state != 'delivered'"), 20,
             "every record delivered")
    at_city = [x["record_id"] for x in station.city.fillings]
    assert sorted(at_city) == sorted(ids) and len(at_city) == len(set(at_city)) == 4


def test_scanner_unplugged_and_replugged_keeps_working(station):
    scanner = station.scanners["rig-01"]
    scanner.replug()  # the pty vanishes and comes back under the same path
    wait_for(lambda: "event=reader_recovered rig=rig-01" in station.log_tail(), 10,
             "the reader recovered")
    station.place("rig-01")
    assert station.scan("rig-01", VALID)["permit"] == 1
