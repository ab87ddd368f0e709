"""One rig's outputs: the permit, the lamps and the buzzer; the sole owner of the rig's lock."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from drivers.rig import RigController
from station.config import RigConfig
from station.core import hmi
from station.core.fillcycle import Grant
from station.errors import RigFault
from station.logfmt import kv

from .ledger import Ledger
from .screen import Screen
from .state import RigState

log = logging.getLogger("station.rig")


class Sequences:
    """The rig's lock (`async with`), counting the sequences run under it (`done`), and when
    the permit was last written (`permit_at`, monotonic s, set by the actuator; a failed write
    may have landed too, so the time is taken when it ended either way). A status read
    without the lock (the link's poll) that overlapped a sequence may predate its writes
    (Link.poll_once); one begun before `permit_at` is not reused for a decision."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.done = 0
        self.permit_at = float("-inf")

    def locked(self) -> bool:
        return self._lock.locked()

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.done += 1
        self._lock.release()


class Actuator:
    """Writes one rig's controller: grants and withdraws the permit, shows the lamps of what the
    operator sees, pulses the buzzer.

    The actuator owns the rig's lock, and it alone: one sequence of controller calls at a time.
    Every sequence — the link's connect and polls, the loop's status samples and the actions
    they produce — runs inside `async with actuator.exclusive()`; the methods marked "lock held"
    expect their caller to hold it, the others take it themselves.
    """

    def __init__(self, cfg: RigConfig, controller: RigController, state: RigState,
                 screen: Screen, ledger: Ledger):
        self.cfg, self.controller, self.state, self.screen, self.ledger = \
            cfg, controller, state, screen, ledger
        self._lock = Sequences()  # one sequence of controller writes at a time
        self.background: set[asyncio.Future] = set()  # tasks spawned beside the loop's own

    def exclusive(self) -> Sequences:
        """The rig's lock, to hold around a sequence of controller calls (`async with`)."""
        return self._lock

    async def grant(self, grant: Grant, cylinder_id: str | None) -> None:
        """Tare and target (g), then the permit (lock held). RigFault when the write fails:
        the permit may have reached the controller though its read-back failed, so the fill
        cycle stays "permitted" and the next status sample (or the reconnect) decides from
        what the rig shows — cancelled if nothing went in, a fill if gas did."""
        try:
            await self.controller.grant_permit(grant.tare_g, grant.target_g)
        except RigFault as err:
            log.error(kv("permit_failed", rig=self.cfg.id, error=str(err)))
            self.ledger.event("permit_failed", str(err))
            raise
        finally:
            self._lock.permit_at = time.monotonic()
        self.state.lamps = (True, False)  # grant_permit lights green, puts red out
        self.ledger.event("permit_granted", cylinder_id or "")

    async def withdraw(self, why: str) -> None:
        """FILL_PERMIT=0, journalled with `why` (lock held); RigFault when the write fails."""
        try:
            await self.controller.withdraw_permit()
        finally:
            self._lock.permit_at = time.monotonic()
        self.ledger.event("permit_withdrawn", why)
        log.info(kv("permit_withdrawn", rig=self.cfg.id, why=why))

    async def show_lamps(self) -> None:
        """The lamps of the state the operator sees (station.core.hmi), written when they differ
        from what the controller holds (lock held). A new buzzing state pulses the buzzer for
        `buzzer_ms` (ms); any lamp change cancels a pending end of an older pulse, and the
        pulse ends by switching the buzzer alone, so it never re-applies older lamps."""
        st = self.state
        view = hmi.screen({**self.screen.picture(), "connected": True})
        if view.lamps is None:
            return
        want = (view.lamps.green, view.lamps.red)
        buzz = view.lamps.buzz and self.cfg.buzzer_ms > 0 and view.key != st.buzz_key
        st.buzz_key = view.key if view.lamps.buzz else ""
        if want == st.lamps and not buzz:
            return
        if st.buzz_off is not None:
            st.buzz_off.cancel()
            st.buzz_off = None
        await self.controller.set_lamps(*want, buzzer=buzz)
        st.lamps = want
        if buzz:
            st.buzz_off = asyncio.get_running_loop().call_later(
                self.cfg.buzzer_ms / 1000, lambda: self.spawn(self._buzzer_off()))

    async def show_refusal(self) -> None:
        """No permit, and the lamps of the refusal shown (takes the lock); RigFault."""
        async with self._lock:
            await self.controller.withdraw_permit()
            self._lock.permit_at = time.monotonic()
            await self.show_lamps()
        self.screen.publish()

    async def quietly(self, coro: Coroutine[Any, Any, None]) -> None:
        """Await `coro`; a RigFault is logged, not raised (the link's own poll reports it)."""
        try:
            await coro
        except RigFault as err:
            log.warning(kv("rig_write_failed", rig=self.cfg.id, error=str(err)))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine beside the loop's tasks, keeping a reference until it is done (the
        event loop holds only a weak one: an unreferenced task may vanish mid-way)."""
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _buzzer_off(self) -> None:
        self.state.buzz_off = None
        try:
            async with self._lock:
                await self.controller.set_buzzer(False)
        except RigFault:
            log.debug(kv("buzzer_off_failed", rig=self.cfg.id))

    async def stand_down(self) -> None:
        """Permit withdrawn and lamps out (takes the lock), tried twice: a transaction cut short
        by the tasks' cancellation is tried again. Failures are logged, never raised."""
        for attempt in (1, 2):
            try:
                async with self._lock:
                    await self.controller.withdraw_permit()
                    await self.controller.set_lamps(False, False)
                return
            except RigFault as err:
                log.warning(kv("shutdown_withdraw_failed", rig=self.cfg.id, attempt=attempt,
                               error=str(err)))
