"""Fill photos beside the store: one JPEG per fill, written durably, rotated under a size budget.

A photo is taken when the permit is granted (the cylinder as it stood) and kept as
`<root>/<record_id>.jpg`; its SHA-256 goes into the fill's chain entry, so `station verify` can
tell a photo changed or swapped. Rotation deletes the oldest photos first, and never the photo of
a fill the city has not yet received (the city may ask for it; the record is not final).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from station.errors import StoreError

RECORD_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")  # the fills' UUIDs (str(64))
ROTATED = "rotated.log"  # record ids whose photos rotation deleted, one a line
MAX_PHOTO_BYTES = 2 * 1024 * 1024  # one photo (bytes); the city's stamp photos share this cap


class PhotoError(StoreError):
    """A photo could not be kept: not a JPEG, too large, a bad record id, or the disk failed."""


@dataclass(frozen=True)
class Photo:
    record_id: str
    path: Path
    sha256: str  # hex of the file's bytes
    size: int  # bytes


@dataclass(frozen=True)
class Rotation:
    deleted: tuple[str, ...]  # record ids whose photos were deleted, oldest first
    total_bytes: int  # what the photos take after rotation
    over_budget: bool  # still over: every photo left belongs to an undelivered fill


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PhotoStore:
    """The photos' folder (`root`, created on first use) and its budget (`budget_bytes`)."""

    def __init__(self, root: str | os.PathLike[str], budget_bytes: int,
                 max_photo_bytes: int = MAX_PHOTO_BYTES):
        self.root, self.budget, self.max_photo = Path(root), budget_bytes, max_photo_bytes

    def path_of(self, record_id: str) -> Path:
        """Where a fill's photo lives. Raises PhotoError for an id that is not a record id."""
        if not RECORD_ID.fullmatch(record_id):
            raise PhotoError(f"not a record id: {record_id!r}")
        return self.root / f"{record_id}.jpg"

    def save(self, record_id: str, jpeg: bytes) -> Photo:
        """Keep one fill's photo: written to a temporary file, fsynced, renamed into place and
        the folder fsynced, so a power cut leaves the whole photo or none. Raises PhotoError for
        data that is not one JPEG (SOI … EOI markers), larger than the cap, or on a disk error."""
        path = self.path_of(record_id)
        if len(jpeg) > self.max_photo:
            raise PhotoError(f"photo of {len(jpeg)} bytes over the cap of {self.max_photo}")
        if not (jpeg.startswith(b"\xff\xd8") and jpeg.rstrip(b"\x00").endswith(b"\xff\xd9")):
            raise PhotoError("not a JPEG image")
        partial = path.with_name(path.name + ".partial")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as f:
                f.write(jpeg)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, path)
            fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            partial.unlink(missing_ok=True)
            raise PhotoError(f"{path}: {err.strerror or err}") from err
        return Photo(record_id, path, sha256_of(jpeg), len(jpeg))

    def check(self, record_id: str, sha256: str) -> str | None:
        """None when the photo is there with this hash, else what is wrong (for `verify`)."""
        path = self.path_of(record_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return "photo missing"
        except OSError as err:
            return f"photo unreadable: {err.strerror or err}"
        return None if sha256_of(data) == sha256 else "photo changed (hash differs)"

    def rotate(self, delivered: Callable[[Iterable[str]], set[str]]) -> Rotation:
        """Delete the oldest photos (by modification time) until the folder fits the budget,
        skipping every photo whose record `delivered(ids)` does not return (undelivered)."""
        photos = sorted(self._listing(), key=lambda e: (e[2], e[0]))
        total = sum(size for _, size, _ in photos)
        if total <= self.budget:
            return Rotation((), total, False)
        done = delivered([rid for rid, _, _ in photos])
        deleted = []
        for rid, size, _ in photos:
            if total <= self.budget:
                break
            if rid not in done:
                continue
            self._log_rotated(rid)  # logged first: a photo never goes without its trace
            self.path_of(rid).unlink(missing_ok=True)
            total -= size
            deleted.append(rid)
        return Rotation(tuple(deleted), total, total > self.budget)

    def _log_rotated(self, record_id: str) -> None:
        with open(self.root / ROTATED, "a", encoding="ascii") as f:
            f.write(record_id + "\n")
            f.flush()
            os.fsync(f.fileno())

    def rotated(self) -> set[str]:
        """The record ids whose photos rotation deleted (the folder's `rotated.log`)."""
        try:
            return set((self.root / ROTATED).read_text(encoding="ascii").split())
        except FileNotFoundError:
            return set()

    def verify(self, fills: Iterable[tuple[str, str]]) -> tuple[list[str], int, int]:
        """Check each (record_id, sha256) of the fill records: (problems, photos checked,
        photos rotated away). A photo changed, or missing without rotation having logged it,
        is a problem (`station verify`)."""
        problems, checked, gone, rotated = [], 0, 0, self.rotated()
        for record_id, sha256 in fills:
            problem = self.check(record_id, sha256)
            if problem == "photo missing" and record_id in rotated:
                gone += 1
            elif problem:
                problems.append(f"fill {record_id}: {problem}")
            else:
                checked += 1
        return problems, checked, gone

    def _listing(self) -> list[tuple[str, int, float]]:
        if not self.root.is_dir():
            return []
        out = []
        for entry in os.scandir(self.root):
            stem, dot, ext = entry.name.rpartition(".")
            if dot and ext == "jpg" and RECORD_ID.fullmatch(stem) and entry.is_file():
                st = entry.stat()
                out.append((stem, st.st_size, st.st_mtime))
        return out
