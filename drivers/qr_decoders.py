"""QR decoder backends behind one interface: zxing-cpp, pyzbar (libzbar) and OpenCV's detector.

Every backend turns a greyscale frame into the texts of the QR codes it finds. A code whose
bytes are not valid UTF-8 comes back with those bytes kept as surrogate escapes
(`raw.decode("utf-8", "surrogateescape")`), so `text.encode("utf-8", "surrogateescape")` gives
the exact bytes back and the daemon's `station.reading.decode` refuses them. zxing-cpp and pyzbar
(libzbar ≥ 0.23) report the raw bytes; OpenCV reports its own guess (UTF-8, else Latin-1), so a
non-UTF-8 code reaches the daemon as non-ASCII text, which no accepted reading form contains.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from ctypes import c_void_p, cast
from typing import Any, Protocol

import cv2
import numpy as np

DEFAULT = "zxing"
FALLBACK = "opencv"
ZBAR_CFG_ENABLE = 0
ZBAR_CFG_BINARY = 4  # libzbar ≥ 0.23: hand back the raw bytes, no charset guessing


class QrDecoder(Protocol):
    """Decode every QR code in a greyscale (uint8, 2-D) frame."""

    name: str

    def decode(self, gray: np.ndarray) -> list[str]: ...


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class ZxingDecoder:
    """zxing-cpp: the fastest and the most tolerant of small, blurred or rotated codes."""

    name = "zxing"

    def __init__(self) -> None:
        self._zx = importlib.import_module("zxingcpp")
        self._format = self._zx.BarcodeFormat.QRCode

    def decode(self, gray: np.ndarray) -> list[str]:
        found = self._zx.read_barcodes(gray, formats=self._format)
        return [_text(bytes(code.bytes)) for code in found if code.valid]


class PyzbarDecoder:
    """pyzbar over the system's libzbar (Debian: libzbar0), asked for raw bytes where it can."""

    name = "pyzbar"

    def __init__(self) -> None:
        self._pz = importlib.import_module("pyzbar.pyzbar")  # ImportError without libzbar
        self._w = importlib.import_module("pyzbar.wrapper")
        self._raw = all(hasattr(self._pz, n) for n in ("_image_scanner", "_image",
                                                        "_decode_symbols", "_symbols_for_image"))

    def decode(self, gray: np.ndarray) -> list[str]:
        if not self._raw:
            found = self._pz.decode(gray, symbols=[self._pz.ZBarSymbol.QRCODE])
            return [_text(code.data) for code in found]
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
                return [_text(code.data) for code in
                        pz._decode_symbols(pz._symbols_for_image(image))]


class OpenCvDecoder:
    """cv2.QRCodeDetector: always available with OpenCV, the slowest; the fallback."""

    name = "opencv"

    def __init__(self) -> None:
        self._detector = cv2.QRCodeDetector()

    def decode(self, gray: np.ndarray) -> list[str]:
        text, _points, _straight = self._detector.detectAndDecode(gray)
        return [text] if text else []


BACKENDS: dict[str, Callable[[], Any]] = {
    "zxing": ZxingDecoder,
    "pyzbar": PyzbarDecoder,
    "opencv": OpenCvDecoder,
}


def load_decoder(name: str) -> tuple[QrDecoder, str]:
    """The named backend, or OpenCV's with the reason the named one could not be used."""
    factory = BACKENDS.get(name)
    if factory is None:
        return OpenCvDecoder(), f"unknown decoder {name!r} (known: {', '.join(BACKENDS)})"
    try:
        return factory(), "configured"
    except (ImportError, OSError) as err:  # pyzbar raises ImportError when libzbar is missing
        if name == FALLBACK:
            raise
        return OpenCvDecoder(), f"{name} unavailable: {err}"
