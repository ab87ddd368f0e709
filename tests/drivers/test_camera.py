"""The camera QR reader, through the real driver, reading video files made by the simulator."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.camera import CameraConfig, CameraReader, ViewTracker
from drivers.qr_decoders import Code
from drivers.reader import Line
from simulators.camera import make_video
from simulators.dataset import demo_cylinders, qr_url
from station.core.model import Reading
from station.core.reading import decode, parse_scan
from station.today import station_today

SMALL = (640, 480)
FAST = 50.0  # frames a second: a file is replayed frame by frame, so tests may run it fast
HOSTS = ("qr.cqtzsb.example",)


def demo_urls() -> list[str]:
    return [qr_url(c["info_code"]) for c in demo_cylinders(station_today()).values()]


def read_lines(reader: CameraReader, until: Callable[[list[Line]], bool], timeout_s: float,
               meanwhile: Callable[[CameraReader], bool] | None = None) -> list[Line]:
    """Run reader.lines() until `until(lines)` or the deadline; `meanwhile` is polled alongside
    (returning True once it has done its part) for work that must happen while it runs."""

    async def main() -> list[Line]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        got: list[Line] = []
        arrived = asyncio.Event()

        async def consume() -> None:
            async for line in reader.lines():
                got.append(line)
                arrived.set()

        task = asyncio.create_task(consume())
        pending = meanwhile
        try:
            while not until(got) and loop.time() < deadline and not task.done():
                if pending is not None and pending(reader):
                    pending = None
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), min(0.05, deadline - loop.time()))
                except TimeoutError:
                    pass
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()
        return got

    lines = asyncio.run(main())
    if reader.thread is not None:
        reader.thread.join(timeout=5)
        assert not reader.thread.is_alive(), "capture thread did not stop"
    return lines


def texts(lines: list[Line]) -> list[str]:
    return [line.data.decode("utf-8") for line in lines]


def read_all(path: Path, codes: list, decoder: str = "zxing", **cfg: object) -> list[Line]:
    """Every reading of one pass over the video (stops at its last code)."""
    last = codes[-1].encode("utf-8") if isinstance(codes[-1], str) else codes[-1]
    reader = CameraReader(CameraConfig("cam1", str(path), decoder=decoder, fps=FAST, **cfg),
                          "rig-01")
    return read_lines(reader, lambda got: bool(got) and got[-1].data == last, timeout_s=15)


@pytest.mark.parametrize("look", [
    dict(),
    dict(rotate_deg=25.0),
    dict(blur=1.5),
    dict(module_px=3.0, rotate_deg=10.0),
], ids=["clean", "rotated", "blurred", "small"])
def test_demo_codes_are_read_in_order_once_each(tmp_path, look):
    codes = demo_urls()
    video = make_video(tmp_path / "codes.avi", codes, size=SMALL, frames_per_code=3, **look)
    lines = read_all(video, codes)
    assert texts(lines) == codes  # in order, none missing, none repeated
    assert all(line.reader_id == "cam1" and not line.overlong for line in lines)
    assert [line.at for line in lines] == sorted(line.at for line in lines)


def test_the_same_code_in_consecutive_frames_is_one_reading(tmp_path):
    codes = demo_urls()[:3]
    video = make_video(tmp_path / "held.avi", codes, size=SMALL, frames_per_code=12)
    lines = read_all(video, codes, dedup_s=3.0)
    assert texts(lines) == codes


def test_a_code_that_stays_in_view_is_read_again_every_dedup_s(tmp_path):
    first, second = demo_urls()[:2]
    # At 10 frames/s: first for 0.4 s, second for 1.2 s, first again. The second is read on
    # its third frame and again every 0.4 s while it stays; the first comes back over 1 s after
    # it was read: a new reading once confirmed again.
    video = make_video(tmp_path / "again.avi", [first, second, second, second, first],
                       size=SMALL, frames_per_code=4)
    reader = CameraReader(CameraConfig("cam1", str(video), fps=10, dedup_s=0.4), "rig-01")
    lines = read_lines(reader, lambda got: len(got) >= 3 and got[-1].data == first.encode(),
                       timeout_s=15)
    got = texts(lines)
    assert got[0] == first and got[-1] == first and set(got[1:-1]) == {second}
    assert len(got[1:-1]) >= 2  # read again while in view
    seconds = [line.at for line in lines[1:-1]]
    assert all(b - a >= 0.4 for a, b in zip(seconds, seconds[1:], strict=False))


def sight(tracker: ViewTracker, datas: list[bytes], now: float):
    """One decoded frame with these codes (boxes: the n-th code at x = 100 n, 50 px wide)."""
    codes = [Code(d, (100 * n, 0, 50 + n, 50)) for n, d in enumerate(datas)]
    seen = tracker.frame(codes, now)
    return None if seen is None else (seen.data, seen.others)


def test_view_tracker_confirms_one_code_and_repeats_it_every_dedup_s():
    t = ViewTracker(confirm_frames=3, dedup_s=1.0)
    assert [sight(t, [b"A"], n * 0.1) for n in range(3)] == [None, None, (b"A", ())]
    assert sight(t, [b"A", b"A"], 0.3) is None  # the same code twice in a frame: one code
    assert [sight(t, [b"A"], 0.4 + n * 0.1) for n in range(6)] == [None] * 6  # < 1 s later
    assert sight(t, [b"A"], 1.2) == (b"A", ())  # still in view 1 s after: read again
    assert sight(t, [], 1.3) is None  # a frame without it starts the count again
    assert [sight(t, [b"A"], 2.3 + n * 0.1) for n in range(3)] == [None, None, (b"A", ())]


def test_view_tracker_a_code_carried_past_in_fewer_frames_is_never_read():
    t = ViewTracker(confirm_frames=3, dedup_s=1.0)
    frames = [[b"A"], [b"A"], [], [b"B"], [b"B"], [b"A"], [b"A"], []]
    assert [sight(t, f, n * 0.1) for n, f in enumerate(frames)] == [None] * len(frames)


def test_view_tracker_two_codes_are_posted_at_once_as_one_ambiguous_sighting():
    t = ViewTracker(confirm_frames=3, dedup_s=1.0)
    assert sight(t, [b"B", b"A"], 0.0) == (b"A", (b"B",))  # the larger box is the data
    assert sight(t, [b"A", b"B"], 0.1) is None  # the same set within dedup_s
    assert sight(t, [b"A", b"B", b"C"], 0.2) == (b"C", (b"A", b"B"))  # another set
    # Alone now (or the decoder missed B): not read while the crowd is under dedup_s ago.
    assert [sight(t, [b"A"], 0.3 + n * 0.1) for n in range(9)] == [None] * 9
    assert sight(t, [b"A"], 1.2) == (b"A", ())  # 1 s after the crowd, confirmed long since
    assert sight(t, [b"B", b"A"], 1.3) == (b"A", (b"B",))  # 1.3 s after the first: again


def zbar_loads() -> bool:
    try:
        import pyzbar.pyzbar  # noqa: F401
    except ImportError:
        return False
    return True


# pyzbar is tested where the system's libzbar is installed (make installs it where it may);
# elsewhere the fallback test below covers what a station without it gets.
BACKENDS = ["zxing", "opencv"] + (["pyzbar"] if zbar_loads() else [])


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_reads_a_clean_video(tmp_path, backend, caplog):
    codes = demo_urls()[:6]
    video = make_video(tmp_path / "clean.avi", codes, size=SMALL, frames_per_code=3)
    with caplog.at_level(logging.INFO, logger="station.reader"):
        lines = read_all(video, codes, decoder=backend)
    assert texts(lines) == codes
    chosen = [r.getMessage() for r in caplog.records if "event=reader_decoder" in r.getMessage()]
    assert chosen == [f"event=reader_decoder rig=rig-01 reader=cam1 decoder={backend} "
                      f"configured={backend} why=configured"]


@pytest.mark.parametrize("name,hide", [("nosuch", None), ("zxing", "zxingcpp"),
                                       ("pyzbar", "pyzbar.pyzbar")])
def test_an_unknown_or_missing_backend_falls_back_to_opencv(tmp_path, caplog, monkeypatch,
                                                           name, hide):
    if hide:
        monkeypatch.setitem(sys.modules, hide, None)  # its import now raises ImportError
    codes = demo_urls()[:2]
    video = make_video(tmp_path / "fallback.avi", codes, size=SMALL, frames_per_code=3)
    with caplog.at_level(logging.INFO, logger="station.reader"):
        reader = CameraReader(CameraConfig("cam1", str(video), decoder=name, fps=FAST), "rig-01")
        lines = read_lines(reader, lambda got: len(got) >= 2, timeout_s=15)
    assert reader.decoder.name == "opencv"
    assert texts(lines) == codes
    chosen = [r for r in caplog.records if "event=reader_decoder" in r.getMessage()]
    assert len(chosen) == 1
    assert chosen[0].levelno == logging.WARNING
    message = chosen[0].getMessage()
    assert f"decoder=opencv configured={name}" in message
    assert ("unknown decoder" if hide is None else f"{name} unavailable") in message


def test_a_missing_source_is_lost_once_and_recovered_once_when_it_appears(tmp_path, caplog):
    code = demo_urls()[0]
    path = tmp_path / "late.avi"
    cfg = CameraConfig("cam1", str(path), fps=FAST, loop=True, reopen_max_s=0.4)
    reader = CameraReader(cfg, "rig-01")

    def create_after_failures(r: CameraReader) -> bool:
        if r.failures < 3:  # a few failed opens first: each must not be logged again
            return False
        make_video(tmp_path / "staging.avi", [code], size=SMALL, frames_per_code=4)
        os.replace(tmp_path / "staging.avi", path)  # appears whole, as a plugged-in camera
        return True

    def lost() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "event=reader_lost" in r.getMessage()]

    with caplog.at_level(logging.INFO, logger="station.reader"):
        lines = read_lines(reader, lambda got: len(got) >= 1, timeout_s=15,
                           meanwhile=create_after_failures)
    assert texts(lines) == [code]
    events = [r.getMessage().split()[0] for r in caplog.records if "event=reader_" in
              r.getMessage() and "reader_decoder" not in r.getMessage()]
    assert events == ["event=reader_lost", "event=reader_recovered"]
    assert "no such file" in lost()[0].getMessage()
    assert reader.opened == 1 and reader.failures >= 3


def test_a_video_that_ends_without_loop_is_reopened_and_logged_once_per_transition(tmp_path,
                                                                                  caplog):
    code = demo_urls()[0]
    video = make_video(tmp_path / "short.avi", [code], size=SMALL, frames_per_code=2)
    reader = CameraReader(CameraConfig("cam1", str(video), fps=FAST), "rig-01")
    with caplog.at_level(logging.INFO, logger="station.reader"):
        lines = read_lines(reader, lambda got: reader.opened >= 2, timeout_s=15)
    assert texts(lines) == [code]  # played, ended, reopened, played again: within dedup_s
    events = [r.getMessage().split()[0] for r in caplog.records
              if r.getMessage().startswith("event=reader_") and "decoder" not in r.getMessage()]
    assert events[:3] == ["event=reader_open", "event=reader_lost", "event=reader_recovered"]
    assert "end of video" in [r.getMessage() for r in caplog.records
                              if "event=reader_lost" in r.getMessage()][0]


HOSTILE_2KB = ("x" * 64 + "\n") * 31 + "end"  # 2,018 characters: a QR holds at most 2,953 bytes


def test_hostile_payloads_arrive_intact_and_the_reader_keeps_reading(tmp_path):
    after = demo_urls()[0]
    codes: list[str | bytes] = [
        "javascript:alert(1)",
        "https://qr.cqtzsb.example/c/\u202e1000000000QC211005",
        HOSTILE_2KB,
        b"\xff\xfe\x80 not UTF-8",
        after,
    ]
    video = make_video(tmp_path / "hostile.avi", codes, size=(1280, 720), module_px=4,
                       frames_per_code=3, error="l")
    lines = read_all(video, codes)
    expected = [c.encode("utf-8") if isinstance(c, str) else c for c in codes]
    assert [line.data for line in lines] == expected
    # The daemon refuses each of them (and reads the next cylinder normally).
    refusals = []
    for line in lines[:-1]:
        text = decode(line.data, "cam1")
        reading = text if isinstance(text, Reading) else parse_scan(text, HOSTS, False, "cam1")
        refusals.append(reading.refusal)
    assert refusals == ["TAG_FOREIGN", "TAG_FOREIGN", "TAG_UNREADABLE", "TAG_UNREADABLE"]
    assert parse_scan(lines[-1].data.decode(), HOSTS, False).kind == "qr_url"


def test_a_decoder_that_raises_costs_a_frame_not_the_reader(tmp_path, caplog):
    codes = demo_urls()[:3]
    video = make_video(tmp_path / "bug.avi", codes, size=SMALL, frames_per_code=4)
    reader = CameraReader(CameraConfig("cam1", str(video), fps=FAST), "rig-01")
    real, calls = reader.decoder.decode, []

    def flaky(gray: np.ndarray) -> list[Code]:
        calls.append(1)
        if len(calls) <= 5:  # the first code's four frames and one of the second's
            raise RuntimeError("decoder bug")
        return real(gray)

    reader.decoder.decode = flaky  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="station.reader"):
        lines = read_lines(reader, lambda got: bool(got) and got[-1].data == codes[-1].encode(),
                           timeout_s=15)
    assert texts(lines) == codes[1:]
    errors = [r for r in caplog.records if "event=reader_decode_error" in r.getMessage()]
    assert len(errors) == 1 and errors[0].exc_info is not None


def test_an_unexpected_error_in_the_capture_thread_is_a_lost_source(tmp_path, caplog,
                                                                    monkeypatch):
    import drivers.camera as camera

    codes = demo_urls()[:2]
    video = make_video(tmp_path / "oops.avi", codes, size=SMALL, frames_per_code=3)
    real, calls = camera.open_source, []

    def broken_once(source: str, **options):
        calls.append(source)
        if len(calls) == 1:
            raise RuntimeError("unexpected")
        return real(source, **options)

    monkeypatch.setattr(camera, "open_source", broken_once)
    reader = CameraReader(CameraConfig("cam1", str(video), fps=FAST), "rig-01")
    with caplog.at_level(logging.INFO, logger="station.reader"):
        lines = read_lines(reader, lambda got: len(got) >= 2, timeout_s=15)
    assert texts(lines) == codes
    messages = [r.getMessage() for r in caplog.records]
    assert sum("event=reader_error " in m for m in messages) == 1
    assert [m.split()[0] for m in messages if m.startswith(("event=reader_lost",
                                                            "event=reader_recovered"))] == [
        "event=reader_lost", "event=reader_recovered"]


def test_roi_limits_decoding_to_its_region(tmp_path):
    code = demo_urls()[0]
    image = np.full((480, 640), 255, np.uint8)
    from simulators.camera import render_qr

    qr = render_qr(code, 4)
    image[40:40 + qr.shape[0], 360:360 + qr.shape[1]] = qr  # the code sits in the right half
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), image)
    left = CameraReader(CameraConfig("cam1", str(path), fps=FAST, roi=(0, 0, 320, 480)), "rig-01")
    assert read_lines(left, lambda got: False, timeout_s=0.5) == []
    assert left.frames >= 3  # it did look, and found nothing
    right = CameraReader(CameraConfig("cam1", str(path), fps=FAST, roi=(320, 0, 320, 480)),
                         "rig-01")
    assert texts(read_lines(right, lambda got: len(got) >= 1, timeout_s=10)) == [code]


def test_fps_limits_the_frames_decoded(tmp_path):
    image = np.full((120, 160, 3), 200, np.uint8)
    path = tmp_path / "blank.png"
    cv2.imwrite(str(path), image)
    reader = CameraReader(CameraConfig("cam1", str(path), fps=10.0), "rig-01")

    async def run_for(seconds: float) -> float:
        loop = asyncio.get_running_loop()

        async def consume() -> None:
            async for _line in reader.lines():
                pass

        task = asyncio.create_task(consume())
        start = loop.time()
        await asyncio.wait({task}, timeout=seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return loop.time() - start

    elapsed = asyncio.run(run_for(1.0))
    reader.thread.join(timeout=5)
    assert reader.frames <= 10 * elapsed + 2
    assert reader.frames >= 1


def test_take_photo_is_a_jpeg_of_the_scene(tmp_path):
    code = demo_urls()[0]
    video = make_video(tmp_path / "photo.avi", [code], size=SMALL, frames_per_code=2)
    reader = CameraReader(CameraConfig("cam1", str(video)), "rig-01")
    jpeg = reader.take_photo()
    assert jpeg[:3] == b"\xff\xd8\xff"
    frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert frame.shape == (480, 640, 3)
    found = reader.decoder.decode(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    assert [c.data for c in found] == [code.encode()]


@pytest.mark.parametrize("bad", [dict(fps=0), dict(roi=(0, 0, 0, 10)), dict(source="")])
def test_config_refuses_nonsense(bad):
    with pytest.raises(ValueError):
        CameraConfig(**{"id": "cam1", "source": "0", **bad})
