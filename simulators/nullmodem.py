"""A null-modem cable made of two ptys: bytes written on one end are read on the other."""

from __future__ import annotations

import errno
import logging
import os
import selectors
import threading
import tty

log = logging.getLogger("simulators.nullmodem")

CHUNK = 4096


class NullModem:
    """Two pseudo-terminals joined by a thread that copies bytes both ways between their masters.

    Open `server_port` and `client_port` (the two slave paths) with any serial library, 8N1: ptys
    refuse parity. With `baudrate` set, each chunk is held for its time on the wire (10 bits a
    byte) before it is delivered, so RTU timing is roughly that of a real line; bytes that nobody
    can take (the far end's buffer full) are lost, as on a wire. `close()` ends the thread and
    closes every descriptor; anyone still holding a slave open then reads end-of-file or EIO.
    """

    def __init__(self, baudrate: int | None = None) -> None:
        if baudrate is not None and baudrate <= 0:
            raise ValueError(f"baudrate must be positive, got {baudrate}")
        self.baudrate = baudrate
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
        if self.baudrate and self._stop.wait(len(data) * 10 / self.baudrate):
            return False
        try:
            sent = os.write(dst, data)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EIO):
                raise
            sent = 0
        self.dropped_bytes += len(data) - sent
        return True
