"""One rig's decisions: screen → lookup → judge → record; staff badges and overrides."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime

from drivers.reader import Line
from station.city.clockwatch import ClockWatch
from station.city.lookup import Answer, LookupService, tag_key
from station.config import RigConfig, StationConfig
from station.core import fills
from station.core.fillcycle import FillContext, FillCycle, Refused
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
from station.errors import StoreError
from station.logfmt import kv
from station.store.db import Store

from .intake import Intake
from .ledger import Ledger
from .screen import Screen, fault_shown, shown_verdict
from .state import RigState
from .storethread import StoreThread

log = logging.getLogger("station.rig")

# A supervisor's override to carry out: the decision (to record), the city's answer, (supervisor,
# reason) and the stable gross (g) the cylinder weighed.
Override = tuple[Decision, Answer | None, tuple[str, str], int | None]


class Decider:
    """Decides on one rig's readings by the rules (station.core.rules) and records each
    decision durably before the rig hears of it; shows it on the screen; keeps the last
    overridable refusal for a supervisor's badge. Writes no controller: the loop applies."""

    def __init__(self, cfg: RigConfig, station: StationConfig, store: Store,
                 lookups: LookupService, clock: ClockWatch, state: RigState, cycle: FillCycle,
                 screen: Screen, ledger: Ledger, intake: Intake, writes: StoreThread):
        self.cfg, self.station, self.store, self.lookups, self.clock = \
            cfg, station, store, lookups, clock
        self.writes = writes  # the store thread: every write (reads: `store`, the loop's own)
        self.state, self.cycle, self.screen, self.ledger, self.intake = \
            state, cycle, screen, ledger, intake
        self.policy = Policy(frozenset((station.unit_name, *station.fills_for)), station.rules)

    def operator(self) -> str | None:
        """The operator on shift at this rig (StoreError when the store cannot tell)."""
        return self.store.operator_on_shift(self.cfg.id)

    def condition(self, before_city: bool = False, scale_g: int | None = None,
                  weigh: bool = True) -> RigCondition:
        """The rig as the rules see it; `scale_g` is the stable gross the reading is judged
        against (bound when the reading was), `weigh=False` to screen without a cylinder."""
        st = self.state
        healthy = bool(st.connected and st.status is not None and st.status.healthy)
        return RigCondition(rig_id=self.cfg.id, medium=self.cfg.medium, healthy=healthy,
                            fault="" if healthy else st.fault or "rig not connected",
                            clock_problem=self.clock.problem(before_city) or "",
                            operator=self.operator(), scale_g=scale_g, weigh=weigh)

    def worth_holding(self, reading: Reading) -> bool:
        """A reading that passes every check made without a cylinder: held for one to stand
        stable on the scale (a reading that fails one is refused at once)."""
        return reading.kind != "invalid" and screen(
            reading, self.condition(before_city=True, weigh=False),
            self.store.blocklist()) is None

    async def judge(self, reading: Reading, scale_g: int | None) -> tuple[Answer | None, Verdict]:
        """The verdict on `reading` for a cylinder weighing `scale_g` (g): screened first (no
        city query for a refusal), then the city's answer (or the cache) judged on the rig as
        it is after the lookup."""
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

    async def for_cylinder(self, reading: Reading, line: Line,
                           scale_g: int | None) -> tuple[Decision, Answer | None]:
        """Judge a reading for the cylinder standing on the scale (weighing `scale_g` g): the
        decision, not yet recorded (the loop's `apply` commits it, with its fill row when the
        permit follows at once). StoreError while a fill record is held in memory (no new
        fill)."""
        await self.ledger.settle()
        placement = self.state.scale.placement
        answer, verdict = await self.judge(reading, scale_g)
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
        return self.decision(reading, verdict, answer, line.at), answer

    def void(self, line: Line, reading: Reading, kind: str, why: str) -> Decision | None:
        """A reading no cylinder can be judged for: a scanner's (deliberate) one is refused
        NO_CYLINDER and recorded (the decision returned); an RFID or camera sighting is only
        logged, and its tag read afresh at its next sighting (None). Not yet recorded."""
        log.info(kv("reading_void", rig=self.cfg.id, reader=line.reader_id,
                    reading=reading.raw[:200], why=why))
        if kind in CONTINUOUS:
            self.state.scale.forget(line.reader_id, reading.value or reading.raw)
            return None
        verdict = Verdict(permit=False, reason="NO_CYLINDER", detail=why)
        return self.decision(reading, verdict, None, line.at)

    def decision(self, reading: Reading, verdict: Verdict, answer: Answer | None,
                 t0: float, operator: str | None = None) -> Decision:
        """The decision on `reading`, not yet recorded (id None); `t0` (monotonic s) is when
        the reading arrived."""
        return Decision(at=datetime.now(UTC), rig_id=self.cfg.id, reading=reading,
                        verdict=verdict, source=answer.lookup.source if answer else "none",
                        cache_age_s=round(answer.lookup.age_s, 1)
                        if answer and answer.lookup.source == "cache" else None,
                        latency_ms=(time.monotonic() - t0) * 1000,
                        operator=operator or self.operator())

    async def record(self, reading: Reading, verdict: Verdict, answer: Answer | None,
                     t0: float, operator: str | None = None) -> Decision:
        """Build and commit a decision (`decision`, then `commit`)."""
        return await self.commit(self.decision(reading, verdict, answer, t0, operator), answer)

    async def commit(self, decision: Decision, answer: Answer | None,
                     fill: FillContext | None = None) -> Decision:
        """Commit the decision (with what the cache learns from the answer) in the store
        thread, durable before the rig hears of it, and show it; with `fill`, its open fill
        row in the same transaction (a permit written at once: one fsync). The decision with
        its id; StoreError when the store refuses it or cannot commit it within the store
        thread's deadline (nothing committed: no permit)."""
        reading, verdict = decision.reading, decision.verdict
        cache = (answer.city_record if answer else None, tag_key(reading) if answer else None,
                 bool(answer and answer.forget_tag), answer.remember if answer else None)
        if fill is None:
            decision_id = await self.writes.call("record_decision", decision, *cache)
        else:
            decision_id = await self.writes.call("record_grant", decision,
                                                 fills.row(fill, self.cfg.id), *cache)
        self.state.refusal = None
        if not verdict.permit and verdict.reason in self.station.override.reasons:
            self.state.refusal = (time.monotonic(), reading, answer, decision_id,
                                  self.state.scale.current(), self.state.stable_gross())
        record = answer.lookup.record if answer and isinstance(answer.lookup.record, dict) else {}
        self.screen.show(shown_verdict(decision_id, verdict, record, reading))
        return replace(decision, id=decision_id)

    def context(self, decision: Decision, answer: Answer | None,
                override: tuple[str, str] | None, scale_g: int | None) -> FillContext:
        """The fill cycle's context for an accepted cylinder weighed at `scale_g` (g), bound to
        the placement on the scale now."""
        record = answer.lookup.record if answer else None
        record = record if isinstance(record, dict) else {}
        verdict = decision.verdict
        ctx = fills_context(decision, record, verdict, override, self.cfg.medium)
        ctx.judged_g, ctx.extra["reading"] = scale_g, decision.reading
        ctx.extra["placement"] = self.state.scale.current()
        ctx.swap_g = tare_tolerance_g(verdict.tare_g, stamped_tare(record), self.station.rules)
        return ctx

    async def pre_fill_refused(self, refused: Refused) -> None:
        """The cylinder failed a check at the scale after its verdict: a refusal decision
        (a store that refuses it is logged). Runs beside the poll (Actuator.spawn), never in
        it: the poll does not wait on the store."""
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
            await self.record(reading, verdict, None, time.monotonic())
        except StoreError as err:
            log.error(kv("store_error", rig=self.cfg.id, error=str(err)))
            return
        defects = refused.ctx.extra.get("defects")
        if defects and self.state.shown is not None:  # the checklist items the screen names
            self.state.shown = {**self.state.shown, "defects": list(defects)}

    def ignored(self, reading: Reading) -> None:
        """A reading while a cylinder is being filled: noted, the fill goes on untouched."""
        log.warning(kv("reading_ignored", rig=self.cfg.id, reading=reading.raw[:200],
                       why="fill in progress"))
        self.ledger.event("reading_ignored", f"fill in progress: {reading.raw[:100]}")

    async def badge(self, reading: Reading, line: Line) -> Override | None:
        """A staff card: a supervisor's overrides a recent refusal (the override to apply, or
        None when refused); an operator's logs in or out."""
        op = self.station.badge(reading.value)
        if op is None:
            return None
        refusal = self.state.refusal
        window = self.station.override.window_s
        if op.role == "supervisor":  # an override attempt or nothing: never a log-in
            if refusal and time.monotonic() - refusal[0] <= window:
                return self._override(op.name, refusal, line)
            why = f"a supervisor's badge overrides a refusal within {window:g} s; no " \
                  "overridable refusal is waiting (shifts change by an operator's own badge)"
            log.info(kv("badge_ignored", rig=self.cfg.id, holder=op.name, why=why))
            self.ledger.event("badge_ignored", why)
            return None
        event = "logout" if self.operator() == op.name else "login"
        await self.writes.call("operator_event", self.cfg.id, op.name, event,
                               via=f"badge:{reading.reader}")
        log.info(kv(f"operator_{event}", rig=self.cfg.id, operator=op.name, role=op.role))
        return None

    def _override(self, supervisor: str, refusal: tuple, line: Line) -> Override | None:
        """Permit a cylinder refused for an overridable reason, with who and why (recorded by
        the loop's `apply`)."""
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
        if why or plan is None:
            log.warning(kv("override_refused", rig=self.cfg.id, supervisor=supervisor, why=why))
            self.ledger.event("override_refused", why)
            return None
        verdict = Verdict(permit=True, cylinder_id=record.get("id"), tare_g=plan[0],
                          target_g=plan[1], detail=f"override of decision {refused_id} by "
                          f"{supervisor}: {reason}")
        decision = self.decision(reading, verdict, answer, line.at)
        log.warning(kv("override", rig=self.cfg.id, supervisor=supervisor, decision=refused_id,
                       reason=reason))
        return decision, answer, (supervisor, reason), scale_g

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

    def log(self, d: Decision, answer: Answer | None, t0: float) -> None:
        """The decision's log line; `t0` (monotonic s) is when the reading arrived."""
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
