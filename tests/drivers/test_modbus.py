"""ModbusRig and its link against a running RigSimulator, over Modbus TCP on 127.0.0.1 and over
Modbus RTU on a null-modem pty pair modelling an RS-485 line (19200 baud, 5 ms turnaround)."""

import asyncio
import logging
import os
import threading
import time

import pytest
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from support import wait_until_async as wait_until

from drivers.modbus_rig import ModbusRig, links_for
from simulators.rig import RigSimulator
from station.config import ModbusEndpoint, RigConfig
from station.errors import RigFault

BAUD = 19200
TIMEOUT_MS = 300


@pytest.fixture
def sim(transport):
    simulator = RigSimulator([1, 2, 3, 4], rtu=transport == "rtu", baudrate=BAUD,
                             start_delay_s=None).start()
    yield simulator
    simulator.stop()


def endpoint(sim: RigSimulator) -> ModbusEndpoint:
    if sim.rtu:
        return ModbusEndpoint("rtu", device=sim.client_port, baudrate=BAUD)
    return ModbusEndpoint("tcp", host="127.0.0.1", port=sim.port)


def rigs_on(sim: RigSimulator, *units: int, **kw) -> list[ModbusRig]:
    cfgs = [RigConfig(id=f"rig{u}", medium="G13", modbus=endpoint(sim), unit_id=u,
                      timeout_ms=TIMEOUT_MS) for u in units]
    links = links_for(cfgs)
    return [ModbusRig(c, links[c.modbus.key], **kw) for c in cfgs]


def independent_read(sim: RigSimulator, unit: int, fc: int, address: int, count: int) -> list:
    """Read with a separate synchronous pymodbus client: what the wire really says."""
    if sim.rtu:
        client = ModbusSerialClient(sim.client_port, baudrate=BAUD, timeout=1, retries=0)
    else:
        client = ModbusTcpClient("127.0.0.1", port=sim.port, timeout=1, retries=0)
    assert client.connect()
    try:
        read = {1: client.read_coils, 2: client.read_discrete_inputs,
                3: client.read_holding_registers}[fc]
        rr = read(address, count=count, device_id=unit)
        assert not rr.isError(), rr
        return list(rr.bits[:count]) if fc in (1, 2) else list(rr.registers)
    finally:
        client.close()


def test_a_grant_is_four_transactions_read_back(sim):
    (rig,) = rigs_on(sim, 1)
    sim.rig(1).place_cylinder(15000)

    async def scenario():
        await rig.connect()
        await rig.configure(3000)
        configured = sim.wire.counts(1)
        before = sim.wire.total(1)
        await rig.grant_permit(15000, 14500)
        granted = sim.wire.since(0, 1)[before:]
        status = await rig.read_status()
        await rig.close()
        return configured, granted, status

    configured, granted, status = asyncio.run(scenario())
    assert configured == {6: 2, 3: 2, 15: 1, 1: 1}  # WATCHDOG_MS, coils off, one heartbeat
    assert [x.fc for x in granted] == [16, 3, 15, 1]
    assert (status.permit, status.lamp_green, status.lamp_red) == (True, True, False)
    assert (status.cylinder_present, status.gross_g, status.stable) == (True, 15000, True)
    assert independent_read(sim, 1, 1, 0, 4) == [True, True, False, False]
    assert independent_read(sim, 1, 3, 1, 5) == [3000, 0, 14500, 0, 15000]
    assert independent_read(sim, 2, 1, 0, 1) == [False]  # the other rig: untouched
    assert sim.rig(1).snapshot()["permit_grants"] == 1


