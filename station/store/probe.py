"""Looks at a store file without changing it (`station doctor`): nothing created, nothing migrated."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from station.errors import StoreError


@contextmanager
def readonly(path: str) -> Iterator[sqlite3.Connection]:
    """A read-only connection to an existing store (mode=ro: a missing file is an error, not a
    new store); closed on leaving. sqlite3.Error from the caller's queries passes through."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        yield conn
    finally:
        conn.close()


def writable(path: str) -> tuple[list[str], int]:
    """integrity_check's lines (["ok"] when sound) and the schema version (user_version) of an
    existing store; the write lock taken and released at once when sound (it fails on a
    read-only file). StoreError when the file cannot be opened or locked."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5)
        try:
            result = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if result == ["ok"]:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.Error as err:
        raise StoreError(str(err)) from err
    return result, version


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None


def blocklist_keys(path: str) -> list[str]:
    """Every block-list key as stored. StoreError when the store cannot be read."""
    try:
        with readonly(path) as conn:
            return [k for (k,) in conn.execute("SELECT key FROM blocklist").fetchall()]
    except sqlite3.Error as err:
        raise StoreError(str(err)) from err
