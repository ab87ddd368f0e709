"""One rig controller's points and fill physics as pure state: what each Modbus unit id serves."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from station.config import RegisterMap

STABLE_AFTER_S = 0.3  # the scale reports stable once the valve has been closed this long
# after the valve closes at target, the overshoot (valve lag or settling) arrives over this long
SETTLE_S = STABLE_AFTER_S
FAULT_NONE, FAULT_ESTOP, FAULT_SCALE, FAULT_OVERLOAD = 0, 1, 2, 3
COIL_NAMES = ("fill_permit", "lamp_green", "lamp_red", "buzzer")
INPUT_NAMES = ("valve_open", "cylinder_present", "estop", "fill_done")
U32_MAX = 0xFFFFFFFF


def split_u32(value: int) -> tuple[int, int]:
    """Split an unsigned 32-bit value into two 16-bit words, high word first."""
    if not 0 <= value <= U32_MAX:
        raise ValueError(f"{value} does not fit in an unsigned 32-bit register pair")
    return value >> 16, value & 0xFFFF


def join_u32(high: int, low: int) -> int:
    """Join two 16-bit words, high word first, into an unsigned 32-bit value."""
    return ((high & 0xFFFF) << 16) | (low & 0xFFFF)


def _clock(now: float | None) -> float:
    return time.monotonic() if now is None else now


class RigModel:
    """One rig controller's points and physics: pure state, every method takes `now` (monotonic s).

    Thread-safe: every public method holds the model's lock, so testers may call them from any
    thread while the simulator's server thread serves requests.
    """

    def __init__(
        self,
        *,
        registers: RegisterMap | None = None,
        start_delay_s: float | None = 0.5,
        flow_g_per_s: float = 2000.0,
        watchdog_ms: int = 3000,
        overshoot_g: int = 0,
        latch_clear_s: float = 0.0,
        now: float | None = None,
    ) -> None:
        self.map = registers or RegisterMap()
        self.start_delay_s = start_delay_s
        self.flow_g_per_s = flow_g_per_s
        self.overshoot_g = int(overshoot_g)
        # FILL_DONE stays latched this long after the permit rises (rig-modbus.md: a real
        # controller clears it on its next scan cycle, up to a few hundred ms later)
        self.latch_clear_s = latch_clear_s
        self._latch_clear_at: float | None = None
        self._lock = threading.RLock()
        self._t = _clock(now)
        self.coils = dict.fromkeys(COIL_NAMES, False)
        self.inputs = dict.fromkeys(INPUT_NAMES, False)
        self.scale_fault = self.overload = False
        self._gross = 0.0
        self._default_watchdog_ms = watchdog_ms & 0xFFFF
        self._hr: dict[int, int] = {self.map.watchdog_ms: self._default_watchdog_ms}
        self._hb_changed_at = self._t
        self._valve_closed_at = self._t - STABLE_AFTER_S
        self._start_at: float | None = None
        self._settle: tuple[float, int, int] | None = None  # (closed at, overshoot, applied so far)
        self.watchdog_trips = self.permit_grants = self.valve_openings = self.reboots = 0
        self.permit_off_at: float | None = None  # model time the permit last went off
        self.granted_at: float | None = None  # model time of the last permit grant
        m = self.map
        self._coil_at = {getattr(m, n): n for n in COIL_NAMES}
        self._input_at = {getattr(m, n): n for n in INPUT_NAMES}
        self.inputs["checks_ok"] = False  # the "checks OK" button (a discrete input if mapped)
        if m.checks_ok >= 0:
            self._input_at[m.checks_ok] = "checks_ok"

    # -- derived points ------------------------------------------------------------------------
    @property
    def watchdog_s(self) -> float:
        return self._hr.get(self.map.watchdog_ms, 0) / 1000.0

    @property
    def target_net_g(self) -> int:
        a = self.map.target_net_g
        return join_u32(self._hr.get(a, 0), self._hr.get(a + 1, 0))

    @property
    def tare_g(self) -> int:
        a = self.map.tare_g
        return join_u32(self._hr.get(a, 0), self._hr.get(a + 1, 0))

    @property
    def healthy(self) -> bool:
        return not (self.inputs["estop"] or self.scale_fault or self.overload)

    def _stable(self) -> bool:
        return not self.inputs["valve_open"] and self._t - self._valve_closed_at >= STABLE_AFTER_S

    def _scale_status(self) -> int:
        return int(self._stable()) | int(self.overload) << 1 | int(self.scale_fault) << 2

    def _fault_code(self) -> int:
        if self.inputs["estop"]:
            return FAULT_ESTOP
        if self.scale_fault:
            return FAULT_SCALE
        return FAULT_OVERLOAD if self.overload else FAULT_NONE

    # -- physics -------------------------------------------------------------------------------
    def advance(self, now: float | None = None) -> None:
        """Apply the physics up to `now`, taking timed events (start, target, watchdog) in order."""
        now = _clock(now)
        with self._lock:
            while (event := self._next_event(now)) is not None:
                at, action = event
                self._flow_until(at)
                action(at)
            self._flow_until(now)

    def _next_event(self, now: float) -> tuple[float, Callable[[float], None]] | None:
        events: list[tuple[float, Callable[[float], None]]] = []
        if self.coils["fill_permit"]:
            events.append((self._hb_changed_at + self.watchdog_s, self._trip_watchdog))
        if self._start_at is not None:
            events.append((self._start_at, self._auto_start))
        if self._latch_clear_at is not None:
            events.append((self._latch_clear_at, self._clear_latch))
        if self.inputs["valve_open"]:
            missing = self.tare_g + self.target_net_g - self._gross
            if missing <= 0:
                events.append((self._t, self._reach_target))
            elif self.flow_g_per_s > 0:
                events.append((self._t + missing / self.flow_g_per_s, self._reach_target))
        if not events:
            return None
        at, action = min(events, key=lambda e: e[0])
        return (max(at, self._t), action) if at <= now else None

    def _flow_until(self, t: float) -> None:
        if t <= self._t:
            return
        if self.inputs["valve_open"]:
            self._gross += self.flow_g_per_s * (t - self._t)
        if self._settle is not None:
            self._settle_until(t)
        self._t = t

    def _settle_until(self, t: float) -> None:
        """Move the gross mass by the part of the overshoot due by `t` (whole grams, linear)."""
        assert self._settle is not None
        closed_at, overshoot, applied = self._settle
        done = t - closed_at >= SETTLE_S  # the same test as _stable(): stable means settled
        due = overshoot if done else int(overshoot * (t - closed_at) / SETTLE_S)
        self._gross += due - applied
        self._settle = None if done else (closed_at, overshoot, due)

    def _trip_watchdog(self, at: float) -> None:
        self.watchdog_trips += 1
        self._set_permit(False, at)

    def _auto_start(self, at: float) -> None:
        self._start_at = None
        self._open_valve(at)

    def _reach_target(self, at: float) -> None:
        self._gross = max(self._gross, float(self.tare_g + self.target_net_g))
        self.inputs["fill_done"] = True
        self._set_permit(False, at)
        if self.overshoot_g:
            self._settle = (at, self.overshoot_g, 0)

    def _open_valve(self, at: float) -> None:
        ok = self.coils["fill_permit"] and self.inputs["cylinder_present"] and self.healthy
        if ok and not self.inputs["valve_open"]:
            self.inputs["valve_open"] = True
            self.valve_openings += 1

    def _clear_latch(self, at: float) -> None:
        self._latch_clear_at = None
        if self.coils["fill_permit"]:
            self.inputs["fill_done"] = False

    def clamp_head(self, grams: int, now: float | None = None) -> None:
        """The filling head clamped onto the valve: its weight on the scale, the valve shut."""
        with self._lock:
            self.advance(now)
            if self.inputs["cylinder_present"]:
                self._gross += grams

    def _close_valve(self, at: float) -> None:
        if self.inputs["valve_open"]:
            self.inputs["valve_open"] = False
            self._valve_closed_at = at

    def _arm_start(self, at: float) -> None:
        ready = self.coils["fill_permit"] and self.inputs["cylinder_present"]
        if ready and self.start_delay_s is not None and not self.inputs["valve_open"]:
            self._start_at = at + self.start_delay_s

    def _permit_refused(self, at: float) -> bool:
        return not self.healthy or at - self._hb_changed_at >= self.watchdog_s

    def _set_permit(self, value: bool, at: float) -> None:
        if not value:
            if self.coils["fill_permit"]:
                self.permit_off_at = at
            self.coils["fill_permit"] = False
            self._start_at = None
            self._close_valve(at)
        elif not self.coils["fill_permit"] and not self._permit_refused(at):
            self.coils["fill_permit"] = True
            if self.latch_clear_s > 0 and self.inputs["fill_done"]:
                self._latch_clear_at = at + self.latch_clear_s
            else:
                self.inputs["fill_done"] = False
            self.permit_grants += 1
            self.granted_at = at
            self._arm_start(at)

    # -- register access (what the Modbus server sees) -----------------------------------------
    def read_bits(self, kind: str, count: int, now: float | None = None) -> list[bool]:
        """Coils (kind "coils") or discrete inputs ("inputs") at addresses 0..count-1."""
        with self._lock:
            self.advance(now)
            names, points = (
                (self._coil_at, self.coils) if kind == "coils" else (self._input_at, self.inputs)
            )
            return [points[names[a]] if a in names else False for a in range(count)]

    def read_words(self, kind: str, count: int, now: float | None = None) -> list[int]:
        """Holding (kind "holding") or input ("input") registers at addresses 0..count-1."""
        with self._lock:
            self.advance(now)
            words = self._hr if kind == "holding" else self._input_words()
            return [words.get(a, 0) for a in range(count)]

    def _gross_g(self) -> int:
        return max(0, min(int(self._gross), U32_MAX))

    def _input_words(self) -> dict[int, int]:
        high, low = split_u32(self._gross_g())
        m = self.map
        return {
            m.gross_g: high,
            m.gross_g + 1: low,
            m.scale_status: self._scale_status(),
            m.fault_code: self._fault_code(),
        }

    def write_coils(self, address: int, values: list[bool], now: float | None = None) -> list[bool]:
        """Write coils from `address`; returns what they hold afterwards (a refused permit is 0)."""
        with self._lock:
            self.advance(now)
            for offset, value in enumerate(values):
                name = self._coil_at.get(address + offset)
                if name == "fill_permit":
                    self._set_permit(bool(value), self._t)
                elif name is not None:
                    self.coils[name] = bool(value)
            return self.read_bits("coils", address + len(values), self._t)[address:]

    def write_holding(self, address: int, words: list[int], now: float | None = None) -> list[int]:
        """Write holding registers; a NEW heartbeat value resets the watchdog."""
        with self._lock:
            self.advance(now)
            for offset, word in enumerate(words):
                addr = address + offset
                old = self._hr.get(addr, 0)
                self._hr[addr] = word & 0xFFFF
                if addr == self.map.heartbeat and word != old:
                    self._hb_changed_at = self._t
            return [self._hr.get(address + i, 0) for i in range(len(words))]

    # -- tester controls -----------------------------------------------------------------------
    def place_cylinder(self, gross_g: int, now: float | None = None,
                       settle_s: float = 0.0) -> None:
        """Stand a cylinder of `gross_g` grams on the scale; with `settle_s`, the scale reads
        unstable for that long (s) first, as a real one does while the cylinder stops swinging."""
        with self._lock:
            self.advance(now)
            self.inputs["cylinder_present"] = True
            self._gross = float(gross_g)
            if settle_s > 0:
                self._valve_closed_at = max(self._valve_closed_at,
                                            self._t + settle_s - STABLE_AFTER_S)
            self._settle = None
            self._arm_start(self._t)

    def remove_cylinder(self, now: float | None = None) -> None:
        """Take the cylinder off: the valve closes and a permit still set is cancelled
        (rig-modbus.md, the fill cycle: "a cylinder removed with the permit still set cancels
        the permit"), so a dead daemon's permit can never fill the next cylinder put down."""
        with self._lock:
            self.advance(now)
            self._set_permit(False, self._t)
            self.inputs["cylinder_present"] = False
            self._gross = 0.0
            self._settle = None
            self._start_at = None

    def set_estop(self, active: bool, now: float | None = None) -> None:
        """Press (True) or release the emergency stop; pressing closes the valve, clears the permit."""
        with self._lock:
            self.advance(now)
            self.inputs["estop"] = active
            if active:
                self._set_permit(False, self._t)

    def set_checks_ok(self, pressed: bool, now: float | None = None) -> None:
        """Press (True) or release the controller's "checks OK" button (RegisterMap.checks_ok)."""
        with self._lock:
            self.advance(now)
            self.inputs["checks_ok"] = pressed

    def set_scale_fault(self, active: bool, now: float | None = None) -> None:
        """Raise or clear the scale fault; a fault closes the valve (the permit stays)."""
        self._set_scale_flag("scale_fault", active, now)

    def set_overload(self, active: bool, now: float | None = None) -> None:
        """Raise or clear the scale overload; an overload closes the valve (the permit stays)."""
        self._set_scale_flag("overload", active, now)

    def _set_scale_flag(self, flag: str, active: bool, now: float | None) -> None:
        with self._lock:
            self.advance(now)
            setattr(self, flag, active)
            if active:
                self._close_valve(self._t)
                self._start_at = None

    def press_start(self, now: float | None = None) -> None:
        """Press the controller's start button: opens the valve if permit, cylinder and health allow."""
        with self._lock:
            self.advance(now)
            self._start_at = None
            self._open_valve(self._t)

    def reboot(self, now: float | None = None) -> None:
        """Power-cycle the controller: the valve closes and every coil and holding register is
        lost (the watchdog period back to its default); the scale still weighs what stands on it."""
        with self._lock:
            self.advance(now)
            self._set_permit(False, self._t)
            self.coils = dict.fromkeys(COIL_NAMES, False)
            self.inputs["fill_done"] = False
            self._hr = {self.map.watchdog_ms: self._default_watchdog_ms}
            self._hb_changed_at = self._t
            self._settle = None
            self.reboots += 1

    def set_overshoot(self, grams: int, now: float | None = None) -> None:
        """Set how far the gross mass moves after the valve closes at target (applies from the
        next close): positive = valve lag, an overfill; negative = settling, an underfill."""
        if isinstance(grams, bool) or not isinstance(grams, int):
            raise ValueError(f"overshoot must be whole grams, got {grams!r}")
        with self._lock:
            self.advance(now)
            self.overshoot_g = grams

    def snapshot(self, now: float | None = None) -> dict[str, int | bool | float]:
        """Every point by name plus the counters, after advancing to `now`."""
        with self._lock:
            self.advance(now)
            return {
                **self.coils,
                **self.inputs,
                "gross_g": self._gross_g(),
                "stable": self._stable(),
                "overload": self.overload,
                "scale_fault": self.scale_fault,
                "scale_status": self._scale_status(),
                "fault_code": self._fault_code(),
                "heartbeat": self._hr.get(self.map.heartbeat, 0),
                "watchdog_ms": self._hr.get(self.map.watchdog_ms, 0),
                "target_net_g": self.target_net_g,
                "tare_g": self.tare_g,
                "watchdog_trips": self.watchdog_trips,
                "permit_grants": self.permit_grants,
                "granted_at": self.granted_at,
                "valve_openings": self.valve_openings,
                "reboots": self.reboots,
                "permit_off_at": self.permit_off_at,
                "overshoot_g": self.overshoot_g,
                "now": self._t,
            }
