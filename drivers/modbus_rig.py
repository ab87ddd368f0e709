"""Rig controllers over Modbus TCP or RTU (pymodbus), behind one scheduled link per endpoint.

Transactions (default register map): configure 6; a grant 4 (TARGET_NET_G and TARE_G in one
FC16 and one FC03 read-back; FILL_PERMIT, LAMP_GREEN, LAMP_RED in one FC15 and one FC01
read-back); lamps 2; a withdrawal 2; a status 3 (FC04, FC02, FC01); a heartbeat 1 (FC06, its
echo checked), with an FC03 read-back of HEARTBEAT and WATCHDOG_MS every third one (about once
a watchdog period), sent by the link while the owner feeds it.

Safety trade-offs of the merged writes (README, "The rig link"):
- The permit and the green lamp are written in one FC15: the lamp is lit in the same instant as
  the permit instead of after its read-back. A controller that refuses the permit (reads back
  0) has the lamps put back as they were at once (one more FC15): the green lamp can show for
  about one transaction (~20 ms on RS-485) over a refused permit. The permit is still read back
  before `grant_permit()` returns, and any failure after the write withdraws it.
- TARE_G and TARGET_NET_G are written together and read back together before the permit is
  written, as before; only adjacent registers are merged (a custom map that puts other
  registers between them gets one FC16 each).
- The link's heartbeats are read back every third (once a watchdog period) instead of each:
  the controller's FC06 echo still confirms each one, and a controller reset (its WATCHDOG_MS
  back to the default, its permit and valve already dropped by the reset) is noticed within a
  watchdog period instead of a third of one. `heartbeat()` still reads back every time.
- A status younger than `max_age_s` is reused instead of read again (`read_status`), and an
  idle rig (no cylinder, no permit, valve shut, nothing pending, nothing changed) is polled
  every `idle_poll_s` instead of `poll_s` (`poll`). The controller's watchdog, FILL_DONE and
  ESTOP close the valve without the daemon; an idle rig has no permit to withdraw, so a slower
  poll only shows a placed cylinder or an ESTOP on the screen later (up to idle_poll_s).
"""

from __future__ import annotations

import asyncio
import logging
import time

from pymodbus.pdu import ModbusPDU

from station.config import RegisterMap, RigConfig
from station.errors import RigFault
from station.logfmt import kv

from .link_beats import Beats
from .modbus_link import HEARTBEAT, POLL, WRITE, ModbusLink, Request, links_for
from .modbus_points import _changed, _runs, _span, _u32
from .rig import RigController, RigStatus

__all__ = ["ModbusLink", "ModbusRig", "links_for"]

log = logging.getLogger("station.rig")

U16_MAX = 0xFFFF
COILS = ("fill_permit", "lamp_green", "lamp_red", "buzzer")
INPUTS = ("valve_open", "cylinder_present", "estop", "fill_done")
MAX_BITS, MAX_REGS = 2000, 125  # per request (Modbus application protocol)
ACTIVE_HOLD_S = 5.0  # a rig stays at full poll rate this long after anything changed
CHECK_EVERY = 3  # the link's heartbeats are read back every third: once a watchdog period


