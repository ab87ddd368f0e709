"""One rig's loop: keep the controller alive, judge each reading, run the fill cycle."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from drivers.reader import Line, TagReader
from drivers.rig import RigController, RigStatus
from station.city.clockwatch import ClockWatch
from station.city.lookup import Answer, LookupService, tag_key
from station.config import RigConfig, StationConfig
from station.core import fills
from station.core.fillcycle import (
    OVER_REPORT,  # noqa: F401 - re-exported for tests/faults/kill9.py
    Action,
    Closed,
    FillContext,
    FillCycle,
    Grant,
    Lamps,
    Limits,
    Opened,
    Refused,
    Started,
    Withdraw,
)
from station.core.model import Decision, Reading, RigCondition, Verdict
from station.core.onscale import CONTINUOUS
from station.core.rules import (
    Policy,
    fill_plan,
    judge,
    mass_rule,
    screen,
    stamped_tare,
    tare_tolerance_g,
)
from station.errors import RigFault, StoreError
from station.logfmt import kv
from station.store.db import Store

from .actuator import Actuator
from .intake import Intake
from .ledger import Ledger
from .link import Link
from .screen import Screen, fault_shown, shown_verdict
from .state import RigState

log = logging.getLogger("station.rig")

PREEMPTED = "another reading at the rig"  # why an unused permit ends when a reading comes

def limits_for(rig: RigConfig, station: StationConfig) -> Limits:
    f = station.fill
    return Limits(permit_timeout_s=rig.permit_timeout_s, tolerance_g=round(f.tolerance_kg * 1000),
                  max_residual_g=round(f.max_residual_kg * 1000) if f.max_residual_kg else None,
                  refuse_residual=f.refuse_residual, settle_timeout_s=f.settle_timeout_s,
                  start_gain_g=round(f.start_gain_kg * 1000))


class RigLoop:
    """Serves one rig: control (heartbeat, status, fill cycle) and decisions, as tasks."""

    def __init__(self, cfg: RigConfig, station: StationConfig, controller: RigController,
                 readers: list[TagReader], store: Store, lookups: LookupService,
                 clock: ClockWatch, on_fill: Callable[[], None] = lambda: None):
        self.cfg, self.station, self.controller = cfg, station, controller
        self.readers, self.store, self.lookups, self.on_fill = readers, store, lookups, on_fill
        self.clock = clock
        self.policy = Policy(frozenset((station.unit_name, *station.fills_for)), station.rules)
        self.state = RigState()
        self.cycle = FillCycle(limits_for(cfg, station))
        self.ledger = Ledger(cfg, station, store, on_fill)
        self.screen = Screen(cfg, store, self.state, self.cycle, self.ledger.unsaved)
        self.actuator = Actuator(cfg, controller, self.state, self.screen, self.ledger)
        self.intake = Intake(cfg, station, store, self.state)
        self.link = Link(cfg, controller, self.state, self.cycle, self.actuator, self.ledger,
                         self.screen, self.observe, self.intake.take_manual_entries)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.link.run())
            group.create_task(self._decide())
            for reader in self.readers:
                group.create_task(self.intake.feed(reader))

    @property
    def operator(self) -> str | None:
        return self.screen.operator()

    async def observe(self, status: RigStatus) -> None:
        """One status sample through the fill cycle (called with the lock held)."""
        self.state.status, self.state.fault = status, status.fault_text()
        self.state.lamps = (status.lamp_green, status.lamp_red)  # (all writes hold the lock)
        self.state.scale.sample(status.cylinder_present, time.monotonic())
        if status.permit and not self.cycle.holds_permit:
            await self.actuator.withdraw("permit set that the daemon does not hold")
        await self.execute(self.cycle.step(status, time.monotonic(), time.time()))
        await self.actuator.show_lamps()
        self.screen.publish()

    async def execute(self, actions: list[Action]) -> None:
        self.ledger.retry()
        for action in actions:
            if isinstance(action, Opened):
                placement = action.ctx.extra.get("placement")
                if placement is not None and placement != self.state.scale.current():
                    log.warning(kv("permit_void", rig=self.cfg.id,
                                   why="the cylinder judged is no longer the one on the scale"))
                    self.cycle.void_permit()
                    return
                if not self._open(action.ctx):
                    return  # no fill without its record: the permit is not written
            elif isinstance(action, Grant):
                await self.actuator.grant(action, self.cycle.ctx.cylinder_id if self.cycle.ctx else None)
            elif isinstance(action, Withdraw):
                await self.actuator.withdraw(action.why)
            elif isinstance(action, Lamps):
                await self.actuator.show_lamps()  # the lamps of the state now, not of the action
            elif isinstance(action, Closed):
                self.ledger.close(action)
            elif isinstance(action, Started):
                self.ledger.started(action.ctx)
            elif isinstance(action, Refused):
                self._pre_fill_refused(action)
                await self.actuator.show_lamps()

    def _pre_fill_refused(self, refused: Refused) -> None:
        """The cylinder failed a check at the scale after its verdict: a refusal decision."""
        self.ledger.event("pre_check_refused", f"{refused.reason}: {refused.why}")
        log.warning(kv("pre_check_refused", rig=self.cfg.id, reason=refused.reason,
                       why=refused.why))
        reading = refused.ctx.extra.get("reading")
        if reading is None:
            self.screen.show(fault_shown(refused.reason))
            return
        verdict = Verdict(permit=False, reason=refused.reason, detail=refused.why,
                          cylinder_id=refused.ctx.cylinder_id)
        try:
            self._record(reading, verdict, None, time.monotonic())
        except StoreError as err:
            log.error(kv("store_error", rig=self.cfg.id, error=str(err)))

    def _open(self, ctx: FillContext) -> bool:
        """Commit the open fill row before the permit; a store that cannot means no fill."""
        if not self.ledger.open(ctx):
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
        self.ledger.at_exit()

    # --- readings and decisions -------------------------------------------------------------
    async def _decide(self) -> None:
        while True:
            line, arrived = await self.intake.next()
            try:  # (a held reading is looked at after every line too: a reader repeating
                # faster than the poll must not starve it)
                if line is not None:
                    await self.handle(line, arrived)
                await self._held()
            except RigFault as err:
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
        """One reading: `arrived` is the scale's epoch (placement, occupied) when it arrived."""
        sorted_ = self.intake.sort(line)
        if sorted_ is None:
            return None
        reading, kind = sorted_
        if reading.kind == "badge":
            await self._badge(reading, line)
            return None
        if self.intake.for_binding(reading):
            return None  # a new tag being bound (station bind): not a cylinder to judge
        if self.cycle.busy:
            self._busy(reading)
            return None
        await self._refresh()
        if self.cycle.busy:
            self._busy(reading)
            return None
        void = self.intake.bind(line, reading, kind, arrived)
        if void is not None:
            if void:
                await self._void(line, reading, kind, void)
            return None
        scale_g = self.state.stable_gross()
        if scale_g is None and reading.kind != "invalid" and screen(
                reading, self.condition(before_city=True, weigh=False),
                self.store.blocklist()) is None:
            return await self._hold(line, reading, kind)
        return await self._decide_for_cylinder(reading, line, scale_g)

    async def _decide_for_cylinder(self, reading: Reading, line: Line,
                                   scale_g: int | None) -> Verdict:
        """Judge a reading for the cylinder standing on the scale (weighing `scale_g` grams),
        record the decision, then tell the rig."""
        self.ledger.hold_no_records()
        placement = self.state.scale.placement
        answer, verdict = await self._judge(reading, scale_g)
        if verdict.permit and (self.state.scale.placement != placement
                               or not self.state.scale.on_scale):
            verdict = Verdict(permit=False, reason="NO_CYLINDER", cylinder_id=verdict.cylinder_id,
                              detail="the cylinder left the scale while it was judged")
        elif verdict.permit and self.cycle.filled_on_scale:
            verdict = Verdict(permit=False, reason="CYLINDER_FULL", cylinder_id=verdict.cylinder_id,
                              detail="filled to its target just now on this scale: take it off "
                                     "before another fill")
        self.intake.again_later(line, reading, verdict.reason)
        if line.box is not None:
            verdict = replace(verdict, detail=f"{verdict.detail}; code at x,y,w,h "
                              f"{','.join(map(str, line.box))}".lstrip("; "))
        decision = self._record(reading, verdict, answer, line.at)
        await self._apply(decision, answer, scale_g=scale_g)
        self._log(decision, answer, line.at)
        return verdict

    async def _hold(self, line: Line, reading: Reading, kind: str) -> None:
        """No cylinder standing stable: the reading waits for it, or is void at once."""
        if not self.intake.hold(line, reading, kind):
            await self._void(line, reading, kind, "no cylinder on the scale")

    async def _held(self) -> None:
        """Judge the held reading once its cylinder stands stable; void it when it cannot."""
        taken = self.intake.take_held(self.cycle.busy)
        if taken is None:
            return
        held, what = taken
        if what == "judge":
            await self._decide_for_cylinder(held.reading, held.line, self.state.stable_gross())
        else:
            await self._void(held.line, held.reading, held.kind, what.removeprefix("void: "))

    async def _void(self, line: Line, reading: Reading, kind: str, why: str) -> None:
        """A reading no cylinder can be judged for: a scanner's (deliberate) one is refused
        NO_CYLINDER and recorded; an RFID or camera sighting is only logged (and its tag read
        afresh at its next sighting)."""
        log.info(kv("reading_void", rig=self.cfg.id, reader=line.reader_id,
                    reading=reading.raw[:200], why=why))
        if kind in CONTINUOUS:
            self.state.scale.forget(line.reader_id, reading.value or reading.raw)
            return
        verdict = Verdict(permit=False, reason="NO_CYLINDER", detail=why)
        decision = self._record(reading, verdict, None, line.at)
        await self._apply(decision, None)
        self._log(decision, None, line.at)

    def _record(self, reading: Reading, verdict: Verdict, answer: Answer | None,
                t0: float, operator: str | None = None) -> Decision:
        decision = Decision(at=datetime.now(UTC), rig_id=self.cfg.id, reading=reading,
                            verdict=verdict, source=answer.lookup.source if answer else "none",
                            cache_age_s=round(answer.lookup.age_s, 1)
                            if answer and answer.lookup.source == "cache" else None,
                            latency_ms=(time.monotonic() - t0) * 1000,
                            operator=operator or self.operator)
        decision_id = self.store.record_decision(  # durable before the rig hears of it
            decision, answer.city_record if answer else None,
            tag_key(reading) if answer else None, bool(answer and answer.forget_tag),
            answer.remember if answer else None)
        self.state.refusal = None
        if not verdict.permit and verdict.reason in self.station.override.reasons:
            self.state.refusal = (time.monotonic(), reading, answer, decision_id,
                                  self.state.scale.current(), self.state.stable_gross())
        record = answer.lookup.record if answer and isinstance(answer.lookup.record, dict) else {}
        self.screen.show(shown_verdict(decision_id, verdict, record, reading))
        return replace(decision, id=decision_id)

    def _busy(self, reading: Reading) -> None:
        """A reading while a cylinder is being filled: noted, the fill goes on untouched."""
        log.warning(kv("reading_ignored", rig=self.cfg.id, reading=reading.raw[:200],
                       why="fill in progress"))
        self.ledger.event("reading_ignored", f"fill in progress: {reading.raw[:100]}")

    async def _refresh(self) -> None:
        """Judge on the rig as it is now, not as the last poll saw it; drop an unused permit."""
        if not self.state.connected:
            self.cycle.rig_lost()
            return
        try:
            async with self.actuator.exclusive():
                await self.observe(await self.controller.read_status())
                if self.cycle.busy:
                    return  # the valve opened meanwhile: the caller treats the reading as busy
                if self.cycle.holds_permit:  # (a failed withdrawal leaves the cycle holding it)
                    await self.actuator.withdraw(PREEMPTED)
                await self.execute(self.cycle.preempt(PREEMPTED))
        except RigFault as err:
            self.link.mark(False, str(err))

    async def _judge(self, reading: Reading, scale_g: int | None) -> tuple[Answer | None, Verdict]:
        blocklist = self.store.blocklist()
        # (a clock not yet compared with the city is judged after asking it: its Date decides)
        early = screen(reading, self.condition(before_city=True, scale_g=scale_g), blocklist)
        if early is not None:
            return None, early
        answer = await self.lookups.lookup(reading)
        record = answer.lookup.record
        cid = record.get("id") if isinstance(record, dict) else None
        last = self.store.last_fill_at(cid) if isinstance(cid, str) else None
        last_at = datetime.fromtimestamp(last, UTC) if last else None
        # The rig may have failed while the city was asked: judge on the state now.
        return answer, judge(reading, self.condition(scale_g=scale_g), answer.lookup,
                             self.policy, blocklist, datetime.now(UTC), last_at)

    def condition(self, before_city: bool = False, scale_g: int | None = None,
                  weigh: bool = True) -> RigCondition:
        """The rig as the rules see it; `scale_g` is the stable gross the reading is judged
        against (bound when the reading was), `weigh=False` to screen without a cylinder."""
        st = self.state
        healthy = bool(st.connected and st.status is not None and st.status.healthy)
        return RigCondition(rig_id=self.cfg.id, medium=self.cfg.medium, healthy=healthy,
                            fault="" if healthy else st.fault or "rig not connected",
                            clock_problem=self.clock.problem(before_city) or "",
                            operator=self.operator, scale_g=scale_g, weigh=weigh)

    async def _apply(self, decision: Decision, answer: Answer | None,
                     override: tuple[str, str] | None = None, scale_g: int | None = None) -> None:
        """A refusal shows red at once; an accepted cylinder shows green and enters the cycle,
        bound to the gross `scale_g` (g) it was weighed at."""
        verdict = decision.verdict
        if not verdict.permit:
            await self.actuator.show_refusal()
            return
        record = answer.lookup.record if answer else None
        record = record if isinstance(record, dict) else {}
        ctx = fills_context(decision, record, verdict, override, self.cfg.medium)
        ctx.judged_g, ctx.extra["reading"] = scale_g, decision.reading
        ctx.extra["placement"] = self.state.scale.current()
        ctx.swap_g = tare_tolerance_g(verdict.tare_g, stamped_tare(record), self.station.rules)
        async with self.actuator.exclusive():
            self.cycle.accept(ctx)
            if self.state.status is not None:  # on the scale already: the permit follows now
                await self.execute(self.cycle.step(self.state.status, time.monotonic(),
                                                   time.time()))
            await self.actuator.show_lamps()  # accepted: green now; the permit once it is on the scale
        self.screen.publish()

    async def _badge(self, reading: Reading, line: Line) -> None:
        """A staff card: a supervisor's overrides a recent refusal; otherwise log in or out."""
        op = self.station.badge(reading.value)
        if op is None:
            return
        refusal = self.state.refusal
        window = self.station.override.window_s
        if op.role == "supervisor":  # an override attempt or nothing: never a log-in
            if refusal and time.monotonic() - refusal[0] <= window:
                await self._override(op.name, refusal, line)
                return
            why = f"a supervisor's badge overrides a refusal within {window:g} s; no " \
                  "overridable refusal is waiting (shifts change by an operator's own badge)"
            log.info(kv("badge_ignored", rig=self.cfg.id, holder=op.name, why=why))
            self.ledger.event("badge_ignored", why)
            return
        event = "logout" if self.operator == op.name else "login"
        self.store.operator_event(self.cfg.id, op.name, event, via=f"badge:{reading.reader}")
        log.info(kv(f"operator_{event}", rig=self.cfg.id, operator=op.name, role=op.role))

    async def _override(self, supervisor: str, refusal: tuple, line: Line) -> None:
        """Permit a cylinder refused for an overridable reason; recorded with who and why."""
        _, reading, answer, refused_id, placement, refused_g = refusal
        self.state.refusal = None
        reason = self.station.override.reason_text
        record = answer.lookup.record if answer and isinstance(answer.lookup.record, dict) else {}
        plan = fill_plan({"medium_code": self.cfg.medium, **record},
                         self.station.rules.cylinder_types)
        scale_g = self.state.stable_gross()
        why = self._override_blocked(reading, answer, plan, scale_g)
        swap_g = tare_tolerance_g(plan[0], stamped_tare(record), self.station.rules) if plan \
            else 0
        if placement is None or placement != self.state.scale.current() or refused_g is None \
                or scale_g is None or abs(scale_g - refused_g) > swap_g:
            why = "the cylinder refused is no longer the one on the scale"
        if why:
            log.warning(kv("override_refused", rig=self.cfg.id, supervisor=supervisor, why=why))
            self.ledger.event("override_refused", why)
            return
        verdict = Verdict(permit=True, cylinder_id=record.get("id"), tare_g=plan[0],
                          target_g=plan[1], detail=f"override of decision {refused_id} by "
                          f"{supervisor}: {reason}")
        decision = self._record(reading, verdict, answer, line.at)
        log.warning(kv("override", rig=self.cfg.id, supervisor=supervisor, decision=refused_id,
                       reason=reason))
        await self._apply(decision, answer, override=(supervisor, reason), scale_g=scale_g)
        self._log(decision, answer, line.at)

    def _override_blocked(self, reading: Reading, answer: Answer | None,
                          plan: tuple[int, int] | None, scale_g: int | None) -> str:
        """Why an override may not go ahead: the rig, the operator, the cylinder on the scale
        (its mass against the plan), or any rule other than the overridden one failing on what
        the station knows (the cached record, however old)."""
        cond = self.condition(scale_g=scale_g)
        if not cond.healthy or cond.clock_problem or not cond.operator:
            return "rig not healthy, clock not trusted, or no operator"
        if plan is None:
            return "no fill target"
        record = answer.lookup.record if answer else None
        stamped = isinstance(record, dict) and stamped_tare(record)
        wrong = mass_rule(scale_g, plan, stamped, self.station.rules)
        if wrong is not None:
            return f"{wrong.reason}: {wrong.detail}"
        lookup = answer.lookup if answer else None
        if lookup is None or lookup.record is None:
            return "no cached city record: an override needs one that passes every other rule"
        waived = replace(self.policy, rules=replace(self.policy.rules,
                                                    offline_max_age_h=24 * 365 * 100))
        verdict = judge(reading, cond, lookup, waived, self.store.blocklist(), datetime.now(UTC))
        return "" if verdict.permit else f"the cached record fails {verdict.reason}"

    def _log(self, d: Decision, answer: Answer | None, t0: float) -> None:
        v = d.verdict
        log.info(kv(
            "decision", rig=d.rig_id, reader=d.reading.reader, reading=d.reading.raw[:200],
            kind=d.reading.kind, cylinder=v.cylinder_id, verdict="permit" if v.permit else "refuse",
            reason=v.reason, warnings=",".join(v.warnings) or None, source=d.source,
            cache_age_s=d.cache_age_s, city_ms=answer.elapsed_ms if answer else None,
            latency_ms=(time.monotonic() - t0) * 1000, detail=v.detail or None))


def fills_context(decision: Decision, record: dict, verdict: Verdict,
                  override: tuple[str, str] | None, rig_medium: str) -> FillContext:
    """The fill cycle's context for an accepted cylinder."""
    reading = decision.reading
    info = record.get("info_code") if isinstance(record.get("info_code"), str) else None
    return FillContext(
        record_id=fills.new_record_id(), decision_id=decision.id,
        cylinder_id=verdict.cylinder_id, info_code=info or (
            reading.value if reading.kind in ("qr_url", "info_code") else None),
        tag=reading.value, medium=str(record.get("medium_code") or rig_medium),
        operator=decision.operator,
        source=decision.source, cache_age_s=decision.cache_age_s, tare_g=verdict.tare_g,
        target_g=verdict.target_g, override_by=override[0] if override else None,
        override_reason=override[1] if override else None, accepted_at=time.monotonic())
