"""The built-in demo dataset: cylinders covering every reason code and warning, dated from today."""

from __future__ import annotations

from datetime import date
from typing import Any

STATION_UNIT = "重庆渝北燃气有限公司"
PARTNER_UNIT = "重庆两江液化气有限公司"
OTHER_UNIT = "四川川东燃气有限公司"
UNIT_CODE = "91500112MA5U8XXX0X"
APP_KEY = "station-demo"
APP_SECRET = "demo-secret-change-me"
QR_HOST = "qr.cqtzsb.example"


def _ym(d: date, months: int) -> str:
    """yyyy-mm of the month `months` away from d's month."""
    index = d.year * 12 + d.month - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def qr_url(info_code: str) -> str:
    return f"https://{QR_HOST}/c/{info_code}"


def cylinder(n: int, today: date, **over: Any) -> dict[str, Any]:
    """A valid in-use LPG cylinder of the station's unit; `over` changes fields (None drops)."""
    info = f"500112CQ{n:010d}"
    rec: dict[str, Any] = {
        "id": f"CYL-{n:06d}", "user_unit_name": STATION_UNIT, "region_code": "500112",
        "variety": "2320", "product_no": f"118{(today.year - 3) % 100:02d}{n:07d}",
        "medium_code": "G13", "manufacturer": "重庆某某钢瓶制造有限公司",
        "manufacture_date": _ym(today, -36), "nominal_pressure_mpa": 2.1, "volume_l": 35.5,
        "last_inspection_date": f"{today.year - 1}-{today.month:02d}-01",
        "next_inspection_date": _ym(today, 36), "unit_internal_no": f"YB-{n:05d}",
        "status": "在用", "tagging": "二维码", "info_code": info, "qr_url": qr_url(info),
        "registration_cert_no": f"瓶渝B{n:08d}", "registration_date": f"{today.year - 3}-01-15",
        "registration_authority": "重庆市渝北区市场监督管理局",
        "tare_kg": 15.2, "fill_capacity_kg": 14.5,
    }
    rec.update(over)
    if "product_no" not in over:  # a traceable number: maker 118, the year made, the serial
        rec["product_no"] = f"118{rec['manufacture_date'][2:4]}{n:07d}"
    return {k: v for k, v in rec.items() if v is not None}


def demo_cylinders(today: date) -> dict[str, dict[str, Any]]:
    """Name → cylinder record; the names say what each one is for."""
    c = cylinder
    return {
        "valid": c(1, today),
        "valid_partner": c(2, today, user_unit_name=PARTNER_UNIT),
        "due_soon": c(3, today, next_inspection_date=_ym(today, 0)),
        "bad_record": c(4, today, manufacture_date="2019/05"),
        "no_registration": c(5, today, registration_cert_no=""),
        "scrapped": c(6, today, status="报废"),
        "stopped": c(7, today, status="停用"),
        "foreign_unit": c(8, today, user_unit_name=OTHER_UNIT),
        "wrong_medium": c(9, today, medium_code="G1", variety="2310", volume_l=40.0,
                          tare_kg=None, fill_capacity_kg=None),
        "overdue": c(10, today, next_inspection_date=_ym(today, -1)),
        "life_exceeded": c(11, today, manufacture_date=_ym(today, -15 * 12 - 1)),
        "blocklisted": c(12, today),
        "offline_uncached": c(13, today),
        "special_23t0": c(14, today, variety="23T0", manufacture_date=_ym(today, -19 * 12)),
        "by_table": c(15, today, tare_kg=None, fill_capacity_kg=None),
        "rfid": c(16, today, tagging="RFID标签", rfid_uid="E2801160600002084C1A2B3C"),
        "life_last_month": c(17, today, manufacture_date=_ym(today, -15 * 12)),
    }


def demo_dataset(today: date) -> dict[str, Any]:
    """The city simulator's dataset for the demo and the tests."""
    return {
        "credentials": [{"unit_code": UNIT_CODE, "app_key": APP_KEY, "app_secret": APP_SECRET,
                         "unit_name": STATION_UNIT}],
        "cylinders": list(demo_cylinders(today).values()),
    }