def test_a_refused_grant_is_a_rigfault_and_puts_the_lamps_back(sim):
    (rig,) = rigs_on(sim, 1)
    sim.rig(1).place_cylinder(15000)

    async def scenario():
        await rig.connect()
        await rig.configure(3000)
        await rig.set_lamps(False, True)
        sim.rig(1).set_estop(True)
        with pytest.raises(RigFault, match="refused.*ESTOP active"):
            await rig.grant_permit(15000, 14500)
        status = await rig.read_status()
        await rig.close()
        return status

    status = asyncio.run(scenario())
    assert (status.permit, status.estop, status.healthy) == (False, True, False)
    assert (status.lamp_green, status.lamp_red) == (False, True)  # as before the grant
    assert independent_read(sim, 1, 1, 0, 3) == [False, False, True]
    assert sim.rig(1).snapshot()["permit_grants"] == 0


def test_lamps_are_one_write_and_one_read_back(sim):
    (rig,) = rigs_on(sim, 1)

    async def scenario():
        await rig.connect()
        await rig.configure(3000)
        before = sim.wire.total(1)
        await rig.set_lamps(False, True, buzzer=True)
        lamps = [x.fc for x in sim.wire.since(0, 1)[before:]]
        await rig.close()
        return lamps

    assert asyncio.run(scenario()) == [15, 1]
    assert independent_read(sim, 1, 1, 0, 4) == [False, False, True, True]


def test_a_fresh_sample_is_reused_instead_of_read_again(sim):
    (rig,) = rigs_on(sim, 1)

    async def scenario():
        await rig.connect()
        first = await rig.read_status()
        before = sim.wire.total(1)
        again = await rig.read_status(max_age_s=60)
        reused = sim.wire.total(1) - before
        sim.rig(1).place_cylinder(12000)
        fresh = await rig.read_status(max_age_s=0)
        await rig.close()
        return first, again, reused, sim.wire.total(1) - before, fresh

    first, again, reused, read, fresh = asyncio.run(scenario())
    assert again is first and reused == 0
    assert read == 3 and fresh.cylinder_present and fresh.gross_g == 12000


@pytest.mark.parametrize("transport", ["rtu"])
def test_the_link_heartbeats_every_fed_unit_within_a_third_of_the_watchdog_behind_polls(sim):
    """An RS-485 line flooded with polls from four rigs and a grant in the middle: every
    heartbeat reaches its controller within WATCHDOG_MS / 3 of the previous one (the
    simulator's own timestamps), the grant waits for no queued poll, and no watchdog trips.
    (RTU only: over TCP the flood loads the CPU, not a line, and measures the machine.)"""
    watchdog_ms = 1500
    rigs = rigs_on(sim, 1, 2, 3, 4)
    sim.rig(1).place_cylinder(15000)

    async def flood(rig, stop):
        while not stop.is_set():
            rig.keep_alive()
            await asyncio.gather(*(rig.read_status() for _ in range(5)))

    async def scenario():
        for rig in rigs:
            await rig.connect()
            await rig.configure(watchdog_ms)
        t0, stop = time.monotonic(), asyncio.Event()
        floods = [asyncio.ensure_future(flood(r, stop)) for r in rigs]
        await wait_until(_polled(sim, 20), 5, "the polls under way")
        started = time.monotonic()
        await rigs[0].grant_permit(15000, 14500)
        grant_s = time.monotonic() - started
        await wait_until(_after(t0 + 2.5), 5, "2.5 s of flooding")
        stop.set()
        await asyncio.gather(*floods)
        end = time.monotonic()
        link = rigs[0]._link.stats()
        for rig in rigs:
            await rig.close()
        return t0, end, started, grant_s, link

    t0, end, started, grant_s, link = asyncio.run(scenario())
    for unit in (1, 2, 3, 4):
        beats = sim.wire.writes_to(unit, sim.registers.heartbeat, since=t0)
        gaps = [round(b - a, 3) for a, b in zip(beats, [*beats[1:], end], strict=True)]
        assert len(beats) >= 4 and max(gaps) <= watchdog_ms / 3000, (unit, gaps)
        assert sim.rig(unit).snapshot()["watchdog_trips"] == 0
    polls = sim.wire.since(t0)
    assert sum(x.fc == 4 for x in polls) >= 20 and link["busy"] > 0.8  # a busy line
    grant = [x for x in sim.wire.since(started) if x.unit == 1]
    first, last = grant[[x.fc for x in grant].index(16)].at, grant[[x.fc for x in grant].index(15)].at
    between = [x for x in sim.wire.since(first) if x.at <= last and x.fc in (2, 4)]
    assert len(between) <= 3, between  # at most one poll already on the wire per step
    assert link["units"]["rig1"]["late"] == 0 and link["polls"] > link["heartbeats"]
    assert grant_s < 0.4  # 4 transactions of ~20 ms and a heartbeat or two, not the polls


