"""City traceability system simulator: a real HTTP server speaking contracts/city-api.md."""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import json
import logging
import random
import re
import secrets
import select
import signal
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from station.codes import MEDIA, STATUS_SCRAPPED, TAGGING
from station.config import CityPaths

log = logging.getLogger("simulators.city")

PATHS = CityPaths()
API_PATHS = (PATHS.token, PATHS.query, PATHS.bind, PATHS.submit, PATHS.inspections, PATHS.trace)
TIMESTAMP_WINDOW_S = 300
NONCE_WINDOW_S = 600
MAX_BODY = 16 * 1024 * 1024
MAX_PHOTO = 2 * 1024 * 1024
MAX_PAGE_SIZE = 500
QUERY_KEYS = ("info_code", "qr_url", "rfid_uid", "id", "product_no", "user_unit_name")
INSPECTION_TYPES = ("定期", "报废处置")
GARBAGE = b"<html><body><h1>502 Bad Gateway</h1>upstream said hello</body></html>"


@dataclass(frozen=True)
class Faults:
    """Faults injected into API calls; `count` makes them clear themselves after N calls."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    status: int | None = None
    retry_after_s: float | None = None
    hang: bool = False
    garbage: bool = False
    reset: bool = False
    data_as_object: bool = False
    paths: tuple[str, ...] | None = None
    count: int | None = None

    def applies_to(self, path: str) -> bool:
        return self.paths is None or any(path.endswith(s) for s in self.paths)


def _check_fault(key: str, value: Any) -> Any:
    """Validate one fault setting; raise ValueError naming the key."""
    if key not in {f.name for f in fields(Faults)}:
        raise ValueError(f"unknown fault {key!r}")
    bools = ("hang", "garbage", "reset", "data_as_object")
    if key in bools and not isinstance(value, bool):
        raise ValueError(f"fault {key} must be true or false")
    if key in ("latency_ms", "error_rate") and (isinstance(value, bool) or
                                               not isinstance(value, int | float) or value < 0):
        raise ValueError(f"fault {key} must be a non-negative number")
    if key == "error_rate" and value > 1:
        raise ValueError("fault error_rate must be between 0 and 1")
    if key in ("status", "count") and value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"fault {key} must be a positive integer or null")
    if key == "status" and value is not None and not 100 <= value <= 599:
        raise ValueError("fault status must be an HTTP status (100..599)")
    if key == "retry_after_s" and value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
        raise ValueError("fault retry_after_s must be a non-negative number or null")
    if key == "paths" and value is not None:
        if isinstance(value, str) or not all(isinstance(p, str) and p for p in value):
            raise ValueError("fault paths must be a list of path suffixes or null")
        return tuple(value)
    return value


class _Answer(Exception):
    """Raised by an endpoint to answer at once with a business code."""

    def __init__(self, code: str, message: str, data: Any = None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def _bad(message: str) -> _Answer:
    return _Answer("400", message)


def _text(body: dict, key: str, maxlen: int, *, required: bool = True, pattern: str = "",
          choices: tuple[str, ...] = ()) -> str:
    """A string field of a request, checked; absent optional fields come back as ''."""
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise _bad(f"{key} is required")
        return ""
    if not isinstance(value, str):
        raise _bad(f"{key} must be a string")
    if len(value) > maxlen:
        raise _bad(f"{key} is {len(value)} characters, at most {maxlen} allowed")
    if pattern and not re.fullmatch(pattern, value):
        raise _bad(f"{key} is malformed")
    if choices and value not in choices:
        raise _bad(f"{key} must be one of {', '.join(choices)}")
    return value


def _date(body: dict, key: str, fmt: str) -> str:
    value = _text(body, key, 10, pattern=r"\d{4}-\d{2}(-\d{2})?")
    try:
        datetime.strptime(value, fmt)
    except ValueError as err:
        human = {"%Y-%m-%d": "yyyy-mm-dd", "%Y-%m": "yyyy-mm"}[fmt]
        raise _bad(f"{key} must be a date {human}") from err
    return value


def _jpeg(photo: Any, index: int) -> None:
    if not isinstance(photo, str):
        raise _bad(f"stamp_photos[{index}] must be a base64 string")
    try:
        raw = base64.b64decode(photo, validate=True)
    except (binascii.Error, ValueError) as err:
        raise _bad(f"stamp_photos[{index}] is not valid base64") from err
    if len(raw) > MAX_PHOTO:
        raise _bad(f"stamp_photos[{index}] is {len(raw)} bytes, at most {MAX_PHOTO} allowed")
    if not raw.startswith(b"\xff\xd8"):
        raise _bad(f"stamp_photos[{index}] is not a JPEG")


def _info_code_of(qr_url: str) -> str:
    """The information code a QR URL carries: its `code` parameter or last path segment."""
    parts = urlsplit(qr_url)
    code = parse_qs(parts.query).get("code", [""])[0]
    return code or parts.path.rstrip("/").rsplit("/", 1)[-1]


class CitySimulator:
    """The city system, served over real HTTP on loopback, with faults settable at any time."""

    def __init__(self, dataset: dict, host: str = "127.0.0.1", port: int = 0,
                 token_ttl_s: int = 7200, clock: Callable[[], float] = time.time):
        self._credentials = {(c["unit_code"], c["app_key"]): dict(c)
                             for c in dataset.get("credentials", [])}
        self._cylinders: dict[str, dict] = {}
        for cyl in dataset.get("cylinders", []):
            if not isinstance(cyl, dict) or not isinstance(cyl.get("id"), str):
                raise ValueError("every cylinder needs a string 'id'")
            if cyl["id"] in self._cylinders:
                raise ValueError(f"cylinder id {cyl['id']!r} appears twice")
            self._cylinders[cyl["id"]] = copy.deepcopy(cyl)
        self._host, self._port, self._ttl, self._clock = host, port, token_ttl_s, clock
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._rng = random.Random()
        self._faults = Faults()
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (unit_code, expires_at)
        self._nonces: dict[str, float] = {}
        self._requests: Counter[str] = Counter()
        self._submissions: Counter[str] = Counter()
        self._fillings: list[dict] = []
        self._done: dict[str, dict] = {}  # record_id -> reply data (fillings and inspections)
        self._trails: dict[str, list[dict]] = {}
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
        return f"http://{self._host}:{self.port}"

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
        with self._lock:
            self._tokens.clear()

    @property
    def requests(self) -> Counter[str]:
        """POSTs received per path (a copy; 0 for paths never called)."""
        with self._lock:
            return Counter(self._requests)

    @property
    def submissions(self) -> Counter[str]:
        """Filling submissions received per record_id (a copy)."""
        with self._lock:
            return Counter(self._submissions)

    @property
    def fillings(self) -> list[dict]:
        """Accepted filling records, in order of acceptance (copies)."""
        with self._lock:
            return copy.deepcopy(self._fillings)

    def cylinder(self, cylinder_id: str) -> dict | None:
        """The simulator's current record of a cylinder (a copy), or None."""
        with self._lock:
            return copy.deepcopy(self._cylinders.get(cylinder_id))

    def put_cylinder(self, record: dict) -> None:
        """Add or replace a cylinder record (a tester changing the city's truth)."""
        if not isinstance(record.get("id"), str):
            raise ValueError("a cylinder needs a string 'id'")
        with self._lock:
            self._cylinders[record["id"]] = copy.deepcopy(record)

    def delete_cylinder(self, cylinder_id: str) -> bool:
        """Forget a cylinder: the city then answers 404 for its tags."""
        with self._lock:
            return self._cylinders.pop(cylinder_id, None) is not None

    def state(self) -> dict:
        """Counters and current faults, as GET /_sim/state serves them."""
        with self._lock:
            faults = asdict(self._faults)
            faults["paths"] = list(self._faults.paths) if self._faults.paths else None
            return {"requests": dict(self._requests), "submissions": dict(self._submissions),
                    "fillings": copy.deepcopy(self._fillings), "faults": faults,
                    "tokens": len(self._tokens)}

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
    def _track(self, conn: socket.socket, add: bool) -> None:
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

    def handle(self, path: str, authorization: str, raw: bytes) -> tuple[int, str, str, Any]:
        """Answer one API call: (HTTP status, code, message, data)."""
        endpoints = {PATHS.query: self._query, PATHS.bind: self._bind,
                     PATHS.submit: self._submit, PATHS.inspections: self._inspect,
                     PATHS.trace: self._trace}
        if path != PATHS.token and path not in endpoints:
            return 404, "404", f"no such endpoint {path}", None
        try:
            body = json.loads(raw.decode("utf-8"))
            if not isinstance(body, dict):
                raise _bad("request body must be a JSON object")
            with self._lock:
                if path == PATHS.token:
                    return 200, "200", "ok", self._auth(body)
                unit = self._bearer(authorization)
                return 200, "200", "ok", endpoints[path](unit, body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return 200, "400", "request body is not JSON", None
        except _Answer as ans:
            return 200, ans.code, ans.message, ans.data

    # ---- endpoints (called under the lock) --------------------------------------------------
    def _auth(self, body: dict) -> dict:
        unit_code = _text(body, "unit_code", 50)
        app_key = _text(body, "app_key", 100)
        nonce = _text(body, "nonce", 64)
        sign = _text(body, "sign", 128)
        ts = body.get("timestamp")
        if isinstance(ts, bool) or not isinstance(ts, int):
            raise _bad("timestamp must be an integer (Unix seconds)")
        cred = self._credentials.get((unit_code, app_key))
        if cred is None:
            raise _Answer("401", "unknown unit_code or app_key")
        text = f"{unit_code}\n{app_key}\n{ts}\n{nonce}".encode()
        want = hmac.new(cred["app_secret"].encode(), text, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sign.lower()):
            raise _Answer("401", "bad sign")
        now = self._clock()
        if abs(now - ts) > TIMESTAMP_WINDOW_S:
            raise _Answer("401", f"timestamp more than {TIMESTAMP_WINDOW_S} s from server time")
        self._nonces = {n: t for n, t in self._nonces.items() if now - t <= NONCE_WINDOW_S}
        if nonce in self._nonces:
            raise _Answer("401", "nonce already used")
        self._nonces[nonce] = now
        self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (unit_code, now + self._ttl)
        return {"token": token, "expires_in": self._ttl}

    def _bearer(self, authorization: str) -> str:
        scheme, _, token = authorization.partition(" ")
        entry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if entry is None:
            raise _Answer("401", "token missing or invalid")
        if entry[1] <= self._clock():
            raise _Answer("401", "token expired")
        return entry[0]

    def _query(self, unit: str, body: dict) -> dict:
        allowed = set(QUERY_KEYS) | {"manufacturer", "page", "page_size"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise _bad(f"unknown condition {unknown[0]}")
        given = [k for k in QUERY_KEYS if k in body]
        if len(given) != 1:
            raise _bad("exactly one query condition is required")
        key = given[0]
        if "manufacturer" in body and key != "product_no":
            raise _bad("manufacturer only goes with product_no")
        value = _text(body, key, 1000)
        maker = _text(body, "manufacturer", 100, required=False)
        page, size = body.get("page", 1), body.get("page_size", 100)
        for name, v, top in (("page", page, 10**6), ("page_size", size, MAX_PAGE_SIZE)):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top:
                raise _bad(f"{name} must be an integer from 1 to {top}")
        hits = [c for c in self._cylinders.values() if _matches(c, key, value, maker)]
        if not hits:
            raise _Answer("404", "未找到气瓶 (no cylinder found)")
        user_units = self._credential_of(unit).get("user_units")
        if user_units is not None:
            hits = [c for c in hits if c.get("user_unit_name") in user_units]
            if not hits:
                raise _Answer("403", "无权查询 (not allowed for this unit)")
        items = copy.deepcopy(hits[(page - 1) * size: page * size])
        return {"total": len(hits), "page": page, "items": items}

    def _credential_of(self, unit_code: str) -> dict:
        return next((c for (u, _), c in self._credentials.items() if u == unit_code), {})

    def _cylinder_for_write(self, body: dict) -> dict:
        cyl = self._cylinders.get(_text(body, "id", 50))
        if cyl is None:
            raise _bad("id names no known cylinder")
        return cyl

    def _bind(self, unit: str, body: dict) -> dict:
        cyl = self._cylinder_for_write(body)
        tagging = _text(body, "tagging", 10, choices=TAGGING)
        qr_url = _text(body, "qr_url", 1000, required=tagging == TAGGING[0])
        rfid = _text(body, "rfid_uid", 64, required=tagging == TAGGING[1],
                     pattern=r"[0-9A-Fa-f]+").upper()
        photos = body.get("stamp_photos")
        if not isinstance(photos, list) or not 1 <= len(photos) <= 4:
            raise _bad("stamp_photos must hold 1 to 4 photos")
        for i, photo in enumerate(photos):
            _jpeg(photo, i)
        for other in self._cylinders.values():
            same_qr = qr_url and other.get("qr_url") == qr_url
            same_rfid = rfid and str(other.get("rfid_uid") or "").upper() == rfid
            if other is not cyl and (same_qr or same_rfid):
                raise _Answer("409", f"标签已绑定其他气瓶 (tag bound to {other['id']})")
        cyl["tagging"] = tagging
        if qr_url:
            cyl["qr_url"] = qr_url
        if rfid:
            cyl["rfid_uid"] = rfid
        if not cyl.get("info_code"):
            cyl["info_code"] = (_info_code_of(qr_url) if qr_url else "") or (
                "IC" + secrets.token_hex(8).upper())
        return {"info_code": cyl["info_code"]}

    def _submit(self, unit: str, body: dict) -> dict:
        record_id = _text(body, "record_id", 64)
        self._submissions[record_id] += 1
        if record_id in self._done:
            raise _Answer("409", "duplicate", dict(self._done[record_id]))
        _text(body, "medium_code", 3, choices=tuple(MEDIA))
        operator = _text(body, "operator", 10)
        _date(body, "fill_date", "%Y-%m-%d")
        _text(body, "filling_unit_name", 100)
        cyl = self._cylinder_for_write(body)
        data = {"record_id": record_id, "trace_id": "T" + uuid.uuid4().hex}
        self._done[record_id] = data
        self._fillings.append(copy.deepcopy(body))
        self._add_node(cyl["id"], "充装", operator)
        return dict(data)

    def _inspect(self, unit: str, body: dict) -> dict:
        record_id = _text(body, "record_id", 64)
        if record_id in self._done:
            raise _Answer("409", "duplicate", dict(self._done[record_id]))
        done = _date(body, "inspection_date", "%Y-%m-%d")
        inspector = _text(body, "inspection_body", 100)
        due = _date(body, "next_inspection_date", "%Y-%m")
        _text(body, "conclusion", 10)
        kind = _text(body, "type", 10, choices=INSPECTION_TYPES)
        cyl = self._cylinder_for_write(body)
        cyl["last_inspection_date"], cyl["next_inspection_date"] = done, due
        if kind == "报废处置":
            cyl["status"] = STATUS_SCRAPPED
        self._done[record_id] = {"record_id": record_id}
        self._add_node(cyl["id"], "检验", inspector[:10])
        return {"record_id": record_id}

    def _trace(self, unit: str, body: dict) -> dict:
        cylinder_id = _text(body, "id", 50)
        if cylinder_id not in self._cylinders:
            raise _Answer("404", "未找到气瓶 (no cylinder found)")
        return {"items": copy.deepcopy(self._trails.get(cylinder_id, []))}

    def _add_node(self, cylinder_id: str, node: str, actor: str) -> None:
        at = datetime.fromtimestamp(self._clock()).strftime("%Y-%m-%d %H:%M:%S")
        self._trails.setdefault(cylinder_id, []).append(
            {"time": at, "node": node, "actor": actor, "id": cylinder_id})


def _matches(cyl: dict, key: str, value: str, maker: str) -> bool:
    if key == "rfid_uid":
        return str(cyl.get("rfid_uid") or "").upper() == value.upper()
    if key == "product_no" and maker and cyl.get("manufacturer") != maker:
        return False
    return cyl.get(key) == value


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sim: CitySimulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.sim._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sim._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/_sim/state":
            self._send_json(200, self.server.sim.state())
        else:
            self._send_json(404, {"error": "no such path"})

    def do_POST(self) -> None:
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
        status, code, message, data = sim.handle(path, self.headers.get("Authorization", ""), raw)
        as_object = faults is not None and faults.data_as_object
        self._send_envelope(status, code, message, data, as_object=as_object)

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
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
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

    def _hang(self) -> None:
        """Never answer: wait until the client gives up (closes) or the simulator stops."""
        self.close_connection = True
        while not self.server.sim._stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable:  # EOF: the client gave up
                return

    def _send_envelope(self, status: int, code: str, message: str, data: Any, *,
                       as_object: bool = False, extra: dict[str, str] | None = None) -> None:
        env: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            env["data"] = data if as_object else json.dumps(data, ensure_ascii=False)
        self._send_json(status, env, extra)

    def _send_json(self, status: int, doc: Any, extra: dict[str, str] | None = None) -> None:
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", extra)

    def _send(self, status: int, body: bytes, ctype: str,
              extra: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True
            log.debug("client went away before the answer was sent")


def run_city(dataset_path: str | None, host: str, port: int, token_ttl_s: int) -> None:
    """Serve the city simulator in the foreground until Ctrl-C or SIGTERM."""
    if dataset_path is None:
        from datetime import date

        from simulators.dataset import demo_dataset

        sim = CitySimulator(demo_dataset(date.today()), host=host, port=port,
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
