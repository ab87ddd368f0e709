"""Turn a reader's raw bytes into a Reading: a city query key, a badge, or a refusal."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import parse_qs, urlsplit

from .model import Reading

MAX_READING = 1000  # the longest legal value: a QR URL (str(1000))
INFO_CODE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,49}")
TRACEABLE_NO = re.compile(r"\d{12}")
HEX_UID = re.compile(r"(?:[0-9A-Fa-f]{2}){4,32}")
AIM_ID = re.compile(r"\][A-Za-z][0-9A-Za-z]")
# Bidi controls and other invisible format characters can disguise a URL on screen.
_FORMAT_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _unreadable(raw: str, detail: str, reader: str) -> Reading:
    return Reading(raw=raw, kind="invalid", refusal="TAG_UNREADABLE", detail=detail, reader=reader)


def _foreign(raw: str, detail: str, reader: str) -> Reading:
    return Reading(raw=raw, kind="invalid", refusal="TAG_FOREIGN", detail=detail, reader=reader)


def decode(data: bytes, reader: str = "", max_length: int = MAX_READING) -> Reading | str:
    """Bytes of one line to text; a Reading refusal when they are not a readable value."""
    raw = data.decode("utf-8", errors="replace")
    if len(data) > max_length:
        return _unreadable(raw[:64] + "…", f"over-long reading ({len(data)} bytes)", reader)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _unreadable(raw, "not valid UTF-8", reader)


def strip_framing(text: str, prefix: str = "", suffix: str = "", strip_aim: bool = True) -> str:
    """Remove a scanner's configured prefix/suffix and AIM symbology identifier (e.g. ]Q1)."""
    if prefix and text.startswith(prefix):
        text = text[len(prefix):]
    if suffix and text.endswith(suffix):
        text = text[: -len(suffix)]
    if strip_aim and AIM_ID.match(text):
        text = text[3:]
    return text.strip(" \t")


def has_hidden_chars(text: str) -> bool:
    """Control, format (bidi overrides, zero-width) or unassigned characters."""
    return any(unicodedata.category(ch) in _FORMAT_CATEGORIES for ch in text)


def parse_qr_url(text: str, hosts: tuple[str, ...], allow_http: bool) -> tuple[str, str]:
    """Return ("ok", info_code) or ("foreign", why) for a URL read from a QR code."""
    if len(text) > MAX_READING:
        return "foreign", "URL over-long"
    if has_hidden_chars(text) or " " in text or "\\" in text:
        return "foreign", "control, format or blank characters in URL"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return "foreign", "unparsable URL"
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme.lower() not in schemes:
        return "foreign", f"scheme {parts.scheme!r} not allowed"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "foreign", "user-info in URL"
    host = (parts.hostname or "") + (f":{port}" if port else "")
    if host.lower() not in hosts and (parts.hostname or "").lower() not in hosts:
        return "foreign", f"host {host!r} not an allowed city host"
    if parts.fragment or "#" in text:
        return "foreign", "fragment in URL"
    query = parse_qs(parts.query, keep_blank_values=True)
    if "?" in text and set(query) != {"code"}:  # (an empty query too: not the contract's form)
        return "foreign", "query other than code="
    codes = query.get("code")
    if codes is not None:
        if len(codes) != 1:
            return "foreign", "code parameter repeated"
        code = codes[0]
    else:
        code = parts.path.rsplit("/", 1)[-1]
    if not INFO_CODE.fullmatch(code):
        return "foreign", "no valid information code in URL"
    return "ok", code


def parse_scan(text: str, hosts: tuple[str, ...], allow_http: bool, reader: str = "") -> Reading:
    """Classify a scanner reading: QR URL, bare information code or 12-digit traceable number."""
    if not text:
        return _unreadable(text, "empty reading", reader)
    if "://" in text or text.lower().startswith(("http", "javascript:", "data:", "file:")):
        verdict, value = parse_qr_url(text, hosts, allow_http)
        if verdict == "ok":
            return Reading(raw=text, kind="qr_url", value=value, reader=reader)
        return _foreign(text, value, reader)
    if has_hidden_chars(text):
        return _unreadable(text, "control or format characters", reader)
    if TRACEABLE_NO.fullmatch(text):
        return Reading(raw=text, kind="product_no", value=text, reader=reader)
    if INFO_CODE.fullmatch(text):
        return Reading(raw=text, kind="info_code", value=text, reader=reader)
    return _unreadable(text, "not a QR URL, information code or traceable number", reader)


def parse_rfid(text: str, reader: str = "") -> Reading:
    """An RFID reader's line: a hex UID/EPC, normalised to upper case."""
    if not HEX_UID.fullmatch(text):
        return _unreadable(text, "not a hex UID", reader)
    return Reading(raw=text, kind="rfid_uid", value=text.upper(), reader=reader)
