"""[checks] and [photos]: the built-in LPG lists by default, a station's own list, typos refused."""

from pathlib import Path

import pytest

from station import config
from station.core.checklist import DEFAULT_PRE
from station.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "station.example.toml"
ENV = {"STATION_APP_SECRET": "s3cret"}


def load(tmp_path, extra: str = "", replace: tuple[str, str] = ("", "")):
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'secret_file = "/etc/station/app_secret"', 'secret_file = ""')
    text = text.replace(*replace) + extra
    path = tmp_path / "station.toml"
    path.write_text(text, encoding="utf-8")
    return config.load(path, env=ENV)


def test_the_example_keeps_todays_behaviour_with_the_builtin_lists_ready(tmp_path):
    cfg = load(tmp_path)
    assert cfg.checks.ask == "off" and cfg.checks.pre == DEFAULT_PRE
    assert [i.key for i in cfg.checks.post] == ["leak_valve", "leak_seam"]
    assert cfg.photos.dir == str(Path(cfg.store).parent / "photos")


def test_a_stations_own_list_replaces_the_builtin_one(tmp_path):
    cfg = load(tmp_path, replace=('ask = "off"', 'ask = "screen"'), extra="""
[[checks.pre]]
key = "guard"
label = "护罩齐全"
[[checks.pre]]
key = "paint"
label = "漆色清晰"
required = false
refuses = false
media = ["G13", "G1"]
""")
    assert cfg.checks.ask == "screen"
    assert [(i.key, i.required, i.refuses) for i in cfg.checks.pre] == [
        ("guard", True, True), ("paint", False, False)]
    assert cfg.checks.pre[1].media == frozenset({"G13", "G1"})
    assert cfg.checks.post[0].key == "leak_valve"  # post left out: the built-in list


@pytest.mark.parametrize("extra, section, key", [
    ('[[checks.pre]]\nkey = "guard"\nlabel = "x"\nrefuse = true\n', "checks.pre[0]", "refuse"),
    ('[[checks.pre]]\nkey = "Guard!"\nlabel = "x"\n', "checks.pre[0]", "key"),
    ('[[checks.pre]]\nkey = "guard"\nlabel = "x"\nmedia = ["LPG"]\n', "checks.pre[0]", "media[0]"),
    ('[[checks.pre]]\nkey = "guard"\nlabel = "x"\n[[checks.pre]]\nkey = "guard"\nlabel = "y"\n',
     "checks", "pre"),
    ('[[checks.post]]\nlabel = "x"\n', "checks.post[0]", "key"),
])
def test_a_mistake_in_a_list_stops_start_up_naming_section_and_key(tmp_path, extra, section,
                                                                    key):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, extra=extra)
    assert (err.value.section, err.value.key) == (section, key)


def test_an_unknown_way_of_asking_is_refused(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, replace=('ask = "off"', 'ask = "tablet"'))
    assert (err.value.section, err.value.key) == ("checks", "ask")
