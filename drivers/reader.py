"""The tag reader device kind: anything that delivers raw lines read from cylinders or badges."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    """One raw reading as it came off the device, before any parsing."""

    reader_id: str
    data: bytes
    at: float  # time.monotonic() when the terminator arrived
    overlong: bool = False  # the device sent more than max_length bytes without a terminator
    # Other distinct codes in view at the same time (a camera's ROI): the reading is ambiguous
    # and the daemon refuses it (AMBIGUOUS_TAGS). Empty for a reader that sees one code a line.
    others: tuple[bytes, ...] = ()
    box: tuple[int, int, int, int] | None = None  # camera: the code's (x, y, w, h) in the frame


class TagReader(abc.ABC):
    """A reader at a rig. `lines()` runs until cancelled, reopening the device after a failure."""

    reader_id: str
    kind: str

    @abc.abstractmethod
    def lines(self) -> AsyncIterator[Line]:
        """Yield each reading; never raises for device trouble (it logs and reopens)."""
