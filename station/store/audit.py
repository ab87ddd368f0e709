"""A manager's actions on the records, each with who, when and a note, chained in the store.

Removing a block-list entry, marking an overfill or override handled and sending a dead letter
again are done from the web pages after a confirmation and a note (issue 16, item 3). Each is
one transaction: the change itself, a `manager_actions` row (who, when, what, the note, whether
it changed anything) and that row's entry in the hash chain (station.store.chain, kind
`action`), so that `station verify` walks the actions with the records and names an edited one.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from station.errors import StoreError
from station.store import chain
from station.store.db import Store, remove_block

ACTIONS = ("unblock", "handle", "retry")
NOTE_MAX = 500  # characters of a note kept
# An overfill (any post-check starting so: "overfill (scale not stable)" too) or an override.
ISSUE = "(f.post_check LIKE 'overfill%' OR f.override_by IS NOT NULL)"


class NoteMissing(StoreError):
    """An action asked for without a note: nothing was changed."""


@dataclass(frozen=True)
class Done:
    """What an action did: `changed` False when there was nothing (any more) to change."""

    action_id: int
    changed: bool


def act(store: Store, action: str, target: str, user: str, note: str) -> Done:
    """Carry out one manager action on `target` (a block-list key or a record id) and record
    it, chained, in the same transaction. Raises NoteMissing for an empty note, ValueError for
    an unknown action, StoreError when the store cannot be written (nothing is then changed).
    An action that finds nothing to change is recorded too (changed False): the attempt is
    part of the trace."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    note = note.strip()[:NOTE_MAX]
    if not note:
        raise NoteMissing(f"{action} {target}: a note is required")
    now = time.time()
    with store.transaction() as conn:
        changed = CHANGES[action](conn, target, user, now)
        cur = conn.execute("INSERT INTO manager_actions (at, user, action, target, note, done) "
                           "VALUES (?, ?, ?, ?, ?, ?)", (now, user, action, target, note,
                                                         int(changed)))
        chain.append(conn, "action", cur.lastrowid or 0)
    return Done(int(cur.lastrowid or 0), changed)


def _unblock(conn: sqlite3.Connection, key: str, user: str, now: float) -> bool:
    """The row stored as `key`, or else every row whose normalised form is `key`'s."""
    return remove_block(conn, key)


def _handle(conn: sqlite3.Connection, record_id: str, user: str, now: float) -> bool:
    """An open overfill or override marked handled (handled_at/by are outside its digest)."""
    return conn.execute(f"UPDATE fills AS f SET handled_at = ?, handled_by = ? WHERE "
                        f"record_id = ? AND state != 'open' AND handled_at IS NULL AND {ISSUE}",
                        (now, user, record_id)).rowcount > 0


def _retry(conn: sqlite3.Connection, record_id: str, user: str, now: float) -> bool:
    """A dead letter pending again (as `station outbox retry`)."""
    return conn.execute("UPDATE outbox SET state = 'pending', next_at = 0 WHERE record_id = ? "
                        "AND state = 'dead'", (record_id,)).rowcount > 0


CHANGES = {"unblock": _unblock, "handle": _handle, "retry": _retry}


def actions(store: Store, action: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The newest actions first (of one kind when given): id, at (epoch s), user, action,
    target, note, done; [] for a store from before actions were recorded."""
    where, params = ("WHERE action = ? ", (action,)) if action is not None else ("", ())
    try:
        return store.query(f"SELECT * FROM manager_actions {where}ORDER BY id DESC LIMIT ?",
                           (*params, limit))
    except StoreError as err:
        if "no such table" in str(err):
            return []
        raise


def actions_on(store: Store, targets: list[str], limit: int = 200) -> list[dict[str, Any]]:
    """The actions on any of `targets` (a cylinder's keys and record ids), newest first."""
    if not targets:
        return []
    marks = ", ".join("?" * len(targets))
    try:
        return store.query(f"SELECT * FROM manager_actions WHERE target IN ({marks}) "
                           "ORDER BY id DESC LIMIT ?", (*targets, limit))
    except StoreError as err:
        if "no such table" in str(err):
            return []
        raise
