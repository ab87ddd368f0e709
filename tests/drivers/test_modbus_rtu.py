"""ModbusRig over Modbus RTU against a RigSimulator on a null-modem pty pair (19200 8N1)."""

import asyncio
import os
import threading
import time

import pytest
from pymodbus.client import ModbusSerialClient
from support import wait_until_async as wait_until

from drivers.modbus_rig import ModbusRig, links_for
from simulators.rig import RigSimulator
from station.config import ModbusEndpoint, RigConfig
from station.errors import RigFault

BAUD = 19200
TIMEOUT_MS = 300


@pytest.fixture
def sim():
    simulator = RigSimulator([1, 2], rtu=True, baudrate=BAUD, start_delay_s=None).start()
    yield simulator
    simulator.stop()


def rigs_on(device: str, *units: int) -> list[ModbusRig]:
    endpoint = ModbusEndpoint("rtu", device=device, baudrate=BAUD)
    cfgs = [
        RigConfig(id=f"rig{u}", medium="G13", modbus=endpoint, unit_id=u, timeout_ms=TIMEOUT_MS)
        for u in units
    ]
    links = links_for(cfgs)
    return [ModbusRig(c, links[c.modbus.key]) for c in cfgs]


def independent_coils(device: str, unit: int) -> list[bool]:
    """FC01 0..3 with a separate synchronous RTU client: what the line really says."""
    client = ModbusSerialClient(device, baudrate=BAUD, timeout=1, retries=0)
    assert client.connect()
    try:
        rr = client.read_coils(0, count=4, device_id=unit)
        assert not rr.isError(), rr
        return list(rr.bits[:4])
    finally:
        client.close()




def test_the_simulator_serves_rtu_on_a_pty_and_names_it(sim):
    assert sim.client_port.startswith("/dev/pts/") and os.path.exists(sim.client_port)
    assert sim.url == f"rtu://{sim.client_port}"
    assert RigSimulator([1]).url.startswith("tcp://127.0.0.1:")
    with pytest.raises(RuntimeError, match="not an RTU simulator"):
        _ = RigSimulator([1]).client_port


def test_permit_is_granted_and_read_back(sim):
    (rig,) = rigs_on(sim.client_port, 1)
    sim.rig(1).place_cylinder(15000)

    async def scenario():
        await rig.connect()
        await rig.configure(3000)
        await rig.grant_permit(15000, 14500)
        status = await rig.read_status()
        await rig.close()
        return status

    status = asyncio.run(scenario())
    assert (status.permit, status.lamp_green, status.lamp_red) == (True, True, False)
    assert (status.cylinder_present, status.gross_g, status.stable) == (True, 15000, True)
    snap = sim.rig(1).snapshot()
    assert (snap["fill_permit"], snap["tare_g"], snap["target_net_g"]) == (True, 15000, 14500)
    assert independent_coils(sim.client_port, 1) == [True, True, False, False]


def test_two_unit_ids_on_one_line_are_independent(sim):
    rig1, rig2 = rigs_on(sim.client_port, 1, 2)
    assert rig1._link is rig2._link
    sim.rig(2).place_cylinder(20000)

    async def scenario():
        await rig1.connect()
        await rig2.connect()
        await rig1.configure(3000)
        await rig2.configure(3000)
        await rig1.grant_permit(1000, 2000)
        for _ in range(5):  # concurrent polls take turns on the one line
            s1, s2 = await asyncio.gather(rig1.read_status(), rig2.read_status())
            assert (s1.permit, s1.cylinder_present, s1.gross_g) == (True, False, 0)
            assert (s2.permit, s2.cylinder_present, s2.gross_g) == (False, True, 20000)
        await rig1.withdraw_permit()
        await rig2.grant_permit(15000, 5000)
        s1, s2 = await asyncio.gather(rig1.read_status(), rig2.read_status())
        await rig1.close()
        await rig2.close()
        return s1, s2

    s1, s2 = asyncio.run(scenario())
    assert (s1.permit, s2.permit, s2.lamp_green) == (False, True, True)
    assert sim.rig(1).snapshot()["tare_g"] == 1000 and sim.rig(2).snapshot()["tare_g"] == 15000


