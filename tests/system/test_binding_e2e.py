"""Tag binding end to end: the new tag read at the rig, stamp photos checked, the city binds."""

import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for

NEW_QR = "https://qr.cqtzsb.example/c/500112NEW0000001"


@pytest.fixture
def station(tmp_path):
    st = SimStation(tmp_path, (RigSpec("rig-01", 1, rfid=True),),
                    rig_options={"start_delay_s": None}).start()
    st.badge("rig-01", OPERATORS[0][1])
    yield st
    st.stop()


def photo(tmp_path, name="stamp.jpg"):
    image = np.full((240, 320), 200, np.uint8)
    cv2.putText(image, "118 23 0000001", (10, 120), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 0, 2)
    path = tmp_path / name
    path.write_bytes(cv2.imencode(".jpg", image)[1].tobytes())
    return path


def bind(st, *args):
    return subprocess.Popen([sys.executable, "-m", "station", "bind", "--config",
                             str(st.config_path), "--rig", "rig-01", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def waiting(st):
    return st.rows("SELECT 1 FROM bind_requests WHERE state = 'waiting'")


def test_a_new_qr_label_read_at_the_rig_is_bound(station, tmp_path):
    # The cylinder id as typed with an IME (full-width hyphen, lower case): normalised once.
    proc = bind(station, "--cylinder", " cyl－000013", "--photo", str(photo(tmp_path)))
    wait_for(lambda: waiting(station), 20, "the bind request")
    decisions = station.last_id()
    station.scanners["rig-01"].send(NEW_QR)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    city_record = station.city.cylinder("CYL-000013")
    assert city_record["qr_url"] == NEW_QR and "已绑定" in out
    assert city_record["info_code"] in out  # the city's information code, stored and shown
    assert station.last_id() == decisions  # the new tag was not judged as a cylinder
    row = station.rows("SELECT * FROM bind_requests")[0]
    assert row["state"] == "done" and row["info_code"] == city_record["info_code"]


def test_an_rfid_tag_bound_to_another_cylinder_is_refused_plainly(station, tmp_path):
    proc = bind(station, "--cylinder", "CYL-000013", "--photo", str(photo(tmp_path)))
    wait_for(lambda: waiting(station), 20, "the bind request")
    station.rfids["rig-01"].enter("E2801160600002084C1A2B3C")  # CYL-000016's tag
    out, _ = proc.communicate(timeout=30)
    station.rfids["rig-01"].leave()
    assert proc.returncode == 1 and "已绑定其他气瓶" in out and "already bound" in out


def test_photos_are_checked_before_the_city_is_asked(station, tmp_path):
    png = tmp_path / "stamp.png"
    png.write_bytes(cv2.imencode(".png", np.zeros((10, 10), np.uint8))[1].tobytes())
    before = station.city.requests.get("/api/v1/tags/bind", 0)
    for args in (["--photo", str(png)], [], ["--photo", str(photo(tmp_path))] * 5):
        started = time.monotonic()
        proc = bind(station, "--cylinder", "CYL-000013", "--tag", NEW_QR, *args)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 1 and err and time.monotonic() - started < 20
    assert station.city.requests.get("/api/v1/tags/bind", 0) == before
