"""A camera reader's configuration: roi is required, the new keys have defaults and limits."""

from pathlib import Path

import pytest

from station import config
from station.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "station.example.toml"
ENV = {"STATION_APP_SECRET": "s3cret"}
ROI_LINE = "roi = [320, 120, 640, 480]"


def load_text(tmp_path, text):
    path = tmp_path / "station.toml"
    path.write_text(text, encoding="utf-8")
    return config.load(path, env=ENV)


def example() -> str:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'secret_file = "/etc/station/app_secret"', 'secret_file = ""')
    assert ROI_LINE in text
    return text


def camera(cfg: config.StationConfig) -> config.ReaderConfig:
    return next(r for r in cfg.rigs[0].readers if r.kind == "camera")


def test_the_example_camera_loads_with_its_keys(tmp_path):
    cam = camera(load_text(tmp_path, example()))
    assert cam.roi == (320, 120, 640, 480)
    assert (cam.confirm_frames, cam.max_frame_age_s, cam.silent_warn_min, cam.dedup_s) == (
        3, 1.0, 10.0, 3.0)


def test_the_defaults_of_the_new_keys(tmp_path):
    text = example()
    for key in ("confirm_frames", "max_frame_age_s", "silent_warn_min"):
        text = "\n".join(line for line in text.splitlines() if not line.startswith(key))
    cam = camera(load_text(tmp_path, text))
    assert (cam.confirm_frames, cam.max_frame_age_s, cam.silent_warn_min) == (3, 1.0, 10.0)


def test_a_camera_without_roi_stops_start_up_naming_file_section_and_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, example().replace(ROI_LINE, "", 1))
    assert (err.value.section, err.value.key) == ("rigs[0].readers[2]", "roi")
    assert "required" in str(err.value) and str(tmp_path / "station.toml") in str(err.value)


@pytest.mark.parametrize("old,new,key", [
    (ROI_LINE, "roi = [320, 120, 0, 480]", "roi"),
    (ROI_LINE, "roi = [320, 120, 640]", "roi"),
    (ROI_LINE, 'roi = "all"', "roi"),
    ("confirm_frames = 3", "confirm_frames = 0", "confirm_frames"),
    ("confirm_frames = 3", "confirm_frames = 2.5", "confirm_frames"),
    ("max_frame_age_s = 1.0", "max_frame_age_s = 0", "max_frame_age_s"),
    ("silent_warn_min = 10", "silent_warn_min = -1", "silent_warn_min"),
])
def test_bad_camera_values_name_their_key(tmp_path, old, new, key):
    text = example()
    assert old in text
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, text.replace(old, new, 1))
    assert (err.value.section, err.value.key) == ("rigs[0].readers[2]", key)


def test_camera_keys_on_a_scanner_are_refused(tmp_path):
    text = example().replace('terminator = "any"', 'terminator = "any"\nconfirm_frames = 3', 1)
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, text)
    assert (err.value.section, err.value.key) == ("rigs[0].readers[0]", "confirm_frames")
