"""The city simulator's API logic: sign check, tokens, query, bind, submit, inspections, trace."""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from station.city.profile import DEFAULT_PROFILE, CityProfile
from station.config import CityPaths
from station.core.codes import MEDIA, STATUS_SCRAPPED, TAGGING

PATHS = CityPaths()
API_PATHS = (PATHS.token, PATHS.query, PATHS.bind, PATHS.submit, PATHS.inspections, PATHS.trace)
TIMESTAMP_WINDOW_S = 300
NONCE_WINDOW_S = 600
MAX_TIMESTAMP = 2**53  # larger is malformed (10**400 overflowed the clock arithmetic)
MAX_PHOTO = 2 * 1024 * 1024
MAX_PAGE_SIZE = 500
QUERY_KEYS = ("info_code", "qr_url", "rfid_uid", "id", "product_no", "user_unit_name")
INSPECTION_TYPES = ("定期", "报废处置")
NOT_FOUND = "未找到气瓶 (no cylinder found)"

Reply = tuple[int, str, str, Any]  # (HTTP status, business code, message, data)


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


def parse_body(raw: bytes) -> dict:
    """The request body as a JSON object of well-formed text, else _Answer 400: not UTF-8, not
    JSON, nested past the parser's depth, an integer past Python's 4,300 digits, NaN or an
    infinite number, a lone surrogate (\\ud800) anywhere (issue 16: these dropped the
    connection)."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constant,
                          parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _bad("request body is not JSON") from err
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError, ValueError) as err:
        raise _bad("request body holds text that is not valid Unicode") from err
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:20]} is out of range")
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


def _matches(cyl: dict, key: str, value: str, maker: str) -> bool:
    if key == "rfid_uid":
        return str(cyl.get("rfid_uid") or "").upper() == value.upper()
    if key == "product_no" and maker and cyl.get("manufacturer") != maker:
        return False
    return cyl.get(key) == value


class CityLedger:
    """The city's truth and memory: cylinders, tokens, nonces, fillings and trails, under a lock.

    `handle()` answers one API call; every public method is safe to call from any thread.
    """

    def __init__(self, dataset: dict, token_ttl_s: int = 7200,
                 clock: Callable[[], float] = time.time,
                 profile: CityProfile = DEFAULT_PROFILE):
        self.profile = profile  # the string-to-sign and the token's keys
        self._credentials = {(c["unit_code"], c["app_key"]): dict(c)
                             for c in dataset.get("credentials", [])}
        self._cylinders: dict[str, dict] = {}
        for cyl in dataset.get("cylinders", []):
            if not isinstance(cyl, dict) or not isinstance(cyl.get("id"), str):
                raise ValueError("every cylinder needs a string 'id'")
            if cyl["id"] in self._cylinders:
                raise ValueError(f"cylinder id {cyl['id']!r} appears twice")
            self._cylinders[cyl["id"]] = copy.deepcopy(cyl)
        self._ttl, self._clock = token_ttl_s, clock
        self._lock = threading.RLock()
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (unit_code, expires_at)
        self._nonces: dict[str, float] = {}
        self._submissions: Counter[str] = Counter()
        self._fillings: list[dict] = []
        self._done: dict[str, dict] = {}  # record_id -> reply data (fillings and inspections)
        self._trails: dict[str, list[dict]] = {}

    # ---- tester access ----------------------------------------------------------------------
    def expire_tokens(self) -> None:
        """Invalidate every token issued so far."""
        with self._lock:
            self._tokens.clear()

    @property
    def token_count(self) -> int:
        with self._lock:
            return len(self._tokens)

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
        """The current record of a cylinder (a copy), or None."""
        with self._lock:
            return copy.deepcopy(self._cylinders.get(cylinder_id))

    def put_cylinder(self, record: dict) -> None:
        """Add or replace a cylinder record."""
        if not isinstance(record.get("id"), str):
            raise ValueError("a cylinder needs a string 'id'")
        with self._lock:
            self._cylinders[record["id"]] = copy.deepcopy(record)

    def delete_cylinder(self, cylinder_id: str) -> bool:
        """Forget a cylinder: its tags then find nothing."""
        with self._lock:
            return self._cylinders.pop(cylinder_id, None) is not None

    # ---- the API ----------------------------------------------------------------------------
    def handle(self, path: str, authorization: str, raw: bytes) -> Reply:
        """Answer one API call: (HTTP status, code, message, data)."""
        endpoints = {PATHS.query: self._query, PATHS.bind: self._bind,
                     PATHS.submit: self._submit, PATHS.inspections: self._inspect,
                     PATHS.trace: self._trace}
        if path != PATHS.token and path not in endpoints:
            return 404, "404", f"no such endpoint {path}", None
        try:
            body = parse_body(raw)
            with self._lock:
                if path == PATHS.token:
                    return 200, "200", "ok", self._auth(body)
                unit = self._bearer(authorization)
                return 200, "200", "ok", endpoints[path](unit, body)
        except _Answer as ans:
            return 200, ans.code, ans.message, ans.data

    # ---- endpoints (called under the lock) --------------------------------------------------
    def _auth(self, body: dict) -> dict:
        unit_code = _text(body, "unit_code", 50)
        app_key = _text(body, "app_key", 100)
        nonce = _text(body, "nonce", 64)
        sign = _text(body, "sign", 128)
        ts = body.get("timestamp")
        if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts <= MAX_TIMESTAMP:
            raise _bad("timestamp must be an integer (Unix seconds)")
        cred = self._credentials.get((unit_code, app_key))
        if cred is None:
            raise _Answer("401", "unknown unit_code or app_key")
        want = self.profile.sign(cred["app_secret"], {"unit_code": unit_code,
                                                      "app_key": app_key, "timestamp": ts,
                                                      "nonce": nonce})
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
        return {self.profile.token_key: token, self.profile.expires_key: self._ttl}

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
            raise _Answer("404", NOT_FOUND)
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
            raise _Answer("404", NOT_FOUND)
        return {"items": copy.deepcopy(self._trails.get(cylinder_id, []))}

    def _add_node(self, cylinder_id: str, node: str, actor: str) -> None:
        at = datetime.fromtimestamp(self._clock()).strftime("%Y-%m-%d %H:%M:%S")
        self._trails.setdefault(cylinder_id, []).append(
            {"time": at, "node": node, "actor": actor, "id": cylinder_id})
