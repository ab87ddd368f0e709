"""Live camera sources: only the newest frame is decoded, never a stale one, and a daemon reading
a network camera exits cleanly on SIGTERM (it aborted with -6 while a capture thread was inside
OpenCV at exit)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from drivers.camera_source import LatestFrameSource
from simulators.camera import MjpegStream, scene
from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import RigSpec, SimStation, wait_for
from station.errors import ReaderError
from station.today import station_today


class FakeCamera:
    """A capture whose frames arrive every `period` s, as a camera's driver delivers them;
    a retrieved frame's pixel [0, 0] is its number mod 256. `resumed` cleared holds the next
    frame back (a stalled stream), and `held` says a grab is waiting for it."""

    def __init__(self, period: float = 0.002):
        self.period, self.count, self.retrieved, self.released = period, 0, 0, False
        self.resumed = threading.Event()
        self.resumed.set()
        self.held = threading.Event()

    def grab(self) -> bool:
        if not self.resumed.is_set():
            self.held.set()
        self.resumed.wait()
        time.sleep(self.period)  # the camera's frame interval, not a synchronisation
        self.count += 1
        return True

    def retrieve(self) -> tuple[bool, np.ndarray]:
        self.retrieved += 1
        return True, np.full((4, 4), self.count % 256, np.uint8)

    def release(self) -> None:
        self.released = True


def test_a_live_source_hands_out_the_newest_frame_and_never_one_twice():
    cam = FakeCamera()
    source = LatestFrameSource(cam, "fake", max_age_s=1.0)
    stop = threading.Event()
    try:
        got = []
        due = time.monotonic()
        for _ in range(5):
            due += 0.05  # a decoder at 20 frames/s behind a camera at ~500
            frame = source.next_frame(due, stop)
            got.append((int(frame[0, 0]), cam.count))
        numbers = [n for n, _count in got]
        assert len(set(numbers)) == len(numbers)  # never the same frame twice
        assert all(count - n <= 3 for n, count in got), got  # the newest, give or take a frame
        assert all(b - a >= 5 for a, b in zip(numbers, numbers[1:], strict=False)), numbers
        assert cam.retrieved == len(numbers)  # only the frames handed out are converted
    finally:
        source.release()
    assert cam.released


def test_a_stalled_live_source_is_lost_rather_than_its_last_frame_decoded():
    cam = FakeCamera()
    source = LatestFrameSource(cam, "fake", max_age_s=0.2)
    stop = threading.Event()
    try:
        assert source.next_frame(time.monotonic(), stop) is not None
        cam.resumed.clear()  # the stream stalls: no frame newer than the last one read
        assert cam.held.wait(5)
        start = time.monotonic()
        with pytest.raises(ReaderError, match="no frame newer than 0.2 s"):
            for _ in range(2):  # the last frame read may not have been handed out yet
                frame = source.next_frame(time.monotonic(), stop)
                assert int(frame[0, 0]) == cam.count % 256  # then it is that one, never older
        assert time.monotonic() - start < 2.0
    finally:
        cam.resumed.set()
        source.release()


def test_a_live_source_stops_waiting_when_told():
    cam = FakeCamera()
    cam.resumed.clear()  # no frame at all yet
    source = LatestFrameSource(cam, "fake", max_age_s=1.0)
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    try:
        assert source.next_frame(time.monotonic(), stop) is None
    finally:
        cam.resumed.set()
        source.release()


def camera_readings(st: SimStation) -> int:
    """Readings from rig-01's camera the daemons logged: judged, or void over an empty scale."""
    lines = st.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    return sum("reader=rig-01-camera" in line and ("event=decision " in line
                                                    or "event=reading_void " in line)
               for line in lines)


def test_the_daemon_exits_0_on_sigterm_while_reading_a_network_camera(tmp_path):
    cyl = demo_cylinders(station_today())["valid"]
    frame = scene(qr_url(cyl["info_code"]), size=(640, 480))
    with MjpegStream([frame], fps=60) as stream:
        st = SimStation(tmp_path / "station", (RigSpec("rig-01", 1, camera=stream.url,
                                                       camera_roi=(0, 0, 640, 480)),))
        st.start()
        try:
            codes = []
            for trial in range(3):  # the abort hit about 2 stops in 5 before the fix
                before = 0  # camera readings the daemons before this one logged
                if trial:
                    before = camera_readings(st)
                    st.start_daemon()
                wait_for(lambda n=before: camera_readings(st) > n, 15,
                         "a reading from the network camera")
                codes.append(st.stop_daemon())
            assert codes == [0, 0, 0], st.log_tail()
            assert "terminate called" not in st.log_path.read_text(encoding="utf-8")
        finally:
            st.stop()
