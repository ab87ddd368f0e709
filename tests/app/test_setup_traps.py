"""Set-up traps closed (issue 16, item 6): no silent new store, a fresh box's doctor, exit 2 that
stops systemd, the backup unit's folder from the configuration, warnings at start, no extras."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from freshbox import SECRET, write_config

from station import config
from station.app import doctor
from station.errors import StationError

FIRST_START = ".station-first-start"  # station.app.startup.FIRST_START, as install lays it

ROOT = Path(__file__).resolve().parents[2]


def load(path: Path) -> config.StationConfig:
    return config.load(path, env=SECRET)


def test_run_refuses_to_start_on_a_store_that_is_not_there(tmp_path):
    """A typo in `store =` must not start an empty store: exit 2, nothing created."""
    path = write_config(tmp_path, store="stat/station.db")  # the store is in state/
    done = subprocess.run([sys.executable, "-m", "station", "run", "--config", str(path)],
                          capture_output=True, text=True, timeout=20,
                          env=dict(os.environ, **SECRET))
    assert done.returncode == 2 and "station init" in done.stderr, done.stderr
    assert not (tmp_path / "stat").exists()  # no store, no folder, no lock file


def test_the_store_is_created_only_when_asked_or_on_the_first_start(tmp_path):
    from station.app.daemon import init_store, may_create

    cfg = load(write_config(tmp_path))
    with pytest.raises(StationError, match="station init"):
        may_create(cfg, asked=False)
    assert may_create(cfg, asked=True)  # station run --init / station init
    folder = Path(cfg.store).parent
    folder.mkdir()
    (folder / FIRST_START).touch()  # what make install lays down
    assert may_create(cfg, asked=False)
    assert init_store(cfg) and not (folder / FIRST_START).exists()  # consumed
    assert not may_create(cfg, asked=False) and not init_store(cfg)  # exists: kept


def test_doctor_on_a_fresh_box_passes_or_names_the_first_step(tmp_path):
    cfg = load(write_config(tmp_path))
    missing = doctor.check_store(cfg.store, cfg.file)  # no state folder yet: not a crash
    assert missing.status == "FAIL" and "station init" in missing.detail
    Path(cfg.store).parent.mkdir()
    unmarked = doctor.check_store(cfg.store, cfg.file)
    assert unmarked.status == "FAIL" and "station init" in unmarked.detail
    (Path(cfg.store).parent / FIRST_START).touch()
    assert doctor.check_store(cfg.store, cfg.file).status == "PASS"


def test_a_config_error_exits_2_and_systemd_does_not_restart_on_it(tmp_path):
    path = write_config(tmp_path, extra="workerz = 4\n")
    done = subprocess.run([sys.executable, "-m", "station", "run", "--config", str(path)],
                          capture_output=True, text=True, timeout=20,
                          env=dict(os.environ, **SECRET))
    assert done.returncode == 2 and "workerz" in done.stderr
    unit = (ROOT / "systemd" / "station.service").read_text(encoding="utf-8")
    assert re.search(r"^RestartPreventExitStatus=2$", unit, re.MULTILINE)


def test_the_backup_unit_follows_backup_dir(tmp_path):
    unit = (ROOT / "systemd" / "station-backup.service").read_text(encoding="utf-8")
    assert "/media/station-backup" not in unit
    path = write_config(tmp_path, extra='[backup]\ndir = "/srv/usb-backup"\n')
    done = subprocess.run([sys.executable, "-m", "station", "backup", "--config", str(path),
                           "--systemd-dropin"], capture_output=True, text=True, timeout=20,
                          env={k: v for k, v in os.environ.items() if k != "STATION_APP_SECRET"})
    assert done.returncode == 0, done.stderr  # no secret needed: install time
    assert "RequiresMountsFor=/srv/usb-backup" in done.stdout.splitlines()
    assert "ReadWritePaths=-/srv/usb-backup" in done.stdout.splitlines()
    install = (ROOT / "tools" / "install.sh").read_text(encoding="utf-8")
    assert "--systemd-dropin >\"$dir/50-dir.conf.new\"" in install


def test_the_marker_name_is_the_daemons():
    from station.app.startup import FIRST_START as daemons

    assert daemons == FIRST_START and f"MARKER={FIRST_START}" in (
        ROOT / "tools" / "install.sh").read_text(encoding="utf-8")


def test_a_byte_order_mark_at_the_top_is_accepted(tmp_path):
    assert load(write_config(tmp_path, bom=True)).unit_name == "测试站"


def test_warnings_at_start_rig_without_reader_and_missing_ports(tmp_path, caplog):
    from station.app.daemon import warn_setup
    from station.app.startup import notices

    cfg = load(write_config(tmp_path, readers=""))
    with caplog.at_level(logging.WARNING, logger="station.daemon"):
        warn_setup(cfg)
    text = caplog.text
    assert "event=rig_without_reader rig=rig-01" in text
    assert "event=serial_port_missing rig=rig-01 port=/dev/ttyS-station-test-rig" in text
    cfg = load(write_config(tmp_path))
    assert {n.event for n in notices(cfg)} >= {"serial_port_missing"}
    assert "rig_without_reader" not in {n.event for n in notices(cfg)}


def test_doctor_warns_of_no_web_users_and_of_the_published_password(tmp_path):
    from station.app.startup import EXAMPLE_HASHES

    example = (ROOT / "config" / "station.example.toml").read_text(encoding="utf-8")
    published = set(re.findall(r'^password_hash = "([^"]+)"', example, re.MULTILINE))
    assert published and published <= EXAMPLE_HASHES  # the list keeps up with the example
    cfg = load(write_config(tmp_path))
    assert any("no [[web.users]]" in c.detail for c in doctor.setup_checks(cfg))
    hashed = next(iter(published))
    cfg = load(write_config(tmp_path, extra=f'[[web.users]]\nname = "manager"\n'
                            f'password_hash = "{hashed}"\n'))
    [warn] = doctor.setup_checks(cfg)
    assert warn.status == "WARN" and "published" in warn.detail and "manager" in warn.detail


def test_bootstrap_installs_system_packages_without_recommends():
    script = (ROOT / "tools" / "bootstrap.sh").read_text(encoding="utf-8")
    installs = re.findall(r"apt-get install(?:[^\n]*\\\n)*[^\n]*", script)
    assert installs and all("--no-install-recommends" in i for i in installs), installs
