"""One rig's loop: how a reading becomes a decision, and a status sample the fill cycle's actions.

The pieces, each in its module: `link` keeps the controller alive and hands every status sample
to `observe`; `intake` turns reader lines into readings bound to the cylinder on the scale;
`decide` judges and records them; `actuator` writes the permit, lamps and buzzer and alone owns
the rig's lock; `ledger` records the fills; `screen` publishes what the operator sees. The fill
cycle itself is pure (station.core.fillcycle): this loop carries out the actions it returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from drivers.reader import Line, TagReader
from drivers.rig import RigController, RigStatus
from station.city.clockwatch import ClockWatch
from station.city.lookup import Answer, LookupService
from station.config import RigConfig, StationConfig
from station.core.fillcycle import (
    OVER_REPORT,  # noqa: F401 - re-exported for tests/faults/kill9.py
    Action,
    Closed,
    FillCycle,
    Grant,
    Lamps,
    Limits,
    Opened,
    Refused,
    Started,
    Withdraw,
)
from station.core.model import Decision, Reading, Verdict
from station.errors import RigFault, StoreError
from station.logfmt import kv
from station.store.answers import settle_all
from station.store.db import Store

from .actuator import Actuator
from .checks import Checklists
from .decide import Decider
from .intake import Intake
from .ledger import Ledger
from .link import Link
from .screen import Screen, fault_shown
from .state import RigState
from .storethread import DEADLINE_S, StoreThread

log = logging.getLogger("station.rig")

PREEMPTED = "another reading at the rig"  # why an unused permit ends when a reading comes


def store_deadline_s(rig: RigConfig) -> float:
    """How long (s) a decision's store call may wait (storethread.DEADLINE_S), at most half
    the watchdog period: the link heartbeats a rig for one period after the last feed."""
    return min(DEADLINE_S, rig.watchdog_ms / 2000)


def limits_for(rig: RigConfig, station: StationConfig) -> Limits:
    """The fill cycle's numbers from the configuration (kg → g)."""
    f = station.fill
    ask_pre, ask_post = Checklists.stages(rig, station)
    return Limits(permit_timeout_s=rig.permit_timeout_s, tolerance_g=round(f.tolerance_kg * 1000),
                  max_residual_g=round(f.max_residual_kg * 1000) if f.max_residual_kg else None,
                  refuse_residual=f.refuse_residual, settle_timeout_s=f.settle_timeout_s,
                  start_gain_g=round(f.start_gain_kg * 1000), ask_pre=ask_pre,
                  ask_post=ask_post, answer_within_s=station.checks.answer_within_s)


