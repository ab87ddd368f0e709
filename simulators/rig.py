"""Rig controller simulator: a real Modbus TCP or RTU server, one unit id per rig, with physics."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from collections.abc import Callable

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from station.config import RegisterMap

from .nullmodem import NullModem, RS485Line
from .rig_model import (
    STABLE_AFTER_S,
    RigModel,
    join_u32,
    split_u32,
)
from .rig_server import MapGuard, _model_action, _sim_device
from .wirelog import WireLog

__all__ = [
    "STABLE_AFTER_S",
    "RigModel",
    "RigSimulator",
    "execute_command",
    "format_status",
    "join_u32",
    "run_rig",
    "split_u32",
]

TICK_S = 0.05  # 20 Hz: the watchdog fires even when nobody talks
RTU_BAUD = 19200

async def _no_such_unit(*_args) -> ExcCodes:
    """TCP (a gateway): a unit id nobody has is answered with an exception response."""
    return ExcCodes.GATEWAY_NO_RESPONSE


async def _silent_unit(*_args) -> ExcCodes:
    """RTU (one RS-485 line): a unit id nobody has gets no answer at all."""
    raise NoSuchIdException("no rig with this unit id on the line")


class RigSimulator:
    """A pymodbus server in its own thread and event loop, one RigModel per unit id.

    Modbus TCP on host:port by default. With `rtu=True` it is Modbus RTU (8N1 at `baudrate`) on
    one end of a NullModem pty pair; the daemon opens the other end, `client_port`. The pair is
    made by the first start() and closed by stop(); restart() keeps it (and so the path). The
    pair models an RS-485 line (`RS485Line`: 11-bit characters at `baudrate`, 3.5-character
    silences, `turnaround_ms` from a request's end to its answer, default 5 ms); `line=None`
    in `rs485` leaves it a plain pty pair paced at 10 bits a byte.

    `wire` (a WireLog) counts and times every request each unit answers, per function code.
    """

    def __init__(
        self,
        unit_ids: list[int],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        registers: RegisterMap | None = None,
        rtu: bool = False,
        baudrate: int = RTU_BAUD,
        turnaround_ms: float = 5.0,
        **model_kwargs,
    ) -> None:
        if not unit_ids or any(not 1 <= u <= 247 for u in unit_ids):
            raise ValueError(f"unit ids must be 1..247, got {unit_ids}")
        if len(set(unit_ids)) != len(unit_ids):
            raise ValueError(f"unit ids repeat: {unit_ids}")
        self.host, self.port = host, port
        self.rtu, self.baudrate = rtu, baudrate
        self.line = RS485Line(baudrate, turnaround_s=turnaround_ms / 1000) if rtu else None
        self.wire = WireLog()
        self.registers = registers or RegisterMap()
        self._models = {u: RigModel(registers=self.registers, **model_kwargs) for u in unit_ids}
        self._modem: NullModem | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def unit_ids(self) -> list[int]:
        return list(self._models)

    @property
    def client_port(self) -> str:
        """RTU only: the serial device the daemon opens (`modbus = "rtu://<this>"`)."""
        if self._modem is None:
            raise RuntimeError("client_port: not an RTU simulator, or not started")
        return self._modem.client_port

    @property
    def url(self) -> str:
        """Where to reach the rigs, as the daemon's `modbus` setting spells it."""
        return f"rtu://{self.client_port}" if self.rtu else f"tcp://{self.host}:{self.port}"

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
        if self.rtu and self._modem is None:
            self._modem = NullModem(self.baudrate, line=self.line).open()
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
            where = self._modem.server_port if self._modem else f"{self.host}:{self.port}"
            self._close_modem()
            raise RuntimeError(
                f"rig simulator cannot listen on {where}: {self._error}"
            ) from self._error
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the listener, every client connection and the pty pair, then join the thread."""
        try:
            self._stop_server(timeout_s)
        finally:
            self._close_modem()

    def _close_modem(self) -> None:
        modem, self._modem = self._modem, None
        if modem is not None:
            modem.close()

    def _stop_server(self, timeout_s: float) -> None:
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
        """Stop serving and start again on the same port or pty; the rigs keep their state."""
        self._stop_server(5.0)
        return self.start()

    def power_off(self) -> None:
        """A controller power cut (or PLC reboot): the server stops, connections drop, and every
        rig loses its coils and holding registers (the valve closes). `power_on()` serves again
        on the same port or pty. `restart()`, by contrast, keeps the registers."""
        self._stop_server(5.0)
        for model in self._models.values():
            model.reboot()

    def power_on(self) -> RigSimulator:
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
        other = _silent_unit if self._modem else _no_such_unit
        devices.append(_sim_device(0, self.registers, other))  # any other unit id
        if self._modem is None:
            server = ModbusTcpServer(devices, address=(self.host, self.port),
                                     trace_pdu=self.wire.trace)
        else:
            server = ModbusSerialServer(
                devices,
                framer=FramerType.RTU,
                port=self._modem.server_port,
                baudrate=self.baudrate,
                ignore_missing_devices=True,
                trace_pdu=self.wire.trace,
            )
        server.context = MapGuard(server.context, self.registers, set(self._models))
        await server.serve_forever(background=True)
        if self._modem is None:
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
  reboot UNIT            reset the controller: coils and holding registers lost, valve closed
  overshoot UNIT GRAMS   the gross mass then moves by GRAMS after the close at target
                         (positive: valve lag, an overfill; negative: settling, an underfill)
  status [UNIT]          show the points of one or every unit
  help                   this text
  quit                   stop the simulator"""


def format_status(unit_id: int, snap: dict) -> str:
    """One key=value line describing a rig."""
    keys = (
        "fill_permit lamp_green lamp_red buzzer valve_open cylinder_present estop fill_done "
        "gross_g stable overload scale_fault fault_code heartbeat watchdog_ms tare_g "
        "target_net_g watchdog_trips permit_grants valve_openings overshoot_g"
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
    "reboot": lambda rig, _args: rig.reboot(),
    "overshoot": lambda rig, args: rig.set_overshoot(int(args[1])),
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
    *,
    overshoot_g: int = 0,
    rtu_baud: int | None = None,
) -> None:
    """Serve in the foreground, reading tester commands from stdin until quit, EOF+Ctrl-C or SIGTERM.

    With `rtu_baud`, serve Modbus RTU on a pty pair instead of TCP (host and port are unused) and
    print the serial device the daemon should open.
    """
    rtu = {"rtu": True, "baudrate": rtu_baud} if rtu_baud is not None else {}
    sim = RigSimulator(
        unit_ids,
        host,
        port,
        start_delay_s=start_delay_s,
        flow_g_per_s=flow_g_per_s,
        overshoot_g=overshoot_g,
        **rtu,
    ).start()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
    units = " ".join(str(u) for u in unit_ids)
    if rtu_baud is None:
        print(f"rig simulator listening on {sim.url} units {units}", flush=True)
    else:
        print(
            f"rig simulator serving {sim.url} ({rtu_baud} 8N1) units {units}; "
            f'daemon config: modbus = "{sim.url}"',
            flush=True,
        )
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
