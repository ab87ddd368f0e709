"""Rig controller simulator: a real Modbus TCP server, one unit id per rig, with fill physics."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from collections.abc import Callable

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from station.config import RegisterMap

STABLE_AFTER_S = 0.3  # the scale reports stable once the valve has been closed this long
TICK_S = 0.05  # 20 Hz: the watchdog fires even when nobody talks
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
        now: float | None = None,
    ) -> None:
        self.map = registers or RegisterMap()
        self.start_delay_s = start_delay_s
        self.flow_g_per_s = flow_g_per_s
        self._lock = threading.RLock()
        self._t = _clock(now)
        self.coils = dict.fromkeys(COIL_NAMES, False)
        self.inputs = dict.fromkeys(INPUT_NAMES, False)
        self.scale_fault = self.overload = False
        self._gross = 0.0
        self._hr: dict[int, int] = {self.map.watchdog_ms: watchdog_ms & 0xFFFF}
        self._hb_changed_at = self._t
        self._valve_closed_at = self._t - STABLE_AFTER_S
        self._start_at: float | None = None
        self.watchdog_trips = self.permit_grants = self.valve_openings = 0
        m = self.map
        self._coil_at = {getattr(m, n): n for n in COIL_NAMES}
        self._input_at = {getattr(m, n): n for n in INPUT_NAMES}

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
        self._t = t

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

    def _open_valve(self, at: float) -> None:
        ok = self.coils["fill_permit"] and self.inputs["cylinder_present"] and self.healthy
        if ok and not self.inputs["valve_open"]:
            self.inputs["valve_open"] = True
            self.valve_openings += 1

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
            self.coils["fill_permit"] = False
            self._start_at = None
            self._close_valve(at)
        elif not self.coils["fill_permit"] and not self._permit_refused(at):
            self.coils["fill_permit"] = True
            self.inputs["fill_done"] = False
            self.permit_grants += 1
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

    def _input_words(self) -> dict[int, int]:
        high, low = split_u32(min(int(self._gross), U32_MAX))
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
    def place_cylinder(self, gross_g: int, now: float | None = None) -> None:
        """Stand a cylinder of `gross_g` grams on the scale."""
        with self._lock:
            self.advance(now)
            self.inputs["cylinder_present"] = True
            self._gross = float(gross_g)
            self._arm_start(self._t)

    def remove_cylinder(self, now: float | None = None) -> None:
        """Take the cylinder off: the valve closes, the permit stays as it is."""
        with self._lock:
            self.advance(now)
            self._close_valve(self._t)
            self.inputs["cylinder_present"] = False
            self._gross = 0.0
            self._start_at = None

    def set_estop(self, active: bool, now: float | None = None) -> None:
        """Press (True) or release the emergency stop; pressing closes the valve, clears the permit."""
        with self._lock:
            self.advance(now)
            self.inputs["estop"] = active
            if active:
                self._set_permit(False, self._t)

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

    def snapshot(self, now: float | None = None) -> dict[str, int | bool | float]:
        """Every point by name plus the counters, after advancing to `now`."""
        with self._lock:
            self.advance(now)
            return {
                **self.coils,
                **self.inputs,
                "gross_g": min(int(self._gross), U32_MAX),
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
                "valve_openings": self.valve_openings,
                "now": self._t,
            }


# -- the Modbus server ---------------------------------------------------------------------------
_FC_KIND = {1: "coils", 5: "coils", 15: "coils", 2: "inputs", 4: "input"}
_FC_KIND.update(dict.fromkeys((3, 6, 16, 22, 23), "holding"))


def _block_sizes(m: RegisterMap) -> dict[str, int]:
    return {
        "coils": max(getattr(m, n) for n in COIL_NAMES) + 1,
        "inputs": max(getattr(m, n) for n in INPUT_NAMES) + 1,
        "holding": max(m.heartbeat, m.watchdog_ms, m.target_net_g + 1, m.tare_g + 1) + 1,
        "input": max(m.gross_g + 1, m.scale_status, m.fault_code) + 1,
    }


def _sim_device(unit_id: int, m: RegisterMap, action) -> SimDevice:
    sizes = _block_sizes(m)

    def bits(n: int) -> list[SimData]:
        return [SimData(0, count=n, values=False, datatype=DataType.BITS)]

    def regs(n: int) -> list[SimData]:
        return [SimData(0, count=n, values=0, datatype=DataType.REGISTERS)]

    blocks = (
        bits(sizes["coils"]),
        bits(sizes["inputs"]),
        regs(sizes["holding"]),
        regs(sizes["input"]),
    )
    return SimDevice(id=unit_id, simdata=blocks, action=action)


def _model_action(model: RigModel):
    """The SimDevice hook: advance the model, apply a write to it, refresh the block it touches."""

    async def action(
        fc: int,
        _start: int,
        address: int,
        _count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        kind = _FC_KIND.get(fc)
        if kind is None:
            return ExcCodes.ILLEGAL_FUNCTION
        now = time.monotonic()
        if set_values and kind == "coils":
            set_values[:] = model.write_coils(address, [bool(v) for v in set_values], now)
        elif set_values and kind == "holding":
            set_values[:] = model.write_holding(address, [int(v) for v in set_values], now)
        n = len(registers) - 1  # the last register is pymodbus's end marker
        if kind in ("coils", "inputs"):
            registers[:n] = SimUtils.bitsToRegisters(model.read_bits(kind, n * 16, now))
        else:
            registers[:n] = model.read_words(kind, n, now)
        return None

    return action


async def _no_such_unit(*_args) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE


class RigSimulator:
    """A pymodbus TCP server in its own thread and event loop, one RigModel per unit id."""

    def __init__(
        self,
        unit_ids: list[int],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        registers: RegisterMap | None = None,
        **model_kwargs,
    ) -> None:
        if not unit_ids or any(not 1 <= u <= 247 for u in unit_ids):
            raise ValueError(f"unit ids must be 1..247, got {unit_ids}")
        if len(set(unit_ids)) != len(unit_ids):
            raise ValueError(f"unit ids repeat: {unit_ids}")
        self.host, self.port = host, port
        self.registers = registers or RegisterMap()
        self._models = {u: RigModel(registers=self.registers, **model_kwargs) for u in unit_ids}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def unit_ids(self) -> list[int]:
        return list(self._models)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def rig(self, unit_id: int) -> RigModel:
        """The model behind `unit_id` (its methods are safe to call from any thread)."""
        return self._models[unit_id]

    def start(self, timeout_s: float = 5.0) -> RigSimulator:
        """Serve in a new thread; returns once listening (self.port then holds the bound port)."""
        if self.running:
            raise RuntimeError("rig simulator already running")
        ready = threading.Event()
        self._error = None
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), name="rig-simulator", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout_s):
            raise RuntimeError(f"rig simulator did not start listening within {timeout_s} s")
        if self._error is not None:
            self._thread.join(timeout_s)
            self._thread = None
            raise RuntimeError(
                f"rig simulator cannot listen on {self.host}:{self.port}: {self._error}"
            ) from self._error
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the listener and every client connection, then join the thread."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and thread.is_alive():
            loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout_s)
        if thread.is_alive():
            raise RuntimeError("rig simulator thread did not stop")
        self._thread = self._loop = self._stopping = None

    def restart(self) -> RigSimulator:
        """Stop and start again on the same port; the rigs keep their state."""
        self.stop()
        return self.start()

    def wait(self) -> None:
        """Block until the server thread ends (interruptible by Ctrl-C)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def __enter__(self) -> RigSimulator:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def _thread_main(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve(ready))
        except (OSError, RuntimeError) as err:
            self._error = err
        finally:
            ready.set()

    async def _serve(self, ready: threading.Event) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        devices = [
            _sim_device(u, self.registers, _model_action(m)) for u, m in self._models.items()
        ]
        devices.append(_sim_device(0, self.registers, _no_such_unit))  # any other unit id
        server = ModbusTcpServer(devices, address=(self.host, self.port))
        await server.serve_forever(background=True)
        self.port = server.transport.sockets[0].getsockname()[1]
        tick = asyncio.create_task(self._tick())
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            tick.cancel()
            await server.shutdown()
            for _ in range(3):  # let the transports' close callbacks run before the loop ends
                await asyncio.sleep(0)

    async def _tick(self) -> None:
        while True:
            now = time.monotonic()
            for model in self._models.values():
                model.advance(now)
            await asyncio.sleep(TICK_S)


