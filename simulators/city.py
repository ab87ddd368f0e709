"""City traceability system simulator: a real HTTP server speaking contracts/city-api.md."""

from __future__ import annotations

import json
import logging
import random
import select
import signal
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, replace
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from station.city.profile import DEFAULT_PROFILE, CityProfile
from station.today import station_today

from .city_api import API_PATHS, PATHS, CityLedger, Reply
from .city_faults import Faults, _check_fault
from .httpsim import ContractHandler

log = logging.getLogger("simulators.city")

MAX_BODY = 16 * 1024 * 1024
GARBAGE = b"<html><body><h1>502 Bad Gateway</h1>upstream said hello</body></html>"


class CitySimulator:
    """The city system, served over real HTTP on loopback, with faults settable at any time."""

    def __init__(self, dataset: dict, host: str = "127.0.0.1", port: int = 0,
                 token_ttl_s: int = 7200, clock: Callable[[], float] = time.time,
                 tls: ssl.SSLContext | None = None, profile: CityProfile = DEFAULT_PROFILE):
        self.profile = profile  # the deployment's terms it speaks (contracts/city-api.md by default)
        self._tls = tls  # serve HTTPS with this server-side context
        self._ledger = CityLedger(dataset, token_ttl_s=token_ttl_s, clock=clock, profile=profile)
        self._host, self._port = host, port
        self._lock = threading.RLock()  # faults, request counters, open connections
        self._stopping = threading.Event()
        self._rng = random.Random()
        self._faults = Faults()
        self._requests: Counter[str] = Counter()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_file(cls, path: str | Path, **kw: Any) -> CitySimulator:
        """A simulator serving the dataset in a JSON file."""
        return cls(json.loads(Path(path).read_text(encoding="utf-8")), **kw)

    # ---- life cycle -------------------------------------------------------------------------
    def start(self) -> CitySimulator:
        """Bind and serve in a background daemon thread."""
        self._stopping.clear()
        self._server = _Server((self._host, self._port), _Handler)
        if self._tls is not None:  # the handshake in the handler's thread, not the accept loop
            self._server.socket = self._tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False)
        self._server.sim = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="city-sim", daemon=True)
        self._thread.start()
        log.info("city simulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection, hanging ones included."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                log.debug("connection already closed")
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> CitySimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self._host}:{self.port}"

    # ---- control ----------------------------------------------------------------------------
    def set_faults(self, **kw: Any) -> None:
        """Set (merge) faults; unknown names or bad values raise ValueError."""
        checked = {k: _check_fault(k, v) for k, v in kw.items()}
        with self._lock:
            self._faults = replace(self._faults, **checked)
        log.info("faults now %s", self._faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = Faults()

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far."""
        self._ledger.expire_tokens()

    @property
    def requests(self) -> Counter[str]:
        """POSTs received per path (a copy; 0 for paths never called)."""
        with self._lock:
            return Counter(self._requests)

    @property
    def submissions(self) -> Counter[str]:
        """Filling submissions received per record_id (a copy)."""
        return self._ledger.submissions

    @property
    def fillings(self) -> list[dict]:
        """Accepted filling records, in order of acceptance (copies)."""
        return self._ledger.fillings

    def cylinder(self, cylinder_id: str) -> dict | None:
        """The simulator's current record of a cylinder (a copy), or None."""
        return self._ledger.cylinder(cylinder_id)

    def put_cylinder(self, record: dict) -> None:
        """Add or replace a cylinder record (a tester changing the city's truth)."""
        self._ledger.put_cylinder(record)

    def delete_cylinder(self, cylinder_id: str) -> bool:
        """Forget a cylinder: the city then answers 404 for its tags."""
        return self._ledger.delete_cylinder(cylinder_id)

    def state(self) -> dict:
        """Counters and current faults, as GET /_sim/state serves them."""
        with self._lock:
            faults = asdict(self._faults)
            faults["paths"] = list(self._faults.paths) if self._faults.paths else None
            requests = dict(self._requests)
        return {"requests": requests, "submissions": dict(self._ledger.submissions),
                "fillings": self._ledger.fillings, "faults": faults,
                "tokens": self._ledger.token_count}

    def control(self, body: Any) -> dict:
        """Apply a POST /_sim/faults body: fault settings, plus `clear` and `expire_tokens`."""
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        body = dict(body)
        if body.pop("clear", False):
            self.clear_faults()
        if body.pop("expire_tokens", False):
            self.expire_tokens()
        self.set_faults(**body)
        return self.state()

    # ---- request plumbing (called from handler threads) -------------------------------------
    def track(self, conn: socket.socket, add: bool) -> None:
        """A connection opened (`add`) or closed: the ones `stop()` cuts."""
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def _arrive(self, path: str) -> Faults | None:
        """Count a request; return the faults that apply to it (using up one of `count`)."""
        with self._lock:
            self._requests[path] += 1
            f = self._faults
            if path not in API_PATHS or f == Faults() or not f.applies_to(path):
                return None
            if f.count is not None:
                self._faults = replace(f, count=f.count - 1) if f.count > 1 else Faults()
            return f

    def _roll(self, rate: float) -> bool:
        with self._lock:
            return self._rng.random() < rate

    def handle(self, path: str, authorization: str, raw: bytes) -> Reply:
        """Answer one API call: (HTTP status, code, message, data)."""
        return self._ledger.handle(path, authorization, raw)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sim: CitySimulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(ContractHandler):
    """POST for the API and /_sim/faults, GET for /_sim/state; the envelope for all else."""

    server: _Server

    def tracker(self) -> CitySimulator:
        return self.server.sim

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        log.debug("%s %s", self.address_string(), format % args)

    def envelope(self, status: int, code: str, message: str) -> None:
        self._send_envelope(status, code, message, None)

    def serve_GET(self) -> None:
        path = urlsplit(self.path).path
        if not self.discard_body():
            self.envelope(413, "400", "request body length missing or too large")
        elif path == "/_sim/state":
            self._send_json(200, self.server.sim.state())
        elif path in API_PATHS or path == "/_sim/faults":
            self.envelope(405, "405", "method GET not allowed: POST")
        else:
            self.envelope(404, "404", f"no such path {path[:200]}")

    def serve_POST(self) -> None:
        sim, path = self.server.sim, urlsplit(self.path).path
        raw = self._read_body()
        if raw is None:
            return
        if path == "/_sim/faults":
            self._control(raw)
            return
        faults = sim._arrive(path)
        if faults is not None and self._inject(faults):
            return
        if faults is not None and faults.reject_tokens and path != PATHS.token:
            self._send_envelope(200, "401", "token expired (simulated)", None)
            return
        raw, authorization = self._from_profile(path, raw)
        status, code, message, data = sim.handle(path, authorization, raw)
        if faults is not None and (faults.reset_after or faults.hang_after):
            self._lose_reply(faults)
            return
        as_object = faults is not None and faults.data_as_object
        self._send_envelope(status, code, message, data, as_object=as_object)

    def _from_profile(self, path: str, raw: bytes) -> tuple[bytes, str]:
        """The request in the contract's terms: field names, the signature, the bearer token."""
        prof = self.server.sim.profile
        given = self.headers.get(prof.auth_header, "")
        if prof.auth_scheme:
            scheme, _, token = given.partition(" ")
            token = token if scheme.lower() == prof.auth_scheme.lower() else ""
        else:
            token = given
        authorization = f"Bearer {token.strip()}" if token.strip() else ""
        if prof == DEFAULT_PROFILE:
            return raw, authorization
        try:
            body = json.loads(raw)
        except ValueError:
            return raw, authorization
        if isinstance(body, dict):
            body = prof.from_wire(body)
            if path == PATHS.token and prof.sign_in == "header":
                body["sign"] = self.headers.get(prof.sign_header, "")
            raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return raw, authorization

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._send_envelope(413, "400", "request body missing or too large", None)
            return None
        return self.rfile.read(length)

    def _control(self, raw: bytes) -> None:
        try:
            self._send_json(200, self.server.sim.control(json.loads(raw or b"{}")))
        except ValueError as err:
            self._send_json(400, {"error": str(err)})

    def _inject(self, f: Faults) -> bool:
        """Apply faults to this request; True when the request has been dealt with."""
        sim = self.server.sim
        if f.latency_ms:
            sim._stopping.wait(f.latency_ms / 1000)
        if f.hang:
            self._hang()
        elif f.reset:
            self._reset()
        elif f.status is not None:
            extra = {}
            if f.retry_after_s is not None and f.status in (429, 503):
                extra["Retry-After"] = f"{f.retry_after_s:g}"
            self._send_envelope(f.status, str(f.status), f"simulated HTTP {f.status}", None,
                                extra=extra)
        elif f.error_rate and sim._roll(f.error_rate):
            self._send_envelope(500, "500", "simulated server error", None)
        elif f.garbage:
            self._send(200, GARBAGE, "text/html")
        else:
            return False
        return True

    def _reset(self) -> None:
        """Close with an RST (SO_LINGER 0) once the handler returns, answering nothing."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _lose_reply(self, f: Faults) -> None:
        """The call was handled (its effect stands) but its answer never reaches the client."""
        if f.reset_after:
            self._reset()
        else:
            self._hang()

    def _hang(self) -> None:
        """Never answer: wait until the client gives up (closes) or the simulator stops."""
        self.close_connection = True
        while not self.server.sim._stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable:  # EOF: the client gave up
                return

    def _send_envelope(self, status: int, code: str, message: str, data: Any, *,
                       as_object: bool = False, extra: dict[str, str] | None = None) -> None:
        prof = self.server.sim.profile
        env: dict[str, Any] = {prof.code_key: prof.wire_code(code), prof.message_key: message}
        if data is not None:
            env[prof.data_key] = data if as_object else json.dumps(data, ensure_ascii=False)
        self._send_json(status, env, extra)

    def _send_json(self, status: int, doc: Any, extra: dict[str, str] | None = None) -> None:
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", extra)

    def _send(self, status: int, body: bytes, ctype: str,
              extra: dict[str, str] | None = None) -> None:
        self.send_body(status, body, ctype, extra)


def run_city(dataset_path: str | None, host: str, port: int, token_ttl_s: int) -> None:
    """Serve the city simulator in the foreground until Ctrl-C or SIGTERM."""
    if dataset_path is None:

        from simulators.dataset import demo_dataset

        sim = CitySimulator(demo_dataset(station_today()), host=host, port=port,
                            token_ttl_s=token_ttl_s)
    else:
        sim = CitySimulator.from_file(dataset_path, host=host, port=port,
                                      token_ttl_s=token_ttl_s)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sim.start()
    print(f"city simulator listening on {sim.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        print("city simulator stopped", flush=True)
