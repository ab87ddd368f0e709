"""Reachable from the tablet: [web] bind and allow, the server's own check, the unit's drop-in."""

from pathlib import Path

import pytest

from station import config
from station.errors import ConfigError
from station.web import lan
from station.web.server import WebServer

REPO = Path(__file__).resolve().parents[2]
ENV = {"STATION_APP_SECRET": "s3cret"}
BASE = ('[station]\nunit_name = "u"\nunit_code = "91500112MA5U8XXX0X"\nstore = "{store}"\n'
        '[qr]\nhosts = ["qr.cqtzsb.example"]\n[city]\nbase_url = "http://127.0.0.1:9"\n'
        'app_key = "k"\n[[rigs]]\nid = "rig-01"\nmedium = "G13"\n'
        'modbus = "tcp://127.0.0.1:1502"\n[web]\nport = 0\n')


def write(tmp_path, web: str) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(BASE.format(store=tmp_path / "s.db") + web, encoding="utf-8")
    return path


def test_a_lan_bind_needs_the_tablets_network(tmp_path):
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, 'bind = "192.168.10.2"\n'), env=ENV)
    assert "[web] allow" in str(err.value) and "IPAddressAllow" in str(err.value)
    cfg = config.load(write(tmp_path, 'bind = "0.0.0.0"\nallow = ["192.168.10.7/24", '
                                      '"fd00::/64"]\n'), env=ENV)
    assert cfg.web.allow == ("192.168.10.0/24", "fd00::/64")  # normalised
    for bad in ('["0.0.0.0/0"]', '["192.168.300.0/24"]', '["any"]'):
        with pytest.raises(ConfigError, match=r"\[web\] allow"):
            config.load(write(tmp_path, f'bind = "0.0.0.0"\nallow = {bad}\n'), env=ENV)
    assert config.load(write(tmp_path, ""), env=ENV).web.allow == ()  # loopback: none needed


def test_the_server_answers_loopback_and_the_allowed_networks_only():
    allow = ("192.168.10.0/24",)
    assert lan.allowed("127.0.0.1", allow) and lan.allowed("::1", allow)
    assert lan.allowed("192.168.10.40", allow) and lan.allowed("::ffff:192.168.10.40", allow)
    assert not lan.allowed("192.168.11.40", allow) and not lan.allowed("10.0.0.1", ())
    assert not lan.allowed("garbage", allow)


def test_the_server_closes_a_client_outside_allow(tmp_path):
    cfg = config.load(write(tmp_path, 'allow = ["192.168.10.0/24"]\n'), env=ENV)
    from station.web.app import WebApp

    server = WebServer(WebApp(cfg), "127.0.0.1", 0)
    try:
        assert server.verify_request(None, ("192.168.10.9", 5000))
        assert not server.verify_request(None, ("192.168.99.9", 5000))
    finally:
        server.server_close()


def test_the_dropin_says_what_the_configuration_says(tmp_path, capsys):
    from station.app.cli import main

    path = write(tmp_path, 'bind = "0.0.0.0"\nallow = ["192.168.10.0/24", "10.1.2.3"]\n')
    with pytest.raises(SystemExit) as done:
        main(["web", "--config", str(path), "--systemd-dropin"])
    assert done.value.code in (0, None)
    text = capsys.readouterr().out
    assert "[Service]\nIPAddressAllow=192.168.10.0/24 10.1.2.3/32\n" in text
    dropin = tmp_path / "50-lan.conf"
    web = lan.web_config(str(path))
    assert "does not match" in lan.check_dropin(web, dropin)  # not installed yet
    dropin.write_text(text, encoding="utf-8")
    assert lan.check_dropin(web, dropin) == ""
    loopback = lan.web_config(str(write(tmp_path, "")))
    assert lan.check_dropin(loopback, tmp_path / "none.conf") == ""  # nothing to allow
    assert "does not match" in lan.check_dropin(loopback, dropin)  # a stale LAN drop-in


def test_the_unit_checks_its_dropin_and_allows_only_localhost_itself():
    unit = (REPO / "systemd" / "station-web.service").read_text(encoding="utf-8")
    assert "IPAddressDeny=any\nIPAddressAllow=localhost\n" in unit
    assert "--check-systemd" in unit.split("ExecStartPre=")[1].splitlines()[0]
    install = (REPO / "tools" / "install.sh").read_text(encoding="utf-8")
    assert "--systemd-dropin" in install and "install_lan_dropin" in install
