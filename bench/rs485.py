"""1..16 rigs on one RS-485 line (Modbus RTU) at 9600 and 19200 baud: what the line costs each rig.

Usage: .venv/bin/python bench/rs485.py [--rigs 1,2,4,8,16] [--baud 9600,19200] [--seconds 12]
       .venv/bin/python bench/rs485.py --daemon [--rigs 4,8] [--baud 19200] [--seconds 40]

`--daemon` drives the real daemon instead (`station run` over the RTU simulator with the line
model, the city simulator, a scanner pty per rig, SQLite): each rig's operator places an empty
cylinder, scans a fresh one, the controller fills it (start 0.5 s after the permit, 4 kg/s), it
is taken off; prints the heartbeat gap max any controller saw (from the simulator's wire log),
scan-to-permit median/p99 (scanner pty → the controller's grant, on the simulator's clock),
watchdog trips, and the daemon's CPU.

Drives the driver layer directly: ModbusRig over one scheduled ModbusLink per line, and a small
stand-in for the rig loop per rig (poll() every iteration, which feeds the heartbeat; a scan
reads a status no older than the rig's current poll period, then grant_permit()). The daemon's decision
(SQLite, the city) is not in these figures. The rig simulator runs in a child process (no
shared GIL) on a pty pair modelling the line: 11-bit characters, 3.5-character silences and a
controller turnaround (default 5 ms). Each run: an idle phase (every scale empty), then cycles
at every rig: place a cylinder, scan, grant, hold the permit, withdraw, lamps off, remove.
Prints per line: transactions/s per rig (idle and busy, from the simulator's counters), the
longest heartbeat gap any controller saw, scan-to-permit median and p99, transactions per
grant, watchdog trips, and whether the line was judged overloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import sqlite3
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.modbus_rig import ModbusRig, links_for  # noqa: E402
from station.config import ModbusEndpoint, RigConfig  # noqa: E402
from station.errors import RigFault  # noqa: E402

WATCHDOG_MS, POLL_MS, IDLE_POLL_MS = 3000, 200, 1000
FILL_S = 8.0  # a permit is held this long on average (a real fill: a minute or more)


def serve(conn, units: list[int], baud: int, turnaround_ms: float) -> None:
    """The child: a RigSimulator answering commands from the parent over `conn`."""
    from simulators.rig import RigSimulator
    from simulators.wirelog import max_gap

    sim = RigSimulator(units, rtu=True, baudrate=baud, turnaround_ms=turnaround_ms,
                       start_delay_s=None).start()
    conn.send(sim.client_port)
    while True:
        cmd, *args = conn.recv()
        if cmd == "place":
            sim.rig(args[0]).place_cylinder(args[1])
        elif cmd == "remove":
            sim.rig(args[0]).remove_cylinder()
        elif cmd == "counts":  # transactions per unit since args[0] (monotonic, this host)
            since = args[0]
            conn.send({u: len(sim.wire.since(since, u)) for u in units})
            continue
        elif cmd == "report":
            since, until = args
            gaps = {u: max_gap([t for t in sim.wire.writes_to(u, sim.registers.heartbeat)
                                if since <= t <= until], until) for u in units}
            trips = sum(sim.rig(u).snapshot()["watchdog_trips"] for u in units)
            conn.send((gaps, trips))
            continue
        elif cmd == "stop":
            sim.stop()
            conn.send("stopped")
            return
        conn.send("ok")


class Sim:
    """The parent's handle on the child simulator (one request at a time)."""

    def __init__(self, units: list[int], baud: int, turnaround_ms: float) -> None:
        self.conn, child = mp.Pipe()
        self.proc = mp.Process(target=serve, args=(child, units, baud, turnaround_ms),
                               daemon=True)
        self.proc.start()
        self.port = self.conn.recv()
        self.lock = asyncio.Lock()

    async def ask(self, *msg):
        async with self.lock:
            return await asyncio.to_thread(self._ask, msg)

    def _ask(self, msg):
        self.conn.send(msg)
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send(("stop",))
        self.conn.recv()
        self.proc.join(5)


