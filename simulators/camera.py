"""Camera simulator: QR codes (made by segno) in cluttered scenes and on metal, as video or stream.

`render_qr` draws one code; `scene` places one code on a busy background the way a camera at
the scale sees it, `scene_codes` several (two tags in view); a `Look` says how the code appears
(blurred, rotated, under glare, small, low in contrast, noisy, light-on-dark, etched into metal,
dot-peened, in low light), and `LOOKS` names the bench's conditions. Videos for the camera reader
and the daemon's tests are described as a list of `Shot`s (codes in view, for how many frames,
in which look, standing or carried past) and written by `write_video`; `two_codes_in_view` and
`carried_past` build the scenarios. `make_video` (one code after another) and `run_camera`
(`station-sim camera`) write the simple case. `MjpegStream` serves frames as a network camera
does (MJPEG over HTTP), for tests of live sources.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from station.today import station_today

from .camera_stream import MjpegStream  # noqa: F401  (simulators.camera.MjpegStream)

FOURCC = {".avi": "MJPG", ".mp4": "mp4v"}
MJPEG_QUALITY = 95


@dataclass(frozen=True)
class Look:
    """How a code appears in the frame. `module_px` is (low, high) to draw it per frame."""

    module_px: float | tuple[float, float] = 6.0
    blur: float = 0.0  # Gaussian sigma, pixels
    rotate_deg: float = 0.0  # magnitude; the sign is drawn per frame
    glare: float = 0.0  # 0..1: a specular highlight washing out part of the code
    scale: float = 1.0  # the code's size relative to module_px
    noise: float = 0.0  # Gaussian sensor noise, grey levels
    contrast: float = 1.0  # 1: black on white; 0.45: dark grey on light grey
    invert: bool = False  # light code on a dark plate (laser-etched steel), quiet zone dark too
    dots: bool = False  # dot-peened: each dark module a round dot, gaps between them
    metal: bool = False  # the tag's plate is brushed metal: streaked texture over the code
    gain: float = 1.0  # the whole frame's brightness (0.25: a dim corner of the shop)


LOOKS = {
    "clean": Look(),
    "degraded": Look(blur=1.5, rotate_deg=15.0, glare=0.6),
    "hard": Look(module_px=(3.5, 4.5), blur=1.0, rotate_deg=20.0, contrast=0.45, noise=3.0),
    "inverted": Look(invert=True, rotate_deg=10.0),
    "low-contrast": Look(contrast=0.12, blur=1.0, noise=3.0, rotate_deg=10.0),
    "etched": Look(module_px=(4.5, 6.0), invert=True, metal=True, contrast=0.3, blur=1.2,
                   noise=4.0, rotate_deg=10.0),
    "dot-peen": Look(module_px=(5.0, 7.0), dots=True, metal=True, contrast=0.6, blur=0.5,
                     noise=3.0, rotate_deg=8.0),
    "glare": Look(glare=1.3, blur=1.0, rotate_deg=10.0),
    "low-light": Look(module_px=(4.5, 6.0), gain=0.15, noise=5.0, blur=1.0),
}


def qr_modules(text: str | bytes, border: int = 4, *, error: str = "m") -> np.ndarray:
    """A full QR code's modules (True: dark) with a quiet zone of `border` modules; str is
    encoded as UTF-8, bytes as given (a NUL or non-UTF-8 byte included)."""
    try:
        import segno  # a dev/test dependency: `pip install -e '.[dev]'`
    except ImportError as err:
        raise ImportError("the camera simulator needs segno: pip install -e '.[dev]'") from err
    options = {"encoding": "utf-8"} if isinstance(text, str) else {}
    code = segno.make(text, error=error, micro=False, **options)
    dark = np.array([list(row) for row in code.matrix], dtype=bool)
    return np.pad(dark, border, constant_values=False)


def render_qr(text: str | bytes, module_px: float = 6, border: int = 4, *,
              error: str = "m", dots: bool = False) -> np.ndarray:
    """A QR code as a grey image (0 dark, 255 light), `module_px` pixels a module; `dots`
    draws each dark module as a round dot (dot-peened marking)."""
    dark = qr_modules(text, border, error=error)
    if dots:
        side = round(dark.shape[0] * module_px)
        img = np.full((side, side), 255, np.uint8)
        radius = max(1, round(module_px * 0.42))
        for row, col in zip(*np.nonzero(dark), strict=True):
            centre = (int((col + 0.5) * module_px), int((row + 0.5) * module_px))
            cv2.circle(img, centre, radius, 0, -1, lineType=cv2.LINE_AA)
        return img
    modules = np.where(dark, 0, 255).astype(np.uint8)
    if float(module_px).is_integer():
        return np.kron(modules, np.ones((int(module_px), int(module_px)), np.uint8))
    side = round(modules.shape[0] * module_px)
    return cv2.resize(modules, (side, side), interpolation=cv2.INTER_LINEAR)


def clutter(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A busy BGR background: a lit gradient, boxes, pipes, circles and stencilled text."""
    width, height = size
    ramp = np.linspace(70, 190, width, dtype=np.float32)
    frame = np.repeat(np.tile(ramp, (height, 1))[:, :, None], 3, axis=2)
    frame = (frame * rng.uniform(0.8, 1.1, 3)).clip(0, 255).astype(np.uint8)
    for _ in range(24):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        color = tuple(int(c) for c in rng.integers(20, 235, 3))
        shape = rng.integers(0, 4)
        if shape == 0:
            w, h = (int(v) for v in rng.integers(20, max(21, width // 4), 2))
            cv2.rectangle(frame, (x, y), (x + w, y + h), color, -1)
        elif shape == 1:
            cv2.circle(frame, (x, y), int(rng.integers(10, height // 5)), color, 3)
        elif shape == 2:
            end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(frame, (x, y), end, color, int(rng.integers(2, 12)))
        else:
            cv2.putText(frame, "LPG 15kg G13", (x, y), cv2.FONT_HERSHEY_SIMPLEX,
                        float(rng.uniform(0.5, 1.5)), color, 2)
    return frame


def _code_patch(text: str | bytes, look: Look, rng: np.random.Generator,
                error: str) -> np.ndarray:
    """The code as it appears: size, polarity, contrast, rotation (-1 marks pixels outside it)."""
    px = look.module_px
    px = float(rng.uniform(*px)) if isinstance(px, tuple) else float(px)
    img = render_qr(text, px * look.scale, error=error, dots=look.dots).astype(np.float32)
    if look.invert:
        img = 255.0 - img
    img = 127.5 + (img - 127.5) * look.contrast
    if look.metal:  # brushed steel: streaks along one direction
        streaks = rng.normal(0.0, 14.0, img.shape).astype(np.float32)
        img = img + cv2.GaussianBlur(streaks, (0, 0), sigmaX=9.0, sigmaY=0.6)
    img = img.clip(0, 255)  # below 0 marks "outside the code" once rotated
    if look.rotate_deg:
        angle = look.rotate_deg * float(rng.choice((-1.0, 1.0)))
        side = img.shape[0]
        out = int(np.ceil(side * 1.42))
        matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
        matrix[:, 2] += (out - side) / 2
        img = cv2.warpAffine(img, matrix, (out, out), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
    return img


def _glare(region: np.ndarray, strength: float, rng: np.random.Generator) -> None:
    """Add a bright elliptical highlight over part of a region, in place."""
    h, w = region.shape[:2]
    cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    blob = np.exp(-(((xx - cx) / (0.22 * w)) ** 2 + ((yy - cy) / (0.12 * h)) ** 2))
    region += (255.0 * strength * blob)[:, :, None]


def _paste(frame: np.ndarray, patch: np.ndarray, at: tuple[int, int], look: Look,
           rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Put a code patch into a float frame at (x, y), in place; its (x, y, w, h) in the frame."""
    x, y = at
    ph, pw = patch.shape
    region = frame[y:y + ph, x:x + pw]
    inside = patch >= 0
    region[inside] = patch[inside][:, None]
    if look.glare:
        _glare(region, look.glare, rng)
    return (x, y, pw, ph)


def scene(text: str | bytes, look: Look = LOOKS["clean"], *, size: tuple[int, int] = (1280, 720),
          rng: np.random.Generator | None = None, background: np.ndarray | None = None,
          error: str = "m") -> np.ndarray:
    """One BGR camera frame (size: width, height) showing the code somewhere on a cluttered
    background; ValueError when the code does not fit."""
    return scene_codes([text], look, size=size, rng=rng, background=background, error=error)[0]


def scene_codes(texts: list[str | bytes], look: Look = LOOKS["clean"], *,
                size: tuple[int, int] = (1280, 720), rng: np.random.Generator | None = None,
                background: np.ndarray | None = None, error: str = "m",
                at: list[tuple[float, float]] | None = None,
                ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """One BGR frame showing every code (two tags in view: two texts), placed at random where
    they do not overlap, or at `at`: for each code, (fx, fy) in 0..1 of the room the frame
    leaves it (0, 0: top left, 1, 1: bottom right). Returns (frame, each code's box (x, y, w, h)
    in the frame). ValueError when they do not fit."""
    rng = rng if rng is not None else np.random.default_rng(0)
    frame = (background if background is not None else clutter(size, rng)).astype(np.float32)
    fh, fw = frame.shape[:2]
    boxes: list[tuple[int, int, int, int]] = []
    for n, text in enumerate(texts):
        patch = _code_patch(text, look, rng, error)
        ph, pw = patch.shape
        if ph > fh or pw > fw:
            raise ValueError(f"a {pw}x{ph} px code does not fit a {fw}x{fh} frame")
        if at is None:
            place = _free_place(boxes, (pw, ph), (fw, fh), rng)
        else:
            place = (round(at[n][0] * (fw - pw)), round(at[n][1] * (fh - ph)))
        boxes.append(_paste(frame, patch, place, look, rng))
    return _finish(frame, look, rng), boxes


def _free_place(taken: list[tuple[int, int, int, int]], patch: tuple[int, int],
                frame: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    (pw, ph), (fw, fh) = patch, frame
    for _ in range(200):
        x, y = int(rng.integers(0, fw - pw + 1)), int(rng.integers(0, fh - ph + 1))
        if all(x + pw <= bx or bx + bw <= x or y + ph <= by or by + bh <= y
               for bx, by, bw, bh in taken):
            return x, y
    raise ValueError(f"{len(taken) + 1} codes of {pw}x{ph} px do not fit a {fw}x{fh} frame")


def _finish(frame: np.ndarray, look: Look, rng: np.random.Generator) -> np.ndarray:
    if look.blur:
        frame = cv2.GaussianBlur(frame, (0, 0), look.blur)
    if look.gain != 1.0:
        frame = frame * look.gain
    if look.noise:
        frame = frame + rng.normal(0.0, look.noise, frame.shape).astype(np.float32)
    return frame.clip(0, 255).astype(np.uint8)


def _writer(path: Path, size: tuple[int, int], fps: float) -> cv2.VideoWriter:
    fourcc = FOURCC.get(path.suffix.lower())
    if fourcc is None:
        raise ValueError(f"{path}: use .avi (MJPG) or .mp4 (mp4v)")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write {fourcc} video here")
    if fourcc == "MJPG":
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, MJPEG_QUALITY)
    return writer


@dataclass(frozen=True)
class Shot:
    """`frames` frames of these codes in view (none: the empty scene), in one look.

    Standing codes keep their place, size and angle through the shot, shaken by a pixel or two
    a frame as in a hand; `carried` codes cross the frame from left to right during the shot,
    one step a frame (a cylinder carried past the camera), one above the other.
    """

    codes: tuple[str | bytes, ...] = ()
    frames: int = 5
    look: Look = LOOKS["clean"]
    carried: bool = False


def shot_frames(shots: list[Shot], *, size: tuple[int, int] = (640, 480), seed: int = 0,
                error: str = "m") -> Iterator[np.ndarray]:
    """The BGR frames (size: width, height) of these shots, in order, on one background."""
    rng = np.random.default_rng(seed)
    background = clutter(size, rng)
    for shot in shots:
        shot_seed = int(rng.integers(2**32))
        for n in range(shot.frames):
            frame_rng = np.random.default_rng(shot_seed)  # same place, size and angle per shot
            if not shot.codes:
                yield _finish(background.astype(np.float32), shot.look, frame_rng)
                continue
            at = None
            if shot.carried:
                across = (n + 0.5) / shot.frames
                at = [(across, (k + 0.5) / len(shot.codes)) for k in range(len(shot.codes))]
            frame, _boxes = scene_codes(list(shot.codes), shot.look, rng=frame_rng,
                                        background=background, error=error, at=at)
            if not shot.carried:
                frame = np.roll(frame, tuple(int(v) for v in rng.integers(-2, 3, 2)), (0, 1))
            yield frame


def write_video(path: str | os.PathLike[str], shots: list[Shot], *,
                size: tuple[int, int] = (640, 480), fps: float = 10, seed: int = 0,
                error: str = "m") -> Path:
    """Write the shots as a video (.avi: MJPG, .mp4: mp4v) the camera reader replays (one
    frame a `1/fps` s; a reader's `fps` paces it), atomically (renamed into place when whole).

    Example: `write_video(p, carried_past(url, frames=2) + [Shot((url,), 10)])`.
    Raises ValueError for another suffix or a code that does not fit, OSError when OpenCV
    cannot write here.
    """
    path = Path(path)
    part = path.with_name(f"{path.stem}.part{path.suffix}")
    writer = _writer(part, size, fps)
    try:
        for frame in shot_frames(shots, size=size, seed=seed, error=error):
            writer.write(frame)
    finally:
        writer.release()
    os.replace(part, path)
    return path


def two_codes_in_view(first: str | bytes, second: str | bytes, *, frames: int = 10,
                      look: Look = LOOKS["clean"]) -> list[Shot]:
    """A neighbour's tag in view beside the cylinder's: both codes for `frames` frames."""
    return [Shot((first, second), frames, look)]


def carried_past(code: str | bytes, *, frames: int = 2, before: int = 3, after: int = 10,
                 look: Look = LOOKS["clean"]) -> list[Shot]:
    """A cylinder carried past the camera: `before` empty frames, the code crossing the frame
    in `frames` frames, then `after` empty frames (the scale empty again)."""
    return [Shot((), before, look), Shot((code,), frames, look, carried=True),
            Shot((), after, look)]


def make_video(path: str | os.PathLike[str], codes: list[str | bytes], *,
               size: tuple[int, int] = (1280, 720), fps: float = 10, frames_per_code: int = 5,
               blur: float = 0.0, rotate_deg: float = 0.0, glare: float = 0.0,
               scale: float = 1.0, noise: float = 0.0, module_px: float = 6.0,
               contrast: float = 1.0, error: str = "m", seed: int = 0,
               look: Look | None = None) -> Path:
    """Write a video showing each code in turn for `frames_per_code` frames (`write_video` of
    one standing Shot per code); the look from `look`, else from the keywords."""
    look = look or Look(module_px=module_px, blur=blur, rotate_deg=rotate_deg, glare=glare,
                        scale=scale, noise=noise, contrast=contrast)
    shots = [Shot((text,), frames_per_code, look) for text in codes]
    return write_video(path, shots, size=size, fps=fps, seed=seed, error=error)


def run_camera(out_path: str, codes: list[str] | None = None, *, look: str = "clean",
               size: tuple[int, int] = (1280, 720), fps: float = 10,
               frames_per_code: int = 10, seed: int = 0) -> Path:
    """`station-sim camera`: write a video of these codes (default: the demo dataset's QR URLs)."""
    if not codes:
        from .dataset import demo_cylinders, qr_url

        codes = [qr_url(c["info_code"]) for c in demo_cylinders(station_today()).values()]
    path = make_video(out_path, list(codes), size=size, fps=fps, frames_per_code=frames_per_code,
                      seed=seed, look=LOOKS[look])
    print(f"wrote {path}: {len(codes)} codes × {frames_per_code} frames at {fps} fps, "
          f"{size[0]}x{size[1]}, look {look}")
    print(f'camera source: source = "{path}", roi = [0, 0, {size[0]}, {size[1]}]   '
          "(a file replays in a loop)")
    for n, text in enumerate(codes, 1):
        print(f"{n:3d}  {text}")
    return path
