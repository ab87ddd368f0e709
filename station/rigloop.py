"""One rig's loop: keep the controller alive, judge each reading, grant or refuse the permit."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drivers.reader import Line, TagReader
from drivers.rig import RigController, RigStatus

from . import reading as parse
from .config import RigConfig, StationConfig
from .errors import RigFault, StoreError
from .logfmt import kv
from .lookup import Answer, LookupService, tag_key
from .model import Decision, Reading, RigCondition, Verdict
from .rules import Policy, judge, screen
from .store import Store

log = logging.getLogger("station.rig")


@dataclass
class RigState:
    """What the loop knows of its rig; `permit` is what the daemon granted and has not withdrawn."""

    connected: bool | None = None  # None: not tried yet
    fault: str = "not connected yet"
    status: RigStatus | None = None
    permit: bool = False
    permit_at: float = 0.0
    valve_seen: bool = False
    present_seen: bool = False
    operator: str | None = None
    last_tag: tuple[str, float] = ("", 0.0)
    decisions: int = 0
    alive_at: float = field(default_factory=time.monotonic)


class RigLoop:
    """Serves one rig: control (heartbeat + status polling) and decisions, as separate tasks."""

    def __init__(self, cfg: RigConfig, station: StationConfig, controller: RigController,
                 readers: list[TagReader], store: Store, lookups: LookupService):
        self.cfg, self.station, self.controller = cfg, station, controller
        self.readers, self.store, self.lookups = readers, store, lookups
        self.policy = Policy(frozenset((station.unit_name, *station.fills_for)), station.rules)
        self.state = RigState(operator=store.operators_on_shift().get(cfg.id))
        self.lock = asyncio.Lock()  # one sequence of controller writes at a time
        self.queue: asyncio.Queue[Line] = asyncio.Queue(maxsize=100)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._control())
            group.create_task(self._decide())
            for reader in self.readers:
                group.create_task(self._feed(reader))

    # --- control: connection, heartbeat, status -------------------------------------------
    async def _control(self) -> None:
        backoff = 0.2
        while True:
            try:
                async with self.lock:
                    await self.controller.connect()
                    await self.controller.configure(self.cfg.watchdog_ms)
                    self.state.permit = False
                self._link(True)
                backoff = 0.2
                await self._poll()
            except RigFault as err:
                self._link(False, str(err))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _poll(self) -> None:
        beat_every = self.cfg.watchdog_ms / 3000
        next_beat = 0.0
        while True:
            now = time.monotonic()
            async with self.lock:
                if now >= next_beat:
                    await self.controller.heartbeat()
                    next_beat = now + beat_every
                status = await self.controller.read_status()
                await self._observe(status, now)
            self._link(True)
            self.state.alive_at = now
            await asyncio.sleep(self.cfg.poll_ms / 1000)

    def _link(self, up: bool, detail: str = "") -> None:
        st = self.state
        if not up:
            st.status, st.permit, st.fault = None, False, detail or "rig controller fault"
        if st.connected is up:
            return
        st.connected = up
        event = "rig_connected" if up else "rig_lost"
        (log.info if up else log.warning)(kv(event, rig=self.cfg.id, error=detail or None))
        self._event(event, detail)

    def _event(self, event: str, detail: str = "") -> None:
        try:
            self.store.rig_event(self.cfg.id, event, detail)
        except StoreError as err:
            log.error(kv("store_error", rig=self.cfg.id, error=str(err)))

    async def _observe(self, status: RigStatus, now: float) -> None:
        """React to the controller's state: permit ended, cylinder removed, fault, expiry."""
        st, previous = self.state, self.state.status
        st.status = status
        st.fault = status.fault_text()
        was_present = previous.cylinder_present if previous else False
        removed = was_present and not status.cylinder_present
        if status.permit and not st.permit:
            await self._withdraw("permit set that the daemon does not hold")
        elif st.permit:
            st.valve_seen |= status.valve_open
            if not status.permit:
                st.permit = False
                why = "fill done" if status.fill_done else status.fault_text() or "controller"
                self._event("permit_ended", why)
                log.info(kv("permit_ended", rig=self.cfg.id, by=why))
            elif removed or not status.healthy:
                await self._withdraw("cylinder removed" if removed else status.fault_text())
            elif not st.valve_seen and now - st.permit_at > self.cfg.permit_timeout_s:
                await self._withdraw("permit unused: expired")
        if removed:
            await self.controller.set_lamps(False, False)

    async def _withdraw(self, why: str) -> None:
        await self.controller.withdraw_permit()
        self.state.permit = False
        await self.controller.set_lamps(False, False)
        self._event("permit_withdrawn", why)
        log.info(kv("permit_withdrawn", rig=self.cfg.id, why=why))

    async def shutdown(self) -> None:
        """Withdraw the permit and put the lamps out; called on SIGTERM before exiting."""
        try:
            async with self.lock:
                await self.controller.withdraw_permit()
                await self.controller.set_lamps(False, False)
        except RigFault as err:
            log.warning(kv("shutdown_withdraw_failed", rig=self.cfg.id, error=str(err)))
        self.state.permit = False

    # --- readings and decisions -------------------------------------------------------------
    async def _feed(self, reader: TagReader) -> None:
        async for line in reader.lines():
            try:
                self.queue.put_nowait(line)
            except asyncio.QueueFull:
                log.warning(kv("reading_dropped", rig=self.cfg.id, reader=line.reader_id,
                               why="queue full"))

    async def _decide(self) -> None:
        while True:
            line = await self.queue.get()
            try:
                await self.handle(line)
            except StoreError as err:
                log.error(kv("store_error", rig=self.cfg.id, error=str(err),
                             action="refused without permit"))
                await self._show_refusal()
            except RigFault as err:
                log.error(kv("rig_write_failed", rig=self.cfg.id, error=str(err)))

    def to_reading(self, line: Line) -> Reading:
        """Bytes to a parsed Reading (or a refusal); a badge UID gives kind 'badge'."""
        reader_cfg = next((r for r in self.cfg.readers if r.id == line.reader_id), None)
        if line.overlong:
            return Reading(raw=line.data[:64].decode("utf-8", "replace") + "…", kind="invalid",
                           refusal="TAG_UNREADABLE", detail="over-long reading",
                           reader=line.reader_id)
        text = parse.decode(line.data, line.reader_id)
        if isinstance(text, Reading):
            return text
        if reader_cfg is not None:
            text = parse.strip_framing(text, reader_cfg.prefix, reader_cfg.suffix,
                                       reader_cfg.strip_aim)
        if self.station.badge(text) is not None:
            return Reading(raw=text, kind="badge", value=text.upper(), reader=line.reader_id)
        return parse.parse_scan(text, self.station.qr_hosts, self.station.qr_allow_http,
                                line.reader_id)

    def _duplicate(self, reading: Reading, at: float) -> bool:
        key = reading.value or reading.raw
        last, last_at = self.state.last_tag
        window = next((r.dedup_s for r in self.cfg.readers if r.id == reading.reader), 3.0)
        self.state.last_tag = (key, at)
        return key == last and at - last_at < window

    async def handle(self, line: Line) -> Verdict | None:
        reading = self.to_reading(line)
        if self._duplicate(reading, line.at):
            return None
        if reading.kind == "badge":
            self._badge(reading)
            return None
        await self._refresh("new reading at the rig")
        answer, verdict = await self._judge(reading)
        decided = datetime.now(UTC)
        decision = Decision(at=decided, rig_id=self.cfg.id, reading=reading, verdict=verdict,
                            source=answer.lookup.source if answer else "none",
                            cache_age_s=round(answer.lookup.age_s, 1)
                            if answer and answer.lookup.source == "cache" else None,
                            latency_ms=(time.monotonic() - line.at) * 1000,
                            operator=self.state.operator)
        self.store.record_decision(  # durable before the permit is written
            decision, answer.city_record if answer else None,
            tag_key(reading) if answer else None, bool(answer and answer.forget_tag))
        self.state.decisions += 1
        applied = await self._apply(verdict)
        self._log(decision, answer, applied, line.at)
        return verdict

    async def _refresh(self, why: str) -> None:
        """Judge on the rig as it is now, not as the last poll saw it; drop an old permit."""
        if not self.state.connected:
            return
        try:
            async with self.lock:
                await self._observe(await self.controller.read_status(), time.monotonic())
                if self.state.permit:
                    await self._withdraw(why)
        except RigFault as err:
            self._link(False, str(err))

    async def _judge(self, reading: Reading) -> tuple[Answer | None, Verdict]:
        blocklist = self.store.blocklist()
        early = screen(reading, self.condition(), blocklist)
        if early is not None:
            return None, early
        answer = await self.lookups.lookup(reading)
        record = answer.lookup.record
        cid = record.get("id") if isinstance(record, dict) else None
        last = self.store.last_permit_at(cid) if isinstance(cid, str) else None
        last_at = datetime.fromtimestamp(last, UTC) if last else None
        # The rig may have failed while the city was asked: judge on the state now.
        return answer, judge(reading, self.condition(), answer.lookup, self.policy, blocklist,
                             datetime.now(UTC), last_at)

    def condition(self) -> RigCondition:
        st = self.state
        healthy = bool(st.connected and st.status is not None and st.status.healthy)
        return RigCondition(rig_id=self.cfg.id, medium=self.cfg.medium, healthy=healthy,
                            fault="" if healthy else st.fault or "rig not connected",
                            clock_trusted=self.store.clock_trusted(time.time()),
                            operator=st.operator)

    async def _apply(self, verdict: Verdict) -> bool:
        """Grant the permit (read back) or show the refusal; False when the rig failed us."""
        if not verdict.permit:
            await self._show_refusal()
            return True
        try:
            async with self.lock:
                await self.controller.grant_permit(verdict.tare_g, verdict.target_g)
                self.state.permit, self.state.permit_at = True, time.monotonic()
                self.state.valve_seen = False
            self._event("permit_granted", verdict.cylinder_id or "")
            return True
        except RigFault as err:
            self.state.permit = False
            log.error(kv("permit_failed", rig=self.cfg.id, error=str(err)))
            self._event("permit_failed", str(err))
            await self._show_refusal()
            return False

    async def _show_refusal(self) -> None:
        try:
            async with self.lock:
                await self.controller.withdraw_permit()
                self.state.permit = False
                await self.controller.set_lamps(False, True, buzzer=self.cfg.buzzer_ms > 0)
        except RigFault as err:
            log.warning(kv("lamp_failed", rig=self.cfg.id, error=str(err)))
            return
        if self.cfg.buzzer_ms > 0:
            asyncio.get_running_loop().call_later(
                self.cfg.buzzer_ms / 1000, lambda: asyncio.ensure_future(self._buzzer_off()))

    async def _buzzer_off(self) -> None:
        try:
            async with self.lock:
                await self.controller.set_lamps(False, True, buzzer=False)
        except RigFault:
            log.debug(kv("buzzer_off_failed", rig=self.cfg.id))

    def _badge(self, reading: Reading) -> None:
        op = self.station.badge(reading.value)
        if op is None:
            return
        event = "logout" if self.state.operator == op.name else "login"
        self.store.operator_event(self.cfg.id, op.name, event, via=f"badge:{reading.reader}")
        self.state.operator = None if event == "logout" else op.name
        log.info(kv(f"operator_{event}", rig=self.cfg.id, operator=op.name, role=op.role))

    def _log(self, d: Decision, answer: Answer | None, applied: bool, t0: float) -> None:
        v = d.verdict
        log.info(kv(
            "decision", rig=d.rig_id, reader=d.reading.reader, reading=d.reading.raw[:200],
            kind=d.reading.kind, cylinder=v.cylinder_id, verdict="permit" if v.permit else "refuse",
            reason=v.reason, warnings=",".join(v.warnings) or None, source=d.source,
            cache_age_s=d.cache_age_s, city_ms=answer.elapsed_ms if answer else None,
            latency_ms=(time.monotonic() - t0) * 1000, applied=applied, detail=v.detail or None))

