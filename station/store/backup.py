"""Online backup of the store (SQLite's backup API), verified, with rotation of old copies.

Each run's result (time, ok or the error, the copy, its rows and size) is written into the
store's `backups` table, so that the manager's home page shows the last backup and whether it
worked (issue 16)."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from station.errors import StationError
from station.today import LOCAL_TZ

NAME = re.compile(r"station-\d{8}-\d{6}(-\d+)?\.db")


class BackupError(StationError):
    """The backup could not be written or did not verify; no copy is left in its place."""


@dataclass(frozen=True)
class Backup:
    path: Path
    rows: dict[str, int]  # table → rows, equal in the store's snapshot and in the copy
    size: int
    removed: tuple[Path, ...] = ()  # older copies rotated away


def backup(store_path: str, folder: str | os.PathLike[str], keep: int | None = None,
           now: datetime | None = None) -> Backup:
    """Copy the store into folder/station-YYYYmmdd-HHMMSS.db, verify it, then rotate; the
    result (or the BackupError raised) is recorded in the store (`record`)."""
    try:
        done = _backup(store_path, folder, keep, now)
    except BackupError as err:
        record(store_path, False, None, str(err))
        raise
    record(store_path, True, done.path, "", sum(done.rows.values()), done.size)
    return done


def record(store_path: str, ok: bool, path: Path | None, detail: str, rows: int | None = None,
           size: int | None = None) -> bool:
    """Write one backup result into the store's `backups` table; False when the store cannot
    take it (missing, from before the table, locked for 5 s): the backup's own result stands
    and the home page then shows the previous one."""
    if not Path(store_path).is_file():
        return False
    try:
        conn = sqlite3.connect(f"file:{store_path}?mode=rw", uri=True, timeout=5,
                               isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        conn.execute("INSERT INTO backups (at, ok, path, detail, rows, size) VALUES "
                     "(?, ?, ?, ?, ?, ?)", (time.time(), int(ok), None if path is None
                                            else str(path), detail[:500], rows, size))
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def last(conn: sqlite3.Connection) -> dict | None:
    """The newest backup result: at (epoch s), ok, path, detail, rows, size; None: none yet
    (or a store from before results were recorded)."""
    try:
        cur = conn.execute("SELECT at, ok, path, detail, rows, size FROM backups "
                           "ORDER BY id DESC LIMIT 1")
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):
            return None
        raise
    row = cur.fetchone()
    return None if row is None else dict(zip([c[0] for c in cur.description], row, strict=True))


def _backup(store_path: str, folder: str | os.PathLike[str], keep: int | None,
            now: datetime | None) -> Backup:
    target_dir = Path(folder)
    if not target_dir.is_dir():
        raise BackupError(f"{target_dir} is not a folder (is the USB stick mounted?)")
    final = _free_name(target_dir, now or datetime.now(LOCAL_TZ))
    partial = final.with_name(final.name + ".partial")
    try:
        with open(partial, "xb"):  # fails plainly (Permission denied) on a read-only folder
            pass
        rows = _copy(store_path, partial)
        problem = verify(partial, rows)
        if problem:
            raise BackupError(f"backup {final} did not verify: {problem}")
        _durable_rename(partial, final)
    except OSError as err:
        raise BackupError(f"cannot write the backup in {target_dir}: {err.strerror or err}") \
            from err
    finally:
        partial.unlink(missing_ok=True)
    removed = rotate(target_dir, keep) if keep else ()
    return Backup(final, rows, final.stat().st_size, removed)


def _free_name(folder: Path, now: datetime) -> Path:
    stem = f"station-{now:%Y%m%d-%H%M%S}"
    candidate, n = folder / f"{stem}.db", 1
    while candidate.exists():  # two backups within one second
        candidate, n = folder / f"{stem}-{n}.db", n + 1
    return candidate


def _copy(store_path: str, partial: Path) -> dict[str, int]:
    """Back up one consistent snapshot and return its row counts (counted in that snapshot)."""
    if not Path(store_path).is_file():
        raise BackupError(f"no store at {store_path}")
    try:
        src = sqlite3.connect(f"file:{store_path}?mode=rw", uri=True, timeout=10)
    except sqlite3.Error as err:
        raise BackupError(f"cannot open the store {store_path}: {err}") from err
    try:
        dst = sqlite3.connect(partial)
    except sqlite3.Error as err:
        src.close()
        raise BackupError(f"cannot create {partial}: {err}") from err
    try:
        src.execute("BEGIN")  # a read transaction: the counts and the copy see one snapshot
        rows = _counts(src)
        src.backup(dst)
        src.execute("COMMIT")
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        return rows
    except sqlite3.Error as err:
        raise BackupError(f"backup of {store_path} into {partial} failed: {err}") from err
    finally:
        dst.close()
        src.close()


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                         "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def verify(copy: Path, expected: dict[str, int]) -> str:
    """"" when the copy passes PRAGMA integrity_check and holds the expected rows; else why."""
    try:
        conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        try:
            check = conn.execute("PRAGMA integrity_check").fetchall()
            rows = _counts(conn)
        finally:
            conn.close()
    except sqlite3.Error as err:
        return f"cannot read the copy: {err}"
    if check != [("ok",)]:
        return "integrity_check: " + "; ".join(r[0] for r in check[:5])
    differ = [f"{t}: {rows.get(t)} rows, store had {n}" for t, n in expected.items()
              if rows.get(t) != n]
    return "; ".join(differ)


def _durable_rename(partial: Path, final: Path) -> None:
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.rename(partial, final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rotate(folder: Path, keep: int) -> tuple[Path, ...]:
    """Remove all but the newest `keep` backups (by the time in their names) from folder."""
    copies = sorted((p for p in folder.iterdir() if NAME.fullmatch(p.name)),
                    key=lambda p: _sort_key(p.name))
    old = copies[:-keep] if keep > 0 else copies
    for path in old:
        path.unlink()
    return tuple(old)


def _sort_key(name: str) -> tuple[str, int]:
    stem = name[:-3]
    parts = stem.split("-")
    return ("-".join(parts[:3]), int(parts[3]) if len(parts) > 3 else 0)
