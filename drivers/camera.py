"""Camera QR reader: frames from a V4L2 camera, RTSP stream or file, decoded into readings.

One background thread per camera opens the source, paces frames to `fps`, crops the region of
interest, decodes QR codes (`qr_decoders.Cascade`) and turns them into sightings
(`ViewTracker`: one code confirmed over consecutive frames, or several codes as one ambiguous
line); each crosses to the asyncio loop with `loop.call_soon_threadsafe` into an asyncio.Queue
that `lines()` drains. Decoding runs in that
thread too (1–35 ms per frame, in native code that releases the GIL), so the loop that
heartbeats the rigs never waits on a frame. A source that cannot be opened or stops delivering
frames is reopened with exponential backoff, logged once as lost and once as recovered.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from station.backoff import Backoff
from station.errors import ReaderError
from station.logfmt import kv
from station.transitions import Transitions

from .camera_source import FrameSource, open_source, safe_source
from .qr_decoders import DEFAULT, Box, Cascade, Code, QrDecoder, load_decoder
from .reader import Line, TagReader

log = logging.getLogger("station.reader")

BACKOFF_START_S = 0.1
PHOTO_MAX_AGE_S = 2.0  # take_photo uses the running capture's frame when it is this recent
JPEG_QUALITY = 90


@dataclass(frozen=True)
class CameraConfig:
    """One camera at a rig. `roi` is (x, y, width, height) in pixels of the full frame; None
    (the whole frame) is for tests and tools only: the station's configuration requires one."""

    id: str
    source: str  # "0" (device index), /dev/video*, rtsp://…, or a video or image file
    decoder: str = DEFAULT  # zxing | pyzbar | opencv
    fps: float = 10.0  # frames decoded per second, at most
    roi: tuple[int, int, int, int] | None = None
    dedup_s: float = 3.0  # a code still in view is posted again at most this often
    confirm_frames: int = 3  # consecutive decoded frames showing one code before it is posted
    max_frame_age_s: float = 1.0  # live source: a frame older than this is never decoded
    silent_warn_s: float = 600.0  # warn once when frames arrive but nothing decodes (0: never)
    reopen_max_s: float = 5.0
    loop: bool = False  # replay a video file from the start when it ends (for testers)
    alternate: bool | None = None  # the cascade: one enhancement per empty frame (None: per
    # backend, see qr_decoders.ALTERNATE_BY_DEFAULT)

    def __post_init__(self) -> None:
        if not self.source:
            raise ValueError("source: must not be empty")
        if not 0 < self.fps <= 120:
            raise ValueError("fps: must be above 0 and at most 120")
        if self.dedup_s < 0 or self.reopen_max_s <= 0:
            raise ValueError("dedup_s must be at least 0 and reopen_max_s above 0")
        if not 1 <= self.confirm_frames <= 100:
            raise ValueError("confirm_frames: must be 1 to 100")
        if self.max_frame_age_s <= 0 or self.silent_warn_s < 0:
            raise ValueError("max_frame_age_s must be above 0 and silent_warn_s at least 0")
        if self.roi is not None and (len(self.roi) != 4 or min(self.roi[:2]) < 0
                                     or min(self.roi[2:]) <= 0):
            raise ValueError("roi: must be (x, y, width, height) with x, y ≥ 0 and sizes > 0")


@dataclass(frozen=True)
class Sighting:
    """What the camera posts: a code (`data`), the other distinct codes in view with it
    (`others`: the daemon refuses it as ambiguous) and its box (x, y, w, h) in the frame."""

    data: bytes
    others: tuple[bytes, ...]
    box: Box


class ViewTracker:
    """Which decoded frames become readings (pure: frames and times in, sightings out).

    - One distinct code in the frame: posted once it has been the only code in
      `confirm_frames` consecutive decoded frames (a frame without it, or with another code,
      starts the count again), so a code carried past the camera for fewer frames is never
      posted. While it stays in view it is posted again at most once every `dedup_s`: the
      daemon needs sightings to keep arriving while the cylinder stands.
    - Two or more distinct codes: posted at once (no confirmation: a refusal is the safe way to
      be wrong), with the largest code as `data` and the rest in `others`; at most once every
      `dedup_s` for the same set of codes. A code seen with others is not posted alone until
      `dedup_s` after that frame: a decoder that finds one of two codes in some frames (OpenCV
      did in 3 of 10 two-code frames) must not turn a crowded view into a clean reading.
    """

    def __init__(self, confirm_frames: int, dedup_s: float):
        self.confirm_frames, self.dedup_s = confirm_frames, dedup_s
        self._run: tuple[bytes | None, int] = (None, 0)  # the lone code, frames in a row
        self._posted: dict[frozenset[bytes], float] = {}  # set of codes → last posted at
        self._crowded: dict[bytes, float] = {}  # code → last seen with other codes at

    def frame(self, codes: list[Code], now: float) -> Sighting | None:
        """The sighting this decoded frame makes (None: nothing to post); `now` in seconds."""
        distinct: dict[bytes, Code] = {}
        for code in codes:
            if code.data not in distinct or _area(code.box) > _area(distinct[code.data].box):
                distinct[code.data] = code
        if len(distinct) != 1:
            self._run = (None, 0)
            if not distinct:
                return None
            self._crowded.update((data, now) for data in distinct)
            main = max(distinct.values(), key=lambda c: (_area(c.box), c.data))
            others = tuple(sorted(d for d in distinct if d != main.data))
            return self._once(Sighting(main.data, others, main.box), now)
        (code,) = distinct.values()
        last, count = self._run
        self._run = (code.data, count + 1 if last == code.data else 1)
        if self._run[1] < self.confirm_frames:
            return None
        crowded_at = self._crowded.get(code.data)
        if crowded_at is not None and now - crowded_at < self.dedup_s:
            return None
        return self._once(Sighting(code.data, (), code.box), now)

    def _once(self, sighting: Sighting, now: float) -> Sighting | None:
        key = frozenset((sighting.data, *sighting.others))
        self._posted = {k: t for k, t in self._posted.items() if now - t < self.dedup_s}
        self._crowded = {k: t for k, t in self._crowded.items() if now - t < self.dedup_s}
        if key in self._posted:
            return None
        self._posted[key] = now
        return sighting


