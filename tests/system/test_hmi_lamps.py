"""Lamps from the rig's state, not from history: over Modbus, against the rig simulator."""

import time

import pytest

from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
from station.today import station_today

CYL = demo_cylinders(station_today())
TARE_G = 15200


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    st = SimStation(tmp_path_factory.mktemp("hmi-lamps"), (RigSpec("rig-01", 1),),
                    watchdog_ms=900, rig_options={"start_delay_s": None}).start()
    st.badge("rig-01", OPERATORS[0][1])
    yield st
    st.stop()


def test_a_refusal_then_a_permit_50_ms_later_ends_green_with_the_permit(station):
    """The refusal's buzzer pulse (300 ms) ends by switching the buzzer alone: it never puts
    the red lamp back on over the permit that followed."""
    station.place("rig-01", TARE_G)
    since = station.last_id()
    station.scanners["rig-01"].send(qr_url(CYL["scrapped"]["info_code"]))
    wait_for(lambda: station.last_id() > since, 5, "the refusal recorded")
    t0 = time.monotonic()
    station.scanners["rig-01"].send(qr_url(CYL["valid"]["info_code"]))
    wait_for(lambda: station.last_id() > since + 1, 5, "the permit recorded")
    refused, permitted = station.rows("SELECT * FROM decisions WHERE id > ? ORDER BY id", since)
    assert (refused["permit"], refused["reason"], permitted["permit"]) == (0, "SCRAPPED", 1)
    want = {"permit": True, "lamp_green": True, "lamp_red": False, "buzzer": False}
    wait_for(lambda: station.coils("rig-01") == want, 2, "green, permit, buzzer off")
    # watched past the refusal's pulse (300 ms) and a few polls: it stays so
    while time.monotonic() - t0 < 0.8:
        assert station.coils("rig-01") == want
    station.remove("rig-01")
    wait_for(lambda: not any(station.coils("rig-01").values()), 3, "all out: cylinder gone")


def test_estop_lights_red_and_the_screen_says_so_while_it_lasts(station):
    model = station.rig_sim.rig(1)
    model.set_estop(True)
    try:
        wait_for(lambda: station.live("rig-01").get("estop"), 3, "the daemon to see ESTOP")
        wait_for(lambda: (c := station.coils("rig-01"))["lamp_red"] and not c["lamp_green"], 3,
                 "the red lamp during the emergency stop")
    finally:
        model.set_estop(False)
    wait_for(lambda: not any(station.coils("rig-01").values()), 3, "all out once released")
