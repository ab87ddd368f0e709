"""A null-modem cable made of two ptys: bytes written on one end are read on the other."""

from __future__ import annotations

import errno
import logging
import os
import selectors
import threading
import time
import tty
from dataclasses import dataclass

log = logging.getLogger("simulators.nullmodem")

CHUNK = 4096


@dataclass(frozen=True)
class RS485Line:
    """The timing of one half-duplex RS-485 line (Modbus RTU spec, "serial line" guide):
    `bits_per_char` bits per character at `baudrate` (11: start, 8 data, parity or a second
    stop, stop), a `gap_chars` silence (3.5 characters) that ends each frame, and the
    controller's `turnaround_s` (s) from seeing a request's end to starting its answer.

    One transaction then costs (request + answer characters + 7) character times plus the
    turnaround: a 4-coil read ~17 ms at 19200 baud with 5 ms turnaround, ~28 ms at 9600.
    """

    baudrate: int
    bits_per_char: int = 11
    gap_chars: float = 3.5
    turnaround_s: float = 0.005

    @property
    def char_s(self) -> float:
        """One character's time on the wire (s)."""
        return self.bits_per_char / self.baudrate

    def transaction_s(self, request_chars: int, answer_chars: int) -> float:
        """The time (s) one request and its answer hold the line, with both silences."""
        return (request_chars + answer_chars + 2 * self.gap_chars) * self.char_s + self.turnaround_s


class NullModem:
    """Two pseudo-terminals joined by a thread that copies bytes both ways between their masters.

    Open `server_port` and `client_port` (the two slave paths) with any serial library, 8N1: ptys
    refuse parity. With `baudrate` set, each chunk is held for its time on the wire (10 bits a
    byte) before it is delivered, so RTU timing is roughly that of a real line; bytes that nobody
    can take (the far end's buffer full) are lost, as on a wire. `close()` ends the thread and
    closes every descriptor; anyone still holding a slave open then reads end-of-file or EIO.

    With `line` (an RS485Line), the pair is one RS-485 line with the client end as the master:
    each chunk is a frame that waits for the line to be free plus a 3.5-character silence; a
    request reaches the server end after its characters and the silence that ends it; an answer
    leaves no earlier than the turnaround after that (see RS485Line for the arithmetic).
    """

    def __init__(self, baudrate: int | None = None, line: RS485Line | None = None) -> None:
        if baudrate is not None and baudrate <= 0:
            raise ValueError(f"baudrate must be positive, got {baudrate}")
        self.baudrate = baudrate
        self.line = line
        self._free_at = 0.0  # the line model: when the last frame's last character ended
        self._request_seen = 0.0  # when the server end saw the last request's end
        self.dropped_bytes = 0
        self._fds: list[int] = []
        self._masters: tuple[int, int] | None = None
        self._paths: tuple[str, str] = ("", "")
        self._wake: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def server_port(self) -> str:
        """The slave path of the first end (the simulator opens this one)."""
        return self._paths[0]

    @property
    def client_port(self) -> str:
        """The slave path of the second end (the daemon opens this one)."""
        return self._paths[1]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def open(self) -> NullModem:
        """Create both ptys (raw mode) and start copying."""
        if self._thread is not None:
            raise RuntimeError("null modem already open")
        self._stop.clear()
        try:
            ends = [self._new_end() for _ in range(2)]
            self._wake = os.pipe()
            self._fds.extend(self._wake)
        except OSError:
            self._close_fds()
            raise
        self._masters = (ends[0][0], ends[1][0])
        self._paths = (ends[0][1], ends[1][1])
        self._thread = threading.Thread(target=self._copy, name="null-modem", daemon=True)
        self._thread.start()
        return self

    def _new_end(self) -> tuple[int, str]:
        master, slave = os.openpty()
        self._fds.extend((master, slave))  # the slave stays open: the master never sees EIO
        tty.setraw(slave)  # no echo, no line editing, before anyone opens it
        os.set_blocking(master, False)
        return master, os.ttyname(slave)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the copying thread and close every descriptor."""
        thread = self._thread
        if thread is not None:
            self._stop.set()
            if self._wake is not None:
                os.write(self._wake[1], b"x")
            thread.join(timeout_s)
            if thread.is_alive():
                raise RuntimeError("null modem thread did not stop")
        self._thread = self._masters = self._wake = None
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                log.debug("descriptor %d already closed", fd)
        self._fds.clear()

    def __enter__(self) -> NullModem:
        return self.open()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _copy(self) -> None:
        assert self._masters is not None and self._wake is not None
        a, b = self._masters
        other = {a: b, b: a}
        with selectors.DefaultSelector() as sel:
            for fd in (a, b, self._wake[0]):
                sel.register(fd, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select():
                    if key.fd in other and not self._pass_on(key.fd, other[key.fd]):
                        return

    def _pass_on(self, src: int, dst: int) -> bool:
        """Move what is waiting on `src` to `dst`; False when the modem is closing."""
        try:
            data = os.read(src, CHUNK)
        except BlockingIOError:
            return True
        except OSError as err:  # EIO: cannot happen while we hold the slave, but never spin
            log.debug("null modem read failed: %s", err)
            return not self._stop.wait(0.05)
        if self.line is not None:
            delay = self._frame_delay(src, len(data), time.monotonic())
        else:
            delay = len(data) * 10 / self.baudrate if self.baudrate else 0.0
        if delay > 0 and self._stop.wait(delay):
            return False
        try:
            sent = os.write(dst, data)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EIO):
                raise
            sent = 0
        self.dropped_bytes += len(data) - sent
        return True

    def _frame_delay(self, src: int, chars: int, now: float) -> float:
        """How long (s) the frame read from `src` at `now` takes to reach the far end, and
        the line's state after it (see RS485Line)."""
        assert self.line is not None and self._masters is not None
        char, gap = self.line.char_s, self.line.gap_chars * self.line.char_s
        start = max(now, self._free_at + gap)
        if src == self._masters[0]:  # the server end answers
            start = max(start, self._request_seen + self.line.turnaround_s)
            delivered = start + chars * char
        else:  # the master's request: the server sees its end after the silence
            delivered = start + chars * char + gap
            self._request_seen = delivered
        self._free_at = start + chars * char
        return delivered - now
