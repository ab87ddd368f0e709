"""QR decoder backends behind one interface: zxing-cpp, pyzbar (libzbar) and OpenCV's detector.

Every backend turns a greyscale frame into the QR codes it finds, each as its exact bytes and
its bounding box (`Code`). The same decisions hold for every backend:

- **Exact bytes.** A code's payload is handed on byte for byte, a NUL or non-UTF-8 byte
  included; the daemon's `station.core.reading.decode` refuses what is not a clean reading. zxing-cpp
  and pyzbar (libzbar ≥ 0.23, binary mode) report the raw bytes; OpenCV's `detectAndDecode`
  returns a str cut at the first NUL, so only its `…Bytes` methods (OpenCV ≥ 4.12) are used and
  an OpenCV without them cannot be the decoder (`ImportError`, named at start-up).
- **Both polarities.** A light-on-dark (laser-etched) code reads like a dark-on-light one:
  zxing-cpp is asked explicitly (`try_invert=True`; its default changed between 2.x and 3.x);
  pyzbar and OpenCV are given the inverted frame when the plain one yields nothing.
- **Full QR (Model 2) only.** The city's tags are full QR codes. Micro QR and rMQR are ignored
  by every backend (neither a reading nor one of the "others in view"): zxing-cpp is restricted
  to Model 2 (3.x's `QRCode` family also matches Micro QR and rMQR, and its spurious finds inside
  real codes were Micro QR/rMQR-shaped), and each result's format is checked again; libzbar and
  OpenCV do not decode Micro QR or rMQR at all.
- **Every code in view.** A frame with two codes must show two: OpenCV's single-code detector
  often finds neither of two codes, so its multi-code detector is used.

`Cascade` adds the fallbacks for worn metal tags: when the plain frame yields nothing it tries
contrast-limited equalisation (CLAHE), then CLAHE after a blur that merges dot-peened dots.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from ctypes import c_void_p, cast
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

DEFAULT = "zxing"
FALLBACK = "opencv"
ZBAR_CFG_ENABLE = 0
ZBAR_CFG_BINARY = 4  # libzbar ≥ 0.23: hand back the raw bytes, no charset guessing

Box = tuple[int, int, int, int]  # x, y, width, height in pixels


@dataclass(frozen=True)
class Code:
    """One decoded QR code: its exact payload and its bounding box in the decoded image."""

    data: bytes
    box: Box


class QrDecoder(Protocol):
    """Decode every full QR code, of either polarity, in a greyscale (uint8, 2-D) frame."""

    name: str

    def decode(self, gray: np.ndarray) -> list[Code]: ...


def box_of(points: Iterable[tuple[float, float]]) -> Box:
    """The axis-aligned bounding box (x, y, w, h) of a code's corner points, in whole pixels."""
    xs, ys = zip(*((float(x), float(y)) for x, y in points), strict=True)
    x0, y0 = int(np.floor(min(xs))), int(np.floor(min(ys)))
    return (max(0, x0), max(0, y0), int(np.ceil(max(xs))) - x0, int(np.ceil(max(ys))) - y0)


def inverted(gray: np.ndarray) -> np.ndarray:
    """The frame with light and dark swapped (a light-on-dark code becomes dark-on-light)."""
    return cv2.bitwise_not(gray)


class ZxingDecoder:
    """zxing-cpp (≥ 2.2): the fastest and the most tolerant of small, blurred or rotated codes."""

    name = "zxing"

    def __init__(self) -> None:
        self._zx = importlib.import_module("zxingcpp")
        formats = self._zx.BarcodeFormat
        # 3.x: QRCodeModel2 is the full QR code alone (QRCode also matches Micro QR and rMQR);
        # 2.x has no QRCodeModel2, and its QRCode is the full QR code alone.
        self._want = getattr(formats, "QRCodeModel2", formats.QRCode)
        self._reported = formats.QRCode  # what both report for a full QR code

    def decode(self, gray: np.ndarray) -> list[Code]:
        found = self._zx.read_barcodes(gray, formats=self._want, try_invert=True,
                                       try_rotate=True, try_downscale=True, is_pure=False)
        return [Code(bytes(c.bytes), _zx_box(c.position)) for c in found
                if c.valid and c.format == self._reported]


def _zx_box(position: Any) -> Box:
    corners = (position.top_left, position.top_right, position.bottom_right,
               position.bottom_left)
    return box_of((p.x, p.y) for p in corners)


class PyzbarDecoder:
    """pyzbar over the system's libzbar (Debian: libzbar0), asked for raw bytes where it can."""

    name = "pyzbar"

    def __init__(self) -> None:
        self._pz = importlib.import_module("pyzbar.pyzbar")  # ImportError without libzbar
        self._w = importlib.import_module("pyzbar.wrapper")
        self._raw = all(hasattr(self._pz, n) for n in ("_image_scanner", "_image",
                                                        "_decode_symbols", "_symbols_for_image"))

    def decode(self, gray: np.ndarray) -> list[Code]:
        return self._read(gray) or self._read(inverted(gray))

    def _read(self, gray: np.ndarray) -> list[Code]:
        if not self._raw:  # pyzbar's own path: libzbar guesses a charset; NUL kept by length
            found = self._pz.decode(gray, symbols=[self._pz.ZBarSymbol.QRCODE])
            return [Code(code.data, tuple(code.rect)) for code in found]
        pixels = np.ascontiguousarray(gray).tobytes()
        height, width = gray.shape[:2]
        w, pz, qr = self._w, self._pz, self._pz.ZBarSymbol.QRCODE
        with pz._image_scanner() as scanner:
            w.zbar_image_scanner_set_config(scanner, 0, ZBAR_CFG_ENABLE, 0)  # 0: every symbology
            w.zbar_image_scanner_set_config(scanner, qr, ZBAR_CFG_ENABLE, 1)
            w.zbar_image_scanner_set_config(scanner, qr, ZBAR_CFG_BINARY, 1)
            with pz._image() as image:
                w.zbar_image_set_format(image, pz._FOURCC["L800"])
                w.zbar_image_set_size(image, width, height)
                w.zbar_image_set_data(image, cast(pixels, c_void_p), len(pixels), None)
                if w.zbar_scan_image(scanner, image) < 0:
                    return []
                return [Code(code.data, tuple(code.rect)) for code in
                        pz._decode_symbols(pz._symbols_for_image(image))]