async def loop_stand_in(rig: ModbusRig, stop: asyncio.Event, pending: dict,
                        faults: list[str]) -> None:
    """What the rig loop does every iteration: feed, wait for the poll's turn, look; on a
    RigFault configure again (the real loop reconnects)."""
    while not stop.is_set():
        try:
            await rig.poll(pending=pending[rig.unit])
        except RigFault as err:
            faults.append(str(err))
            try:
                await rig.configure(WATCHDOG_MS)
            except RigFault as again:
                faults.append(str(again))


async def cycles(rig: ModbusRig, sim: Sim, stop: asyncio.Event, pending: dict,
                 grants: list[float], tx_per_grant: list[int]) -> None:
    rnd = random.Random(rig.unit)
    while not stop.is_set():
        await asyncio.sleep(rnd.uniform(0.5, 3.0))  # the operator's pace, not a sync
        placed = time.monotonic()
        await sim.ask("place", rig.unit, 15000)
        while not stop.is_set() and not (rig.sample_at > placed and rig.sample.cylinder_present):
            await asyncio.sleep(0.05)  # the loop's poll sees it in its own time
        if stop.is_set():
            return
        await asyncio.sleep(rnd.uniform(0.1, 0.8))  # the scan comes some time after
        scanned = time.monotonic()
        pending[rig.unit] = True
        rig.wake()
        # a sample as young as the rig's current poll period is reused (stretched on a busy line)
        status = await rig.read_status(max_age_s=rig.poll_interval_s(pending=True), urgent=True)
        if not status.cylinder_present:
            continue
        before = rig.transactions
        await rig.grant_permit(15000, 14500)
        grants.append(time.monotonic() - scanned)
        tx_per_grant.append(rig.transactions - before)  # a heartbeat may slip in: at most +2
        pending[rig.unit] = False
        await asyncio.sleep(rnd.uniform(0.5, 1.5) * FILL_S)  # the permit held (the fill)
        await rig.withdraw_permit()
        await rig.set_lamps(False, False)
        await sim.ask("remove", rig.unit)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


async def run(n: int, baud: int, seconds: float, idle_s: float, turnaround_ms: float,
              verbose: bool = False) -> dict:
    units = list(range(1, n + 1))
    sim = Sim(units, baud, turnaround_ms)
    try:
        endpoint = ModbusEndpoint("rtu", device=sim.port, baudrate=baud)
        cfgs = [RigConfig(id=f"rig{u}", medium="G13", modbus=endpoint, unit_id=u,
                          watchdog_ms=WATCHDOG_MS, poll_ms=POLL_MS, idle_poll_ms=IDLE_POLL_MS,
                          timeout_ms=1000) for u in units]
        link = links_for(cfgs)[endpoint.key]
        rigs = [ModbusRig(c, link) for c in cfgs]
        for rig in rigs:
            await rig.connect()
            await rig.configure(WATCHDOG_MS)
        stop, pending = asyncio.Event(), dict.fromkeys(units, False)
        faults: list[str] = []
        loops = [asyncio.ensure_future(loop_stand_in(r, stop, pending, faults)) for r in rigs]
        t0 = time.monotonic()
        await asyncio.sleep(idle_s)  # the idle phase: nothing to wait for but time
        idle = await sim.ask("counts", t0)
        t1 = time.monotonic()
        grants: list[float] = []
        tx_per_grant: list[int] = []
        work = [asyncio.ensure_future(cycles(r, sim, stop, pending, grants, tx_per_grant))
                for r in rigs]
        await asyncio.sleep(seconds)
        t2 = time.monotonic()  # measured up to here, while every loop still feeds its rig
        busy = await sim.ask("counts", t1)
        gaps, trips = await sim.ask("report", t0, t2)
        stats = link.stats()
        for task in work:
            task.cancel()
        await asyncio.gather(*work, return_exceptions=True)
        stop.set()
        await asyncio.gather(*loops)
        if verbose:
            print(stats, faults[:5], flush=True)
        for rig in rigs:
            await rig.close()
    finally:
        sim.close()
    return {
        "rigs": n, "baud": baud,
        "idle_tx_s": max(idle.values()) / (t1 - t0),
        "busy_tx_s": statistics.mean(busy.values()) / (t2 - t1),
        "gap_max_s": max(gaps.values()), "trips": trips,
        "grant_med_ms": statistics.median(grants) * 1000 if grants else float("nan"),
        "grant_p99_ms": pct(grants, 0.99) * 1000, "grants": len(grants),
        "tx_per_grant": max(tx_per_grant, default=0), "overloads": stats["overloads"],
        "late": sum(u["late"] for u in stats["units"].values()), "faults": len(faults),
    }


