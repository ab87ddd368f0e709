"""Strict configuration: the example loads; a typo, a wrong type or a bad value stops start-up."""

from pathlib import Path

import pytest

from station import config
from station.app.cli import main
from station.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "station.example.toml"
ENV = {"STATION_APP_SECRET": "s3cret"}


def load_text(tmp_path, text, env=ENV):
    path = tmp_path / "station.toml"
    path.write_text(text, encoding="utf-8")
    return config.load(path, env=env)


def example():
    return EXAMPLE.read_text(encoding="utf-8").replace(
        'secret_file = "/etc/station/app_secret"', 'secret_file = ""')


def test_example_loads(tmp_path):
    cfg = load_text(tmp_path, example())
    assert cfg.unit_name == "重庆渝北燃气有限公司"
    assert cfg.city.app_secret == "s3cret"
    assert [r.id for r in cfg.rigs] == ["rig-01", "rig-02"]
    assert cfg.rigs[0].modbus.kind == "tcp" and cfg.rigs[0].modbus.port == 502
    assert cfg.rigs[1].modbus.kind == "rtu" and cfg.rigs[1].modbus.baudrate == 19200
    assert cfg.rigs[0].readers[0].port == "/dev/ttyACM0"
    assert cfg.badge("0a1b2c3d").name == "张三"
    assert cfg.rules.service_life[0].years == 15


@pytest.mark.parametrize("old,new,section,key", [
    ("unit_name = ", "unit_nmae = ", "station", "unit_nmae"),
    ("max_age_h = 72", "max_age_h = \"72\"", "offline", "max_age_h"),
    ("max_age_h = 72", "max_age_h = -1", "offline", "max_age_h"),
    ('medium = "G13"                      #', 'medium = "G99" #', "rigs[0]", "medium"),
    ('modbus = "tcp://192.0.2.10:502"', 'modbus = "udp://x"', "rigs[0]", "modbus"),
    ("unit_id = 1", "unit_id = 300", "rigs[0]", "unit_id"),
    ("poll_ms = 200", "poll_ms = 2000", "rigs[0]", "poll_ms"),
    ("idle_poll_ms = 1000", "idle_poll_ms = 100", "rigs[0]", "idle_poll_ms"),
    ('name = "张三"', 'name = "张三李四王五赵六钱七孙"', "operators[0]", "name"),
    ('terminator = "any"', 'terminator = "tab"', "rigs[0].readers[0]", "terminator"),
    ("heartbeat = 0", "heartbeet = 0", "rigs[0].registers", "heartbeet"),
    ('base_url = "https://city.cqtzsb.example"', 'base_url = "ftp://x"', "city", "base_url"),
    ('id = "rig-02"', 'id = "rig-01"', "top level", "rigs"),
    ("strip_aim = true", "strip_aim = 1", "rigs[0].readers[0]", "strip_aim"),
    ("baudrate = 19200", "baudrate = 19200\nspeed = 1", "rigs[1]", "speed"),
])
def test_bad_config_names_section_and_key(tmp_path, old, new, section, key):
    text = example()
    assert old in text
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, text.replace(old, new, 1))
    assert (err.value.section, err.value.key) == (section, key)
    assert str(tmp_path / "station.toml") in str(err.value)


def test_operator_name_of_ten_characters_is_accepted(tmp_path):
    cfg = load_text(tmp_path, example().replace('name = "张三"', 'name = "张三李四王五赵六钱七"'))
    assert len(cfg.operators[0].name) == 10


def test_missing_secret_is_refused_without_showing_it(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, example(), env={})
    assert err.value.key == "secret_file"


def test_secret_file_is_read_and_not_in_repr(tmp_path):
    (tmp_path / "secret").write_text("abc123\n")
    cfg = load_text(tmp_path, example().replace('secret_file = ""', 'secret_file = "secret"'),
                    env={})
    assert cfg.city.app_secret == "abc123"
    assert "abc123" not in repr(cfg)


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_text(tmp_path, "[station\n")
    with pytest.raises(ConfigError, match="file not found"):
        config.load(tmp_path / "nope.toml", env=ENV)


def test_cli_exits_2_on_a_config_error(tmp_path, capsys):
    path = tmp_path / "station.toml"
    path.write_text(example().replace("unit_name = ", "unit_nmae = "), encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--config", str(path), "X1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "[station] unit_nmae" in err and str(path) in err


def test_fill_sync_and_override_sections(tmp_path):
    cfg = load_text(tmp_path, example())
    assert cfg.fill.tolerance_kg == 0.5 and cfg.sync.rate_per_s == 20
    assert cfg.override.reasons == ("CITY_UNAVAILABLE",)


@pytest.mark.parametrize("reason", ["SCRAPPED", "NOT_REGISTERED", "BLOCKLISTED", "TAG_FOREIGN"])
def test_an_override_of_a_forbidden_reason_stops_start_up(tmp_path, reason):
    text = example().replace('reasons = ["CITY_UNAVAILABLE"]', f'reasons = ["{reason}"]')
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, text)
    assert err.value.section == "override" and "reasons" in err.value.key