class RigLoop:
    """Serves one rig, as tasks: the link (connect, heartbeat, poll → observe), the readers
    (→ intake) and the readings (intake → handle → decide → apply)."""

    def __init__(self, cfg: RigConfig, station: StationConfig, controller: RigController,
                 readers: list[TagReader], store: Store, lookups: LookupService,
                 clock: ClockWatch, on_fill: Callable[[], None] = lambda: None,
                 writes: StoreThread | None = None):
        self.cfg, self.controller, self.readers = cfg, controller, readers
        self.state, self.cycle = RigState(), FillCycle(limits_for(cfg, station))
        # the store thread (one per daemon; its own when none is given, closed at shutdown)
        self.owns_writes = writes is None
        self.writes = writes or StoreThread(store, store_deadline_s(cfg))
        self.ledger = Ledger(cfg, station, store, self.writes, on_fill)
        self.screen = Screen(cfg, store, self.state, self.cycle, self.ledger.unsaved,
                             self.writes)
        self.actuator = Actuator(cfg, controller, self.state, self.screen, self.ledger)
        self.intake = Intake(cfg, station, store, self.state, self.writes)
        self.decide = Decider(cfg, station, store, lookups, clock, self.state, self.cycle,
                              self.screen, self.ledger, self.intake, self.writes)
        self.link = Link(cfg, controller, self.state, self.cycle, self.actuator, self.ledger,
                         self.screen, self.observe, self.intake.take_manual_entries)
        camera = next((r for r in readers if hasattr(r, "take_photo")), None)
        self.checks = Checklists(cfg, station, store, self.cycle, camera)
        self.checks.settle = lambda outcomes: self.writes.post(settle_all, outcomes)
        self.screen.question = self.checks.shown

    async def run(self) -> None:
        """The rig's tasks; returns only by cancellation (or raises what one of them did)."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.link.run())
            group.create_task(self._readings())
            for reader in self.readers:
                group.create_task(self.intake.feed(reader))

    # --- how a reading becomes a decision -------------------------------------------------
    async def _readings(self) -> None:
        """Each reading in turn; a held one looked at after every line and every poll_ms."""
        while True:
            await self.process(*await self.intake.next())

    async def process(self, line: Line | None, arrived: tuple[int, bool]) -> None:
        """One turn of the readings: `line` (None: none came within poll_ms), then the held
        reading (after every line too: a reader repeating faster than the poll must not starve
        it). Any error ends in no permit, never in the end of the loop."""
        try:
            if line is not None:
                await self.handle(line, arrived)
            await self._held()
        except RigFault as err:  # (the cycle idle again: a permit void before it was written)
            log.error(kv("rig_write_failed", rig=self.cfg.id, error=str(err)))
        except Exception as err:  # noqa: BLE001 - a bad reading must never end the rig loop
            store = isinstance(err, StoreError)  # not recorded: refused, shown as such
            (log.error if store else log.critical)(kv(
                "decision_failed", rig=self.cfg.id, error=repr(err),
                action="refused without permit"))
            if self.cycle.abandon():
                if store:
                    self.screen.show(fault_shown("STORE_FAULT"))
                await self.actuator.quietly(self.actuator.show_refusal())

    async def handle(self, line: Line, arrived: tuple[int, bool] | None = None) -> Verdict | None:
        """One reading: `arrived` is the scale's epoch (placement, occupied) when it arrived.
        The verdict recorded for it, or None (a repeat, a badge, a tag being bound, a reading
        during a fill, one void or held for its cylinder)."""
        sorted_ = self.intake.sort(line)
        if sorted_ is None:
            return None
        reading, kind = sorted_
        if reading.kind == "badge":
            override = await self.decide.badge(reading, line)
            if override is not None:
                decision, answer, by, scale_g = override
                decision = await self.apply(decision, answer, by, scale_g)
                self.decide.log(decision, answer, line.at)
            return None
        if await self.intake.for_binding(reading):
            return None  # a new tag being bound (station bind): not a cylinder to judge
        if not self.cycle.busy:
            await self._refresh(line.at)
        if self.cycle.busy:
            self.decide.ignored(reading)
            return None
        void = self.intake.bind(line, reading, kind, arrived)
        if void is not None:
            if void:
                await self._void(line, reading, kind, void)
            return None
        scale_g = self.state.stable_gross()
        if scale_g is None and self.decide.worth_holding(reading):
            if not self.intake.hold(line, reading, kind):
                await self._void(line, reading, kind, "no cylinder on the scale")
            return None
        return await self._judge(reading, line, scale_g)

    async def _judge(self, reading: Reading, line: Line, scale_g: int | None) -> Verdict:
        """Judge and record a reading for the cylinder weighing `scale_g` (g); tell the rig."""
        decision, answer = await self.decide.for_cylinder(reading, line, scale_g)
        decision = await self.apply(decision, answer, scale_g=scale_g)
        self.decide.log(decision, answer, line.at)
        return decision.verdict

    async def _void(self, line: Line, reading: Reading, kind: str, why: str) -> None:
        decision = self.decide.void(line, reading, kind, why)
        if decision is not None:
            decision = await self.apply(decision, None)
            self.decide.log(decision, None, line.at)

    async def _held(self) -> None:
        """Judge the held reading once its cylinder stands stable; void it when it cannot."""
        taken = self.intake.take_held(self.cycle.busy)
        if taken is None:
            return
        held, what = taken
        if what == "judge":
            await self._judge(held.reading, held.line, self.state.stable_gross())
        else:
            await self._void(held.line, held.reading, held.kind, what.removeprefix("void: "))

    async def _refresh(self, since: float = float("inf")) -> None:
        """Judge on the rig as it is now, not as the last poll saw it (a sample begun after
        `since`, monotonic s: when the reading arrived); drop an unused permit."""
        if not self.state.connected:
            self.cycle.rig_lost()
            return
        try:
            wake = getattr(self.controller, "wake", None)
            if wake is not None:
                wake()  # full poll rate from now; a poll's wait ends, its fresh sample reused
            async with self.actuator.exclusive():
                await self.observe(await self._fresh_status(since))
                if self.cycle.busy:
                    return  # the valve opened meanwhile: the caller treats the reading as busy
                if self.cycle.holds_permit:  # (a failed withdrawal leaves the cycle holding it)
                    await self.actuator.withdraw(PREEMPTED)
                await self.execute(self.cycle.preempt(PREEMPTED))
        except RigFault as err:
            self.link.mark(False, str(err))

    async def _fresh_status(self, since: float) -> RigStatus:
        """The rig's status for a decision (the lock held): a poll sample begun after `since`
        (monotonic s: the reading's arrival, so it shows the cylinder scanned) and after the
        permit was last written (so it shows the permit as it is) is reused
        (ModbusRig.read_status's max_age_s); else read with the writes' priority."""
        interval = getattr(self.controller, "poll_interval_s", None)
        if interval is None:
            return await self.controller.read_status()
        now = time.monotonic()
        newest = max(since if since != float("inf") else now, self.actuator.exclusive().permit_at)
        return await self.controller.read_status(
            max_age_s=max(0.0, min(interval(pending=True), now - newest)), urgent=True)

    async def apply(self, decision: Decision, answer: Answer | None,
                    override: tuple[str, str] | None = None,
                    scale_g: int | None = None) -> Decision:
        """Record the decision (durable before the rig hears of it) and tell the rig: a refusal
        shows red at once; an accepted cylinder shows green and enters the cycle, bound to the
        gross `scale_g` (g) it was weighed at. When the permit follows at once (the cylinder
        stands stable on the scale) the decision and the fill's open row are one commit, made
        before the permit is written. The decision recorded; StoreError when the store cannot
        commit it in time (the cycle idle again: no permit)."""
        if not decision.verdict.permit:
            decision = await self.decide.commit(decision, answer)
            await self.actuator.show_refusal()
            return decision
        ctx = self.decide.context(decision, answer, override, scale_g)
        async with self.actuator.exclusive():
            self.cycle.accept(ctx)
            actions: list[Action] = []
            if self.state.status is not None:  # on the scale already: the permit follows now
                actions = self.cycle.step(self.state.status, time.monotonic(), time.time())
            opened = next((a for a in actions if isinstance(a, Opened)), None)
            if opened is not None and not self._still_judged(opened):
                actions, opened = [], None
            self._keep_alive()  # the poll waits for the lock meanwhile: the link heartbeats on
            try:
                decision = await self.decide.commit(decision, answer, ctx if opened else None)
            except BaseException as err:
                self.cycle.void_permit()  # nothing committed: no permit, the cycle idle
                if opened is not None and isinstance(err, StoreError):
                    self.ledger.refused(err)
                raise
            ctx.decision_id = decision.id or 0
            await self.execute([a for a in actions if a is not opened])
            await self.actuator.show_lamps()  # accepted: green now; the permit once on the scale
        self.screen.publish()
        return decision

    # --- how a status sample becomes the fill cycle's actions (the lock held) --------------
    async def observe(self, status: RigStatus) -> None:
        """One status sample through the fill cycle (called with the lock held)."""
        self.state.status, self.state.fault = status, status.fault_text()
        self.state.lamps = (status.lamp_green, status.lamp_red)  # (all writes hold the lock)
        self.state.scale.sample(status.cylinder_present, time.monotonic())
        if status.permit and not self.cycle.holds_permit:
            await self.actuator.withdraw("permit set that the daemon does not hold")
        await self.execute(self.cycle.step(status, time.monotonic(), time.time()))
        await self.execute(self.checks.take(time.monotonic()))  # the operator's checklist
        await self.execute(self.checks.pressed(status, time.monotonic()))  # or the button
        await self.actuator.show_lamps()
        self.screen.publish()

    async def execute(self, actions: list[Action]) -> None:
        """Carry out the fill cycle's actions in order (the lock held): no permit is written
        unless its open row was committed first and its cylinder is still the one judged."""
        self.ledger.retry()
        for action in actions:
            if isinstance(action, Opened):
                if not await self._open(action):
                    return  # no fill without its record: the permit is not written
            elif isinstance(action, Grant):
                ctx = self.cycle.ctx
                await self.actuator.grant(action, ctx.cylinder_id if ctx else None)
                if ctx is not None:
                    self.checks.photograph(ctx)  # the cylinder as it stood (in the background)
            elif isinstance(action, Withdraw):
                await self.actuator.withdraw(action.why)
            elif isinstance(action, Lamps):
                await self.actuator.show_lamps()  # the lamps of the state now, not the action's
            elif isinstance(action, Closed):
                self.ledger.close(action)
            elif isinstance(action, Started):
                self.ledger.started(action.ctx)
            elif isinstance(action, Refused):
                shown = fault_shown(action.reason)  # now; its decision once recorded
                if action.ctx.extra.get("defects"):
                    shown["defects"] = list(action.ctx.extra["defects"])
                self.screen.show(shown)
                self.actuator.spawn(self.decide.pre_fill_refused(action))  # not in the poll
                await self.actuator.show_lamps()

    def _still_judged(self, opened: Opened) -> bool:
        """The cylinder judged is still the one on the scale; else the permit is void
        (logged, the cycle idle)."""
        placement = opened.ctx.extra.get("placement")
        if placement is not None and placement != self.state.scale.current():
            log.warning(kv("permit_void", rig=self.cfg.id,
                           why="the cylinder judged is no longer the one on the scale"))
            self.cycle.void_permit()
            return False
        return True

    def _keep_alive(self) -> None:
        """The link heartbeats on for another feed_s (drivers.modbus_rig.keep_alive) while
        this task waits on the store (at most the store thread's deadline, less than feed_s)."""
        keep_alive = getattr(self.controller, "keep_alive", None)
        if keep_alive is not None:
            keep_alive()

    async def _open(self, opened: Opened) -> bool:
        """Commit the open row of the fill about to be permitted (a cylinder accepted before
        it stood stable: the poll's own step), within the store thread's deadline; False (the
        permit void) when the cylinder judged left the scale or the store cannot commit it."""
        if not self._still_judged(opened):
            return False
        self._keep_alive()
        if not await self.ledger.open(opened.ctx):
            self.cycle.void_permit()
            self.screen.show(fault_shown("STORE_FAULT"))
            self.actuator.spawn(self.actuator.quietly(self.actuator.show_refusal()))
            return False
        return True

    async def shutdown(self) -> None:
        """Withdraw the permit and put the lamps out; a running fill is recorded interrupted.
        Called on SIGTERM before exiting."""
        await self.actuator.stand_down()
        await self.execute(self.cycle.stop("station stopped", time.time()))
        await self.ledger.at_exit()
        if self.owns_writes:
            self.writes.close()
