"""The camera reader on real tags: light-on-dark codes, two codes in view, a code carried past,
exact bytes, Micro QR, and the silent-camera health line; through the real reader and decoders."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import segno
from test_camera import BACKENDS, FAST, read_lines

from drivers.camera import CameraConfig, CameraReader
from drivers.qr_decoders import Cascade, load_decoder
from simulators.camera import (
    LOOKS,
    Shot,
    carried_past,
    render_qr,
    scene,
    two_codes_in_view,
    write_video,
)
from simulators.dataset import qr_url

URL_A = qr_url("500112CQ0000000001")
URL_B = qr_url("500112CQ0000000002")
ROI = (40, 30, 560, 420)  # inside a 640×480 frame, offset from its corner


def reader_for(path, decoder: str = "zxing", **cfg: object) -> CameraReader:
    return CameraReader(CameraConfig("cam1", str(path), decoder=decoder, fps=FAST, **cfg),
                        "rig-01")


def frames_in(shots: list[Shot]) -> int:
    return sum(shot.frames for shot in shots)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_light_on_dark_code_is_read_by_each_decoder(tmp_path, backend):
    video = write_video(tmp_path / "inverted.avi", [Shot((URL_A,), 4, LOOKS["inverted"])])
    lines = read_lines(reader_for(video, backend), lambda got: bool(got), timeout_s=10)
    assert [line.data for line in lines[:1]] == [URL_A.encode()]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_code_with_a_nul_inside_arrives_whole_from_each_decoder(tmp_path, backend):
    payload = URL_A.encode() + b"\x00" + b"evil"
    video = write_video(tmp_path / "nul.avi", [Shot((payload,), 4)])
    lines = read_lines(reader_for(video, backend), lambda got: bool(got), timeout_s=10)
    assert [line.data for line in lines[:1]] == [payload]  # never cut at the NUL


@pytest.mark.parametrize("backend", BACKENDS)
def test_micro_qr_is_ignored_by_each_decoder(backend):
    micro = segno.make("500112CQ01", micro=True)
    assert micro.is_micro
    dark = np.array([list(row) for row in micro.matrix], dtype=bool)
    code = np.kron(np.pad(np.where(dark, 0, 255).astype(np.uint8), 4, constant_values=255),
                   np.ones((8, 8), np.uint8))
    image = np.full((480, 640), 255, np.uint8)
    image[100:100 + code.shape[0], 100:100 + code.shape[1]] = code
    full = render_qr(URL_A, 4)
    image[60:60 + full.shape[0], 300:300 + full.shape[1]] = full
    decoder, _why = load_decoder(backend)
    assert [c.data for c in Cascade(decoder).decode(image)] == [URL_A.encode()]


@pytest.mark.parametrize("look", ["etched", "dot-peen"])
def test_metal_tags_are_read_by_zxing_through_the_cascade(look):
    rng = np.random.default_rng(7)
    cascade = Cascade(load_decoder("zxing")[0])
    read = 0
    for n in range(4):
        url = qr_url(f"500112CQ{n:010d}")
        gray = cv2.cvtColor(scene(url, LOOKS[look], size=(640, 480), rng=rng),
                            cv2.COLOR_BGR2GRAY)
        read += [c.data for c in cascade.decode(gray)] == [url.encode()]
    assert read == 4


def test_two_codes_in_view_are_one_line_naming_the_other(tmp_path):
    shots = two_codes_in_view(URL_A, URL_B, frames=6)
    video = write_video(tmp_path / "two.avi", shots)
    reader = reader_for(video, roi=ROI)
    lines = read_lines(reader, lambda got: reader.frames >= frames_in(shots), timeout_s=10)
    assert len(lines) == 1  # one ambiguous line for the set, not one per code or per frame
    (line,) = lines
    assert {line.data, *line.others} == {URL_A.encode(), URL_B.encode()}
    assert len(line.others) == 1 and line.box is not None


def test_the_box_is_in_full_frame_pixels(tmp_path):
    image = np.full((480, 640), 255, np.uint8)
    code = render_qr(URL_A, 4)  # 4 px a module, quiet zone included
    image[200:200 + code.shape[0], 300:300 + code.shape[1]] = code
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), image)
    reader = reader_for(path, roi=ROI)
    (line, *_rest) = read_lines(reader, lambda got: bool(got), timeout_s=10)
    quiet = 4 * 4  # the box is the code's symbol, without its quiet zone
    expected = (300 + quiet, 200 + quiet, code.shape[1] - 2 * quiet, code.shape[0] - 2 * quiet)
    assert line.others == ()
    assert all(abs(a - b) <= 2 for a, b in zip(line.box, expected, strict=True)), line.box


def test_a_code_carried_past_in_fewer_frames_than_confirm_frames_is_not_read(tmp_path):
    shots = carried_past(URL_A, frames=2) + carried_past(URL_B, frames=4)
    video = write_video(tmp_path / "past.avi", shots)
    reader = reader_for(video, confirm_frames=3)
    lines = read_lines(reader, lambda got: reader.frames >= frames_in(shots), timeout_s=10)
    # A: two frames, never read; B, carried past in four frames, shows it was readable.
    assert [line.data for line in lines] == [URL_B.encode()]


def test_a_camera_that_decodes_nothing_warns_once_and_says_when_it_reads_again(tmp_path,
                                                                               caplog):
    shots = [Shot((), 25), Shot((URL_A,), 4)]  # 0.5 s of nothing at 50 frames/s, then a code
    video = write_video(tmp_path / "silent.avi", shots)
    reader = reader_for(video, silent_warn_s=0.3, loop=True)
    with caplog.at_level(logging.INFO, logger="station.reader"):
        lines = read_lines(reader, lambda got: bool(got), timeout_s=10)
    assert [line.data for line in lines] == [URL_A.encode()]
    health = [r for r in caplog.records if r.getMessage().startswith(
        ("event=reader_silent", "event=reader_decoding"))]
    assert [r.getMessage().split()[0] for r in health] == ["event=reader_silent",
                                                          "event=reader_decoding"]
    assert health[0].levelno == logging.WARNING and reader.last_decoded_at is not None