def _polled(sim: RigSimulator, n: int):
    base = sim.wire.counts().get(4, 0)

    async def polled() -> bool:
        return sim.wire.counts().get(4, 0) >= base + n
    return polled


def _after(t: float):
    async def passed() -> bool:
        return time.monotonic() >= t
    return passed


def test_an_unfed_unit_stops_being_heartbeated_and_its_controller_drops_the_permit(sim, caplog):
    caplog.set_level(logging.INFO, logger="station.rig")
    watchdog_s, feed_s = 0.6, 0.3
    (rig,) = rigs_on(sim, 1, feed_s=feed_s)
    sim.rig(1).place_cylinder(15000)

    async def scenario():
        await rig.connect()
        await rig.configure(int(watchdog_s * 1000))
        await rig.grant_permit(15000, 14500)
        sim.rig(1).press_start()
        until = time.monotonic() + 2 * watchdog_s
        while time.monotonic() < until:  # fed, never heartbeat() by hand: the link beats
            rig.keep_alive()
            assert (await rig.poll()).permit, "permit lost while fed"
        assert (await rig.read_status()).valve_open
        fed_last = time.monotonic()  # the last answer the owner got: its last feed

        async def permit_gone():  # asked of the simulator: a call on the rig would feed it
            return not sim.rig(1).snapshot()["fill_permit"]

        await wait_until(permit_gone, feed_s + 3 * watchdog_s, "permit withdrawn by the watchdog")
        lost_at = time.monotonic()
        status = await rig.read_status()
        await rig.close()
        return fed_last, lost_at - fed_last, status

    fed_last, lost_after, status = asyncio.run(scenario())
    assert watchdog_s <= lost_after <= feed_s + watchdog_s + 0.35
    assert not status.valve_open and not status.fill_done
    beats = [t for t in sim.wire.writes_to(1, sim.registers.heartbeat) if t <= fed_last + lost_after]
    assert len(beats) >= 2 * watchdog_s / (watchdog_s / 3) - 1  # the link beat while fed
    assert max(beats) <= fed_last + feed_s + 0.05  # ...and not after the feed ran out
    snap = sim.rig(1).snapshot()
    assert (snap["watchdog_trips"], snap["watchdog_ms"]) == (1, 600)
    unfed = [r for r in caplog.records if "event=heartbeat_unfed" in r.getMessage()]
    assert len(unfed) == 1


def test_a_controller_reset_seen_by_the_links_heartbeat_fails_the_next_call(sim):
    (rig,) = rigs_on(sim, 1)

    async def scenario():
        await rig.connect()
        await rig.configure(900)
        sim.rig(1).reboot()  # WATCHDOG_MS back to its default: the next heartbeat sees it

        seen: list[str] = []

        async def failed():
            rig.keep_alive()
            try:
                await rig.read_status()
            except RigFault as err:
                seen.append(str(err))
            return bool(seen)

        await wait_until(failed, 2, "the reset reported")
        why = seen[0]
        await rig.configure(900)  # the owner configures again: all well
        status = await rig.read_status()
        await rig.close()
        return why, status

    why, status = asyncio.run(scenario())
    assert "WATCHDOG_MS reads 3000, configured 900" in why
    assert status.permit is False and sim.rig(1).snapshot()["watchdog_ms"] == 900


