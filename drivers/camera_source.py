"""Where a camera's frames come from: a live device or stream, a video file, or a still image.

Sources are used from the camera's capture thread only; their reads block. OpenCV's failures
are translated into ReaderError here.
"""

from __future__ import annotations

import abc
import logging
import os
import threading
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from station.errors import ReaderError
from station.logfmt import kv

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}
STREAM_TIMEOUT_MS = 5000  # an RTSP open or read that takes longer is a lost camera
STOP_POLL_S = 0.05  # how often a wait for a frame looks at the stop flag
log = logging.getLogger("station.reader")


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


class Capture(Protocol):
    """What LatestFrameSource reads: cv2.VideoCapture, or a fake in tests."""

    def grab(self) -> bool: ...

    def retrieve(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


class LatestFrameSource(FrameSource):
    """A live camera or stream, read by a grabber thread that grabs every frame as it arrives
    (so the device's and the network's buffers never hold old frames) and retrieves (converts)
    only the frame grabbed after the reader asked for one: the newest, however slow the decoder,
    at the cost of converting only the frames decoded. `next_frame` hands out a frame not handed
    out before and at most `max_age_s` old (counted from its grab); when none comes within
    `max_age_s` (the first frame: within STREAM_TIMEOUT_MS), the source is lost (ReaderError)
    and the reader reopens it. `release` stops and joins the grabber before letting go of the
    capture (releasing it under a read in progress is how a process crashes)."""

    def __init__(self, cap: Capture, name: str, max_age_s: float):
        self.cap, self.name, self.max_age_s = cap, name, max_age_s
        self.grabbed = 0  # frames grabbed, for tests and health pages
        self._cond = threading.Condition()
        self._wanted = False  # the reader waits for a frame: retrieve the next one grabbed
        self._frame: np.ndarray | None = None
        self._at = 0.0  # time.monotonic() when the frame on hand was grabbed
        self._seq = self._given = 0  # frames retrieved, and the number of the last handed out
        self._error: ReaderError | None = None
        self._stop = threading.Event()
        self._grabber = threading.Thread(target=self._grab, daemon=False, name=f"grab-{name}")
        self._grabber.start()

    def _grab(self) -> None:
        while not self._stop.is_set():
            frame, error = self._grab_one()
            with self._cond:
                if error is not None:
                    self._error = error
                elif frame is not None:
                    self._frame, self._seq, self._wanted = frame, self._seq + 1, False
                self._cond.notify_all()
            if error is not None:
                return

    def _grab_one(self) -> tuple[np.ndarray | None, ReaderError | None]:
        """Grab a frame; retrieve it when wanted: (frame or None, error or None)."""
        try:
            if not self.cap.grab():
                return None, ReaderError(f"{self.name}: no frame (device gone or stream ended)")
            at = time.monotonic()
            self.grabbed += 1
            with self._cond:
                wanted = self._wanted
            if not wanted:
                return None, None
            ok, frame = self.cap.retrieve()
        except cv2.error as err:
            return None, ReaderError(f"{self.name}: {err}")
        if not ok or frame is None:
            return None, ReaderError(f"{self.name}: frame could not be retrieved")
        self._at = at
        return frame, None

    def next_frame(self, due: float, stop: threading.Event) -> np.ndarray | None:
        if not _wait(due, stop):
            return None
        first = self._given == 0
        deadline = time.monotonic() + (STREAM_TIMEOUT_MS / 1000 if first else self.max_age_s)
        with self._cond:
            self._wanted = True
            while not stop.is_set():
                now = time.monotonic()
                if self._seq > self._given and now - self._at <= self.max_age_s:
                    self._given = self._seq
                    return self._frame
                if self._error is not None:
                    raise self._error
                if now >= deadline:
                    raise ReaderError(f"{self.name}: no frame newer than {self.max_age_s:g} s")
                self._cond.wait(min(deadline - now, STOP_POLL_S))
        return None

    def release(self) -> None:
        self._stop.set()
        self._grabber.join(STREAM_TIMEOUT_MS / 1000 + 1)
        if self._grabber.is_alive():  # a read that outlived its own timeout: leave it be
            log.warning(kv("reader_grabber_stuck", source=self.name,
                           why="a read did not return; the capture is left open"))
            return
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


def open_source(source: str, *, loop: bool = False, max_age_s: float = 1.0) -> FrameSource:
    """Open a camera source; ReaderError (naming it, without credentials) when it cannot.

    A file replays at the reader's pace (`loop`: from the start when it ends); a live source
    hands out only fresh frames, none older than `max_age_s` seconds (LatestFrameSource).
    """
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
    if is_live(source):
        return LatestFrameSource(cap, name, max_age_s)
    return FileSource(cap, name, loop)
