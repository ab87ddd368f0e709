"""RFID reader simulator: a pty that repeats the UID of whatever tag is in the field, as a fixed
reader in auto-read mode does (several times a second, CRLF after each)."""

from __future__ import annotations

import os
import sys
import threading

from .scanner import ScannerSim


class RfidSim:
    """`enter(uid)` puts a tag (or a staff badge) in the field until `leave()`."""

    def __init__(self, link: str | os.PathLike[str] | None = None, rate_hz: float = 8.0):
        self.pty = ScannerSim(link, "crlf")
        self.rate_hz = rate_hz
        self._uid: str | None = None
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
        self._uid = uid
        self._wake.set()

    def leave(self) -> None:
        self._uid = None

    def close(self) -> None:
        self._halt.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self.pty.close()

    def _run(self) -> None:
        while not self._halt.is_set():
            uid = self._uid
            if uid is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            try:
                self.pty.send(uid)
                self.sent += 1
            except OSError:
                return  # the pty is gone
            self._halt.wait(1 / self.rate_hz)


def run_rfid(link: str | None, rate_hz: float) -> None:
    """Print the port path; `tag UID` puts a tag in the field, `leave` takes it away."""
    sim = RfidSim(link, rate_hz).start()
    print(f"rfid simulator on {sim.path} (pty {sim.pty.pty_path}); commands: tag UID, leave, "
          "quit", flush=True)
    try:
        for line in sys.stdin:
            words = line.split()
            if words[:1] == ["tag"] and len(words) == 2:
                sim.enter(words[1])
                print(f"{words[1]} in the field, repeated {rate_hz:g} times a second", flush=True)
            elif words[:1] == ["leave"]:
                sim.leave()
                print("field empty", flush=True)
            elif words[:1] == ["quit"]:
                break
            elif words:
                print("commands: tag UID, leave, quit", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        sim.close()
