"""The config loader under hypothesis: any mangled file is loaded or refused with ConfigError."""

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from station import config
from station.errors import ConfigError

EXAMPLE = (Path(__file__).resolve().parents[2] / "config" / "station.example.toml").read_text(
    encoding="utf-8").replace('secret_file = "/etc/station/app_secret"', 'secret_file = ""')
LINES = EXAMPLE.splitlines()
VALUES = st.sampled_from(['""', "0", "-1", "1e309", "true", "[]", "[1, 2]", "{}", '"G99"',
                          '"tcp://"', '"rtu://"', '"\\u202e"', "nan", "inf", '"x" ', "99999999"])


@st.composite
def mangled(draw):
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "value", "junk"]))
        if op == "drop":
            lines.pop(i)
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "value" and "=" in lines[i] and not lines[i].lstrip().startswith("#"):
            lines[i] = lines[i].split("=", 1)[0] + "= " + draw(VALUES)
        else:
            lines.insert(i, draw(st.text(max_size=20)))
    return "\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mangled())
def test_a_mangled_config_loads_or_is_refused_by_name(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "station.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        cfg = config.load(path, env={"STATION_APP_SECRET": "x"})
    except ConfigError as err:
        assert str(path) in str(err) and err.section  # the message names file and section
    else:
        assert cfg.rigs and all(r.poll_ms * 3 <= r.watchdog_ms for r in cfg.rigs)
