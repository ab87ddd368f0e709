"""The contract as configuration: a second, different profile ([city.profile]) end to end against
the city simulator speaking it, from the TOML file to `station check` and a delivered record."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from citytoml import write_city_config

from simulators.city import CitySimulator
from station import config as config_mod
from station.app import cli
from station.city.client import CityClient
from station.city.profile import CityProfile
from station.errors import ConfigError

PROFILE_TOML = """
[city.profile]
code_key = "status"
message_key = "msg"
data_key = "result"
string_to_sign = "{app_key}&{timestamp}&{nonce}&{unit_code}"
sign_in = "header"
sign_header = "X-Sign"
token_key = "accessToken"
expires_key = "expiresIn"
auth_header = "X-Access-Token"
auth_scheme = ""

[city.profile.codes]
ok = ["0"]
invalid = ["1001"]
token_invalid = ["1002", "1012"]
refused = ["1003"]
not_found = ["1004"]
duplicate = ["1009"]
busy = ["1429"]
server_error = ["1500"]

[city.profile.fields]
id = "cylinderId"
info_code = "infoCode"
qr_url = "qrUrl"
record_id = "recordId"
operator = "operatorName"
unit_code = "unitCode"
app_key = "appKey"
nonce = "nonceStr"
timestamp = "ts"
"""


def write_config(tmp_path: Path, url: str, profile: str = PROFILE_TOML) -> Path:
    return write_city_config(tmp_path, url, "connect_timeout_s = 0.3\nread_timeout_s = 0.5\n"
                             f"decision_deadline_s = 0.5\n{profile}",
                             station_keys='fills_for = ["重庆测试燃气有限公司"]')


@pytest.fixture
def second(city_data, tmp_path):
    """The simulator speaking the second profile, and the station's config for it."""
    sim = CitySimulator(city_data, profile=_profile_of(tmp_path)).start()
    cfg = config_mod.load(str(write_config(tmp_path, sim.url)))
    yield sim, cfg
    sim.stop()


def _profile_of(tmp_path: Path) -> CityProfile:
    folder = tmp_path / "p"
    folder.mkdir()
    return config_mod.load(str(write_config(folder, "http://127.0.0.1:9"))).city.profile


def filling(**over) -> dict:
    rec = {"record_id": str(uuid.uuid4()), "medium_code": "G13", "operator": "张三",
           "fill_date": "2026-11-24", "filling_unit_name": "重庆测试充装站", "id": "C001",
           "fill_started_at": "2026-11-24 09:15:02", "fill_ended_at": "2026-11-24 09:16:40",
           "net_mass_kg": 14.52, "rig_id": "rig-01", "pre_check": "ok", "post_check": "ok"}
    return rec | over


def test_the_simulator_speaks_the_profile_on_the_wire(second):
    sim, _cfg = second
    doc = requests.post(sim.url + "/api/v1/cylinders/query", json={"cylinderId": "C001"},
                        timeout=2).json()
    assert set(doc) == {"status", "msg"} and doc["status"] == "1002"  # no token: 401


def test_every_call_through_the_second_profile(second):
    sim, cfg = second
    client = CityClient(cfg.city, cfg.unit_code)
    try:
        found = client.query({"info_code": "ICC001"})
        by_id = client.query({"id": "C002"})
        unknown = client.query({"info_code": "NO-SUCH"})
        foreign = client.query({"info_code": "ICC003"})
        record = filling()
        first, again = client.submit_filling(record), client.submit_filling(record)
        too_long = client.submit_filling(filling(operator="张" * 11))
        sim.expire_tokens()  # its 1002 gets a new token, once
        renewed = client.query({"info_code": "ICC001"})
    finally:
        client.close()
    assert (found.outcome, found.items[0]["id"]) == ("found", "C001")
    assert (by_id.outcome, by_id.items[0]["id"]) == ("found", "C002")
    assert (unknown.outcome, unknown.code) == ("not_found", "404")
    assert (foreign.outcome, foreign.code) == ("refused", "403")
    assert (first.outcome, again.outcome, too_long.outcome) == ("ok", "duplicate", "invalid")
    assert [f["operator"] for f in sim.fillings] == ["张三"]
    assert (renewed.outcome, renewed.attempts) == ("found", 2)


def test_the_default_profile_gets_nothing_definitive_from_it(second):
    sim, cfg = second
    client = CityClient(replace(cfg.city, profile=CityProfile()), cfg.unit_code)
    try:
        reply = client.query({"info_code": "NO-SUCH"}, deadline_s=0.3)
    finally:
        client.close()
    assert reply.outcome == "transient"  # never a NOT_REGISTERED read off a foreign envelope


def test_station_check_end_to_end(second, capsys):
    _sim, cfg = second
    config = Path(cfg.store).parent / "station.toml"
    start = time.monotonic()
    with pytest.raises(SystemExit):
        cli.main(["check", "--config", str(config), "ICC001"])
    out = capsys.readouterr().out
    assert "source:   city" in out and "CITY_UNAVAILABLE" not in out
    assert time.monotonic() - start < 2.0
    with pytest.raises(SystemExit) as unknown:
        cli.main(["check", "--config", str(config), "NO-SUCH-CODE"])
    assert unknown.value.code == 1 and "NOT_REGISTERED" in capsys.readouterr().out


@pytest.mark.parametrize("profile, key", [
    ('[city.profile]\ncode_key = "msg"\nmessage_key = "msg"', "data_key"),
    ('[city.profile]\nstring_to_sign = "{unit_code}{secret}"', "string_to_sign"),
    ('[city.profile]\nsign_in = "query"', "sign_in"),
    ('[city.profile.codes]\nok = ["0"]\nnot_found = ["0"]', "not_found"),
    ('[city.profile.codes]\nok = []', "ok"),
    ('[city.profile.codes]\nfound = ["0"]', "found"),
    ('[city.profile.fields]\nid = "x"\ninfo_code = "x"', None),
    ('[city.profile.fields]\nid = "has space"', "id"),
])
def test_a_wrong_profile_stops_start_up_naming_the_key(tmp_path, profile, key):
    with pytest.raises(ConfigError) as err:
        config_mod.load(str(write_config(tmp_path, "http://127.0.0.1:9", profile)))
    assert "city.profile" in str(err.value)
    if key:
        assert key in str(err.value)


def test_the_default_profile_is_the_contract(tmp_path):
    cfg = config_mod.load(str(write_config(tmp_path, "http://127.0.0.1:9", "")))
    assert cfg.city.profile == CityProfile()
    assert json.dumps(cfg.city.profile.to_wire({"id": "C1"})) == '{"id": "C1"}'
