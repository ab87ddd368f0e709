"""An RFID reader at the scale: repeated UIDs are one reading, badges log in, UIDs are looked up."""


import pytest

from simulators.dataset import demo_cylinders
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
from station.today import station_today

CYL = demo_cylinders(station_today())


@pytest.fixture
def station(tmp_path):
    st = SimStation(tmp_path, (RigSpec("rig-01", 1, rfid=True),),
                    rig_options={"start_delay_s": None}).start()
    yield st
    st.stop()


def test_rfid_repeats_are_one_reading_and_badges_log_in(station):
    rfid = station.rfids["rig-01"]
    rfid.enter(OPERATORS[0][1].lower())  # a staff card held in the field: one log-in
    wait_for(lambda: rfid.sent >= 10, 5, "the badge repeated")
    rfid.leave()
    events = station.rows("SELECT * FROM operator_events")
    assert [(e["operator"], e["event"]) for e in events] == [("张三", "login")]
    station.place("rig-01")
    since = station.last_id()
    sent = rfid.sent
    rfid.enter(CYL["rfid"]["rfid_uid"])
    d = station.wait_decision("rig-01", since)
    wait_for(lambda: rfid.sent >= sent + 16, 5, "two seconds of repeats")
    assert d["permit"] == 1 and d["kind"] == "rfid_uid" and d["cylinder_id"] == "CYL-000016"
    assert station.last_id() == d["id"]  # the repeats made no second decision
    wait_for(lambda: station.coils("rig-01")["permit"], 3, "the permit")
    rfid.leave()


def test_unknown_hex_shape_is_unreadable(station):
    station.badge("rig-01", OPERATORS[0][1])
    since = station.last_id()
    station.rfids["rig-01"].enter("E2801160XYZ")
    d = station.wait_decision("rig-01", since)
    station.rfids["rig-01"].leave()
    assert d["reason"] == "TAG_UNREADABLE"
