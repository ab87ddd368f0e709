"""The systemd units: the directives the appliance relies on, `systemd-analyze verify` clean, and
an exposure of at most 2.5 by `systemd-analyze security --offline=true`.

Where systemd-analyze is missing (tools/bootstrap.sh dev installs package systemd where it may:
as root or with sudo), those two tests check instead what they can without it: every line of
every unit is a Key=Value in a known section, and the hardening directives the score rests on.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
SERVICES = ("station.service", "station-web.service", "station-backup.service")
INSTALLED = "/opt/station/.venv/bin/station"
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
             "PrivateTmp": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
             "ProtectControlGroups": "yes", "RestrictNamespaces": "yes", "LockPersonality": "yes",
             "MemoryDenyWriteExecute": "yes", "CapabilityBoundingSet": "",
             "SystemCallArchitectures": "native", "User": "station"}
ANALYZE = shutil.which("systemd-analyze")
SECTIONS = {"[Unit]", "[Service]", "[Timer]", "[Install]"}


def directives(name: str) -> dict[str, list[str]]:
    """Key → every value it is given, across sections (a unit file's repeatable keys)."""
    out: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def one(d: dict[str, list[str]], key: str) -> str:
    assert key in d, f"{key}= missing"
    return d[key][-1]


@pytest.mark.parametrize("name", SERVICES)
def test_hardening_directives(name):
    d = directives(name)
    for key, value in HARDENING.items():
        assert one(d, key) == value, key
    assert set(one(d, "RestrictAddressFamilies").split()) <= {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "@system-service" in d["SystemCallFilter"]
    assert one(d, "StateDirectory") == "station" and one(d, "ConfigurationDirectory") == "station"
    assert one(d, "LoadCredential") == "app_secret:/etc/station/app_secret"
    assert one(d, "ExecStart").startswith(INSTALLED + " ")


def test_daemon_unit():
    d = directives("station.service")
    assert (one(d, "Type"), one(d, "NotifyAccess"), one(d, "Restart")) == \
        ("notify", "main", "always")
    assert int(one(d, "WatchdogSec")) >= 5 and one(d, "StartLimitIntervalSec") == "0"
    assert one(d, "RestartSec")
    assert one(d, "ExecStart") == f"{INSTALLED} run --config /etc/station/station.toml"
    assert {v.split()[0] for v in d["DeviceAllow"]} == {
        "char-ttyS", "char-ttyUSB", "char-ttyACM", "char-video4linux"}
    assert one(d, "DevicePolicy") == "closed"
    assert set(one(d, "SupplementaryGroups").split()) == {"dialout", "video"}


def test_web_unit_touches_no_device_and_no_network_but_loopback():
    d = directives("station-web.service")
    assert (one(d, "Type"), one(d, "Restart"), one(d, "StartLimitIntervalSec")) == \
        ("notify", "always", "0")
    assert int(one(d, "WatchdogSec")) >= 5
    assert one(d, "ExecStart") == f"{INSTALLED} web --config /etc/station/station.toml"
    assert "DeviceAllow" not in d and "SupplementaryGroups" not in d
    assert (one(d, "PrivateDevices"), one(d, "DevicePolicy")) == ("yes", "closed")
    assert (one(d, "IPAddressDeny"), one(d, "IPAddressAllow")) == ("any", "localhost")


def test_backup_unit_and_timer():
    d = directives("station-backup.service")
    assert one(d, "Type") == "oneshot"
    assert d["ExecStart"] == [f"{INSTALLED} backup --config /etc/station/station.toml",
                              f"{INSTALLED} prune --config /etc/station/station.toml"]
    t = directives("station-backup.timer")
    assert one(t, "OnCalendar") and one(t, "Persistent") == "true"
    assert one(t, "WantedBy") == "timers.target"


def installed_copy(tmp_path: Path) -> Path:
    """The units with ExecStart pointing at this checkout's station script: verify checks that
    the binary exists, and /opt/station is not installed on a development machine."""
    station = Path(sys.executable).parent / "station"
    assert station.exists(), station
    out = tmp_path / "units"
    out.mkdir()
    for unit in UNITS.iterdir():
        (out / unit.name).write_text(unit.read_text(encoding="utf-8").replace(
            INSTALLED, str(station)), encoding="utf-8")
    return out


def well_formed(unit: Path) -> None:
    section = None
    for number, line in enumerate(unit.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line in SECTIONS, f"{unit.name}:{number}: unknown section {line}"
            section = line
            continue
        assert section, f"{unit.name}:{number}: a directive before any section"
        assert re.fullmatch(r"[A-Z][A-Za-z]+=.*", line), f"{unit.name}:{number}: {line!r}"


def test_systemd_analyze_verify_is_clean(tmp_path):
    for unit in UNITS.iterdir():
        well_formed(unit)
    if ANALYZE is None:
        return  # checked above what can be checked without systemd
    units = installed_copy(tmp_path)
    run = subprocess.run([ANALYZE, "verify", *sorted(str(p) for p in units.iterdir())],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stdout.strip() and not run.stderr.strip(), \
        run.stdout + run.stderr


@pytest.mark.parametrize("name", SERVICES)
def test_exposure_at_most_2_5(name):
    if ANALYZE is None:
        test_hardening_directives(name)  # what the score rests on
        return
    run = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager",
                          str(UNITS / name)], capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", run.stdout)
    assert found, run.stdout + run.stderr
    assert float(found[1]) <= 2.5, run.stdout
