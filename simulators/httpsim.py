"""The HTTP handler base of the city simulators: keep-alive, no Nagle delay, connections tracked."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol


class Tracker(Protocol):
    def track(self, conn: socket.socket, add: bool) -> None: ...


class TrackedHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with the Nagle delay off (PITFALLS: 44 ms a request otherwise); each connection
    is reported to the simulator's `track` while it is open, so that `stop()` can cut it."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def tracker(self) -> Tracker:
        """The simulator that tracks this handler's connections."""
        raise NotImplementedError

    def setup(self) -> None:
        super().setup()
        self.tracker().track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.tracker().track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass
