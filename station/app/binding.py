"""Tag binding: a new QR label or RFID tag read at a rig, steel-stamp photos, the city's tags/bind."""

from __future__ import annotations

import base64
import time
from pathlib import Path

from station.city.client import CityClient
from station.config import StationConfig
from station.core.reading import parse_rfid, parse_scan
from station.errors import StationError
from station.store.db import Store

MAX_PHOTO_BYTES = 2 * 1024 * 1024

# What the manager is told for each city answer (Chinese first, English after).
ANSWERS = {
    "duplicate": "该标签已绑定其他气瓶 / the tag is already bound to another cylinder",
    "refused": "追溯系统不允许本单位绑定该气瓶 / the city does not let this unit bind it",
    "invalid": "追溯系统拒绝了请求 / the city refused the request",
    "not_found": "追溯系统无此气瓶档案 / the city has no such cylinder",
    "transient": "追溯系统暂时无法访问，请稍后重试 / the city cannot be reached; try again later",
}


def check_photo(data: bytes, name: str) -> bytes:
    """A steel-stamp photo must be a decodable JPEG of at most 2 MiB."""
    if len(data) > MAX_PHOTO_BYTES:
        raise StationError(f"{name}: {len(data)} bytes; at most {MAX_PHOTO_BYTES} allowed")
    if not (data.startswith(b"\xff\xd8") and data.rstrip(b"\x00").endswith(b"\xff\xd9")):
        raise StationError(f"{name}: not a JPEG (the city takes JPEG photos only)")
    import cv2
    import numpy as np

    if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is None:
        raise StationError(f"{name}: the JPEG does not decode")
    return data


def photos_from(cfg: StationConfig, rig_id: str, files: list[str], camera: bool) -> list[bytes]:
    photos = [check_photo(Path(f).read_bytes(), f) for f in files]
    if camera:
        reader = next((r for r in cfg.rig(rig_id).readers if r.kind == "camera"), None)
        if reader is None:
            raise StationError(f"rig {rig_id} has no camera to take the stamp photo with")
        from drivers.camera import camera_reader

        photos.append(check_photo(camera_reader(reader, rig_id).take_photo(), "camera"))
    if not 1 <= len(photos) <= 4:
        raise StationError("give 1 to 4 steel-stamp photos (--photo FILE, or --camera)")
    return photos


def wait_for_tag(store: Store, rig_id: str, cylinder_id: str, timeout_s: float) -> tuple:
    """Ask the running daemon for the next reading at the rig; (reader id, text)."""
    request = store.bind_request(rig_id, cylinder_id)
    print(f"请在 {rig_id} 扫描新标签 / scan the new tag at {rig_id} now "
          f"(waiting {timeout_s:.0f} s)", flush=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        read = store.bind_reading(request)
        if read is not None:
            return request, *read
        time.sleep(0.1)  # waiting for a person at the rig, polled with a deadline
    store.bind_done(request, "expired", None, "no tag read in time")
    raise StationError(f"no tag was read at {rig_id} within {timeout_s:.0f} s "
                       "(is the daemon running?)")


def tag_body(cfg: StationConfig, rig_id: str, reader: str, text: str) -> dict:
    """tagging plus qr_url or rfid_uid, from what was read (and by which kind of reader)."""
    kinds = {r.id: r.kind for r in cfg.rig(rig_id).readers}
    if kinds.get(reader) == "rfid":
        reading = parse_rfid(text, reader)
        if reading.refusal:
            raise StationError(f"{text!r} is not an RFID UID: {reading.detail}")
        return {"tagging": "RFID标签", "qr_url": None, "rfid_uid": reading.value}
    reading = parse_scan(text, cfg.qr_hosts, cfg.qr_allow_http, reader)
    if reading.kind != "qr_url":
        raise StationError(f"{text[:100]!r} is not a city QR label: "
                           f"{reading.detail or reading.kind}")
    return {"tagging": "二维码", "qr_url": text, "rfid_uid": None}


def bind(cfg: StationConfig, rig_id: str, cylinder_id: str, *, photos: list[str],
         camera: bool, tag: str | None, timeout_s: float) -> int:
    """The whole binding; prints the outcome plainly; 0 when the city bound the tag."""
    images = photos_from(cfg, rig_id, photos, camera)
    store = Store(cfg.store)
    request, reader, text = (None, "cli", tag) if tag else \
        wait_for_tag(store, rig_id, cylinder_id, timeout_s)
    body = {"id": cylinder_id, **tag_body(cfg, rig_id, reader, text.strip()),
            "stamp_photos": [base64.b64encode(p).decode("ascii") for p in images]}
    city = CityClient(cfg.city, cfg.unit_code)
    try:
        reply = city.bind_tag(body)
    finally:
        city.close()
    info = reply.data.get("info_code") if isinstance(reply.data, dict) else None
    ok = reply.outcome == "ok" and isinstance(info, str)
    message = "" if ok else f"{ANSWERS.get(reply.outcome, reply.outcome)}: {reply.message}"
    if request is not None:
        store.bind_done(request, "done" if ok else "failed", info, message)
    if not ok:
        print(f"绑定失败 / binding failed: {message}")
        return 1
    print(f"已绑定 / bound: {body['tagging']} → {cylinder_id}, 信息化编码 / information code "
          f"{info}")
    return 0
