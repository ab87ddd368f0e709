"""Rig controllers over Modbus TCP or RTU (pymodbus): one shared, serialised link per endpoint."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient, ModbusBaseClient
from pymodbus.exceptions import ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from station.backoff import Backoff
from station.config import ModbusEndpoint, RegisterMap, RigConfig
from station.errors import RigFault
from station.logfmt import kv
from station.transitions import Transitions

from .rig import RigController, RigStatus

log = logging.getLogger("station.rig")

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
U16_MAX, U32_MAX = 0xFFFF, 0xFFFFFFFF
COILS = ("fill_permit", "lamp_green", "lamp_red", "buzzer")
INPUTS = ("valve_open", "cylinder_present", "estop", "fill_done")
MAX_BITS, MAX_REGS = 2000, 125  # per read request (Modbus application protocol)

Request = Callable[[ModbusBaseClient], Awaitable[ModbusPDU]]


class LinkDropped(Exception):
    """The peer closed the connection while a transaction was in flight."""


class ModbusLink:
    """One connection (a TCP socket or an RS-485 line) shared by the rigs behind it.

    Transactions are serialised by `lock`. pymodbus's own retries and auto-reconnect are off:
    `ensure_connected()` reconnects with exponential backoff (0.1 s doubling to 5 s) and never
    waits longer than `timeout_s`; while backing off it fails at once.
    """

    def __init__(self, endpoint: ModbusEndpoint, timeout_s: float = 1.0) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.lock = asyncio.Lock()
        self._client: ModbusBaseClient | None = None
        self._dropped: asyncio.Event | None = None
        self._avail = Transitions(log, lost="modbus_link_lost", first="modbus_link_up",
                                  recovered="modbus_link_recovered", timed=True,
                                  endpoint=endpoint.key)
        self._backoff = Backoff(start_s=BACKOFF_MIN_S, cap_s=BACKOFF_MAX_S)
        self._retry_at = 0.0
        self._users: set[str] = set()

    @property
    def key(self) -> str:
        return self.endpoint.key

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def attach(self, user: str) -> None:
        """Register a rig on this link and connect now; raises RigFault if that fails."""
        self._users.add(user)
        async with self.lock:
            await self.ensure_connected()

    async def detach(self, user: str) -> None:
        """Unregister a rig; the connection closes when the last rig has left."""
        self._users.discard(user)
        if not self._users:
            await self.close()

    async def close(self) -> None:
        """Close the connection (a later transaction reconnects)."""
        async with self.lock:
            self._discard_client()

    async def ensure_connected(self) -> None:
        """Connect if not connected; call with `lock` held. Raises RigFault."""
        if self.connected:
            return
        if self._client is not None:  # dropped while idle: try again at once
            self._lost("connection closed by peer")
            self._retry_at = 0.0
        now = time.monotonic()
        if now < self._retry_at:
            raise RigFault(
                f"modbus {self.key}: link down, next connect attempt in "
                f"{self._retry_at - now:.1f} s"
            )
        client = self._new_client()
        why = "refused or unreachable" if self.endpoint.kind == "tcp" else "port will not open"
        try:
            ok = await asyncio.wait_for(client.connect(), self.timeout_s)
        except (TimeoutError, OSError, ModbusException) as err:
            ok, why = False, str(err) or type(err).__name__
        if not ok:
            client.close()
            self._lost(why)
            raise RigFault(f"modbus {self.key}: cannot connect ({why})")
        self._client = client
        self._mark_up()

    async def transact(self, what: str, request: Request) -> ModbusPDU:
        """Run one request on the link; any failure or exception response is a RigFault."""
        async with self.lock:
            await self.ensure_connected()
            try:
                response = await self._race(request)
            except (TimeoutError, ModbusIOException) as err:
                self._failed("no answer", serial_keeps_line=True)
                raise RigFault(f"{what}: no answer within {self.timeout_s:g} s") from err
            except (LinkDropped, ModbusException, OSError) as err:
                self._failed(str(err) or type(err).__name__)
                raise RigFault(f"{what}: modbus {self.key}: {err}") from err
            except asyncio.CancelledError:  # cut short (shutdown): its answer may still come,
                self._discard_client()  # so the next transaction starts on a fresh connection
                raise
        if response.isError():
            code = getattr(response, "exception_code", "?")
            raise RigFault(f"{what}: exception response, code {code}")
        self._backoff.reset()
        return response

    async def _race(self, request: Request) -> ModbusPDU:
        """The request's answer, unless the connection drops or the timeout passes first."""
        assert self._client is not None and self._dropped is not None
        req = asyncio.ensure_future(request(self._client))
        drop = asyncio.ensure_future(self._dropped.wait())
        try:
            done, _ = await asyncio.wait(
                {req, drop}, timeout=self.timeout_s + 0.05, return_when=asyncio.FIRST_COMPLETED
            )
        finally:  # also when we are cancelled: leave no request running on the shared link
            drop.cancel()
            if not req.done():
                req.cancel()
        if req in done:
            return req.result()
        await asyncio.wait({req})  # let pymodbus unwind the cancelled request
        if drop in done:
            raise LinkDropped("connection closed by peer")
        raise TimeoutError

    def _failed(self, why: str, serial_keeps_line: bool = False) -> None:
        """After a failed transaction: drop the connection (so no stale answer is misread)."""
        if serial_keeps_line and self.endpoint.kind == "rtu":
            return  # one silent unit on an RS-485 line says nothing about the line
        self._discard_client()
        self._lost(why)

    def _new_client(self) -> ModbusBaseClient:
        dropped = asyncio.Event()

        def on_connect(up: bool) -> None:
            if not up:
                dropped.set()

        self._dropped = dropped
        ep = self.endpoint
        common = dict(
            timeout=self.timeout_s,
            retries=0,
            reconnect_delay=0,
            trace_connect=on_connect,
            name=ep.key,
        )
        if ep.kind == "tcp":
            return AsyncModbusTcpClient(ep.host, port=ep.port, **common)
        return AsyncModbusSerialClient(
            ep.device,
            baudrate=ep.baudrate,
            bytesize=ep.bytesize,
            parity=ep.parity,
            stopbits=ep.stopbits,
            **common,
        )

    def _discard_client(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    def _lost(self, why: str) -> None:
        """The link failed: drop the client, back off the next connect, log the first time."""
        self._discard_client()
        self._retry_at = time.monotonic() + self._backoff.next()
        self._avail.down(error=why)

    def _mark_up(self) -> None:
        self._avail.up()


def links_for(rigs: list[RigConfig]) -> dict[str, ModbusLink]:
    """One link per endpoint key; its timeout is the shortest of the rigs sharing it."""
    links: dict[str, ModbusLink] = {}
    for rig in rigs:
        key, timeout_s = rig.modbus.key, rig.timeout_ms / 1000.0
        link = links.get(key)
        if link is None:
            links[key] = ModbusLink(rig.modbus, timeout_s)
        elif link.endpoint != rig.modbus:
            raise ValueError(f"rig {rig.id}: endpoint {key} configured differently by two rigs")
        else:
            link.timeout_s = min(link.timeout_s, timeout_s)
    return links


def _span(addresses: list[int], limit: int) -> tuple[int, int]:
    start = min(addresses)
    count = max(addresses) - start + 1
    if count > limit:
        raise ValueError(f"registers {start}..{start + count - 1} span more than {limit}")
    return start, count


def _u32(name: str, value: int) -> list[int]:
    if not 0 <= value <= U32_MAX:
        raise ValueError(f"{name}={value} does not fit an unsigned 32-bit register pair")
    return [value >> 16, value & U16_MAX]


class ModbusRig(RigController):
    """A rig controller at `cfg.unit_id` behind a shared ModbusLink, addressed by cfg.registers."""

    def __init__(self, cfg: RigConfig, link: ModbusLink) -> None:
        self.cfg, self.rig_id, self.unit = cfg, cfg.id, cfg.unit_id
        self.map: RegisterMap = cfg.registers
        self._link = link
        self._heartbeat = 0
        self._watchdog_ms: int | None = None  # as configure() wrote it
        m = self.map
        beat = [m.heartbeat, m.watchdog_ms]  # read back together when near enough
        self._beat_span = _span(beat, MAX_REGS) if max(beat) - min(beat) < MAX_REGS else None
        self._coil_span = _span([getattr(m, n) for n in COILS], MAX_BITS)
        self._input_span = _span([getattr(m, n) for n in INPUTS], MAX_BITS)
        self._ireg_span = _span([m.gross_g, m.gross_g + 1, m.scale_status, m.fault_code], MAX_REGS)

    def __repr__(self) -> str:
        return f"ModbusRig({self.rig_id!r}, {self._link.key} unit {self.unit})"

    async def _call(self, what: str, request: Request) -> ModbusPDU:
        return await self._link.transact(f"rig {self.rig_id} (unit {self.unit}) {what}", request)

    async def connect(self) -> None:
        await self._link.attach(self.rig_id)

    async def close(self) -> None:
        await self._link.detach(self.rig_id)

    # -- reads -----------------------------------------------------------------------------------
    async def _read_bits(self, what: str, fc: int, span: tuple[int, int]) -> dict[int, bool]:
        start, count = span
        if fc == 1:
            rr = await self._call(
                what, lambda c: c.read_coils(start, count=count, device_id=self.unit)
            )
        else:
            rr = await self._call(
                what, lambda c: c.read_discrete_inputs(start, count=count, device_id=self.unit)
            )
        if len(rr.bits) < count:
            raise RigFault(f"rig {self.rig_id}: {what}: {len(rr.bits)} bits, wanted {count}")
        return {start + i: bool(rr.bits[i]) for i in range(count)}

    async def _read_words(self, what: str, fc: int, span: tuple[int, int]) -> dict[int, int]:
        start, count = span
        if fc == 3:
            rr = await self._call(
                what, lambda c: c.read_holding_registers(start, count=count, device_id=self.unit)
            )
        else:
            rr = await self._call(
                what, lambda c: c.read_input_registers(start, count=count, device_id=self.unit)
            )
        if len(rr.registers) != count:
            raise RigFault(
                f"rig {self.rig_id}: {what}: {len(rr.registers)} registers, wanted {count}"
            )
        return {start + i: int(rr.registers[i]) for i in range(count)}

    async def read_status(self) -> RigStatus:
        m = self.map
        # Three requests (tens of ms apart on RS-485): the mass first, then the valve and the
        # permit, so a valve that opens between them shows as open over the mass before it
        # (never as gas gained with the valve shut, which would end a just-started fill).
        regs = await self._read_words("read input registers", 4, self._ireg_span)
        inputs = await self._read_bits("read discrete inputs", 2, self._input_span)
        coils = await self._read_bits("read coils", 1, self._coil_span)
        scale = regs[m.scale_status]
        return RigStatus(
            permit=coils[m.fill_permit],
            lamp_green=coils[m.lamp_green],
            lamp_red=coils[m.lamp_red],
            buzzer=coils[m.buzzer],
            valve_open=inputs[m.valve_open],
            cylinder_present=inputs[m.cylinder_present],
            estop=inputs[m.estop],
            fill_done=inputs[m.fill_done],
            gross_g=(regs[m.gross_g] << 16) | regs[m.gross_g + 1],
            stable=bool(scale & 1),
            overload=bool(scale & 2),
            scale_fault=bool(scale & 4),
            fault_code=regs[m.fault_code],
        )

    # -- writes, each read back ------------------------------------------------------------------
    async def _write_coils(self, values: dict[str, bool]) -> dict[str, bool]:
        """Write each named coil (FC05), then read them all back in one FC01; returns what is held."""
        for name, value in values.items():
            addr = getattr(self.map, name)
            await self._call(
                f"write {name.upper()}={int(value)}",
                lambda c, a=addr, v=value: c.write_coil(a, v, device_id=self.unit),
            )
        held = await self._read_bits("read back coils", 1, self._coil_span)
        return {name: held[getattr(self.map, name)] for name in values}

    async def _set_coils(self, values: dict[str, bool]) -> None:
        held = await self._write_coils(values)
        wrong = [
            f"{n.upper()}={int(held[n])} (wrote {int(v)})"
            for n, v in values.items()
            if held[n] != v
        ]
        if wrong:
            raise RigFault(f"rig {self.rig_id}: read back {', '.join(wrong)}")

    async def _write_words(self, name: str, words: list[int]) -> None:
        addr = getattr(self.map, name)
        what = f"write {name.upper()}={words}"
        if len(words) == 1:
            await self._call(what, lambda c: c.write_register(addr, words[0], device_id=self.unit))
        else:
            await self._call(what, lambda c: c.write_registers(addr, words, device_id=self.unit))
        held = await self._read_words(f"read back {name.upper()}", 3, (addr, len(words)))
        got = [held[addr + i] for i in range(len(words))]
        if got != words:
            raise RigFault(f"rig {self.rig_id}: read back {name.upper()}={got}, wrote {words}")

    async def configure(self, watchdog_ms: int) -> None:
        if not 1 <= watchdog_ms <= U16_MAX:
            raise ValueError(f"watchdog_ms={watchdog_ms} out of 1..65535")
        await self._write_words("watchdog_ms", [watchdog_ms])
        self._watchdog_ms = watchdog_ms
        await self._set_coils({"fill_permit": False})
        await self.set_lamps(False, False, False)
        held = await self._read_words("read HEARTBEAT", 3, (self.map.heartbeat, 1))
        self._heartbeat = held[self.map.heartbeat]  # continue from it: the next value is new
        await self.heartbeat()

    async def heartbeat(self) -> None:
        """Write the next HEARTBEAT and read it back with WATCHDOG_MS: a controller that was
        reset without the link noticing (its registers back to their defaults) is a RigFault,
        so that the rig loop configures it again instead of trusting a watchdog period it
        never set."""
        m, beat = self.map, 1 if self._heartbeat >= U16_MAX else self._heartbeat + 1
        self._heartbeat = beat
        await self._call(
            f"write HEARTBEAT={beat}",
            lambda c: c.write_register(m.heartbeat, beat, device_id=self.unit),
        )
        span = self._beat_span or (m.heartbeat, 1)
        held = await self._read_words("read back HEARTBEAT", 3, span)
        if held[m.heartbeat] != beat:
            raise RigFault(
                f"rig {self.rig_id}: read back HEARTBEAT={held[m.heartbeat]}, wrote {beat}"
            )
        if self._watchdog_ms is None:
            return
        if self._beat_span is None:
            held = await self._read_words("read WATCHDOG_MS", 3, (m.watchdog_ms, 1))
        if held[m.watchdog_ms] != self._watchdog_ms:
            raise RigFault(
                f"rig {self.rig_id}: WATCHDOG_MS reads {held[m.watchdog_ms]}, "
                f"configured {self._watchdog_ms} (controller reset?)"
            )

    async def grant_permit(self, tare_g: int, target_g: int) -> None:
        tare, target = _u32("tare_g", tare_g), _u32("target_g", target_g)
        await self._write_words("tare_g", tare)
        await self._write_words("target_net_g", target)
        try:
            held = await self._write_coils({"fill_permit": True})
            if not held["fill_permit"]:
                raise RigFault(
                    f"rig {self.rig_id}: controller refused the fill permit "
                    f"({await self._refusal_reason()})"
                )
            await self._set_coils({"lamp_green": True, "lamp_red": False})
        except RigFault:
            await self._withdraw_quietly()
            raise

    async def _refusal_reason(self) -> str:
        try:
            status = await self.read_status()
        except RigFault as err:
            return f"status unreadable: {err}"
        return status.fault_text() or "watchdog expired or controller not ready"

    async def _withdraw_quietly(self) -> None:
        """Best effort after a failed grant: leave no permit behind (the watchdog is the backstop)."""
        try:
            await self._set_coils({"fill_permit": False})
        except RigFault as err:
            log.warning(kv("withdraw_after_failed_grant_failed", rig=self.rig_id, error=str(err)))

    async def withdraw_permit(self) -> None:
        await self._set_coils({"fill_permit": False})

    async def set_lamps(self, green: bool, red: bool, buzzer: bool = False) -> None:
        await self._set_coils({"lamp_green": green, "lamp_red": red, "buzzer": buzzer})

    async def set_buzzer(self, on: bool) -> None:
        await self._set_coils({"buzzer": on})