class OpenCvDecoder:
    """cv2.QRCodeDetector (multi-code, exact bytes): always loads with OpenCV ≥ 4.12; slowest."""

    name = "opencv"

    def __init__(self) -> None:
        self._detector = cv2.QRCodeDetector()
        if not hasattr(self._detector, "detectAndDecodeBytesMulti"):
            raise ImportError(f"OpenCV {cv2.__version__} cannot return a QR code's exact bytes "
                              "(detectAndDecodeBytesMulti needs OpenCV ≥ 4.12)")

    def decode(self, gray: np.ndarray) -> list[Code]:
        return self._read(gray) or self._read(inverted(gray))

    def _read(self, gray: np.ndarray) -> list[Code]:
        try:
            ok, payloads, points, _straight = self._detector.detectAndDecodeBytesMulti(gray)
        except cv2.error:  # OpenCV 5.0's multi detector asserts in kmeans on some dark frames
            return []  # no reading from this frame (never the single detector's half answer)
        if not ok or points is None:
            return []
        return [Code(bytes(data), box_of(corners)) for data, corners in zip(payloads, points,
                                                                              strict=False)
                if data]


BACKENDS: dict[str, Callable[[], Any]] = {
    "zxing": ZxingDecoder,
    "pyzbar": PyzbarDecoder,
    "opencv": OpenCvDecoder,
}


def load_decoder(name: str) -> tuple[QrDecoder, str]:
    """The named backend, or OpenCV's with the reason the named one could not be used.

    Raises ImportError when OpenCV's own decoder cannot be used either.
    """
    factory = BACKENDS.get(name)
    if factory is None:
        return OpenCvDecoder(), f"unknown decoder {name!r} (known: {', '.join(BACKENDS)})"
    try:
        return factory(), "configured"
    except (ImportError, OSError) as err:  # pyzbar raises ImportError when libzbar is missing
        if name == FALLBACK:
            raise
        return OpenCvDecoder(), f"{name} unavailable: {err}"


# --- the fallback cascade for worn metal tags ---------------------------------------------

CLAHE_CLIP, CLAHE_TILES = 3.0, (8, 8)


def clahe(gray: np.ndarray) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation: lifts a faint etched code."""
    # One CLAHE object per call (~µs): an OpenCV algorithm object is not shared across threads.
    return cv2.createCLAHE(CLAHE_CLIP, CLAHE_TILES).apply(gray)


def clahe_blur(gray: np.ndarray) -> np.ndarray:
    """A blur that merges dot-peened dots into modules, then CLAHE."""
    return clahe(cv2.GaussianBlur(gray, (0, 0), 1.5))


ENHANCEMENTS: tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...] = (
    ("clahe", clahe), ("clahe_blur", clahe_blur))
# Backends whose every extra pass costs tens of ms a 1280×720 frame try one enhancement per
# empty frame, in turn (bench/camera_decode.py measures both ways).
ALTERNATE_BY_DEFAULT = {"zxing": False, "pyzbar": True, "opencv": True}
# OpenCV's multi-code detector took 0.8–10 s on some CLAHE'd noisy frames (sensor noise
# lifted into thousands of finder-pattern candidates): it gets only the blurred enhancement.
SKIP_BY_BACKEND = {"opencv": frozenset({"clahe"})}


class Cascade:
    """Decode a frame as it is; when that yields nothing, decode enhanced versions of it.

    With `alternate`, an empty frame tries one enhancement (the next in turn), so a still scene
    tries each within len(stages) frames at a bounded cost per frame; without, it tries them
    all until one yields codes. `stages` are ENHANCEMENTS less the backend's SKIP_BY_BACKEND. `last_stage` names what read the last frame ("plain",
    an enhancement's name, or "" when nothing did). Boxes are in the frame's own pixels.
    """

    def __init__(self, decoder: QrDecoder, alternate: bool | None = None):
        self.decoder = decoder
        self.alternate = (ALTERNATE_BY_DEFAULT.get(decoder.name, True) if alternate is None
                          else alternate)
        self.last_stage = ""
        self._turn = 0
        skip = SKIP_BY_BACKEND.get(decoder.name, frozenset())
        self.stages = tuple(e for e in ENHANCEMENTS if e[0] not in skip)

    @property
    def name(self) -> str:
        """The backend's name (zxing, pyzbar or opencv)."""
        return self.decoder.name

    def decode(self, gray: np.ndarray) -> list[Code]:
        """The codes in a greyscale frame, through the cascade; exceptions of the backend pass."""
        codes = self.decoder.decode(gray)
        if codes:
            self.last_stage = "plain"
            return codes
        if self.alternate:
            stages = [self.stages[self._turn % len(self.stages)]]
            self._turn += 1
        else:
            stages = list(self.stages)
        for stage, enhance in stages:
            codes = self.decoder.decode(enhance(gray))
            if codes:
                self.last_stage = stage
                return codes
        self.last_stage = ""
        return []
