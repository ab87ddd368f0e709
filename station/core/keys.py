"""What people type, normalised once: block-list keys, manual entries, checks, searches, filters."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from station.errors import StationError

# What a typed key is: `code` is a cylinder id, information code, traceable or product number or
# RFID UID (case-free: the city issues them in digits and capitals, the readers' UIDs are hex);
# `tag` is anything a reader could have given (a QR URL keeps its case, any other text is a
# `code`); `name` is an operator's name or a rig id (case kept).
FIELDS = ("code", "tag", "name")
BOM = "\ufeff"
# Dashes a Chinese input method or a word processor puts where an ASCII hyphen was meant; NFKC
# already maps the full-width hyphen-minus (U+FF0D) and the small one (U+FE63).
_DASHES = str.maketrans({ch: "-" for ch in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"})


class KeyRefused(StationError):
    """A typed key that no reading could ever give; `why` says why (English)."""

    def __init__(self, text: str, why: str):
        self.text, self.why = text, why
        super().__init__(f"{text!r} can never match a reading: {why}")


def typed_key(text: str, field: str = "code") -> str:
    """The one normalisation of a key a person typed (issue 10, step 5).

    In order: Unicode NFKC (full-width ASCII such as `ＣＹＬ－０００１` and the ideographic
    space become ASCII), a leading BOM (U+FEFF) dropped, surrounding whitespace trimmed; then
    for a `code`, the dashes U+2010–U+2015 and U+2212 become `-` and letters are
    upper-cased (ids and information codes are case-free: `cyl-000002` is `CYL-000002`), NFKC
    again after that (so that it is idempotent for every character). A `tag` that contains
    `://` is a URL and keeps its case; any other `tag` is treated as a `code`. A `name` keeps
    its case. Nothing is validated here (see `block_key`); the result may be
    empty. Raises ValueError for an unknown field.
    """
    if field not in FIELDS:
        raise ValueError(f"unknown field {field!r}: one of {', '.join(FIELDS)}")
    text = unicodedata.normalize("NFKC", text).strip()
    while text.startswith(BOM):
        text = text[1:].strip()
    if field == "name" or (field == "tag" and "://" in text):
        return text
    return unicodedata.normalize("NFKC", text.translate(_DASHES).upper())  # (ΐ: upper, NFKC)


def block_key(text: str, hosts: tuple[str, ...] = (), allow_http: bool = False) -> str:
    """The block-list key for what a manager typed, or KeyRefused saying why it can never match.

    The key is normalised by `typed_key` to what a reading gives: a cylinder id, information
    code, 12-digit traceable number or RFID UID (ASCII letters, digits, `-` and `_`, at most 50
    characters, first a letter or digit: the shapes `station.core.reading` accepts). A city QR URL
    (its host in `hosts`) gives the information code it carries. Idempotent: a key it returned
    is returned unchanged.
    """
    from station.core.reading import has_hidden_chars, parse_qr_url

    tag = typed_key(text, "tag")
    if "://" in tag:
        verdict, value = parse_qr_url(tag, hosts, allow_http)
        if verdict != "ok":
            raise KeyRefused(text, f"a URL, but not a city QR code URL ({value}): block the "
                             "cylinder id or information code instead")
        tag = value
    key = typed_key(tag, "code")
    why = _why_not_a_key(key, has_hidden_chars(key))
    if why:
        raise KeyRefused(text, why)
    return key


def _why_not_a_key(key: str, hidden: bool) -> str:
    from station.core.reading import INFO_CODE

    if not key:
        return "it is empty"
    if hidden:
        return "it holds control or invisible characters"
    if len(key) > 50:
        return f"it is {len(key)} characters long (ids and codes have at most 50)"
    if not key.isascii():
        return ("it holds characters other than ASCII letters, digits, '-' and '_' "
                "(no cylinder id, information code, traceable number or RFID UID does)")
    if not INFO_CODE.fullmatch(key):
        return ("ids and codes are ASCII letters, digits, '-' and '_', starting with a "
                "letter or digit")
    return ""


def unmatchable(stored: str) -> str:
    """Why a block-list row as stored can never match a reading ('' when it can).

    A row typed before keys were normalised (`cyl-000002`, a trailing space) still matches
    through its normalised form (Store.blocklist); only a row that is no key even after
    normalisation is reported (station doctor, `station blocklist list`).
    """
    try:
        block_key(stored)
    except KeyRefused as err:
        return err.why
    return ""


SEARCH_MIN_PARTIAL = 3  # characters: a shorter fragment matches too much to be worth a scan


@dataclass(frozen=True)
class SearchKey:
    """What a person typed into the search box, normalised: `exact` forms to look up by index
    (the code form first), `partial` a fragment to find inside ids, codes and numbers ('' when
    too short or none); `typed` as given (for the page)."""

    typed: str
    exact: tuple[str, ...]
    partial: str


def search_key(text: str, hosts: tuple[str, ...] = (), allow_http: bool = True) -> SearchKey:
    """The one normalisation of a search (issue 16): any form a person has of a cylinder.

    The text goes through `typed_key` (NFKC: full-width characters and the ideographic space
    become ASCII; trimmed; a `code` upper-cased, dashes unified): `cyl-000105`, `ＣＹＬ－０００１０５`
    and `CYL-000105` are one key. A URL gives the information code it carries: a city QR URL
    through `reading.parse_qr_url`, any other URL its `code=` parameter or its last path
    segment (a search permits nothing, so a foreign host is no reason to find nothing). A 12-digit
    traceable number, a product number, an id or an information code is looked up as itself;
    a fragment of at least SEARCH_MIN_PARTIAL characters (`000105`) is found inside them.
    Never raises: an empty or unusable text gives no forms.
    """
    from urllib.parse import parse_qs, unquote, urlsplit

    from station.core.reading import parse_qr_url

    tag = typed_key(text[:500], "tag")
    if "://" in tag:
        verdict, value = parse_qr_url(tag, hosts, allow_http)
        if verdict != "ok":
            try:
                parts = urlsplit(tag)
            except ValueError:
                parts = None
            codes = parse_qs(parts.query).get("code", []) if parts else []
            segments = [s for s in (parts.path.split("/") if parts else []) if s]
            value = codes[0] if codes else unquote(segments[-1]) if segments else ""
        tag = value
    code = typed_key(tag, "code")
    if not code or any(unicodedata.category(ch)[0] == "C" for ch in code):
        return SearchKey(text, (), "")
    exact = tuple(dict.fromkeys((code, typed_key(tag, "name"))))
    partial = code if len(code) >= SEARCH_MIN_PARTIAL else ""
    return SearchKey(text, exact, partial)