def daemon_run(n: int, baud: int, seconds: float, turnaround_ms: float) -> dict:
    """The real daemon over one RS-485 line of `n` rigs (see the module's docstring)."""
    import collections
    import tempfile
    import threading

    from simulators.dataset import cylinder, demo_dataset, qr_url
    from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
    from simulators.wirelog import max_gap
    from station.today import station_today

    class RtuStation(SimStation):
        def config_text(self) -> str:
            text = super().config_text()
            sim = self.rig_sim
            return text.replace(f'modbus = "tcp://127.0.0.1:{sim.port}"',
                                f'modbus = "rtu://{sim.client_port}"\nbaudrate = {baud}')

    today = station_today()
    dataset = demo_dataset(today)
    fresh = [cylinder(200000 + i, today) for i in range(n * int(seconds) + 10)]
    dataset["cylinders"] += fresh
    codes = collections.deque(c["info_code"] for c in fresh)
    specs = tuple(RigSpec(f"rig-{u:02d}", unit_id=u) for u in range(1, n + 1))
    work = Path(tempfile.mkdtemp(prefix=f"bench-rs485-{n}-{baud}-"))
    st = RtuStation(work, specs, dataset=dataset, watchdog_ms=WATCHDOG_MS, poll_ms=POLL_MS,
                    rig_options={"rtu": True, "baudrate": baud, "turnaround_ms": turnaround_ms,
                                 "start_delay_s": 0.5, "flow_g_per_s": 4000})
    st.start()
    lat: list[float] = []
    problems: list[str] = []
    try:
        for spec in specs:
            st.badge(spec.id, OPERATORS[0][1])
        t0 = time.monotonic()
        cpu0 = _cpu_s(st.daemon.pid)
        end = t0 + seconds
        stop = threading.Event()

        def closed(rig: str) -> int:
            """The fills the daemon has recorded at `rig` (the operator takes the cylinder
            off once the screen shows its record, as at a station)."""
            db = sqlite3.connect(st.store_path, timeout=5)
            try:
                return db.execute("SELECT count(*) FROM fills WHERE rig = ? AND state != "
                                  "'open'", (rig,)).fetchone()[0]
            finally:
                db.close()

        def operator(rig: str, first_at: float) -> None:
            model, scanner = st.model(rig), st.scanners[rig]
            stop.wait(max(0.0, first_at - time.monotonic()))
            while time.monotonic() < end and not stop.is_set():
                model.place_cylinder(15200)
                try:
                    snap = wait_for(lambda: (s := model.snapshot())["stable"] and s, 5,
                                    "a stable scale", every=0.02)
                    grants, sent, done = snap["permit_grants"], time.monotonic(), closed(rig)
                    scanner.send(qr_url(codes.popleft()))
                    wait_for(lambda g=grants: model.snapshot()["permit_grants"] > g, 10,
                             "the permit", every=0.02)
                    lat.append(model.snapshot()["granted_at"] - sent)
                    wait_for(lambda: (s := model.snapshot())["fill_done"] and
                             not s["valve_open"], 20, "the fill done", every=0.1)
                    wait_for(lambda d=done: closed(rig) > d, 20, "the fill recorded", every=0.1)
                except TimeoutError as err:
                    problems.append(f"{rig}: {err}")
                model.remove_cylinder()
                try:  # the daemon saw it go (lamps out): else the next is "the same cylinder"
                    wait_for(lambda: not (s := model.snapshot())["lamp_green"] and
                             not s["lamp_red"], 10, "the lamps out", every=0.05)
                except TimeoutError as err:
                    problems.append(f"{rig}: {err}")
                stop.wait(1.0)  # the operator takes the next cylinder
        threads = [threading.Thread(target=operator, args=(s.id, t0 + 2.0 * i / n), daemon=True)
                   for i, s in enumerate(specs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 40)
        t1 = time.monotonic()
        cpu = _cpu_s(st.daemon.pid) - cpu0
        sim = st.rig_sim
        gaps = [max_gap(sim.wire.writes_to(s.unit_id, sim.registers.heartbeat, t0), t1)
                for s in specs]
        trips = sum(st.model(s.id).snapshot()["watchdog_trips"] for s in specs)
        tx = len(sim.wire.since(t0)) / (t1 - t0) / n
    finally:
        st.stop()
    return {"rigs": n, "baud": baud, "gap_max_s": max(gaps), "trips": trips,
            "med_ms": statistics.median(lat) * 1000 if lat else float("nan"),
            "p99_ms": pct(lat, 0.99) * 1000 if lat else float("nan"), "grants": len(lat),
            "tx_s": tx, "cpu": cpu / (t1 - t0) * 100, "problems": problems}


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daemon_main(args: argparse.Namespace) -> None:
    print(f"the real daemon over RTU: watchdog {WATCHDOG_MS} ms (heartbeat due every "
          f"{WATCHDOG_MS // 3} ms), poll {POLL_MS} ms, idle poll {IDLE_POLL_MS} ms (default), "
          f"turnaround {args.turnaround_ms:g} ms, {args.seconds:g} s per run")
    print(f"{'baud':>5} {'rigs':>4} {'tx/s/rig':>8} {'hb gap max':>10} {'s2p med':>8} "
          f"{'s2p p99':>8} {'n':>3} {'trips':>5} {'daemon CPU':>10}  problems")
    for baud in (int(b) for b in args.baud.split(",")):
        for n in (int(r) for r in args.rigs.split(",")):
            r = daemon_run(n, baud, args.seconds, args.turnaround_ms)
            print(f"{baud:>5} {n:>4} {r['tx_s']:>8.1f} {r['gap_max_s'] * 1000:>8.0f}ms "
                  f"{r['med_ms']:>6.0f}ms {r['p99_ms']:>6.0f}ms {r['grants']:>3} "
                  f"{r['trips']:>5} {r['cpu']:>9.1f}%  {'; '.join(r['problems'][:3]) or '-'}",
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rigs", default="1,2,4,8,16")
    ap.add_argument("--baud", default="9600,19200")
    ap.add_argument("--seconds", type=float, default=20.0, help="busy phase per run (s)")
    ap.add_argument("--idle", type=float, default=4.0, help="idle phase per run (s)")
    ap.add_argument("--turnaround-ms", type=float, default=5.0)
    ap.add_argument("-v", "--verbose", action="store_true", help="print each link's counters")
    ap.add_argument("--daemon", action="store_true",
                    help="drive the real daemon (station run) instead of the driver layer")
    args = ap.parse_args()
    if args.daemon:
        daemon_main(args)
        return
    print(f"watchdog {WATCHDOG_MS} ms (heartbeat due every {WATCHDOG_MS // 3} ms), poll "
          f"{POLL_MS} ms, idle poll {IDLE_POLL_MS} ms, turnaround {args.turnaround_ms:g} ms")
    print(f"{'baud':>5} {'rigs':>4} {'idle tx/s':>9} {'busy tx/s':>9} {'hb gap max':>10} "
          f"{'late':>4} {'grant med':>9} {'grant p99':>9} {'n':>3} {'tx/grant':>8} "
          f"{'trips':>5} {'overloaded':>10} {'faults':>6}")
    for baud in (int(b) for b in args.baud.split(",")):
        for n in (int(r) for r in args.rigs.split(",")):
            r = asyncio.run(run(n, baud, args.seconds, args.idle, args.turnaround_ms,
                                  args.verbose))
            print(f"{baud:>5} {n:>4} {r['idle_tx_s']:>9.2f} {r['busy_tx_s']:>9.2f} "
                  f"{r['gap_max_s'] * 1000:>8.0f}ms {r['late']:>4} "
                  f"{r['grant_med_ms']:>7.0f}ms {r['grant_p99_ms']:>7.0f}ms {r['grants']:>3} "
                  f"{r['tx_per_grant']:>8} {r['trips']:>5} {r['overloads']:>10} {r['faults']:>6}",
                  flush=True)


if __name__ == "__main__":
    main()
