"""Serial barcode/QR scanner (and serial RFID) reader: lines from a tty, reopened after unplug."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator

import serial

from station.backoff import Backoff
from station.config import ReaderConfig
from station.errors import ReaderError
from station.transitions import Transitions

from .reader import Line, TagReader

log = logging.getLogger("station.reader")

TERMINATORS = {"any": re.compile(rb"\r\n|\r|\n"), "cr": re.compile(rb"\r"),
               "lf": re.compile(rb"\n"), "crlf": re.compile(rb"\r\n")}


class LineSplitter:
    """Split a byte stream into lines; a line longer than max_length is reported, not kept."""

    def __init__(self, terminator: str = "any", max_length: int = 1000):
        self.pattern = TERMINATORS[terminator]
        self.max_length = max_length
        self.buffer = bytearray()
        self.discarding = False

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """Return (line, overlong) pairs completed by this chunk."""
        self.buffer += data
        out: list[tuple[bytes, bool]] = []
        while match := self.pattern.search(self.buffer):
            line = bytes(self.buffer[: match.start()])
            del self.buffer[: match.end()]
            if self.discarding:
                self.discarding = False
                continue
            if len(line) > self.max_length:
                out.append((line[: self.max_length + 1], True))
            elif line:
                out.append((line, False))
        if len(self.buffer) > self.max_length and not self.discarding:
            out.append((bytes(self.buffer[: self.max_length + 1]), True))
            self.discarding = True
        if self.discarding:
            self.buffer.clear()
        return out


class SerialScanner(TagReader):
    """A scanner on a serial port or USB-CDC tty (also a pty from the simulator)."""

    kind = "scanner"

    def __init__(self, cfg: ReaderConfig, rig_id: str, *, backoff_max_s: float = 5.0):
        self.cfg, self.rig_id, self.reader_id = cfg, rig_id, cfg.id
        self.kind = cfg.kind  # scanner or rfid: the same line protocol
        self.backoff_max_s = backoff_max_s
        self._avail = Transitions(log, lost="reader_lost", recovered="reader_recovered",
                                  first="reader_open", rig=rig_id, reader=cfg.id,
                                  port=cfg.port)
        self.opened = 0  # successful opens, for health pages and tests

    def _open(self) -> serial.Serial:
        try:
            return serial.Serial(self.cfg.port, self.cfg.baudrate, timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as err:
            raise ReaderError(f"cannot open {self.cfg.port}: {err}") from err

    @property
    def connected(self) -> bool | None:
        """Whether the port is open; None: never tried."""
        return self._avail.state

    async def lines(self) -> AsyncIterator[Line]:
        backoff = Backoff(start_s=0.1, cap_s=self.backoff_max_s)
        while True:
            try:
                port = self._open()
            except ReaderError as err:
                self._avail.down(error=str(err))
                await asyncio.sleep(backoff.next())
                continue
            self.opened += 1
            self._avail.up()
            backoff.reset()
            try:
                async for line in self._read(port):
                    yield line
            except ReaderError as err:
                self._avail.down(error=str(err))
            finally:
                port.close()

    async def _read(self, port: serial.Serial) -> AsyncIterator[Line]:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | Exception] = asyncio.Queue()

        def readable() -> None:
            try:
                data = port.read(port.in_waiting or 1)
            except (serial.SerialException, OSError) as err:
                loop.remove_reader(port.fileno())
                chunks.put_nowait(err)
                return
            if data:
                chunks.put_nowait(data)

        splitter = LineSplitter(self.cfg.terminator, self.cfg.max_length)
        loop.add_reader(port.fileno(), readable)
        try:
            while True:
                chunk = await chunks.get()
                if isinstance(chunk, Exception):
                    raise ReaderError(f"{self.cfg.port}: {chunk}") from chunk
                now = time.monotonic()
                for data, overlong in splitter.feed(chunk):
                    yield Line(self.reader_id, data, now, overlong)
        finally:
            try:
                loop.remove_reader(port.fileno())
            except (ValueError, OSError):
                pass
