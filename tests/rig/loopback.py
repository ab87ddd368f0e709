"""A real RigLoop in-process on a loopback rig controller, for the tests of tests/rig.

The controller is the simulator's pure RigModel behind drivers.loopback_rig on a clock the test
moves; the store is a real SQLite file; only the city's HTTP is a stub (tested in tests/city).
`Rig` runs the loop's own tasks (the test waits for its polls, never for a time).
"""

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from support import cylinder

from drivers.loopback_rig import LoopbackRig, ManualClock
from drivers.reader import Line, TagReader
from simulators.rig_model import RigModel
from station import config
from station.city.clockwatch import ClockWatch
from station.city.lookup import LookupService
from station.rig.loop import RigLoop
from station.store.db import Store
from station.today import station_today

QR = b"https://qr.example/c/X1"
EMPTY_G, TARGET_G = 15000, 14500  # an empty 35.5 L LPG cylinder: nominal tare 15.0 kg, 14.5 kg
UNIT = "重庆渝北燃气有限公司"
# a valid record (stamped 15.0 kg tare, 14.5 kg capacity), in date for years whenever it runs
RECORD = cylinder("CYL-1", user_unit_name=UNIT, info_code="X1", qr_url=QR.decode(),
                  registration_cert_no="瓶渝B0001", registration_date="2023-07-01",
                  next_inspection_date=f"{station_today().year + 3}-11")


def config_text(watchdog_ms=60000, dedup_s=3.0, extra="", tail=""):
    """The station.toml of one rig with one scanner (`extra`: more top-level tables; `tail`:
    text at the end, e.g. the rig's `[rigs.registers]`)."""
    return f"""
[station]
unit_name = "{UNIT}"
unit_code = "91500112MA5U8XXX0X"
store = "station.db"

[qr]
hosts = ["qr.example"]

[city]
base_url = "http://127.0.0.1:9"
app_key = "k"

{extra}
[[operators]]
name = "张三"
badge = "A1B2C3D4"

[[rigs]]
id = "rig-01"
medium = "G13"
modbus = "tcp://127.0.0.1:1502"
unit_id = 1
watchdog_ms = {watchdog_ms}
poll_ms = 20
timeout_ms = 500

[[rigs.readers]]
kind = "scanner"
id = "s1"
port = "/dev/ttyLOOP0"
dedup_s = {dedup_s}
{tail}"""


class City:
    """The city's reply as the client returns it (outcome, items, message)."""

    def __init__(self, outcome="found"):
        self.reply = SimpleNamespace(outcome=outcome, items=[RECORD] if outcome == "found"
                                     else [], message="")

    def query(self, condition, deadline_s):
        return self.reply


class Scanner(TagReader):
    """A reader fed by the test: `scan(data)` is one line read at the rig."""

    kind = "scanner"

    def __init__(self, reader_id="s1"):
        self.reader_id = reader_id
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def scan(self, data: bytes) -> None:
        self.queue.put_nowait(data)

    async def lines(self):
        loop = asyncio.get_running_loop()
        while True:
            yield Line(self.reader_id, await self.queue.get(), loop.time())


class Rig:
    """One rig loop with its loopback controller, scanner, store and clock."""

    def __init__(self, tmp_path, outcome="found", start_delay_s=0.5):
        path = tmp_path / "station.toml"
        path.write_text(config_text(), encoding="utf-8")
        self.cfg = config.load(path, env={"STATION_APP_SECRET": "s"})
        self.store = Store(self.cfg.store)
        self.clock = ManualClock()
        self.model = RigModel(start_delay_s=start_delay_s, flow_g_per_s=20000, now=self.clock())
        self.clock.advance(1.0)  # the scale has long been still
        self.controller = LoopbackRig("rig-01", self.model, self.clock)
        self.scanner = Scanner()
        self.executor = ThreadPoolExecutor(1)
        lookups = LookupService(City(outcome), self.store, self.executor, 2.0)
        watch = ClockWatch(self.store, lambda: None, self.cfg.rules.max_clock_skew_s)
        self.loop = RigLoop(self.cfg.rigs[0], self.cfg, self.controller, [self.scanner],
                            self.store, lookups, watch)
        self.store.operator_event("rig-01", "张三", "login", "test")

    async def until(self, what, predicate, polls=300):
        """Wait, poll by poll of the loop, until `predicate()` holds."""
        for _ in range(polls):
            if predicate():
                return
            await self.controller.sampled()
        raise AssertionError(f"not within {polls} polls: {what}")

    async def run_for(self, seconds, step=0.05):
        """Let `seconds` of controller time pass in steps, the loop polling after each."""
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            await self.controller.sampled()

    def rows(self, sql, *params):
        """Rows committed by now (queued store calls may commit a moment later: wait with
        `until`, or `await rig.loop.writes.idle()` first)."""
        return [dict(r) for r in self.store.query(sql, params)]

    async def scan_onto_a_cylinder(self, wait_for_permit=True):
        """An empty cylinder put on the scale, left to settle, then its QR code scanned."""
        self.place()
        await self.run_for(0.1)
        self.scanner.scan(QR)
        if wait_for_permit:
            await self.until("the permit", lambda: self.coil("fill_permit"))

    def place(self, grams=EMPTY_G):
        self.model.place_cylinder(grams, now=self.clock())

    def coil(self, name):
        return self.model.snapshot(now=self.clock())[name]


