"""Turn a reader's raw bytes into a Reading: a city query key, a badge, or a refusal."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import parse_qs, urlsplit

from station.core.keys import typed_key
from station.core.model import Reading

MAX_READING = 1000  # the longest legal value: a QR URL (str(1000))
# Every pattern spells its ASCII ranges out: Python's \d also matches full-width and other
# Unicode digits (`５００１２３４５６７８９` must not pass as a traceable number).
INFO_CODE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,49}")
TRACEABLE_NO = re.compile(r"[0-9]{12}")
# A path segment of a city QR URL before the code: plain characters, never `.` or `..`.
URL_SEGMENT = re.compile(r"(?!\.\.?\Z)[0-9A-Za-z_.~-]+")
# A leading ECI escape (`\000026`: UTF-8) that a scanner in ECI mode puts before the data.
ECI_ESCAPE = re.compile(r"\\[0-9]{6}")
# A typed code that is neither a QR URL nor a 12-digit number: a cylinder id first, then an
# information code (station.city.lookup asks the city by id, then by information code).
TYPED_KIND = "id_or_code"
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


def strip_code_marks(text: str) -> str:
    """Drop what a code generator or reader puts before the data: a UTF-8 BOM (U+FEFF, common
    from QR generators in China) and ECI escapes (`\\000026`), in any order, at the start only.

    Applied to every reader kind (scanner, RFID, camera: `strip_framing`) and to typed entries
    (`parse_scan`, `parse_rfid`); idempotent. Issue 10, step 5.
    """
    while True:
        if text.startswith("\ufeff"):
            text = text[1:]
        elif ECI_ESCAPE.match(text):
            text = text[7:]
        else:
            return text


def strip_framing(text: str, prefix: str = "", suffix: str = "", strip_aim: bool = True) -> str:
    """Remove a scanner's configured prefix/suffix, AIM symbology identifier (e.g. ]Q1) and a
    leading BOM or ECI escape (`strip_code_marks`), then blanks and tabs around."""
    text = strip_code_marks(text)
    if prefix and text.startswith(prefix):
        text = text[len(prefix):]
    if suffix and text.endswith(suffix):
        text = text[: -len(suffix)]
    if strip_aim and AIM_ID.match(text):
        text = text[3:]
    return strip_code_marks(text).strip(" \t")


def has_hidden_chars(text: str) -> bool:
    """Control, format (bidi overrides, zero-width) or unassigned characters."""
    return any(unicodedata.category(ch) in _FORMAT_CATEGORIES for ch in text)


def parse_qr_url(text: str, hosts: tuple[str, ...], allow_http: bool) -> tuple[str, str]:
    """Return ("ok", info_code) or ("foreign", why) for a URL read from a QR code.

    The contract's form (readers.md, "QR URL form"): an allowed host, https (http when
    configured), and the information code as the last path segment (`/c/CODE`) or as the one
    `code` query parameter (`/q?code=CODE`). Every path segment before the code is plain
    (ASCII letters, digits, `-._~`): never empty, `.` or `..` (`/c/../../admin` is refused, not
    looked up as `admin`), never percent-encoded.
    """
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
    segments = parts.path.split("/")[1:]  # the path starts with "/" (or is empty)
    codes = query.get("code")
    if codes is not None:
        if len(codes) != 1:
            return "foreign", "code parameter repeated"
        code = codes[0]
        if segments and not segments[-1]:  # `https://host/?code=…`, `…/q/?code=…`
            segments.pop()
    else:
        code = segments.pop() if segments else ""
    if not all(URL_SEGMENT.fullmatch(s) for s in segments):
        return "foreign", "path not of the contract's form (/…/CODE or ?code=CODE)"
    if not INFO_CODE.fullmatch(code):
        return "foreign", "no valid information code in URL"
    return "ok", code


def parse_scan(text: str, hosts: tuple[str, ...], allow_http: bool, reader: str = "",
               typed: bool | None = None) -> Reading:
    """Classify a scanner reading: QR URL, bare information code or 12-digit traceable number.

    A typed entry (`typed`; by default a reader id starting `manual`, as the rig loop names
    `station enter` entries) is normalised first (`keys.typed_key`, field `tag`), and a typed
    code of information-code shape that is not a 12-digit number has kind `id_or_code`: looked
    up as a cylinder id first, then as an information code (a person types what is printed on
    the cylinder's papers as often as the code). A reader's reading is never normalised: a
    scanned code is looked up as exactly what it says.
    """
    typed = reader.startswith("manual") if typed is None else typed
    text = typed_key(text, "tag") if typed else strip_code_marks(text)
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
        kind = TYPED_KIND if typed else "info_code"
        return Reading(raw=text, kind=kind, value=text, reader=reader)
    return _unreadable(text, "not a QR URL, information code or traceable number", reader)


def parse_rfid(text: str, reader: str = "") -> Reading:
    """An RFID reader's line: a hex UID/EPC, normalised to upper case."""
    text = strip_code_marks(text)
    if not HEX_UID.fullmatch(text):
        return _unreadable(text, "not a hex UID", reader)
    return Reading(raw=text, kind="rfid_uid", value=text.upper(), reader=reader)
