"""The HTTP handler base of the city simulators: keep-alive, no Nagle delay, connections tracked."""

from __future__ import annotations

import logging
import socket
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

log = logging.getLogger("simulators.http")


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


MAX_DISCARD = 16 * 1024 * 1024  # a body the simulator reads only to stay in step


class ContractHandler(TrackedHandler):
    """A TrackedHandler whose every answer is the contract's envelope (contracts/city-api.md),
    whatever arrives: a method other than those served gets 405 (HEAD: no body), a request the
    stdlib cannot parse gets its 4xx, a handler exception a 500 (never a dropped connection),
    and an unused body is read and discarded so that keep-alive stays in step (issue 16).

    Subclasses implement `envelope(status, code, message)` and the `serve_<METHOD>` they
    serve; `answered` says whether this request has been answered yet."""

    methods: tuple[str, ...] = ("GET", "POST")
    answered = False

    def envelope(self, status: int, code: str, message: str) -> None:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # BaseHTTPRequestHandler dispatches on do_<METHOD>
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        self.answered = False
        if "transfer-encoding" in self.headers:  # a body we do not read would be parsed as
            self.close_connection = True           # the next request: refuse and close
            self.envelope(400, "400", "Transfer-Encoding is not supported: send Content-Length")
            return
        if self.command not in self.methods:
            self.discard_body()
            self.envelope(405, "405", f"method {self.command[:20]} not allowed")
            return
        try:
            getattr(self, "serve_" + self.command)()
        except Exception:  # noqa: BLE001 - a simulator bug answers 500, never a silent close
            log.exception("city simulator handler failed on %s %s", self.command,
                          self.path[:200])
            self.close_connection = True
            if not self.answered:
                self.envelope(500, "500", "simulator error")

    def discard_body(self) -> bool:
        """Read and drop the request's Content-Length bytes; False (and the connection marked
        for closing) when the length is not a number or too large."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_DISCARD:
            self.close_connection = True
            return False
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                self.close_connection = True
                return False
            length -= len(chunk)
        return True

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """The stdlib's own refusals (bad request line, headers too long, …) as envelopes."""
        self.close_connection = True
        if not self.request_version.startswith("HTTP/1."):  # unparsed: answer as HTTP/1.1
            self.request_version = "HTTP/1.1"
        self.envelope(code, str(code), message or "bad request")

    def send_body(self, status: int, body: bytes, ctype: str,
                  extra: dict[str, str] | None = None) -> None:
        """One answer; a HEAD request gets the headers only. A client gone is not an error."""
        self.answered = True
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if status == 405:
                self.send_header("Allow", ", ".join(self.methods))
            if self.close_connection:
                self.send_header("Connection", "close")
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            self.close_connection = True
            log.debug("client went away before the answer was sent")