class ModbusRig(RigController):
    """A rig controller at `cfg.unit_id` behind a shared ModbusLink, addressed by cfg.registers.

    `idle_poll_s` (s, default cfg.idle_poll_ms) is the idle rig's poll period (see `poll`);
    `feed_s` (s, default the watchdog period) how long the link heartbeats the unit after the
    owner's last `keep_alive()`.
    """

    def __init__(self, cfg: RigConfig, link: ModbusLink, *, idle_poll_s: float | None = None,
                 feed_s: float | None = None) -> None:
        self.cfg, self.rig_id, self.unit = cfg, cfg.id, cfg.unit_id
        self.map: RegisterMap = cfg.registers
        self._link = link
        self.poll_s = cfg.poll_ms / 1000
        idle_ms = getattr(cfg, "idle_poll_ms", cfg.poll_ms)
        self.idle_poll_s = max(self.poll_s, idle_poll_s if idle_poll_s is not None
                               else idle_ms / 1000)
        self._feed_s = feed_s
        self._unchecked = 0  # heartbeats written since the last read back
        self.transactions = 0  # requests this rig put on the link (heartbeats included)
        self._heartbeat = 0
        self._watchdog_ms: int | None = None  # as configure() wrote it
        self._fault: RigFault | None = None  # a failed heartbeat, for the owner's next call
        self._beat_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self.sample: RigStatus | None = None
        self.sample_at = float("-inf")  # monotonic s when the last status read began
        self._active_until = 0.0
        self._coils_held: dict[str, bool] = {}
        m = self.map
        beat = [m.heartbeat, m.watchdog_ms]  # read back together when near enough
        self._beat_span = _span(beat, MAX_REGS) if max(beat) - min(beat) < MAX_REGS else None
        self._coil_span = _span([getattr(m, n) for n in COILS], MAX_BITS)
        self._input_span = _span([getattr(m, n) for n in INPUTS]
                                 + ([m.checks_ok] if m.checks_ok >= 0 else []), MAX_BITS)
        self._ireg_span = _span([m.gross_g, m.gross_g + 1, m.scale_status, m.fault_code], MAX_REGS)

    def __repr__(self) -> str:
        return f"ModbusRig({self.rig_id!r}, {self._link.key} unit {self.unit})"

    async def _call(self, what: str, request: Request, priority: int = WRITE,
                    feed: bool = True, **kw) -> ModbusPDU:
        """One transaction; an answer the owner gets feeds the heartbeat (`feed`: not the
        heartbeat's own, or it would feed itself)."""
        self.transactions += 1
        beats = self._link.beats_of(self.rig_id) if feed else None
        if beats is not None:
            beats.waiting += 1
        try:
            return await self._link.transact(f"rig {self.rig_id} (unit {self.unit}) {what}",
                                             request, priority, **kw)
        finally:
            if beats is not None:
                beats.waiting -= 1
            if feed:
                self._link.feed(self.rig_id)

    def _raise_fault(self) -> None:
        fault, self._fault = self._fault, None
        if fault is not None:
            raise fault

    async def connect(self) -> None:
        await self._link.attach(self.rig_id)

    async def close(self) -> None:
        self._link.stop_beats(self.rig_id)
        await self._link.detach(self.rig_id)

    # -- liveness and polling --------------------------------------------------------------------
    def keep_alive(self) -> None:
        """The owner is alive: the link keeps heartbeating this unit for another feed_s (s).
        Call it every loop iteration; a loop that stops calling it lets the watchdog trip."""
        self._link.feed(self.rig_id)

    def wake(self) -> None:
        """Something is pending (a reading, a decision): poll at full rate from now, and end
        a `poll()` waiting at the idle rate."""
        self._active_until = time.monotonic() + ACTIVE_HOLD_S
        self._wake.set()

    def active(self, pending: bool = False) -> bool:
        """Polled at full rate: something pending, a cylinder, a permit, an open valve, a
        latched FILL_DONE, or a change within ACTIVE_HOLD_S; else idle."""
        s = self.sample
        return (pending or s is None or time.monotonic() < self._active_until
                or s.cylinder_present or s.permit or s.valve_open or s.fill_done)

    def poll_interval_s(self, pending: bool = False) -> float:
        """The period (s) `poll()` keeps: poll_s or idle_poll_s, stretched on a busy line."""
        base = self.poll_s if self.active(pending) else self.idle_poll_s
        return base * self._link.poll_stretch

    async def poll(self, pending: bool = False) -> RigStatus:
        """Feed the heartbeat, wait for this rig's next poll (see `poll_interval_s`; `wake()`
        ends the wait) and read the status. Raises RigFault, also for a failed heartbeat."""
        self._raise_fault()
        self._wake.clear()
        wait = self.sample_at + self.poll_interval_s(pending) - time.monotonic()
        self._link.feed(self.rig_id, extra_s=max(0.0, wait))
        if wait > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass
        return await self.read_status()

    # -- reads -----------------------------------------------------------------------------------
    async def _read_bits(self, what: str, fc: int, span: tuple[int, int],
                         priority: int = WRITE) -> dict[int, bool]:
        start, count, unit = *span, self.unit
        if fc == 1:
            rr = await self._call(
                what, lambda c: c.read_coils(start, count=count, device_id=unit), priority)
        else:
            rr = await self._call(
                what, lambda c: c.read_discrete_inputs(start, count=count, device_id=unit),
                priority)
        if len(rr.bits) < count:
            raise RigFault(f"rig {self.rig_id}: {what}: {len(rr.bits)} bits, wanted {count}")
        return {start + i: bool(rr.bits[i]) for i in range(count)}

    async def _read_words(self, what: str, fc: int, span: tuple[int, int],
                          priority: int = WRITE, feed: bool = True) -> dict[int, int]:
        start, count, unit = *span, self.unit
        if fc == 3:
            rr = await self._call(
                what, lambda c: c.read_holding_registers(start, count=count, device_id=unit),
                priority, feed)
        else:
            rr = await self._call(
                what, lambda c: c.read_input_registers(start, count=count, device_id=unit),
                priority)
        if len(rr.registers) != count:
            raise RigFault(
                f"rig {self.rig_id}: {what}: {len(rr.registers)} registers, wanted {count}"
            )
        return {start + i: int(rr.registers[i]) for i in range(count)}

    async def read_status(self, max_age_s: float = 0.0, *, urgent: bool = False) -> RigStatus:
        """The rig's status; the last one again when younger than `max_age_s` (s: e.g. the poll
        period, for a decision on a scan). `urgent` (a decision waiting) queues the reads with
        the writes instead of with the polls. Raises RigFault, also for a failed heartbeat."""
        self._raise_fault()
        started = time.monotonic()
        if self.sample is not None and started - self.sample_at <= max_age_s:
            return self.sample
        m, prio = self.map, WRITE if urgent else POLL
        # Three requests (tens of ms apart on RS-485): the mass first, then the valve and the
        # permit, so a valve that opens between them shows as open over the mass before it
        # (never as gas gained with the valve shut, which would end a just-started fill).
        regs = await self._read_words("read input registers", 4, self._ireg_span, prio)
        inputs = await self._read_bits("read discrete inputs", 2, self._input_span, prio)
        coils = await self._read_bits("read coils", 1, self._coil_span, prio)
        scale = regs[m.scale_status]
        status = RigStatus(
            permit=coils[m.fill_permit], lamp_green=coils[m.lamp_green],
            lamp_red=coils[m.lamp_red], buzzer=coils[m.buzzer],
            valve_open=inputs[m.valve_open], cylinder_present=inputs[m.cylinder_present],
            estop=inputs[m.estop], fill_done=inputs[m.fill_done],
            gross_g=(regs[m.gross_g] << 16) | regs[m.gross_g + 1],
            stable=bool(scale & 1), overload=bool(scale & 2), scale_fault=bool(scale & 4),
            fault_code=regs[m.fault_code],
            checks_ok=m.checks_ok >= 0 and inputs[m.checks_ok],
        )
        if self.sample is not None and _changed(self.sample, status):
            self._active_until = time.monotonic() + ACTIVE_HOLD_S
        self.sample, self.sample_at = status, started
        self._coils_held = {n: coils[getattr(m, n)] for n in COILS}
        return status

    # -- writes, each read back ------------------------------------------------------------------
    async def _write_coils(self, values: dict[str, bool]) -> dict[str, bool]:
        """Write the named coils, one FC15 per run of adjacent addresses (FC05 for a lone coil),
        then read them all back in one FC01; returns what the controller holds."""
        self._active_until = time.monotonic() + ACTIVE_HOLD_S
        unit = self.unit
        for name in values:  # unknown until read back (a failed write may still have landed)
            self._coils_held.pop(name, None)
        for addr, bits in _runs({getattr(self.map, n): v for n, v in values.items()}):
            names = ",".join(n.upper() for n, v in values.items()
                             if addr <= getattr(self.map, n) < addr + len(bits))
            what = f"write {names}={''.join(str(int(b)) for b in bits)}"
            if len(bits) == 1:
                await self._call(what, lambda c, a=addr, v=bits[0]: c.write_coil(
                    a, v, device_id=unit))
            else:
                await self._call(what, lambda c, a=addr, v=bits: c.write_coils(
                    a, v, device_id=unit))
        held = await self._read_bits("read back coils", 1, self._coil_span)
        self._coils_held = {n: held[getattr(self.map, n)] for n in COILS}
        return {name: held[getattr(self.map, name)] for name in values}

    async def _set_coils(self, values: dict[str, bool]) -> None:
        held = await self._write_coils(values)
        wrong = [f"{n.upper()}={int(held[n])} (wrote {int(v)})"
                 for n, v in values.items() if held[n] != v]
        if wrong:
            raise RigFault(f"rig {self.rig_id}: read back {', '.join(wrong)}")

    async def _write_words(self, values: dict[str, list[int]]) -> None:
        """Write the named holding registers, one FC16 per run of adjacent addresses (FC06 for
        a lone register), then read the whole span back in one FC03 (two when over 125)."""
        unit, points = self.unit, {}
        for name, words in values.items():
            points.update({getattr(self.map, name) + i: w for i, w in enumerate(words)})
        label = " ".join(f"{n.upper()}={w}" for n, w in values.items())
        for addr, words in _runs(points):
            if len(words) == 1:
                await self._call(f"write {label}", lambda c, a=addr, w=words[0]:
                                 c.write_register(a, w, device_id=unit))
            else:
                await self._call(f"write {label}", lambda c, a=addr, w=words:
                                 c.write_registers(a, w, device_id=unit))
        held: dict[int, int] = {}
        spans = [(min(points), max(points) - min(points) + 1)]
        if spans[0][1] > MAX_REGS:
            spans = [(a, len(w)) for a, w in _runs(points)]
        for span in spans:
            held.update(await self._read_words(f"read back {label}", 3, span))
        wrong = [n.upper() for n, words in values.items()
                 if [held[getattr(self.map, n) + i] for i in range(len(words))] != words]
        if wrong:
            got = {n: [held[getattr(self.map, n.lower()) + i]
                       for i in range(len(values[n.lower()]))] for n in wrong}
            raise RigFault(f"rig {self.rig_id}: read back {got}, wrote {label}")

    async def configure(self, watchdog_ms: int) -> None:
        """WATCHDOG_MS (FC06), every coil off (FC15 + FC01), HEARTBEAT and WATCHDOG_MS read back
        (FC03), one heartbeat (FC06 + FC03): 6 transactions; then the link
        heartbeats the unit every WATCHDOG_MS / 3 while the owner feeds it. Raises RigFault."""
        if not 1 <= watchdog_ms <= U16_MAX:
            raise ValueError(f"watchdog_ms={watchdog_ms} out of 1..65535")
        self._link.stop_beats(self.rig_id)
        self._fault = None
        m, unit = self.map, self.unit
        if self._beat_span is None:
            await self._write_words({"watchdog_ms": [watchdog_ms]})
        else:  # read back below, with HEARTBEAT
            await self._call(f"write WATCHDOG_MS={watchdog_ms}", lambda c: c.write_register(
                m.watchdog_ms, watchdog_ms, device_id=unit))
        self._watchdog_ms = watchdog_ms
        await self._set_coils(dict.fromkeys(COILS, False))
        held = await self._read_words("read HEARTBEAT", 3, self._beat_span or (m.heartbeat, 1))
        if self._beat_span is not None and held[m.watchdog_ms] != watchdog_ms:
            raise RigFault(f"rig {self.rig_id}: read back WATCHDOG_MS={held[m.watchdog_ms]}, "
                           f"wrote {watchdog_ms}")
        self._heartbeat = held[m.heartbeat]  # continue from it: the next value is new
        feed_s = self._feed_s if self._feed_s is not None else watchdog_ms / 1000
        beats = Beats(self.rig_id, self._paced_beat, watchdog_ms / 3000, feed_s,
                      self._beat_failed)
        await self._beat(beats)
        self._link.start_beats(beats)
        self._active_until = 0.0  # configuring is no sign of a cylinder: idle unless polled so

    def _beat_failed(self, err: RigFault) -> None:
        log.warning(kv("heartbeat_failed", rig=self.rig_id, error=str(err)))
        self._fault = err

    async def heartbeat(self) -> None:
        """Feed the link and write the next HEARTBEAT now (the link also writes them by itself
        while fed: prefer `keep_alive()`). Raises RigFault, also for an earlier failed one."""
        self.keep_alive()
        self._raise_fault()
        await self._beat()

    async def _paced_beat(self) -> None:
        """The link's heartbeat: the write alone, checked (read back with WATCHDOG_MS) every
        CHECK_EVERY beats, so about once a watchdog period."""
        self._unchecked += 1
        await self._beat(check=self._unchecked >= CHECK_EVERY)

    async def _beat(self, beats: Beats | None = None, check: bool = True) -> None:
        """Write the next HEARTBEAT (first in the link's queue; the controller's echo must
        carry it) and, with `check`, read it back with WATCHDOG_MS: a controller reset without
        the link noticing (its registers back to their defaults) is a RigFault, so the owner
        configures it again instead of trusting a watchdog period it never set."""
        async with self._beat_lock:
            m, beat = self.map, 1 if self._heartbeat >= U16_MAX else self._heartbeat + 1
            self._heartbeat, unit = beat, self.unit
            b = beats or self._link.beats_of(self.rig_id)
            echo = await self._call(
                f"write HEARTBEAT={beat}",
                lambda c: c.write_register(m.heartbeat, beat, device_id=unit), HEARTBEAT,
                feed=False, deadline=b.last_at + b.period_s if b is not None else None,
                on_start=(lambda t: b.written(t)) if b is not None else None,
            )
            if list(getattr(echo, "registers", [beat]))[:1] != [beat]:
                raise RigFault(f"rig {self.rig_id}: HEARTBEAT echo {echo}, wrote {beat}")
            if not check:
                return
            self._unchecked = 0
            span = self._beat_span or (m.heartbeat, 1)
            held = await self._read_words("read back HEARTBEAT", 3, span, feed=False)
            if held[m.heartbeat] != beat:
                raise RigFault(
                    f"rig {self.rig_id}: read back HEARTBEAT={held[m.heartbeat]}, wrote {beat}"
                )
            if self._watchdog_ms is None:
                return
            if self._beat_span is None:
                held = await self._read_words("read WATCHDOG_MS", 3, (m.watchdog_ms, 1),
                                              feed=False)
            if held[m.watchdog_ms] != self._watchdog_ms:
                raise RigFault(
                    f"rig {self.rig_id}: WATCHDOG_MS reads {held[m.watchdog_ms]}, "
                    f"configured {self._watchdog_ms} (controller reset?)"
                )

    async def grant_permit(self, tare_g: int, target_g: int) -> None:
        """TARGET_NET_G and TARE_G (g) in one FC16 + FC03, then FILL_PERMIT=1, LAMP_GREEN=1,
        LAMP_RED=0 in one FC15 + FC01: 4 transactions. A permit the controller refuses (reads
        back 0) is a RigFault, with the lamps put back; any later failure withdraws it."""
        self._raise_fault()
        tare, target = _u32("tare_g", tare_g), _u32("target_g", target_g)
        await self._write_words({"target_net_g": target, "tare_g": tare})
        before = {n: self._coils_held.get(n, False) for n in ("lamp_green", "lamp_red")}
        try:
            held = await self._write_coils(
                {"fill_permit": True, "lamp_green": True, "lamp_red": False})
            if not held["fill_permit"]:
                reason = await self._refusal_reason()
                await self._set_coils({"fill_permit": False, **before})
                raise RigFault(f"rig {self.rig_id}: controller refused the fill permit "
                               f"({reason})")
            if not held["lamp_green"] or held["lamp_red"]:
                raise RigFault(f"rig {self.rig_id}: read back LAMP_GREEN="
                               f"{int(held['lamp_green'])} LAMP_RED={int(held['lamp_red'])}")
        except RigFault:
            await self._withdraw_quietly()
            raise

    async def _refusal_reason(self) -> str:
        try:
            status = await self.read_status(urgent=True)
        except RigFault as err:
            return f"status unreadable: {err}"
        return status.fault_text() or "watchdog expired or controller not ready"

    async def _withdraw_quietly(self) -> None:
        """Best effort after a failed grant: leave no permit behind (the watchdog is the backstop)."""
        if self._coils_held.get("fill_permit") is False:
            return  # read back 0 just now
        try:
            await self._set_coils({"fill_permit": False})
        except RigFault as err:
            log.warning(kv("withdraw_after_failed_grant_failed", rig=self.rig_id, error=str(err)))

    async def withdraw_permit(self) -> None:
        """FILL_PERMIT=0 (FC05) and the coils read back (FC01)."""
        await self._set_coils({"fill_permit": False})

    async def set_lamps(self, green: bool, red: bool, buzzer: bool = False) -> None:
        """LAMP_GREEN, LAMP_RED, BUZZER in one FC15 (adjacent in the default map) + FC01."""
        await self._set_coils({"lamp_green": green, "lamp_red": red, "buzzer": buzzer})

    async def set_buzzer(self, on: bool) -> None:
        await self._set_coils({"buzzer": on})