def test_two_rigs_on_one_endpoint_are_independent(sim):
    rig1, rig2 = rigs_on(sim, 1, 2)
    assert rig1._link is rig2._link
    sim.rig(2).place_cylinder(20000)

    async def scenario():
        await rig1.connect()
        await rig2.connect()
        await rig1.configure(3000)
        await rig2.configure(3000)
        await rig1.grant_permit(1000, 2000)
        for _ in range(5):  # concurrent polls share the one connection
            s1, s2 = await asyncio.gather(rig1.read_status(), rig2.read_status())
            assert (s1.permit, s1.cylinder_present, s1.gross_g) == (True, False, 0)
            assert (s2.permit, s2.cylinder_present, s2.gross_g) == (False, True, 20000)
        await rig1.withdraw_permit()
        await rig2.grant_permit(15000, 5000)
        await rig1.close()  # rig2 keeps the shared link
        s2 = await rig2.read_status()
        await rig2.close()
        return s2

    s2 = asyncio.run(scenario())
    assert (s2.permit, s2.lamp_green) == (True, True)
    assert independent_read(sim, 1, 1, 0, 2) == [False, True]
    assert sim.rig(1).snapshot()["tare_g"] == 1000 and sim.rig(2).snapshot()["tare_g"] == 15000


def test_an_unknown_unit_id_is_a_rigfault_and_the_others_still_answer(sim):
    known, unknown = rigs_on(sim, 1, 9)

    async def scenario():
        await unknown.connect()
        await known.connect()
        started = time.monotonic()
        with pytest.raises(RigFault, match="no answer" if sim.rtu else "exception response"):
            await unknown.read_status()
        elapsed = time.monotonic() - started
        status = await known.read_status()  # one silent unit says nothing about the line
        await unknown.close()
        await known.close()
        return elapsed, status

    elapsed, status = asyncio.run(scenario())
    if sim.rtu:  # RS-485: nobody answers, so the timeout
        assert TIMEOUT_MS / 1000 - 0.05 <= elapsed <= TIMEOUT_MS / 1000 + 0.2
    assert status.permit is False and status.healthy


def fault_after_stop(sim) -> float:
    """A rig read once, then its simulator stopped: how long (s) the next read took to end in
    RigFault (pytest.raises fails the test when it does not)."""
    (rig,) = rigs_on(sim, 1)

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

    return asyncio.run(scenario())


def test_a_stopped_simulator_is_a_rigfault_within_the_timeout(sim):
    assert fault_after_stop(sim) <= TIMEOUT_MS / 1000 + 0.2


def test_a_restarted_simulator_answers_again(sim):
    (rig,) = rigs_on(sim, 1)
    sim.rig(1).place_cylinder(15000)

    async def scenario():
        await rig.connect()
        await rig.configure(3000)
        await asyncio.to_thread(sim.restart)

        async def answers():
            try:
                await rig.read_status()
            except RigFault:
                return False
            return True

        await wait_until(answers, 6.0, "rig answers again after restart")
        await rig.grant_permit(15000, 14500)
        await rig.close()

    asyncio.run(scenario())
    assert independent_read(sim, 1, 1, 0, 1) == [True]


# -- one transport only --------------------------------------------------------------------------
@pytest.fixture
def tcp_sim():
    simulator = RigSimulator([1, 2], start_delay_s=None).start()
    yield simulator
    simulator.stop()


def test_an_idle_rig_costs_at_most_six_transactions_a_second_and_a_busy_one_full_rate(tcp_sim):
    """poll(): an empty scale every idle_poll_s (3 reads) and a heartbeat every WATCHDOG_MS / 3
    (2); a placed cylinder brings the full poll rate back at the next poll."""
    (rig,) = rigs_on(tcp_sim, 1, idle_poll_s=1.0)

    async def run_for(seconds: float) -> float:
        t0, before = time.monotonic(), tcp_sim.wire.total(1)
        while time.monotonic() - t0 < seconds:
            await rig.poll()
        return (tcp_sim.wire.total(1) - before) / (time.monotonic() - t0)

    async def scenario():
        await rig.connect()
        await rig.configure(3000)
        await rig.poll()  # the first sample
        idle = await run_for(3.0)
        tcp_sim.rig(1).place_cylinder(15000)
        await rig.poll()  # the next idle poll sees the cylinder: full rate from then on
        assert rig.poll_interval_s() == rig.poll_s
        busy = await run_for(1.0)
        woken = asyncio.get_running_loop().call_later(0.1, rig.wake)
        tcp_sim.rig(1).remove_cylinder()
        await rig.close()
        woken.cancel()
        return idle, busy

    idle, busy = asyncio.run(scenario())
    assert 3.5 <= idle <= 6.0, idle
    assert busy >= 12.0, busy  # 3 reads every 0.2 s, and heartbeats


