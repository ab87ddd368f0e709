"""systemd's notification protocol (sd_notify) in a few lines: READY, WATCHDOG, STOPPING.

A datagram to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for the abstract
namespace). Without $NOTIFY_SOCKET (not under systemd, or Type= is not notify) nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from station.logfmt import kv

log = logging.getLogger("station.notify")


def socket_address(env: Mapping[str, str] | None = None) -> str | None:
    """The address to send to: a path, or "\\0name" for an abstract socket; None when unset."""
    addr = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if addr.startswith("@"):
        return "\0" + addr[1:]
    if addr.startswith("/"):
        return addr
    return None  # unset, or a kind we do not speak (vsock:…)


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one state message ("READY=1", "WATCHDOG=1", "STOPPING=1"); True when sent."""
    addr = socket_address(env)
    if addr is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(state.encode("utf-8"))
    except OSError as err:
        log.warning(kv("notify_failed", state=state.split("=")[0], error=str(err)))
        return False
    return True


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """How often to send WATCHDOG=1: half of $WATCHDOG_USEC; None when systemd wants none.

    $WATCHDOG_PID, when set, must be this process (systemd's rule for forked helpers).
    """
    env = os.environ if env is None else env
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None