def _area(box: Box) -> int:
    return box[2] * box[3]


def crop(frame: np.ndarray, roi: tuple[int, int, int, int] | None) -> np.ndarray:
    """The region of interest of a frame (clipped to it; empty when wholly outside)."""
    if roi is None:
        return frame
    x, y, w, h = roi
    return frame[y:y + h, x:x + w]


def to_frame(box: Box, roi: tuple[int, int, int, int] | None) -> Box:
    """A box found in the region of interest, in full-frame pixels (the ROI's offset added)."""
    if roi is None:
        return box
    return (box[0] + roi[0], box[1] + roi[1], box[2], box[3])


class CameraReader(TagReader):
    """A QR-reading camera at a rig. `lines()` runs until cancelled; one call at a time.

    The capture thread is not a daemon thread: when `lines()` ends it is told to stop, and the
    interpreter joins it before exit (a thread killed inside OpenCV at exit aborted the process);
    `close()` stops and joins it explicitly.
    """

    kind = "camera"

    def __init__(self, cfg: CameraConfig, rig_id: str):
        self.cfg, self.rig_id, self.reader_id = cfg, rig_id, cfg.id
        self._avail = Transitions(log, lost="reader_lost", recovered="reader_recovered",
                                  first="reader_open", rig=rig_id, reader=cfg.id,
                                  source=safe_source(cfg.source))
        self.opened = 0  # sources opened that delivered frames, for health pages and tests
        self.frames = 0  # frames decoded
        self.failures = 0  # opens that failed and sources that stopped delivering
        self.last_decoded_at: float | None = None  # time.monotonic() of the last frame with a code
        self.silent = False  # warned that nothing decodes; cleared by the next code
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._tracker = ViewTracker(cfg.confirm_frames, cfg.dedup_s)
        self._watch_from: float | None = None  # first frame since the source (re)opened
        self._last: tuple[float, np.ndarray] | None = None
        self._warned: set[str] = set()
        self.decoder = Cascade(self._load_decoder(), cfg.alternate)

    def _load_decoder(self) -> QrDecoder:
        decoder, why = load_decoder(self.cfg.decoder)
        level = logging.INFO if decoder.name == self.cfg.decoder else logging.WARNING
        log.log(level, kv("reader_decoder", rig=self.rig_id, reader=self.reader_id,
                          decoder=decoder.name, configured=self.cfg.decoder, why=why))
        return decoder

    async def lines(self) -> AsyncIterator[Line]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Line] = asyncio.Queue()
        stop = self._stop = threading.Event()

        def post(line: Line) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, line)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                stop.set()

        self.thread = threading.Thread(target=self._run, args=(post, stop), daemon=False,
                                       name=f"camera-{self.reader_id}")
        self.thread.start()
        try:
            while True:
                yield await queue.get()
        finally:
            stop.set()  # not joined here: a permit withdrawal at shutdown must not wait on it

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the capture thread and wait up to `timeout` s for it; True once it has ended."""
        self._stop.set()
        if self.thread is None:
            return True
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def _run(self, post: Callable[[Line], None], stop: threading.Event) -> None:
        """The capture thread: open, read until the source fails, back off, reopen."""
        backoff = Backoff(start_s=BACKOFF_START_S, cap_s=self.cfg.reopen_max_s)
        while not stop.is_set():
            try:
                delivered, why = self._cycle(post, stop)
            except Exception as err:  # a bug must not end the thread: count it as a lost source
                log.warning(kv("reader_error", rig=self.rig_id, reader=self.reader_id,
                               error=f"{type(err).__name__}: {err}"), exc_info=True)
                delivered, why = 0, f"{type(err).__name__}: {err}"
            if stop.is_set():
                break
            if delivered:
                backoff.reset()
            self.failures += 1
            self._avail.down(error=why)
            stop.wait(backoff.next())

    def _cycle(self, post: Callable[[Line], None], stop: threading.Event) -> tuple[int, str]:
        """Open the source once and read it until it fails: (frames delivered, why it ended)."""
        try:
            source = open_source(self.cfg.source, loop=self.cfg.loop,
                                 max_age_s=self.cfg.max_frame_age_s)
        except ReaderError as err:
            return 0, str(err)
        try:
            return self._pump(source, post, stop)
        finally:
            source.release()

    def _pump(self, source: FrameSource, post: Callable[[Line], None],
              stop: threading.Event) -> tuple[int, str]:
        """Decode frames at most `fps` a second; (frames delivered, why the source stopped)."""
        period, due, delivered = 1.0 / self.cfg.fps, time.monotonic(), 0
        while not stop.is_set():
            try:
                frame = source.next_frame(due, stop)
            except ReaderError as err:
                return delivered, str(err)
            if frame is None:
                continue  # stopped while waiting
            now = time.monotonic()
            if not delivered:
                self.opened += 1
                self._watch_from = now  # a lost source is reader_lost, not a silent camera
                self._avail.up()
            delivered += 1
            due = max(due + period, now)
            self._last = (now, frame)
            codes = self._decode(frame)
            self._health(bool(codes), now)
            seen = self._tracker.frame(codes, now)
            if seen is not None:
                post(Line(self.reader_id, seen.data, now, others=seen.others,
                          box=to_frame(seen.box, self.cfg.roi)))
        return delivered, "stopped"

    def _decode(self, frame: np.ndarray) -> list[Code]:
        """The codes in the frame's region of interest (boxes in ROI pixels); never raises."""
        self.frames += 1
        region = crop(frame, self.cfg.roi)
        if region.size == 0:
            self._warn_once("roi_outside_frame", f"roi {self.cfg.roi} outside "
                            f"{frame.shape[1]}x{frame.shape[0]} frame: nothing is decoded")
            return []
        try:
            gray = region if region.ndim == 2 else cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
            return self.decoder.decode(gray)
        except Exception as err:  # a decoder bug must cost one frame, never the reader
            if "decode_error" not in self._warned:  # logged once, with its traceback
                self._warned.add("decode_error")
                log.warning(kv("reader_decode_error", rig=self.rig_id, reader=self.reader_id,
                               decoder=self.decoder.name, error=f"{type(err).__name__}: {err}"),
                            exc_info=True)
            return []

    def _health(self, decoded: bool, now: float) -> None:
        """Warn once when frames arrive but nothing has decoded for `silent_warn_s`; say once
        when codes decode again."""
        if decoded:
            self.last_decoded_at = now
            if self.silent:
                self.silent = False
                log.info(kv("reader_decoding", rig=self.rig_id, reader=self.reader_id,
                            decoder=self.decoder.name))
            return
        opened = self._watch_from if self._watch_from is not None else now
        since = opened if self.last_decoded_at is None else max(self.last_decoded_at, opened)
        limit = self.cfg.silent_warn_s
        if limit and not self.silent and now - since >= limit:
            self.silent = True
            log.warning(kv("reader_silent", rig=self.rig_id, reader=self.reader_id,
                           decoder=self.decoder.name, silent_min=round((now - since) / 60, 1),
                           frames=self.frames,
                           why="frames arrive but no code decoded: lens, light, roi or tags?"))

    def _warn_once(self, what: str, detail: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning(kv("reader_" + what, rig=self.rig_id, reader=self.reader_id,
                           error=detail))

    @property
    def connected(self) -> bool | None:
        """Whether the source delivers frames; None: never tried."""
        return self._avail.state

    def take_photo(self) -> bytes:
        """A JPEG of the current frame (for tag binding); blocking: call it off the loop."""
        last = self._last
        if last is not None and time.monotonic() - last[0] <= PHOTO_MAX_AGE_S:
            frame = last[1]
        else:
            frame = self._grab_one()
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ReaderError(f"{self.reader_id}: cannot encode the photo as JPEG")
        return jpeg.tobytes()

    def _grab_one(self) -> np.ndarray:
        source = open_source(self.cfg.source, loop=False)
        try:
            frame = source.next_frame(time.monotonic(), threading.Event())  # waits ≤ the age
        finally:
            source.release()
        if frame is None:
            raise ReaderError(f"{self.reader_id}: no frame for the photo")
        return frame


def camera_reader(cfg: Any, rig_id: str) -> CameraReader:
    """A CameraReader from a configured reader (station.config.ReaderConfig of kind camera)."""
    return CameraReader(CameraConfig(
        id=cfg.id, source=cfg.source, decoder=cfg.decoder, fps=cfg.fps, roi=cfg.roi,
        dedup_s=cfg.dedup_s, confirm_frames=cfg.confirm_frames,
        max_frame_age_s=cfg.max_frame_age_s, silent_warn_s=cfg.silent_warn_min * 60,
        loop=_is_file(cfg.source)), rig_id)


def _is_file(source: str) -> bool:
    """A recording replays in a loop (testers); a device or a stream does not need to."""
    return not source.isdigit() and not source.startswith(("/dev/", "rtsp://", "http"))
