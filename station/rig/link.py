"""One rig's controller link: connect and configure, heartbeat, poll the status; reconnect."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from drivers.rig import RigController, RigStatus
from station.backoff import Backoff
from station.config import RigConfig
from station.core.fillcycle import FillCycle
from station.errors import RigFault
from station.logfmt import kv

from .actuator import Actuator
from .ledger import Ledger
from .screen import Screen
from .state import RigState

log = logging.getLogger("station.rig")


class Link:
    """Keeps one rig's controller alive: connect and configure it (which withdraws any permit
    and puts the lamps out), then hand every status sample (each `poll_ms`, `idle_poll_ms` for
    an idle rig) to `observe`, under the actuator's lock. A RigFault marks
    the rig lost and reconnects after a backoff (0.2 s doubling to 5 s), the screen published
    meanwhile. The first connection recovers the fills a crash left open (the ledger).
    Heartbeats are the controller's link's (drivers.modbus_link), fed by every poll."""

    def __init__(self, cfg: RigConfig, controller: RigController, state: RigState,
                 cycle: FillCycle, actuator: Actuator, ledger: Ledger, screen: Screen,
                 observe: Callable[[RigStatus], Awaitable[None]],
                 after_poll: Callable[[], None]):
        self.cfg, self.controller, self.state, self.cycle = cfg, controller, state, cycle
        self.actuator, self.ledger, self.screen = actuator, ledger, screen
        self.observe, self.after_poll = observe, after_poll
        self.recovered = False
        self.dropped = False  # the last poll's sample overlapped a sequence and was dropped

    async def run(self) -> None:
        """Connect, poll, reconnect; returns only by cancellation."""
        backoff = Backoff(start_s=0.2, cap_s=5.0)
        while True:
            try:
                await self.connect()
                backoff.reset()
                await self._poll()
            except RigFault as err:
                self.mark(False, str(err))
                await self._publish_for(backoff.next())  # the screen: controller lost, daemon alive

    async def _publish_for(self, seconds: float) -> None:
        """Wait `seconds` (s), publishing the rig's picture every second meanwhile (the
        daemon's own liveness stays fresh on the screens while its controller is down)."""
        end = time.monotonic() + seconds
        while True:
            self.screen.publish()
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 1.0))

    async def connect(self) -> None:
        """Connect and configure the controller (the lock taken), then recover the fills a
        crash left open (first time) or let the cycle see the permit gone; RigFault."""
        async with self.actuator.exclusive():
            await self.controller.connect()
            await self.controller.configure(self.cfg.watchdog_ms)  # withdraws a permit
            self.state.lamps = (False, False)  # (configure puts the lamps out)
            await self._after_connect(await self.controller.read_status())
        self.mark(True)

    async def _after_connect(self, status: RigStatus) -> None:
        """The permit is gone after configure(): a fill that was running has ended."""
        if not self.recovered:
            self.recovered = True
            self.ledger.recover(self.cycle, status)
        elif self.cycle.engaged:
            await self.observe(status)  # the cycle sees the permit gone and records the end

    async def _poll(self) -> None:
        while True:
            await self.poll_once()

    def pending(self) -> bool:
        """Something waits on the rig (a verdict, a permit, a fill, a held reading): polled
        at the full rate."""
        return self.cycle.phase != "idle" or self.state.scale.held is not None

    async def poll_once(self) -> None:
        """One poll: `controller.poll()` feeds the link's heartbeat, waits the rig's period
        (poll_ms; idle_poll_ms for an idle rig; `wake()` ends it) and reads the status, without
        the lock (a scan need not wait for it); then, the lock taken, the status observed. A
        sample read while another sequence held the lock may predate that sequence's writes
        (a permit just granted): it is dropped (the next poll follows at the full rate), or,
        the second time running, read again under the lock with the writes' priority. The
        manual entries taken after. RigFault. The store is never waited on here: the fill
        cycle's records are queued to the store thread (storethread)."""
        lock = self.actuator.exclusive()
        before, busy = lock.done, lock.locked()
        status = await self.controller.poll(pending=True if self.dropped else self.pending())
        async with lock:
            overlapped = busy or lock.done != before
            if overlapped and not self.dropped:
                self.dropped = True
                return
            if overlapped:
                status = await self.controller.read_status(urgent=True)
            self.dropped = False
            await self.observe(status)
        self.mark(True)
        self.state.alive_at = time.monotonic()
        self.after_poll()

    def mark(self, up: bool, detail: str = "") -> None:
        """The link is up, or down for `detail`: a loss forgets the status sample and voids a
        verdict still waiting for its permit; each change is logged and journalled once."""
        st = self.state
        if not up:
            st.status, st.fault = None, detail or "rig controller fault"
            st.scale.link_lost()  # a cylinder seen after the gap may be another one
            self.cycle.rig_lost()
        if st.connected is up:
            return
        st.connected = up
        event = "rig_connected" if up else "rig_lost"
        (log.info if up else log.warning)(kv(event, rig=self.cfg.id, error=detail or None))
        self.ledger.event(event, detail)
