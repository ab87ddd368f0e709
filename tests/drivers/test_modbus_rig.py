"""ModbusRig against a running RigSimulator over Modbus TCP on 127.0.0.1."""

import asyncio
import logging
import time

import pytest
from pymodbus.client import ModbusTcpClient
from support import wait_until_async as wait_until

from drivers.modbus_rig import ModbusRig, links_for
from simulators.rig import RigSimulator
from station.config import ModbusEndpoint, RigConfig
from station.errors import RigFault

TIMEOUT_MS = 300


@pytest.fixture
def sim():
    simulator = RigSimulator([1, 2], start_delay_s=None).start()
    yield simulator
    simulator.stop()


def rig_cfg(port: int, unit: int = 1) -> RigConfig:
    endpoint = ModbusEndpoint("tcp", host="127.0.0.1", port=port)
    return RigConfig(
        id=f"rig{unit}", medium="G13", modbus=endpoint, unit_id=unit, timeout_ms=TIMEOUT_MS
    )


def rigs_on(port: int, *units: int) -> list[ModbusRig]:
    cfgs = [rig_cfg(port, u) for u in units]
    links = links_for(cfgs)
    return [ModbusRig(c, links[c.modbus.key]) for c in cfgs]


def independent_read(port: int, unit: int, fc: int, address: int, count: int) -> list:
    """Read with a separate synchronous pymodbus client: what the wire really says."""
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    assert client.connect()
    try:
        read = {
            1: client.read_coils,
            2: client.read_discrete_inputs,
            3: client.read_holding_registers,
        }[fc]
        rr = read(address, count=count, device_id=unit)
        assert not rr.isError(), rr
        return list(rr.bits[:count]) if fc in (1, 2) else list(rr.registers)
    finally:
        client.close()




def test_permit_is_granted_and_read_back(sim):
    (rig,) = rigs_on(sim.port, 1)
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
    assert status.healthy and status.fault_text() == ""
    assert independent_read(sim.port, 1, 1, 0, 4) == [True, True, False, False]
    assert independent_read(sim.port, 1, 3, 1, 5) == [3000, 0, 14500, 0, 15000]
    assert independent_read(sim.port, 2, 1, 0, 1) == [False]  # the other rig: untouched
    assert sim.rig(1).snapshot()["permit_grants"] == 1


def test_grant_refused_during_estop_raises_rigfault(sim):
    (rig,) = rigs_on(sim.port, 1)
    sim.rig(1).place_cylinder(15000)
    sim.rig(1).set_estop(True)

    async def scenario():
        await rig.connect()
        await rig.configure(3000)
        with pytest.raises(RigFault, match="refused.*ESTOP active"):
            await rig.grant_permit(15000, 14500)
        status = await rig.read_status()
        await rig.close()
        return status

    status = asyncio.run(scenario())
    assert (status.permit, status.lamp_green, status.estop, status.healthy) == (
        False,
        False,
        True,
        False,
    )
    assert independent_read(sim.port, 1, 1, 0, 1) == [False]
    assert sim.rig(1).snapshot()["permit_grants"] == 0


def test_permit_lost_when_the_daemon_stops_heartbeating(sim):
    (rig,) = rigs_on(sim.port, 1)
    sim.rig(1).place_cylinder(15000)
    watchdog_s = 0.6

    async def scenario():
        await rig.connect()
        await rig.configure(int(watchdog_s * 1000))
        await rig.grant_permit(15000, 14500)
        sim.rig(1).press_start()
        for _ in range(8):  # 1.2 s, twice the watchdog period, heartbeating every 0.15 s
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
    assert shortest <= watchdog_s + 0.25  # ...and within it, plus a 20 Hz tick and our polling
    assert not status.valve_open and not status.fill_done
    snap = sim.rig(1).snapshot()
    assert (snap["watchdog_trips"], snap["watchdog_ms"]) == (1, 600)


def test_stopped_simulator_makes_read_status_fail_within_the_timeout(sim):
    (rig,) = rigs_on(sim.port, 1)

    async def scenario():
        await rig.connect()
        await rig.read_status()
        await asyncio.to_thread(sim.stop)
        started = time.monotonic()
        with pytest.raises(RigFault):
            await rig.read_status()
        first = time.monotonic() - started
        started = time.monotonic()
        with pytest.raises(RigFault, match="link down"):  # backing off: fails at once
            await rig.read_status()
        return first, time.monotonic() - started

    first, second = asyncio.run(scenario())
    assert first <= TIMEOUT_MS / 1000 + 0.2
    assert second < 0.05


