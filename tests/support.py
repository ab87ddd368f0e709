"""Helpers shared by every test folder: waiting on a condition, the city's test dataset."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable


def wait_until(pred: Callable[[], object], timeout: float = 3.0) -> bool:
    """Wait for a condition, up to a deadline (s); True when it held (never a bare sleep)."""
    end, tick = time.monotonic() + timeout, threading.Event()
    while time.monotonic() < end:
        if pred():
            return True
        tick.wait(0.005)
    return bool(pred())


async def wait_until_async(
    condition: Callable[[], Awaitable[object]], deadline_s: float, what: str
) -> float:
    """Poll an async condition until true; returns the time it took (s); AssertionError at the
    deadline naming `what`."""
    start = time.monotonic()
    while not await condition():
        if time.monotonic() - start > deadline_s:
            raise AssertionError(f"{what}: not within {deadline_s} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def cylinder(cid: str, **over: object) -> dict:
    """A city cylinder record with all 20 basic elements (LPG, in use, QR-tagged)."""
    rec = {
        "id": cid, "user_unit_name": "重庆测试燃气有限公司", "region_code": "500112",
        "variety": "2320", "product_no": f"P{cid}", "medium_code": "G13",
        "manufacturer": "某某气瓶制造厂", "manufacture_date": "2022-03",
        "nominal_pressure_mpa": 2.1, "volume_l": 35.5, "last_inspection_date": "2024-03-01",
        "next_inspection_date": "2028-03", "unit_internal_no": f"U-{cid}", "status": "在用",
        "tagging": "二维码", "info_code": f"IC{cid}", "qr_url": f"https://qr.example/c/IC{cid}",
        "registration_cert_no": "", "registration_date": "", "registration_authority": "某区市场监管局",
        "tare_kg": 15.0, "fill_capacity_kg": 14.5,
    }
    rec.update(over)
    return rec


def city_dataset() -> dict:
    """Three cylinders: one plain, one with an RFID tag, one of a unit we may not query."""
    return {
        "credentials": [{"unit_code": "91500112MA5UTEST0X", "app_key": "station-app",
                         "app_secret": "s3cr3t-for-tests-only",
                         "unit_name": "重庆测试充装站",
                         "user_units": ["重庆测试燃气有限公司"]}],
        "cylinders": [
            cylinder("C001"),
            cylinder("C002", tagging="RFID标签", rfid_uid="E2801160600002084C1A2B3C"),
            cylinder("C003", user_unit_name="别家燃气公司"),
        ],
    }


# The rules table's valid cylinder (tests/core/test_rules.py), also judged by the rig loop's tests.
UNIT = "重庆渝北燃气有限公司"
RULES_RECORD = {
    "id": "CYL-1", "user_unit_name": UNIT, "region_code": "500112", "variety": "2320",
    "product_no": "118230000001", "medium_code": "G13", "manufacturer": "某厂",
    "manufacture_date": "2023-06", "nominal_pressure_mpa": 2.1, "volume_l": 35.5,
    "last_inspection_date": "2025-11-01", "next_inspection_date": "2029-11",
    "unit_internal_no": "YB-1", "status": "在用", "tagging": "二维码", "info_code": "X1",
    "qr_url": "https://qr.example/c/X1", "registration_cert_no": "瓶渝B0001",
    "registration_date": "2023-07-01", "registration_authority": "渝北区市场监督管理局",
}


def small_config(store: str = "s.db") -> str:
    """The smallest station.toml: one rig, no reader, the city on a closed port (`store` may
    be relative to the file). The records commands need nothing more."""
    return f"""
[station]
unit_name = "测试站"
unit_code = "X1"
store = "{store}"
[qr]
hosts = ["qr.example"]
[city]
base_url = "http://127.0.0.1:9"
app_key = "k"
[[rigs]]
id = "rig-01"
medium = "G13"
modbus = "tcp://127.0.0.1:9"
"""
