"""Structured key=value log lines, with untrusted text (tag contents) escaped."""

from __future__ import annotations

import logging
import sys
import unicodedata
from typing import Any

_ESCAPE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def escape(text: str) -> str:
    """Escape control, format (bidi) and unassigned characters as \\xNN / \\uNNNN; keep Chinese."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in _ESCAPE_CATEGORIES:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000
                       else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:.2f}"
    else:
        text = escape(str(value))
    if text == "" or any(c in text for c in ' ="'):
        text = '"' + text.replace('"', '\\"') + '"'
    return text


def kv(event: str, **fields: Any) -> str:
    """One log line: the event name, then key=value pairs in the order given."""
    return " ".join([f"event={event}"] + [f"{k}={_value(v)}" for k, v in fields.items()])


def setup(level: str = "INFO") -> None:
    """Log to stderr (the journal under systemd) with the level and logger name."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
