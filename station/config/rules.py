"""[rules], [offline], [override]: the interlock's configurable numbers and what may be overridden."""

from __future__ import annotations

from dataclasses import dataclass

from station.config.spec import default, opt, read
from station.confread import Section
from station.core.codes import MEDIA, VARIETIES

MEDIUM_CODES = tuple(MEDIA)


@dataclass(frozen=True)
class ServiceLife:
    variety: str
    media: tuple[str, ...]  # empty: any medium
    years: int


@dataclass(frozen=True)
class CylinderType:
    """Default tare and net fill mass by medium (and volume), when the record carries none."""

    medium: str
    net_kg: float
    tare_kg: float
    volume_l: float | None = None  # None: any volume


DEFAULT_SERVICE_LIFE = (
    ServiceLife("2320", ("G13", "G14", "G16"), 15),
    ServiceLife("2310", (), 30),
    ServiceLife("2320", (), 30),
    ServiceLife("23T0", (), 20),
)
DEFAULT_CYLINDER_TYPES = (CylinderType("G13", 14.5, 15.0, 35.5),)


@dataclass(frozen=True)
class RulesConfig:
    inspection_warning_days: int = opt(30, 0, 365)
    refill_warning_min: float = opt(30.0, 0, 24 * 60)
    offline_max_age_h: float = 72.0  # key: [offline] max_age_h
    max_clock_skew_s: float = opt(300.0, 0, 86400)  # refuse fills this far off the city's clock
    service_life: tuple[ServiceLife, ...] = DEFAULT_SERVICE_LIFE
    cylinder_types: tuple[CylinderType, ...] = DEFAULT_CYLINDER_TYPES
    # The cylinder weighs like its record (interlock-rules.md, "the cylinder on the scale"): the
    # stable gross before a fill may lie this far below the tare, in % of the tare, at least
    # tare_tolerance_min_kg; the type table's nominal tare gets the wider nominal_… window.
    tare_tolerance_pct: float = opt(5.0, 0.5, 50)
    nominal_tare_tolerance_pct: float = opt(15.0, 0.5, 50)  # and at least tare_tolerance_pct
    tare_tolerance_min_kg: float = opt(0.3, 0.02, 20)


# Never overridable (interlock-rules.md): a supervisor cannot fill these.
NEVER_OVERRIDE = ("NOT_REGISTERED", "SCRAPPED", "STOPPED", "INSPECTION_OVERDUE",
                  "SERVICE_LIFE_EXCEEDED", "TAG_FOREIGN", "BLOCKLISTED", "AMBIGUOUS_TAGS",
                  "NO_CYLINDER", "MASS_MISMATCH", "CYLINDER_FULL")


# What a station may make overridable: administrative gaps, never the physical rig, the
# operator, the medium, or the cylinder's condition.
OVERRIDABLE = ("CITY_UNAVAILABLE", "NO_USE_REGISTRATION", "FOREIGN_UNIT")


@dataclass(frozen=True)
class OverrideConfig:
    reasons: tuple[str, ...] = opt(("CITY_UNAVAILABLE",), choices=OVERRIDABLE)
    window_s: float = opt(60.0, 5, 60)
    reason_text: str = opt("主管现场核验后放行", maxlen=100)


def rules(sec: Section, offline: Section) -> RulesConfig:
    """[rules] (and [offline] max_age_h) → RulesConfig; the tables default to the law's."""
    stamped = sec.get_float("tare_tolerance_pct", default(RulesConfig, "tare_tolerance_pct"),
                            minval=0.5, maxval=50)
    values = read(sec, RulesConfig, tare_tolerance_pct=stamped)
    if values["nominal_tare_tolerance_pct"] < stamped:
        raise sec.error("nominal_tare_tolerance_pct", f"must be at least {stamped}, "
                        f"got {values['nominal_tare_tolerance_pct']}")
    lives = []
    for s in sec.subs("service_life"):
        lives.append(ServiceLife(
            variety=s.get_str("variety", choices=tuple(VARIETIES)),
            media=tuple(s.get_str_list("media", [], choices=MEDIUM_CODES)),
            years=s.get_int("years", minval=1, maxval=100)))
        s.done()
    types = []
    for s in sec.subs("cylinder_types"):
        vol = s.get_float("volume_l", 0.0, minval=0, maxval=10000)  # 0: any volume (None)
        types.append(CylinderType(
            medium=s.get_str("medium", choices=MEDIUM_CODES),
            net_kg=s.get_float("net_kg", minval=0.1, maxval=5000),
            tare_kg=s.get_float("tare_kg", minval=0.1, maxval=5000),
            volume_l=vol or None))
        s.done()
    sec.done()
    max_age = offline.get_float("max_age_h", RulesConfig.offline_max_age_h, minval=0,
                                maxval=24 * 365)
    return RulesConfig(offline_max_age_h=max_age,
                       service_life=tuple(lives) or DEFAULT_SERVICE_LIFE,
                       cylinder_types=tuple(types) or DEFAULT_CYLINDER_TYPES, **values)


def override(sec: Section) -> OverrideConfig:
    """[override] → OverrideConfig (reasons only from OVERRIDABLE)."""
    cfg = OverrideConfig(**read(sec, OverrideConfig))
    sec.done()
    return cfg
