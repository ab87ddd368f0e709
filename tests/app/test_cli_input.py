"""`station` refuses bad input with a clear message and exit 2, and never shows a traceback for
a person's mistake (issue 16, item 5); --version; the default configuration path."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from freshbox import SECRET, write_config

from station.app.cli import main
from station.store.db import Store


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    """A configuration with an (empty) store."""
    for k, v in SECRET.items():
        monkeypatch.setenv(k, v)
    path = write_config(tmp_path)
    Store(str(tmp_path / "state" / "station.db")).close()
    return path


def run(argv: list[str]) -> tuple[int, str]:
    """Exit code and everything written to stderr (captured here, not by capsys)."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
            pytest.raises(SystemExit) as done:
        main(argv)
    return done.value.code, err.getvalue()


@pytest.mark.parametrize("args, named", [
    (["--from", "2026-13-01"], "--from"),       # no 13th month: was 0 rows
    (["--from", "01/12/2026"], "yyyy-mm-dd"),   # compared as text: was every row
    (["--to", "2026-02-30"], "--to"),
    (["--from", "20260101"], "yyyy-mm-dd"),     # Python 3.11 would take it; a person means?
    (["--check", "bogus"], "--check"),          # was 0 rows
    (["--check", "o"], "--check"),              # was ok and overfill (a prefix)
    (["--limit", "-3"], "--limit"),             # SQLite: LIMIT -3 is no limit
    (["--limit", "0"], "--limit"),
    (["--limit", "ten"], "--limit"),
    (["--rig", "rig-99"], "rig-01"),            # was 0 rows; now names the rigs there are
])
def test_records_refuses_bad_input_with_exit_2(cfg, args, named):
    code, err = run(["records", "--config", str(cfg), *args])
    assert code == 2 and named in err and "Traceback" not in err, err


def test_decisions_and_backup_refuse_a_count_below_one(cfg):
    assert run(["decisions", "--config", str(cfg), "--limit", "-1"])[0] == 2
    assert run(["backup", "--config", str(cfg), str(cfg.parent / "b"), "--keep", "0"])[0] == 2


def test_good_input_still_runs(cfg):
    code, err = run(["records", "--config", str(cfg), "--from", "2026-01-01", "--to",
                     "2026-12-31", "--check", "ok", "--rig", "rig-01", "--limit", "5"])
    assert code == 0 and "0 record(s)" in err


def test_check_at_an_unknown_rig_is_a_message_not_a_traceback(cfg):
    code, err = run(["check", "--config", str(cfg), "--rig", "rig-99", "CYL-000001"])
    assert code == 2 and "no rig 'rig-99'" in err and "rig-01" in err


def test_operator_commands_name_the_rigs_there_are(cfg):
    code, err = run(["operator", "login", "--config", str(cfg), "--rig", "rig-99", "张三"])
    assert code == 2 and "rig-01" in err


def test_a_closed_pipe_ends_the_command_quietly(cfg):
    """`station stats … | head -1` (or records --csv): the reader stops after one line."""
    proc = subprocess.Popen([sys.executable, "-m", "station", "stats", "--config", str(cfg),
                             "--from", "2000-01-01", "--to", "2025-12-31"],  # ~700 kB of lines
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, **SECRET))
    assert proc.stdout.readline().startswith(b"date")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(30) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_web_on_a_port_in_use_says_so_and_exits_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_config(tmp_path, extra=f"[web]\nport = {port}\n")
        done = subprocess.run([sys.executable, "-m", "station", "web", "--config", str(path)],
                              capture_output=True, text=True, timeout=30,
                              env=dict(os.environ, **SECRET))
    assert done.returncode == 2 and "cannot listen" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("station ")


def test_the_configuration_defaults_to_station_config_then_etc(tmp_path, monkeypatch):
    for k, v in SECRET.items():
        monkeypatch.setenv(k, v)
    path = write_config(tmp_path)
    Store(str(tmp_path / "state" / "station.db")).close()
    monkeypatch.setenv("STATION_CONFIG", str(path))
    assert run(["records"]) == (0, "0 record(s)\n")
    monkeypatch.delenv("STATION_CONFIG")
    code, err = run(["records"])
    assert code == 2 and "/etc/station/station.toml" in err and "STATION_CONFIG" in err
