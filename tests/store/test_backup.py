"""station backup: an online copy that verifies, rotation, and plain failures."""

import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from records_maker import Records
from support import small_config

from station.store import backup as backup_mod
from station.store.backup import BackupError, backup
from station.store.db import Store
from station.today import LOCAL_TZ

T0 = datetime(2026, 3, 10, 2, 30, tzinfo=LOCAL_TZ)


@pytest.fixture
def store(tmp_path):
    store = Store(str(tmp_path / "station.db"))
    r = Records(store)
    for i in range(20):
        r.fill(T0 - timedelta(hours=i))
        r.decision(T0 - timedelta(hours=i, minutes=5), permit=False, reason="SCRAPPED")
    yield store
    store.close()


def counts(path):
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("decisions", "fills", "outbox", "chain")}
    finally:
        conn.close()


def test_copy_verifies_and_has_the_same_rows(store, tmp_path):
    out = tmp_path / "usb"
    out.mkdir()
    done = backup(store.path, out, now=T0)
    assert done.path == out / "station-20260310-023000.db"
    assert counts(done.path) == counts(store.path)
    assert done.rows["fills"] == 20 and done.rows["decisions"] == 40
    assert backup_mod.verify(done.path, done.rows) == ""
    assert sorted(p.name for p in out.iterdir()) == [done.path.name]  # no -wal, no .partial
    conn = sqlite3.connect(done.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_verify_names_a_difference(store, tmp_path):
    done = backup(store.path, tmp_path, now=T0)
    assert "fills: 20 rows, store had 21" in backup_mod.verify(done.path, {**done.rows,
                                                                          "fills": 21})
    done.path.write_bytes(b"not a database" * 500)
    assert backup_mod.verify(done.path, done.rows)


def test_rotation_keeps_the_newest(store, tmp_path):
    out = tmp_path / "usb"
    out.mkdir()
    (out / "notes.txt").write_text("not a backup")
    made = [backup(store.path, out, keep=2, now=T0 + timedelta(days=i)).path for i in range(4)]
    same_second = backup(store.path, out, keep=3, now=T0 + timedelta(days=3))
    assert same_second.path.name == "station-20260313-023000-1.db"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["notes.txt", made[2].name, made[3].name, same_second.path.name])


def test_not_a_folder(store, tmp_path):
    with pytest.raises(BackupError, match="not a folder"):
        backup(store.path, tmp_path / "missing")


def test_unwritable_folder_fails_clearly_and_leaves_nothing(store, tmp_path):
    """Through the CLI, as a user the folder's permissions refuse (root: without the
    capability that overrides them)."""
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    cfg = tmp_path / "station.toml"
    cfg.write_text(small_config(store.path), encoding="utf-8")
    cmd = [sys.executable, "-m", "station", "backup", "--config", str(cfg), str(out)]
    if os.geteuid() == 0:
        assert shutil.which("setpriv"), "setpriv (util-linux) drops root's override"
        cmd = ["setpriv", "--inh-caps=-all",
               "--bounding-set=-dac_override,-dac_read_search", "--", *cmd]
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ,
                                                                   "STATION_APP_SECRET": "x"})
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"cannot write the backup in {out}: Permission denied" in run.stderr
    assert list(Path(out).iterdir()) == []