def test_restarted_simulator_is_reconnected_and_logged_once(sim, caplog):
    caplog.set_level(logging.INFO, logger="station.rig")
    (rig,) = rigs_on(sim.port, 1)
    port = sim.port

    async def scenario():
        await rig.connect()
        await rig.configure(3000)
        await asyncio.to_thread(sim.stop)
        failures = 0
        for _ in range(6):  # several real and backed-off attempts while the rig is gone
            with pytest.raises(RigFault):
                await rig.read_status()
            failures += 1
            await asyncio.sleep(0.1)
        await asyncio.to_thread(sim.start)

        async def answers():
            try:
                await rig.read_status()
            except RigFault:
                return False
            return True

        await wait_until(answers, 6.0, "rig answers again after restart")
        await rig.heartbeat()
        await rig.grant_permit(15000, 14500)
        await rig.close()
        return failures

    sim.rig(1).place_cylinder(15000)
    assert asyncio.run(scenario()) == 6
    assert sim.port == port
    assert independent_read(port, 1, 1, 0, 1) == [True]
    messages = [r.getMessage() for r in caplog.records if r.name == "station.rig"]
    assert sum("event=modbus_link_lost" in m for m in messages) == 1, messages
    assert sum("event=modbus_link_recovered" in m for m in messages) == 1, messages


def test_two_rigs_on_one_endpoint_are_independent(sim):
    rig1, rig2 = rigs_on(sim.port, 1, 2)
    assert rig1._link is rig2._link
    sim.rig(2).place_cylinder(20000)

    async def scenario():
        await rig1.connect()
        await rig2.connect()
        await rig1.configure(3000)
        await rig2.configure(3000)
        await rig1.grant_permit(1000, 2000)
        for _ in range(20):  # concurrent polls share the one connection
            s1, s2 = await asyncio.gather(rig1.read_status(), rig2.read_status())
            assert (s1.permit, s1.cylinder_present, s1.gross_g) == (True, False, 0)
            assert (s2.permit, s2.cylinder_present, s2.gross_g) == (False, True, 20000)
        await rig1.withdraw_permit()
        await rig2.grant_permit(15000, 5000)
        await rig1.close()  # rig2 keeps the shared link
        s1, s2 = await asyncio.gather(rig1.read_status(), rig2.read_status())
        await rig2.close()
        return s1, s2

    s1, s2 = asyncio.run(scenario())
    assert (s1.permit, s1.lamp_green, s2.permit, s2.lamp_green) == (False, True, True, True)
    assert sim.rig(1).snapshot()["tare_g"] == 1000 and sim.rig(2).snapshot()["tare_g"] == 15000


def test_unknown_unit_id_is_a_rigfault(sim):
    (rig,) = rigs_on(sim.port, 9)

    async def scenario():
        await rig.connect()
        with pytest.raises(RigFault, match="exception response"):
            await rig.read_status()
        await rig.close()

    asyncio.run(scenario())


async def _misbehaving_server(on_request):
    """A TCP server on 127.0.0.1 that reads one request and then calls on_request(writer)."""

    async def handle(reader, writer):
        await reader.read(256)
        await on_request(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("fault", ["silent", "hang_up"])
def test_a_peer_that_never_answers_or_hangs_up_is_a_rigfault(fault):
    async def silent(writer):
        await asyncio.sleep(10)

    async def hang_up(writer):
        writer.close()

    async def scenario():
        server, port = await _misbehaving_server(silent if fault == "silent" else hang_up)
        (rig,) = rigs_on(port, 1)
        try:
            await rig.connect()
            started = time.monotonic()
            with pytest.raises(RigFault):
                await rig.read_status()
            return time.monotonic() - started
        finally:
            await rig.close()
            server.close()

    elapsed = asyncio.run(scenario())
    if fault == "silent":
        assert TIMEOUT_MS / 1000 - 0.05 <= elapsed <= TIMEOUT_MS / 1000 + 0.2
    else:  # the drop is noticed at once, not after the timeout
        assert elapsed < TIMEOUT_MS / 1000 / 2
