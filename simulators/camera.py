"""Camera simulator: QR codes (made by segno) in cluttered scenes, degraded, written as video.

`render_qr` draws one code; `scene` places it on a busy background the way a camera at the
scale sees it (blurred, rotated, under glare, small, low in contrast, noisy); `make_video` writes
a file the camera reader replays; `run_camera` is `station-sim camera`. `LOOKS` holds the bench's
three conditions: clean, degraded and hard.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from station.today import station_today

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


LOOKS = {
    "clean": Look(),
    "degraded": Look(blur=1.5, rotate_deg=15.0, glare=0.6),
    "hard": Look(module_px=(3.5, 4.5), blur=1.0, rotate_deg=20.0, contrast=0.45, noise=3.0),
}


def render_qr(text: str | bytes, module_px: float = 6, border: int = 4, *,
              error: str = "m") -> np.ndarray:
    """A QR code as a grey image (0 dark, 255 light); str is encoded as UTF-8, bytes as given."""
    try:
        import segno  # a dev/test dependency: `pip install -e '.[dev]'`
    except ImportError as err:
        raise ImportError("the camera simulator needs segno: pip install -e '.[dev]'") from err
    options = {"encoding": "utf-8"} if isinstance(text, str) else {}
    code = segno.make(text, error=error, micro=False, **options)
    dark = np.array([list(row) for row in code.matrix], dtype=bool)
    modules = np.pad(np.where(dark, 0, 255).astype(np.uint8), border, constant_values=255)
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
    """The code as it appears: size, contrast, rotation (255 marks pixels outside it)."""
    px = look.module_px
    px = float(rng.uniform(*px)) if isinstance(px, tuple) else float(px)
    img = render_qr(text, px * look.scale, error=error).astype(np.float32)
    img = 127.5 + (img - 127.5) * look.contrast
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


def scene(text: str | bytes, look: Look = LOOKS["clean"], *, size: tuple[int, int] = (1280, 720),
          rng: np.random.Generator | None = None, background: np.ndarray | None = None,
          error: str = "m") -> np.ndarray:
    """One BGR camera frame showing the code somewhere on a cluttered background."""
    rng = rng if rng is not None else np.random.default_rng(0)
    frame = (background if background is not None else clutter(size, rng)).astype(np.float32)
    patch = _code_patch(text, look, rng, error)
    ph, pw = patch.shape
    fh, fw = frame.shape[:2]
    if ph > fh or pw > fw:
        raise ValueError(f"a {pw}x{ph} px code does not fit a {fw}x{fh} frame")
    y, x = int(rng.integers(0, fh - ph + 1)), int(rng.integers(0, fw - pw + 1))
    region = frame[y:y + ph, x:x + pw]
    inside = patch >= 0
    region[inside] = patch[inside][:, None]
    if look.glare:
        _glare(region, look.glare, rng)
    return _finish(frame, look, rng)


def _finish(frame: np.ndarray, look: Look, rng: np.random.Generator) -> np.ndarray:
    if look.blur:
        frame = cv2.GaussianBlur(frame, (0, 0), look.blur)
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


def make_video(path: str | os.PathLike[str], codes: list[str | bytes], *,
               size: tuple[int, int] = (1280, 720), fps: float = 10, frames_per_code: int = 5,
               blur: float = 0.0, rotate_deg: float = 0.0, glare: float = 0.0,
               scale: float = 1.0, noise: float = 0.0, module_px: float = 6.0,
               contrast: float = 1.0, error: str = "m", seed: int = 0) -> Path:
    """Write a video showing each code in turn for `frames_per_code` frames; atomic rename.

    The code keeps its place while it is shown, shaken by a pixel or two per frame, as in a hand.
    """
    path = Path(path)
    look = Look(module_px=module_px, blur=blur, rotate_deg=rotate_deg, glare=glare,
                scale=scale, noise=noise, contrast=contrast)
    rng = np.random.default_rng(seed)
    background = clutter(size, rng)
    part = path.with_name(f"{path.stem}.part{path.suffix}")
    writer = _writer(part, size, fps)
    try:
        for text in codes:
            code_seed = int(rng.integers(2**32))
            for _ in range(frames_per_code):
                frame_rng = np.random.default_rng(code_seed)  # same place and angle per code
                frame = scene(text, look, rng=frame_rng, background=background, error=error)
                shake = tuple(int(v) for v in rng.integers(-2, 3, 2))
                writer.write(np.roll(frame, shake, (0, 1)))
    finally:
        writer.release()
    os.replace(part, path)
    return path


def run_camera(out_path: str, codes: list[str] | None = None, *, look: str = "clean",
               size: tuple[int, int] = (1280, 720), fps: float = 10,
               frames_per_code: int = 10, seed: int = 0) -> Path:
    """`station-sim camera`: write a video of these codes (default: the demo dataset's QR URLs)."""
    if not codes:
        from .dataset import demo_cylinders, qr_url

        codes = [qr_url(c["info_code"]) for c in demo_cylinders(station_today()).values()]
    chosen = LOOKS[look]
    px = chosen.module_px if isinstance(chosen.module_px, float) else 4.0
    path = make_video(out_path, list(codes), size=size, fps=fps, frames_per_code=frames_per_code,
                      blur=chosen.blur, rotate_deg=chosen.rotate_deg, glare=chosen.glare,
                      noise=chosen.noise, module_px=px, contrast=chosen.contrast, seed=seed)
    print(f"wrote {path}: {len(codes)} codes × {frames_per_code} frames at {fps} fps, "
          f"{size[0]}x{size[1]}, look {look}")
    print(f'camera source: source = "{path}"   (loop = true replays it)')
    for n, text in enumerate(codes, 1):
        print(f"{n:3d}  {text}")
    return path
