"""Helpers for the web tests: `station web` as a subprocess, a [web] section, Chromium's path."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from station.web.auth import hash_password

CHROMIUM = os.environ.get("STATION_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORDS = {"manager": "correct horse battery", "clerk": "clerk-password-1"}
# Cheaper scrypt for tests (each check ~1 ms); the real default is 2**14.
HASHES = {name: hash_password(pw, n=2**10) for name, pw in PASSWORDS.items()}


def web_config(max_failed: int = 3, lockout_minutes: float = 5) -> str:
    """A [web] section for a SimStation's extra_config: any free port, two managers."""
    users = "".join(f'\n[[web.users]]\nname = "{n}"\npassword_hash = "{h}"\n'
                    for n, h in HASHES.items())
    return (f'\n[web]\nbind = "127.0.0.1"\nport = 0\nsession_hours = 1\n'
            f"max_failed_logins = {max_failed}\nlockout_minutes = {lockout_minutes}\n{users}")


class WebProcess:
    """`station web --config FILE` in a subprocess; `url` once it logged event=web_ready."""

    def __init__(self, config: Path, timeout: float = 20.0):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "station", "web", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, encoding="utf-8",
            errors="replace", env=env, cwd=config.parent)
        self.lines: list[str] = []
        self.url = ""
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(timeout) or not self.url:
            self.stop()
            raise RuntimeError("station web did not start:\n" + "".join(self.lines[-30:]))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            found = re.search(r"event=web_ready url=(\S+)", line)
            if found:
                self.url = found.group(1).rstrip("/")
                self.ready.set()
        self.ready.set()  # it exited

    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