# -- foreground use: `station-sim rig` ------------------------------------------------------------
HELP = """commands:
  place UNIT GROSS_G     stand a cylinder of GROSS_G grams on the scale
  remove UNIT            take the cylinder off
  estop UNIT on|off      press / release the emergency stop
  fault UNIT on|off      raise / clear a scale fault
  overload UNIT on|off   raise / clear a scale overload
  start UNIT             press the start button
  status [UNIT]          show the points of one or every unit
  help                   this text
  quit                   stop the simulator"""


def format_status(unit_id: int, snap: dict) -> str:
    """One key=value line describing a rig."""
    keys = (
        "fill_permit lamp_green lamp_red buzzer valve_open cylinder_present estop fill_done "
        "gross_g stable overload scale_fault fault_code heartbeat watchdog_ms tare_g "
        "target_net_g watchdog_trips permit_grants valve_openings"
    ).split()
    return f"unit={unit_id} " + " ".join(f"{k}={int(snap[k])}" for k in keys)


def _on_off(word: str) -> bool:
    if word not in ("on", "off"):
        raise ValueError(f"want on or off, got {word!r}")
    return word == "on"


_ACTIONS: dict[str, Callable[[RigModel, list[str]], None]] = {
    "place": lambda rig, args: rig.place_cylinder(int(args[1])),
    "remove": lambda rig, _args: rig.remove_cylinder(),
    "estop": lambda rig, args: rig.set_estop(_on_off(args[1])),
    "fault": lambda rig, args: rig.set_scale_fault(_on_off(args[1])),
    "overload": lambda rig, args: rig.set_overload(_on_off(args[1])),
    "start": lambda rig, _args: rig.press_start(),
}


