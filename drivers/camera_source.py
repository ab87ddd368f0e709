"""Where a camera's frames come from: a live device or stream, a video file, or a still image.

Sources are used from the camera's capture thread only; their reads block. OpenCV's failures
are translated into ReaderError here.
"""

from __future__ import annotations

import abc
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from station.errors import ReaderError

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}
STREAM_TIMEOUT_MS = 5000  # an RTSP open or read that takes longer is a lost camera


def safe_source(source: str) -> str:
    """The source for a log line: a stream URL's user-info (its password) removed."""
    parts = urlsplit(source)
    if parts.scheme in STREAM_SCHEMES and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
    return source


def is_live(source: str) -> bool:
    """A device index, a /dev path or a stream URL (as opposed to a file replayed at fps)."""
    return (source.isdigit() or source.startswith("/dev/")
            or urlsplit(source).scheme in STREAM_SCHEMES)


class FrameSource(abc.ABC):
    """Hands out frames; `next_frame` blocks until a frame is due (`due`, time.monotonic())."""

    @abc.abstractmethod
    def next_frame(self, due: float, stop: threading.Event) -> np.ndarray | None:
        """A BGR or grey frame; None if `stop` was set while waiting; ReaderError when done."""

    @abc.abstractmethod
    def release(self) -> None:
        """Let go of the device or file."""


def _wait(due: float, stop: threading.Event) -> bool:
    """Wait until `due`; False when stopped meanwhile."""
    delay = due - time.monotonic()
    return not (stop.wait(delay) if delay > 0 else stop.is_set())


class LiveSource(FrameSource):
    """A camera or stream: every frame is grabbed (the driver's buffer stays fresh), and only
    the frames that are due are retrieved (converted) and handed out."""

    def __init__(self, cap: cv2.VideoCapture, name: str):
        self.cap, self.name = cap, name

    def next_frame(self, due: float, stop: threading.Event) -> np.ndarray | None:
        try:
            while not stop.is_set():
                if not self.cap.grab():
                    raise ReaderError(f"{self.name}: no frame (device gone or stream ended)")
                if time.monotonic() >= due:
                    ok, frame = self.cap.retrieve()
                    if not ok or frame is None:
                        raise ReaderError(f"{self.name}: frame could not be retrieved")
                    return frame
        except cv2.error as err:
            raise ReaderError(f"{self.name}: {err}") from err
        return None

    def release(self) -> None:
        self.cap.release()


class FileSource(FrameSource):
    """A video file played one frame per period, replayed from the start when `loop`."""

    def __init__(self, cap: cv2.VideoCapture, name: str, loop: bool):
        self.cap, self.name, self.loop = cap, name, loop

    def next_frame(self, due: float, stop: threading.Event) -> np.ndarray | None:
        if not _wait(due, stop):
            return None
        try:
            ok, frame = self.cap.read()
            if not ok and self.loop:
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = self.cap.read()
        except cv2.error as err:
            raise ReaderError(f"{self.name}: {err}") from err
        if not ok or frame is None:
            raise ReaderError(f"{self.name}: end of video")
        return frame

    def release(self) -> None:
        self.cap.release()


class StillSource(FrameSource):
    """An image file: a camera looking at one unchanging scene, one frame per period."""

    def __init__(self, image: np.ndarray):
        self.image = image

    def next_frame(self, due: float, stop: threading.Event) -> np.ndarray | None:
        return self.image if _wait(due, stop) else None

    def release(self) -> None:
        self.image = np.zeros((1, 1), np.uint8)  # nothing held open; drop the picture


def _capture(source: str) -> cv2.VideoCapture:
    if source.isdigit():
        cap = cv2.VideoCapture(int(source))
    elif source.startswith("/dev/"):
        cap = cv2.VideoCapture(source, cv2.CAP_V4L2)
    elif is_live(source):
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS])
    else:
        cap = cv2.VideoCapture(source)
    if is_live(source):
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # where the backend allows: the newest frame
    return cap


def open_source(source: str, *, loop: bool = False) -> FrameSource:
    """Open a camera source; ReaderError (naming it, without credentials) when it cannot."""
    name = safe_source(source)
    if not is_live(source):
        if not os.path.isfile(source):
            raise ReaderError(f"{name}: no such file")
        if Path(source).suffix.lower() in IMAGE_SUFFIXES:
            image = cv2.imread(source, cv2.IMREAD_COLOR)
            if image is None:
                raise ReaderError(f"{name}: not a readable image")
            return StillSource(image)
    try:
        cap = _capture(source)
    except cv2.error as err:
        raise ReaderError(f"{name}: {err}") from err
    if not cap.isOpened():
        cap.release()
        raise ReaderError(f"{name}: cannot open")
    return LiveSource(cap, name) if is_live(source) else FileSource(cap, name, loop)