def test_an_unknown_unit_id_is_silent_so_a_rigfault_within_the_timeout(sim):
    known, unknown = rigs_on(sim.client_port, 1, 9)

    async def scenario():
        await unknown.connect()
        await known.connect()
        started = time.monotonic()
        with pytest.raises(RigFault, match="no answer"):
            await unknown.read_status()
        elapsed = time.monotonic() - started
        status = await known.read_status()  # one silent unit says nothing about the line
        await unknown.close()
        await known.close()
        return elapsed, status

    elapsed, status = asyncio.run(scenario())
    assert TIMEOUT_MS / 1000 - 0.05 <= elapsed <= TIMEOUT_MS / 1000 + 0.2
    assert status.permit is False and status.healthy


def test_heartbeat_stop_loses_the_permit_within_the_watchdog(sim):
    (rig,) = rigs_on(sim.client_port, 1)
    sim.rig(1).place_cylinder(15000)
    watchdog_s = 0.6

    async def scenario():
        await rig.connect()
        await rig.configure(int(watchdog_s * 1000))
        await rig.grant_permit(15000, 14500)
        sim.rig(1).press_start()
        for _ in range(4):  # heartbeating keeps it for longer than one period
            await rig.heartbeat()
            assert (await rig.read_status()).permit, "permit lost while heartbeating"
            await asyncio.sleep(0.15)
        before_beat = time.monotonic()
        await rig.heartbeat()  # the last one: the controller stamps it between these two reads
        after_beat = time.monotonic()
        assert (await rig.read_status()).valve_open

        async def permit_gone():
            return not (await rig.read_status()).permit

        await wait_until(permit_gone, 3 * watchdog_s, "permit withdrawn by the watchdog")
        lost_at = time.monotonic()
        status = await rig.read_status()
        await rig.close()
        return lost_at - before_beat, lost_at - after_beat, status

    longest, shortest, status = asyncio.run(scenario())
    assert longest >= watchdog_s  # not before the period...
    assert shortest <= watchdog_s + 0.3  # ...and within it, plus a tick and a 3-read poll at 19200
    assert not status.valve_open and not status.fill_done
    snap = sim.rig(1).snapshot()
    assert (snap["watchdog_trips"], snap["watchdog_ms"]) == (1, 600)


def test_a_restarted_simulator_answers_on_the_same_pty(sim):
    (rig,) = rigs_on(sim.client_port, 1)
    port = sim.client_port

    async def scenario():
        await rig.connect()
        await rig.configure(3000)
        await asyncio.to_thread(sim.restart)
        status = await rig.read_status()
        await rig.close()
        return status

    assert asyncio.run(scenario()).permit is False
    assert sim.client_port == port


def test_stop_closes_the_pty_pair_and_the_daemon_sees_a_rigfault():
    sim = RigSimulator([1], rtu=True, baudrate=BAUD, start_delay_s=None)
    fds_before = set(os.listdir("/proc/self/fd"))
    sim.start()
    port = sim.client_port
    (rig,) = rigs_on(port, 1)

    async def scenario():
        await rig.connect()
        await rig.read_status()
        await asyncio.to_thread(sim.stop)
        started = time.monotonic()
        with pytest.raises(RigFault):
            await rig.read_status()
        elapsed = time.monotonic() - started
        await rig.close()
        return elapsed

    assert asyncio.run(scenario()) <= TIMEOUT_MS / 1000 + 0.2
    assert not os.path.exists(port)
    assert set(os.listdir("/proc/self/fd")) <= fds_before
    assert not [t for t in threading.enumerate() if t.name in ("null-modem", "rig-simulator")]
