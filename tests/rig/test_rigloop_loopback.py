"""The real RigLoop in-process on a loopback rig controller: decisions, grants and fill records.

The controller is the simulator's pure RigModel behind drivers.loopback_rig on a clock the test
moves; the store is a real SQLite file; only the city's HTTP is a stub (tested in tests/city).
The test waits for the loop's own status polls, never for a time.
"""

import asyncio
import contextlib
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
CONFIG = f"""
[station]
unit_name = "{UNIT}"
unit_code = "91500112MA5U8XXX0X"
store = "station.db"

[qr]
hosts = ["qr.example"]

[city]
base_url = "http://127.0.0.1:9"
app_key = "k"

[[operators]]
name = "张三"
badge = "A1B2C3D4"

[[rigs]]
id = "rig-01"
medium = "G13"
modbus = "tcp://127.0.0.1:1502"
unit_id = 1
watchdog_ms = 60000
poll_ms = 20
timeout_ms = 500

[[rigs.readers]]
kind = "scanner"
id = "s1"
port = "/dev/ttyLOOP0"
"""


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
        path.write_text(CONFIG, encoding="utf-8")
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


def test_scan_decision_grant_fill_record(tmp_path):
    async def scenario(rig):
        await rig.scan_onto_a_cylinder()
        decision = rig.rows("SELECT * FROM decisions")[-1]
        assert (decision["permit"], decision["cylinder_id"], decision["source"]) == \
            (1, "CYL-1", "city")
        opened = rig.rows("SELECT * FROM fills")
        assert [r["state"] for r in opened] == ["open"]  # committed before the permit
        assert (rig.model.tare_g, rig.model.target_net_g) == (EMPTY_G, TARGET_G)
        await rig.run_for(2.0)  # start button after 0.5 s, ~0.7 s of flow, 0.3 s to settle
        await rig.until("the fill record", lambda: rig.rows(
            "SELECT 1 FROM fills WHERE state = 'closed'"))

    rig = play(tmp_path, scenario)
    (fill,) = rig.rows("SELECT * FROM fills")
    assert (fill["cylinder_id"], fill["operator"], fill["source"]) == ("CYL-1", "张三", "city")
    assert fill["net_g"] == TARGET_G and fill["post_check"].startswith("ok")
    assert fill["decision_id"] == rig.rows("SELECT id FROM decisions")[-1]["id"]
    (sent,) = rig.rows("SELECT * FROM outbox")
    assert sent["record_id"] == fill["record_id"] and sent["state"] == "pending"
    assert rig.model.permit_grants == 1 and rig.model.valve_openings == 1


def test_a_refusal_grants_nothing(tmp_path):
    async def scenario(rig):
        await rig.scan_onto_a_cylinder(wait_for_permit=False)
        await rig.until("the decision", lambda: rig.rows("SELECT 1 FROM decisions"))
        await rig.controller.sampled(3)
        assert not rig.coil("fill_permit") and rig.coil("lamp_red")

    rig = play(tmp_path, scenario, outcome="not_found")
    (decision,) = rig.rows("SELECT * FROM decisions")
    assert (decision["permit"], decision["reason"]) == (0, "NOT_REGISTERED")
    assert rig.model.permit_grants == 0
    assert rig.rows("SELECT * FROM fills") == [] and rig.rows("SELECT * FROM outbox") == []


def test_removal_cancels_the_unused_permit(tmp_path):
    async def scenario(rig):
        await rig.scan_onto_a_cylinder()
        rig.model.remove_cylinder(now=rig.clock())
        await rig.until("the cancelled row", lambda: rig.rows(
            "SELECT 1 FROM fills WHERE state != 'open'"))
        await rig.until("the cycle back to idle", lambda: rig.loop.cycle.phase == "idle")

    rig = play(tmp_path, scenario, start_delay_s=None)  # nobody presses start
    (fill,) = rig.rows("SELECT * FROM fills")
    assert fill["state"] == "cancelled" and fill["net_g"] is None
    assert rig.rows("SELECT * FROM outbox") == []
    assert rig.model.permit_grants == 1 and rig.model.valve_openings == 0
    assert not rig.coil("fill_permit")


def test_a_lost_controller_is_reconnected(tmp_path):
    """A link that fails mid-run: rig_lost once, retried, then rig_connected; fills go on."""
    async def scenario(rig):
        rig.controller.down = True
        await rig.until("lost", lambda: rig.loop.state.connected is False)
        await rig.controller.sampled(2)  # two reconnects refused (the backoff between them)
        assert rig.loop.state.connected is False
        rig.controller.down = False
        await rig.until("reconnected", lambda: rig.loop.state.connected is True)
        await rig.scan_onto_a_cylinder()

    rig = play(tmp_path, scenario)
    events = [r["event"] for r in rig.rows("SELECT event FROM rig_events")]
    assert events[:4] == ["rig_connected", "rig_lost", "rig_connected", "permit_granted"]
