"""A rig controller in memory: the simulator's pure RigModel behind the RigController interface.

The loopback counterpart of `modbus_rig` (as python-can's virtual bus is of a real one): the
real rig loop runs in-process against the same controller physics and watchdog the Modbus
simulator serves, on a clock the caller injects, so a test decides when model time passes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from simulators.rig_model import RigModel, split_u32
from station.errors import RigFault

from .rig import RigController, RigStatus


class LoopbackRig(RigController):
    """One rig's controller as a RigModel read and written at `clock()` (monotonic seconds).

    Every write is absolute and read back, as over Modbus: a permit the model refuses (unhealthy,
    or the watchdog already expired) reads back 0 and raises RigFault. `down = True` makes every
    call fail with RigFault, as a lost link does. `samples` counts the loop's attempts to see
    the rig (status reads and connects, failed ones included); `sampled(n)` waits for `n` more
    of them (the loop's next polls or reconnects) instead of for a time.
    """

    def __init__(self, rig_id: str, model: RigModel | None = None,
                 clock: Callable[[], float] = time.monotonic, poll_s: float = 0.02) -> None:
        self.rig_id, self.clock, self.poll_s = rig_id, clock, poll_s
        self.model = model if model is not None else RigModel(now=clock())
        self.down = False
        self.connected = False
        self.samples = 0
        self._beat = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake: asyncio.Event | None = None
        self.wakes = 0  # calls of wake(): a scan or a decision wanted a sample now

    def _attempt(self) -> None:
        """One more attempt to see the rig: wake the waiters it completes."""
        self.samples += 1
        for waiter in [w for w in self._waiters if w[0] <= self.samples]:
            self._waiters.remove(waiter)
            if not waiter[1].done():
                waiter[1].set_result(None)

    def _check(self, what: str) -> None:
        if self.down:
            self.connected = False
            raise RigFault(f"{what}: loopback {self.rig_id}: link down")
        if not self.connected and what != "connect":
            raise RigFault(f"{what}: loopback {self.rig_id}: not connected")

    def _coils(self, name: str, values: list[bool], what: str) -> None:
        address = getattr(self.model.map, name)
        back = self.model.write_coils(address, values, now=self.clock())
        if back != values:
            raise RigFault(f"{what}: read back {back}, wrote {values}")

    def _words(self, address: int, words: list[int], what: str) -> None:
        back = self.model.write_holding(address, words, now=self.clock())
        if back != words:
            raise RigFault(f"{what}: read back {back}, wrote {words}")

    async def connect(self) -> None:
        """Join the model; raises RigFault while `down`."""
        self._attempt()
        self._check("connect")
        self.connected = True

    async def close(self) -> None:
        """Leave the model; never raises."""
        self.connected = False

    async def configure(self, watchdog_ms: int) -> None:
        """WATCHDOG_MS (ms), FILL_PERMIT=0, lamps and buzzer off, each read back (RigFault)."""
        self._check("configure")
        self._words(self.model.map.watchdog_ms, [watchdog_ms], "watchdog")
        self._coils("fill_permit", [False], "withdraw permit")
        for name in ("lamp_green", "lamp_red", "buzzer"):
            self._coils(name, [False], name)

    async def read_status(self, max_age_s: float = 0.0, *, urgent: bool = False) -> RigStatus:
        """The model's points at `clock()`, always read afresh (`max_age_s`, `urgent`: as
        ModbusRig's, nothing to save in memory); wakes the waiters of `sampled()`."""
        self._attempt()
        self._check("read status")
        s = self.model.snapshot(now=self.clock())
        status = RigStatus(
            permit=s["fill_permit"], lamp_green=s["lamp_green"], lamp_red=s["lamp_red"],
            buzzer=s["buzzer"], valve_open=s["valve_open"],
            cylinder_present=s["cylinder_present"], estop=s["estop"], fill_done=s["fill_done"],
            gross_g=s["gross_g"], stable=s["stable"], overload=s["overload"],
            scale_fault=s["scale_fault"], fault_code=s["fault_code"],
            checks_ok=bool(s.get("checks_ok")))
        return status

    async def heartbeat(self) -> None:
        """The next HEARTBEAT value (1..65535, then 1 again); RigFault while down."""
        self._check("heartbeat")
        self._beat = self._beat % 0xFFFF + 1
        self._words(self.model.map.heartbeat, [self._beat], "heartbeat")

    # -- the link's interface (drivers.modbus_rig), the loopback way ----------------------------
    def keep_alive(self) -> None:
        """The owner is alive: the next HEARTBEAT written at once (the loopback has no link
        to write it later); nothing while the link is down."""
        if self.connected and not self.down:
            self._beat = self._beat % 0xFFFF + 1
            self.model.write_holding(self.model.map.heartbeat, [self._beat], now=self.clock())

    def wake(self) -> None:
        """Something is pending: end a `poll()` waiting for its period."""
        self.wakes += 1
        if self._wake is not None:
            self._wake.set()

    def poll_interval_s(self, pending: bool = False) -> float:
        """The period (s) `poll()` keeps: `poll_s`, idle or not."""
        return self.poll_s

    async def poll(self, pending: bool = False) -> RigStatus:
        """A heartbeat (keep_alive), `poll_s` of real time (ended early by `wake()`), then
        the status (read_status). RigFault while down."""
        self._check("poll")
        self.keep_alive()
        if self._wake is None:
            self._wake = asyncio.Event()
        if self.poll_s > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            except TimeoutError:
                pass
        self._wake.clear()
        return await self.read_status()

    async def grant_permit(self, tare_g: int, target_g: int) -> None:
        """TARE_G and TARGET_NET_G (g), then FILL_PERMIT=1, LAMP_GREEN=1, LAMP_RED=0; a
        permit the model refuses is a RigFault."""
        self._check("grant permit")
        self._words(self.model.map.tare_g, list(split_u32(tare_g)), "tare")
        self._words(self.model.map.target_net_g, list(split_u32(target_g)), "target")
        self._coils("fill_permit", [True], "grant permit")
        self._coils("lamp_green", [True], "lamp_green")
        self._coils("lamp_red", [False], "lamp_red")

    async def withdraw_permit(self) -> None:
        """FILL_PERMIT=0, read back."""
        self._check("withdraw permit")
        self._coils("fill_permit", [False], "withdraw permit")

    async def set_lamps(self, green: bool, red: bool, buzzer: bool = False) -> None:
        """The lamps and the buzzer, read back."""
        self._check("set lamps")
        for name, value in (("lamp_green", green), ("lamp_red", red), ("buzzer", buzzer)):
            self._coils(name, [value], name)

    async def set_buzzer(self, on: bool) -> None:
        """The buzzer alone, read back."""
        self._check("set buzzer")
        self._coils("buzzer", [on], "buzzer")

    async def sampled(self, n: int = 1, timeout_s: float = 5.0) -> None:
        """Return after `n` more attempts to see the rig (status reads or connects);
        TimeoutError after `timeout_s` (s) without them (the loop stopped polling)."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((self.samples + n, future))
        await asyncio.wait_for(future, timeout_s)


class ManualClock:
    """A monotonic clock that moves only when told: `advance(s)`; call it for the time (s)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds` (s); ValueError for a negative step."""
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        self.t += seconds
