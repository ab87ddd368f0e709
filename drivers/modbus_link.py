"""One Modbus endpoint's link (a TCP socket or an RS-485 line): heartbeats first, then writes, then polls.

Safety trade-offs of the scheduler (README, "The rig link"):
- Heartbeats are sent by the link itself, so a rig busy deciding (or a line full of polls)
  never starves its own watchdog; but only while the rig's owner feeds it (`feed()`; ModbusRig
  feeds on every answer its owner gets and on `keep_alive()`, never on a heartbeat's own): an
  owner that neither calls nor waits on the link for `feed_s` (default one watchdog period)
  stops being heartbeated, and the controller drops the permit within its watchdog. A hung loop
  closes the valve within feed_s + WATCHDOG_MS; a killed process or a hung event loop within
  WATCHDOG_MS, as before. An owner waiting for its turn on a busy line is not hung: while one
  of its requests is queued or on the wire it counts as fed, and each answer feeds it.
- A transaction on the wire is never interrupted: a heartbeat waits for at most the one in
  flight. Each heartbeat is due `guard` before WATCHDOG_MS / 3 after the previous one, the
  guard being four of the line's recent slowest answers (at least 50 ms). A unit that does not
  answer holds the line for its timeout (at most WATCHDOG_MS / 3, config.py), so the gap can
  then reach 2/3 of the watchdog: late against the contract's WATCHDOG_MS / 3, never a trip.
- Polls are the lowest priority and are stretched when the line is overloaded (busier than
  85 % over 2 s, logged once as `link_overloaded`; 50 % ends it, `link_overload_ended`): a status
  is then seen later, while heartbeats, permits and withdrawals keep their places.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient, ModbusBaseClient
from pymodbus.exceptions import ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from station.backoff import Backoff
from station.config import ModbusEndpoint, RigConfig
from station.errors import RigFault
from station.transitions import Transitions

from .link_beats import BeatPacing, Beats

log = logging.getLogger("station.rig")

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
HEARTBEAT, WRITE, POLL = 0, 1, 2  # priorities: lower runs first
WINDOW_S = 2.0  # the overload judgement's window
OVERLOAD_BUSY, RECOVER_BUSY = 0.85, 0.5  # busy fraction of the window
STRETCH_STEP, STRETCH_MAX = 1.5, 8.0

Request = Callable[[ModbusBaseClient], Awaitable[ModbusPDU]]


class LinkDropped(Exception):
    """The peer closed the connection while a transaction was in flight."""


@dataclass(eq=False)
class _Job:
    what: str
    request: Request | None  # None: connect only
    future: asyncio.Future
    on_start: Callable[[float], None] | None = None


class ModbusLink(BeatPacing):
    """One connection (a TCP socket or an RS-485 line) shared by the rigs behind it.

    Every transaction goes through one worker task that takes, in this order: heartbeat writes
    (earliest deadline first), writes (permits, withdrawals, lamps, read-backs; first come
    first served), polls. pymodbus's own retries and auto-reconnect are off: the worker
    reconnects with exponential backoff (0.1 s doubling to 5 s) and never waits longer than
    `timeout_s`; while backing off a transaction fails at once (RigFault).
    """

    def __init__(self, endpoint: ModbusEndpoint, timeout_s: float = 1.0) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._client: ModbusBaseClient | None = None
        self._dropped: asyncio.Event | None = None
        self._avail = Transitions(log, lost="modbus_link_lost", first="modbus_link_up",
                                  recovered="modbus_link_recovered", timed=True,
                                  endpoint=endpoint.key)
        self._load = Transitions(log, lost="link_overloaded", recovered="link_overload_ended",
                                 endpoint=endpoint.key)
        self._backoff = Backoff(start_s=BACKOFF_MIN_S, cap_s=BACKOFF_MAX_S)
        self._retry_at = 0.0
        self._users: set[str] = set()
        self._queue: list[tuple[int, float, int, _Job]] = []
        self._seq = itertools.count()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._beats: dict[str, Beats] = {}
        self.tx_s = 0.02  # a decaying maximum of recent answer times (s)
        self.poll_stretch = 1.0  # polls' period multiplier while overloaded
        self.counts = {HEARTBEAT: 0, WRITE: 0, POLL: 0}
        self.failures = 0
        self.overloads = 0
        self._window_at, self._busy_s, self.busy = time.monotonic(), 0.0, 0.0

    @property
    def key(self) -> str:
        return self.endpoint.key

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    @property
    def overloaded(self) -> bool:
        """Polls are being stretched because the line is too busy."""
        return self.poll_stretch > 1.0

    def stats(self) -> dict:
        """Counters for `doctor` and benches: transactions per priority, failures, whether the
        line is overloaded, the busy fraction of the last window, and each unit's heartbeats
        (sent, late against WATCHDOG_MS / 3, longest gap in s, whether unfed)."""
        return {
            "endpoint": self.key, "connected": self.connected, "overloaded": self.overloaded,
            "overloads": self.overloads, "poll_stretch": round(self.poll_stretch, 2),
            "busy": round(self.busy, 3), "heartbeats": self.counts[HEARTBEAT],
            "writes": self.counts[WRITE], "polls": self.counts[POLL], "failures": self.failures,
            "units": {b.user: {"sent": b.sent, "late": b.late, "max_gap_s": round(b.max_gap_s, 4),
                               "unfed": b.starved} for b in self._beats.values()},
        }

    # -- users and heartbeats --------------------------------------------------------------------
    async def attach(self, user: str) -> None:
        """Register a rig on this link and connect now; raises RigFault if that fails."""
        self._users.add(user)
        await self.transact(f"{user}: connect", None, WRITE)

    async def detach(self, user: str) -> None:
        """Unregister a rig (its heartbeats stop); the connection closes when the last has left."""
        self._users.discard(user)
        self.stop_beats(user)
        if not self._users:
            await self.close()

    # -- transactions ----------------------------------------------------------------------------
    async def transact(self, what: str, request: Request | None, priority: int = WRITE,
                       deadline: float | None = None,
                       on_start: Callable[[float], None] | None = None) -> ModbusPDU:
        """Run one request on the link in its turn (`priority`, then `deadline` in monotonic s,
        then arrival); `on_start(t)` is told when it goes on the wire. Any failure or exception
        response is a RigFault. A caller cancelled while its request is on the wire leaves it
        to finish (no answer is ever misread)."""
        self._ensure_worker()
        assert self._wake is not None
        job = _Job(what, request, asyncio.get_running_loop().create_future(), on_start)
        at = deadline if deadline is not None else time.monotonic()
        heapq.heappush(self._queue, (priority, at, next(self._seq), job))
        self._wake.set()
        response = await job.future
        self.counts[priority] += 1
        return response

    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._worker.get_loop() is not loop:
            self._queue.clear()
            self._client = None  # a client of another event loop cannot be used here
            self._wake = asyncio.Event()
            self._worker = loop.create_task(self._work(), name=f"modbus-link {self.key}")

    async def _work(self) -> None:
        assert self._wake is not None
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            job = heapq.heappop(self._queue)[3]
            if job.future.done():
                continue  # its caller gave up while it waited
            started = time.monotonic()
            try:
                response = await self._run(job, started)
            except RigFault as err:
                self.failures += 1
                if not job.future.done():
                    job.future.set_exception(err)
            except asyncio.CancelledError:
                self._discard_client()  # closing: an answer may still come, start afresh
                if not job.future.done():
                    job.future.set_exception(RigFault(f"{job.what}: link closed"))
                raise
            except Exception as err:  # noqa: BLE001 - a request's own bug goes to its caller
                if not job.future.done():
                    job.future.set_exception(err)
            else:
                took = time.monotonic() - started
                self.tx_s = max(took, self.tx_s * 0.98)
                if not job.future.done():
                    job.future.set_result(response)
            self._account(started)
            await asyncio.sleep(0)  # the caller of a sequence queues its next step first

    async def _run(self, job: _Job, started: float) -> ModbusPDU | None:
        await self.ensure_connected()
        if job.request is None:
            return None
        if job.on_start is not None:
            job.on_start(started)
        try:
            response = await self._race(job.request)
        except (TimeoutError, ModbusIOException) as err:
            self._failed("no answer", serial_keeps_line=True)
            raise RigFault(f"{job.what}: no answer within {self.timeout_s:g} s") from err
        except (LinkDropped, ModbusException, OSError) as err:
            self._failed(str(err) or type(err).__name__)
            raise RigFault(f"{job.what}: modbus {self.key}: {err}") from err
        if response.isError():
            code = getattr(response, "exception_code", "?")
            raise RigFault(f"{job.what}: exception response, code {code}")
        self._backoff.reset()
        return response

    def _account(self, started: float) -> None:
        """Busy time of the window; at its end, stretch or relax the polls."""
        now = time.monotonic()
        self._busy_s += now - started
        span = now - self._window_at
        if span < WINDOW_S:
            return
        self.busy, self._busy_s, self._window_at = self._busy_s / span, 0.0, now
        if self.busy > OVERLOAD_BUSY and self.poll_stretch < STRETCH_MAX:
            if not self.overloaded:
                self.overloads += 1
            self.poll_stretch = min(STRETCH_MAX, self.poll_stretch * STRETCH_STEP)
            self._load.down(busy=round(self.busy, 2), poll_stretch=round(self.poll_stretch, 2))
        elif self.busy < RECOVER_BUSY and self.overloaded:
            self.poll_stretch = max(1.0, self.poll_stretch / STRETCH_STEP)
            if not self.overloaded:
                self._load.up()

    # -- the connection --------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop the worker and the heartbeats and close the connection (a later transaction
        reconnects); requests still queued fail with RigFault."""
        for user in list(self._beats):
            self.stop_beats(user)
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            if worker.get_loop() is asyncio.get_running_loop():
                await asyncio.gather(worker, return_exceptions=True)
        for *_, job in self._queue:
            if not job.future.done():
                job.future.set_exception(RigFault(f"{job.what}: link closed"))
        self._queue.clear()
        self._discard_client()

    async def ensure_connected(self) -> None:
        """Connect if not connected (from the worker). Raises RigFault."""
        if self.connected:
            return
        if self._client is not None:  # dropped while idle: try again at once
            self._lost("connection closed by peer")
            self._retry_at = 0.0
        now = time.monotonic()
        if now < self._retry_at:
            raise RigFault(
                f"modbus {self.key}: link down, next connect attempt in "
                f"{self._retry_at - now:.1f} s"
            )
        client = self._new_client()
        why = "refused or unreachable" if self.endpoint.kind == "tcp" else "port will not open"
        try:
            ok = await asyncio.wait_for(client.connect(), self.timeout_s)
        except (TimeoutError, OSError, ModbusException) as err:
            ok, why = False, str(err) or type(err).__name__
        if not ok:
            client.close()
            self._lost(why)
            raise RigFault(f"modbus {self.key}: cannot connect ({why})")
        self._client = client
        self._avail.up()

    async def _race(self, request: Request) -> ModbusPDU:
        """The request's answer, unless the connection drops or the timeout passes first."""
        assert self._client is not None and self._dropped is not None
        req = asyncio.ensure_future(request(self._client))
        drop = asyncio.ensure_future(self._dropped.wait())
        try:
            done, _ = await asyncio.wait(
                {req, drop}, timeout=self.timeout_s + 0.05, return_when=asyncio.FIRST_COMPLETED
            )
        finally:  # also when we are cancelled: leave no request running on the shared link
            drop.cancel()
            if not req.done():
                req.cancel()
        if req in done:
            return req.result()
        await asyncio.wait({req})  # let pymodbus unwind the cancelled request
        if drop in done:
            raise LinkDropped("connection closed by peer")
        raise TimeoutError

    def _failed(self, why: str, serial_keeps_line: bool = False) -> None:
        """After a failed transaction: drop the connection (so no stale answer is misread)."""
        if serial_keeps_line and self.endpoint.kind == "rtu":
            return  # one silent unit on an RS-485 line says nothing about the line
        self._discard_client()
        self._lost(why)

    def _new_client(self) -> ModbusBaseClient:
        dropped = asyncio.Event()

        def on_connect(up: bool) -> None:
            if not up:
                dropped.set()

        self._dropped = dropped
        ep = self.endpoint
        common = dict(timeout=self.timeout_s, retries=0, reconnect_delay=0,
                      trace_connect=on_connect, name=ep.key)
        if ep.kind == "tcp":
            return AsyncModbusTcpClient(ep.host, port=ep.port, **common)
        return AsyncModbusSerialClient(ep.device, baudrate=ep.baudrate, bytesize=ep.bytesize,
                                       parity=ep.parity, stopbits=ep.stopbits, **common)

    def _discard_client(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    def _lost(self, why: str) -> None:
        """The link failed: drop the client, back off the next connect, log the first time."""
        self._discard_client()
        self._retry_at = time.monotonic() + self._backoff.next()
        self._avail.down(error=why)


def links_for(rigs: list[RigConfig]) -> dict[str, ModbusLink]:
    """One link per endpoint key; its timeout is the shortest of the rigs sharing it."""
    links: dict[str, ModbusLink] = {}
    for rig in rigs:
        key, timeout_s = rig.modbus.key, rig.timeout_ms / 1000.0
        link = links.get(key)
        if link is None:
            links[key] = ModbusLink(rig.modbus, timeout_s)
        elif link.endpoint != rig.modbus:
            raise ValueError(f"rig {rig.id}: endpoint {key} configured differently by two rigs")
        else:
            link.timeout_s = min(link.timeout_s, timeout_s)
    return links