def play(tmp_path, scenario, **options):
    """Run the real loop beside `scenario(rig)`; then its shutdown, as at SIGTERM."""
    rig = Rig(tmp_path, **options)

    async def main():
        task = asyncio.create_task(rig.loop.run())
        try:
            await rig.controller.sampled(2)  # connected, configured, polling
            await scenario(rig)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await rig.loop.shutdown()

    try:
        asyncio.run(main())
    finally:
        rig.executor.shutdown()
    return rig


class Stepped:
    """One daemon's RigLoop driven step by step on its own event loop, none of its tasks
    running: `connect()`, `poll()` and `read()` each run the loop's real code to completion
    (Link.connect, Link.poll_once, RigLoop.process). A restart is a new Stepped on the same
    directory (the same SQLite file) and the same RigModel."""

    def __init__(self, workdir, model, clock, watchdog_ms=3000, outcome="found", extra="",
                 tail=""):
        path = workdir / "station.toml"
        path.write_text(config_text(watchdog_ms=watchdog_ms, dedup_s=0, extra=extra, tail=tail),
                        encoding="utf-8")
        cfg = config.load(path, env={"STATION_APP_SECRET": "s"})
        self.store = Store(cfg.store)
        self.controller = LoopbackRig("rig-01", model, clock)
        self.executor = ThreadPoolExecutor(1)
        lookups = LookupService(City(outcome), self.store, self.executor, 2.0)
        watch = ClockWatch(self.store, lambda: None, cfg.rules.max_clock_skew_s)
        self.loop = RigLoop(cfg.rigs[0], cfg, self.controller, [], self.store, lookups, watch)
        self.controller.poll_s = 0.0  # a step is one poll at once: the test moves the clock
        self.aloop = asyncio.new_event_loop()
        if self.store.operator_on_shift("rig-01") is None:
            self.store.operator_event("rig-01", "张三", "login", "test")

    def connect(self):
        """Connect and configure (the permit withdrawn), recovering open fills the first time."""
        self.aloop.run_until_complete(self.loop.link.connect())
        self.settle()

    def settle(self):
        """Every store call queued by the step just run done (the store thread idle)."""
        self.aloop.run_until_complete(self.loop.writes.idle())

    def poll(self):
        """One poll (heartbeat, status observed); then a held reading looked at, as the loop's
        readings task does every poll_ms while one is held; then the store thread's queue."""
        self.aloop.run_until_complete(self.loop.link.poll_once())
        if self.loop.state.scale.held is not None:
            self.aloop.run_until_complete(self.loop.process(None, (0, False)))
        self.settle()

    def read(self, data, reader="s1"):
        """One line read at the rig, handled as the readings task would."""
        line = Line(reader, data, time.monotonic())
        self.aloop.run_until_complete(self.loop.process(line, self.loop.state.scale.epoch()))
        self.settle()

    def rows(self, sql, *params):
        return [dict(r) for r in self.store.query(sql, params)]

    def close(self):
        """The daemon gone (its store closed; a kill -9 leaves the same committed rows: the
        store thread is idle after every step)."""
        self.loop.writes.close()
        self.aloop.close()
        self.executor.shutdown()
        self.store.close()
