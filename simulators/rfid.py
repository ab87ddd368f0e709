"""RFID reader simulator: a pty that repeats the UID of whatever tag is in the field, as a fixed
reader in auto-read mode does (several times a second, CRLF after each)."""

from __future__ import annotations

import os
import sys
import threading

from .scanner import ScannerSim


class RfidSim:
    """`enter(uid)` puts a tag (or a staff badge) in the field until `leave()`; with several
    tags in the field (a neighbour's, a badge beside a tag) the reader reports them in turn."""

    def __init__(self, link: str | os.PathLike[str] | None = None, rate_hz: float = 8.0):
        self.pty = ScannerSim(link, "crlf")
        self.rate_hz = rate_hz
        self._tags: list[str] = []
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rfid-sim", daemon=True)
        self.sent = 0

    @property
    def path(self) -> str:
        return self.pty.path

    def start(self) -> RfidSim:
        self.pty.start()
        self._thread.start()
        return self

    def enter(self, uid: str) -> None:
        """Another tag in the field (one already there stays)."""
        if uid not in self._tags:
            self._tags = [*self._tags, uid]
        self._wake.set()

    def leave(self, uid: str | None = None) -> None:
        """`uid` leaves the field; every tag when None."""
        self._tags = [t for t in self._tags if uid is not None and t != uid]

    def close(self) -> None:
        self._halt.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self.pty.close()

    def _run(self) -> None:
        turn = 0
        while not self._halt.is_set():
            tags = self._tags
            if not tags:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            turn += 1
            try:
                self.pty.send(tags[turn % len(tags)])
                self.sent += 1
            except OSError:
                return  # the pty is gone
            self._halt.wait(1 / self.rate_hz)


def run_rfid(link: str | None, rate_hz: float) -> None:
    """Print the port path; `tag UID` puts a tag in the field (beside any already there),
    `leave UID` takes one away, `leave` all of them."""
    sim = RfidSim(link, rate_hz).start()
    print(f"rfid simulator on {sim.path} (pty {sim.pty.pty_path}); commands: tag UID, "
          "leave [UID], quit", flush=True)
    try:
        for line in sys.stdin:
            words = line.split()
            if words[:1] == ["tag"] and len(words) == 2:
                sim.enter(words[1])
                print(f"{words[1]} in the field, repeated {rate_hz:g} times a second", flush=True)
            elif words[:1] == ["leave"] and len(words) <= 2:
                sim.leave(words[1] if len(words) == 2 else None)
                print(f"{words[1] if len(words) == 2 else 'every tag'} left the field", flush=True)
            elif words[:1] == ["quit"]:
                break
            elif words:
                print("commands: tag UID, leave, quit", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        sim.close()
