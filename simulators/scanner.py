"""Serial scanner simulator: a pty the daemon opens as its scanner port, typed into from here."""

from __future__ import annotations

import os
import sys
import tty
from pathlib import Path

TERMINATORS = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}


class ScannerSim:
    """A pseudo-terminal pair; `path` (or the stable `link`) is what the daemon configures.

    `unplug()` removes the link and closes the pty, as a pulled cable does (udev removes a
    /dev/serial/by-id link; a stale one would lead to whatever pty takes the number next);
    `replug()` makes a new one and points the link at it, as udev does for a scanner that
    comes back.
    """

    def __init__(self, link: str | os.PathLike[str] | None = None, terminator: str = "crlf",
                 prefix: bytes = b""):
        self.link = Path(link) if link else None
        self.terminator = TERMINATORS[terminator]
        self.prefix = prefix
        self.master = self.slave = -1
        self.pty_path = ""

    @property
    def path(self) -> str:
        return str(self.link) if self.link else self.pty_path

    def start(self) -> ScannerSim:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no CR→LF translation: bytes arrive as sent
        self.pty_path = os.ttyname(self.slave)
        if self.link:
            tmp = self.link.with_name(self.link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.pty_path)
            tmp.replace(self.link)
        return self

    def send(self, reading: str | bytes, terminator: bytes | None = None) -> None:
        """Type one reading followed by the terminator."""
        data = reading.encode("utf-8") if isinstance(reading, str) else reading
        end = self.terminator if terminator is None else terminator
        os.write(self.master, self.prefix + data + end)

    def send_raw(self, data: bytes) -> None:
        os.write(self.master, data)

    def unplug(self) -> None:
        if self.link is not None and self.pty_path:
            try:
                if os.readlink(self.link) == self.pty_path:
                    self.link.unlink()
            except OSError:
                pass  # no link (never started, or removed already)
        for fd in (self.master, self.slave):
            if fd >= 0:
                os.close(fd)
        self.master = self.slave = -1

    def replug(self) -> None:
        self.unplug()
        self.start()

    close = unplug


def run_scanner(link: str | None, terminator: str, script: str | None) -> None:
    """Print the port path, then type each line of the script (or stdin) as a reading."""
    sim = ScannerSim(link, terminator).start()
    print(f"scanner simulator on {sim.path} (pty {sim.pty_path}); type readings, one per line",
          flush=True)
    source = open(script, encoding="utf-8") if script else sys.stdin  # noqa: SIM115
    try:
        for line in source:
            text = line.rstrip("\r\n")
            if text:
                sim.send(text)
                print(f"sent {text!r}", flush=True)
        if script:
            input("script done; press Enter to unplug the scanner ")
    except (KeyboardInterrupt, EOFError):
        pass
    finally:
        sim.close()