def test_wake_ends_an_idle_wait_at_once(tcp_sim):
    (rig,) = rigs_on(tcp_sim, 1, idle_poll_s=5.0)

    async def scenario():
        await rig.connect()
        await rig.configure(3000)
        await rig.poll()  # the first poll: no sample yet
        tcp_sim.rig(1).place_cylinder(15000)
        asyncio.get_running_loop().call_later(0.05, rig.wake)
        started = time.monotonic()
        status = await rig.poll()
        took = time.monotonic() - started
        await rig.close()
        return status, took

    status, took = asyncio.run(scenario())
    assert status.cylinder_present and took < 1.0


def test_a_restarted_tcp_simulator_is_reconnected_and_logged_once(tcp_sim, caplog):
    caplog.set_level(logging.INFO, logger="station.rig")
    (rig,) = rigs_on(tcp_sim, 1)
    port = tcp_sim.port

    async def scenario():
        await rig.connect()
        await rig.configure(3000)
        await asyncio.to_thread(tcp_sim.stop)
        with pytest.raises(RigFault):
            await rig.read_status()
        started = time.monotonic()
        with pytest.raises(RigFault, match="link down"):  # backing off: fails at once
            await rig.read_status()
        at_once = time.monotonic() - started
        failures = 2
        for _ in range(4):  # several real and backed-off attempts while the rig is gone
            with pytest.raises(RigFault):
                await rig.read_status()
            failures += 1
            await asyncio.sleep(0.1)
        await asyncio.to_thread(tcp_sim.start)

        async def answers():
            try:
                await rig.read_status()
            except RigFault:
                return False
            return True

        await wait_until(answers, 6.0, "rig answers again after restart")
        await rig.heartbeat()
        await rig.close()
        return failures, at_once

    failures, at_once = asyncio.run(scenario())
    assert failures == 6 and at_once < 0.05
    assert tcp_sim.port == port
    messages = [r.getMessage() for r in caplog.records if r.name == "station.rig"]
    assert sum("event=modbus_link_lost" in m for m in messages) == 1, messages
    assert sum("event=modbus_link_recovered" in m for m in messages) == 1, messages


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
        cfg = RigConfig(id="rig1", medium="G13", unit_id=1, timeout_ms=TIMEOUT_MS,
                        modbus=ModbusEndpoint("tcp", host="127.0.0.1", port=port))
        rig = ModbusRig(cfg, links_for([cfg])[cfg.modbus.key])
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


def test_the_rtu_simulator_serves_on_a_pty_and_names_it():
    sim = RigSimulator([1], rtu=True, baudrate=BAUD, start_delay_s=None)
    assert RigSimulator([1]).url.startswith("tcp://127.0.0.1:")
    with pytest.raises(RuntimeError, match="not an RTU simulator"):
        _ = RigSimulator([1]).client_port
    fds_before = set(os.listdir("/proc/self/fd"))
    sim.start()
    port = sim.client_port
    assert port.startswith("/dev/pts/") and os.path.exists(port)
    assert sim.url == f"rtu://{port}"
    assert fault_after_stop(sim) <= TIMEOUT_MS / 1000 + 0.2
    assert not os.path.exists(port)
    assert set(os.listdir("/proc/self/fd")) <= fds_before
    assert not [t for t in threading.enumerate() if t.name in ("null-modem", "rig-simulator")]