def execute_command(sim: RigSimulator, line: str) -> str:
    """Run one tester command line against `sim`; returns the text to print."""
    words = line.split()
    if not words:
        return ""
    cmd, args = words[0].lower(), words[1:]
    if cmd == "help":
        return HELP
    if cmd != "status" and cmd not in _ACTIONS:
        return f"error: unknown command {cmd!r} (try help)"
    try:
        units = [int(args[0])] if args or cmd != "status" else sim.unit_ids
        if cmd != "status":
            _ACTIONS[cmd](sim.rig(units[0]), args)
        return "\n".join(format_status(u, sim.rig(u).snapshot()) for u in units)
    except IndexError:
        return f"error: {cmd}: missing argument (try help)"
    except ValueError as err:
        return f"error: {err} (try help)"
    except KeyError as err:
        return f"error: no rig with unit id {err}"


def _raise_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def run_rig(
    host: str,
    port: int,
    unit_ids: list[int],
    start_delay_s: float | None = 0.5,
    flow_g_per_s: float = 2000.0,
) -> None:
    """Serve in the foreground, reading tester commands from stdin until quit, EOF+Ctrl-C or SIGTERM."""
    sim = RigSimulator(
        unit_ids, host, port, start_delay_s=start_delay_s, flow_g_per_s=flow_g_per_s
    ).start()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
    units = " ".join(str(u) for u in unit_ids)
    print(f"rig simulator listening on tcp://{sim.host}:{sim.port} units {units}", flush=True)
    try:
        for line in sys.stdin:
            if line.strip().lower() in ("quit", "exit"):
                return
            if reply := execute_command(sim, line):
                print(reply, flush=True)
        sim.wait()  # stdin closed (e.g. run in the background): keep serving
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
