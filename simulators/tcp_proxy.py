"""A TCP relay between a client and a server whose link can be cut and restored (a cable, a switch)."""

from __future__ import annotations

import logging
import selectors
import socket
import struct
import threading
from typing import Literal

log = logging.getLogger("simulators.tcp_proxy")

Mode = Literal["pass", "silent", "refuse"]
CHUNK = 65536


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a peer that has gone away answers."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class TcpProxy:
    """Listens on host:port (0: any free port) and relays each connection to target.

    `cut("silent")` is a pulled cable: bytes in flight and every later byte are dropped without
    a word, new connections are accepted and then hear nothing. `cut("refuse")` is a peer that
    is gone: every connection is reset and new ones are reset at once. `restore()` relays again;
    connections that lived through a cut are reset (their byte streams lost data).
    """

    def __init__(
        self, target_host: str, target_port: int, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.target = (target_host, target_port)
        self._listen_at = (host, port)
        self.mode: Mode = "pass"
        self.accepted = self.cuts = 0
        self._lock = threading.Lock()
        self._pairs: dict[socket.socket, socket.socket] = {}  # each end -> the other end
        self._tainted: set[socket.socket] = set()  # ends that lived through a cut
        self._sel = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("proxy not started")
        return self._listener.getsockname()[1]

    def start(self) -> TcpProxy:
        self._listener = socket.create_server(self._listen_at)
        self._listener.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._serve, name="tcp-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(5)
        for sock in list(self._pairs):
            sock.close()
        self._pairs.clear()
        if self._listener is not None:
            self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        self._sel.close()

    def cut(self, how: Mode = "silent") -> None:
        """Cut the link: "silent" (drop every byte) or "refuse" (reset everything)."""
        if how not in ("silent", "refuse"):
            raise ValueError(f"cut how: silent or refuse, not {how!r}")
        with self._lock:
            self.mode, self.cuts = how, self.cuts + 1
        self._wake()

    def restore(self) -> None:
        with self._lock:
            self.mode = "pass"
        self._wake()

    # -- the relay thread ---------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _serve(self) -> None:
        while not self._stopping.is_set():
            for key, _ in self._sel.select(0.5):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    self._wake_r.recv(4096)
                    self._apply_mode()
                elif key.fileobj in self._pairs:
                    self._relay(key.fileobj)

    def _apply_mode(self) -> None:
        mode = self.mode
        if mode == "refuse":
            self._drop_all(lambda _s: True)
        elif mode == "silent":
            self._tainted.update(self._pairs)
        else:
            self._drop_all(lambda s: s in self._tainted)

    def _drop_all(self, which) -> None:
        for sock in [s for s in self._pairs if which(s)]:
            self._drop(sock)

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        self.accepted += 1
        if self.mode == "refuse":
            _reset(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError as err:
            log.debug("upstream %s unreachable: %s", self.target, err)
            _reset(client)
            return
        for sock in (client, upstream):
            sock.settimeout(2)  # reads follow readiness; a send that cannot go in 2 s fails
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sel.register(sock, selectors.EVENT_READ)
        self._pairs[client], self._pairs[upstream] = upstream, client
        if self.mode == "silent":
            self._tainted.update((client, upstream))

    def _relay(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock, rst=False)
            return
        if self.mode != "pass" or sock in self._tainted:
            return  # the cable is out: the bytes go nowhere
        try:
            self._pairs[sock].sendall(data)
        except OSError:
            self._drop(sock)

    def _drop(self, sock: socket.socket, rst: bool = True) -> None:
        other = self._pairs.pop(sock, None)
        for s in (sock, other):
            if s is None:
                continue
            self._pairs.pop(s, None)
            self._tainted.discard(s)
            try:
                self._sel.unregister(s)
            except (KeyError, ValueError):
                pass
            if rst:
                _reset(s)
            else:
                s.close()
