"""Code tables from the city's data-sharing annex (media, varieties, statuses, field lengths)."""

MEDIA: dict[str, str] = {
    "G1": "压缩氧气", "G2": "压缩氮气", "G3": "压缩氩气", "G4": "压缩氢气", "G5": "压缩天然气",
    "G6": "液化氧气", "G7": "液化氮气", "G8": "液化氩气", "G9": "液化氯气", "G10": "液化氨气",
    "G11": "液化氢气", "G12": "液化天然气", "G13": "液化石油气", "G14": "液化二甲醚",
    "G15": "二氧化碳", "G16": "丙烷", "G17": "溶解乙炔", "G18": "一氧化二氮", "G19": "其他",
    "G20": "其他",
}

VARIETIES: dict[str, str] = {"2310": "无缝气瓶", "2320": "焊接气瓶", "23T0": "特种气瓶"}

STATUS_IN_USE, STATUS_STOPPED, STATUS_SCRAPPED = "在用", "停用", "报废"

TAGGING = ("二维码", "RFID标签")

# Maximum lengths of the cylinder record's string fields (contracts/city-api.md §2).
CYLINDER_FIELD_MAX: dict[str, int] = {
    "id": 50, "user_unit_name": 100, "region_code": 6, "variety": 4, "product_no": 50,
    "medium_code": 3, "manufacturer": 100, "unit_internal_no": 50, "status": 10, "tagging": 10,
    "info_code": 50, "qr_url": 1000, "registration_cert_no": 50, "registration_authority": 200,
    "rfid_uid": 64,
}

# Maximum lengths of a filling record's fields (Annex 1, §2).
OPERATOR_NAME_MAX = 10
UNIT_NAME_MAX = 100
