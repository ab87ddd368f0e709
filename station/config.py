"""The station's configuration: one TOML file, validated strictly at start-up."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from station.city.profile import DEFAULT_CODES, DEFAULT_SIGN, SIGN_FIELDS, CityProfile
from station.confread import Section
from station.core.codes import MEDIA, OPERATOR_NAME_MAX, UNIT_NAME_MAX, VARIETIES
from station.errors import ConfigError

MEDIUM_CODES = tuple(MEDIA)
HEX = r"[0-9A-Fa-f]+"


@dataclass(frozen=True)
class CityPaths:
    token: str = "/api/v1/auth/token"
    query: str = "/api/v1/cylinders/query"
    bind: str = "/api/v1/tags/bind"
    submit: str = "/api/v1/fillings/submit"
    inspections: str = "/api/v1/inspections/submit"
    trace: str = "/api/v1/trace/query"


@dataclass(frozen=True)
class CityConfig:
    base_url: str
    app_key: str
    app_secret: str = field(repr=False)  # never logged
    connect_timeout_s: float = 1.0
    read_timeout_s: float = 2.0
    decision_deadline_s: float = 3.0
    probe_deadline_s: float = 5.0  # the whole time `station doctor` waits for each city call
    token_margin_s: float = 60.0
    ca_bundle: str = ""
    cert_sha256: str = ""  # a pin: the SHA-256 fingerprint of the city's certificate (hex)
    max_reply_bytes: int = 4 * 1024 * 1024  # a longer answer is refused (transient)
    workers: int = 4
    paths: CityPaths = CityPaths()
    profile: CityProfile = CityProfile()


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
    inspection_warning_days: int = 30
    refill_warning_min: float = 30.0
    offline_max_age_h: float = 72.0
    max_clock_skew_s: float = 300.0  # refuse fills while the clock is this far off the city's
    service_life: tuple[ServiceLife, ...] = DEFAULT_SERVICE_LIFE
    cylinder_types: tuple[CylinderType, ...] = DEFAULT_CYLINDER_TYPES
    # The cylinder weighs like its record (interlock-rules.md, "the cylinder on the scale"): the
    # stable gross before a fill may lie this far below the tare, in % of the tare, at least
    # tare_tolerance_min_kg; the type table's nominal tare gets the wider nominal_… window.
    tare_tolerance_pct: float = 5.0
    nominal_tare_tolerance_pct: float = 15.0
    tare_tolerance_min_kg: float = 0.3


@dataclass(frozen=True)
class ReaderConfig:
    id: str
    kind: str  # scanner | rfid (serial lines) | camera (OpenCV frames, QR decoding)
    port: str = ""  # serial kinds
    baudrate: int = 9600
    terminator: str = "any"  # any | cr | lf | crlf
    strip_aim: bool = True
    prefix: str = ""
    suffix: str = ""
    max_length: int = 1000
    dedup_s: float = 3.0
    source: str = ""  # camera: device index, /dev/video*, rtsp:// URL, or a video/image file
    decoder: str = "zxing"  # camera: zxing | pyzbar | opencv
    fps: float = 10.0  # camera: frames decoded per second
    roi: tuple[int, int, int, int] | None = None  # camera (required): x, y, width, height
    confirm_frames: int = 3  # camera: consecutive frames showing one code before it is read
    max_frame_age_s: float = 1.0  # camera (live source): never decode an older frame
    silent_warn_min: float = 10.0  # camera: warn when nothing decodes for this long (0: never)


READER_KINDS = ("scanner", "rfid", "camera")
SERIAL_KEYS = ("port", "baudrate", "terminator", "strip_aim", "prefix", "suffix", "max_length")
CAMERA_KEYS = ("source", "decoder", "fps", "roi", "confirm_frames", "max_frame_age_s",
               "silent_warn_min")


@dataclass(frozen=True)
class RegisterMap:
    """Addresses of the rig controller's points (contracts/rig-modbus.md); all configurable."""

    fill_permit: int = 0
    lamp_green: int = 1
    lamp_red: int = 2
    buzzer: int = 3
    valve_open: int = 0
    cylinder_present: int = 1
    estop: int = 2
    fill_done: int = 3
    gross_g: int = 0
    scale_status: int = 2
    fault_code: int = 3
    heartbeat: int = 0
    watchdog_ms: int = 1
    target_net_g: int = 2
    tare_g: int = 4


@dataclass(frozen=True)
class ModbusEndpoint:
    kind: str  # "tcp" | "rtu"
    host: str = ""
    port: int = 502
    device: str = ""  # serial device for RTU
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8

    @property
    def key(self) -> str:
        """Rigs that share an endpoint share one connection (one RS-485 line, one gateway)."""
        return f"tcp://{self.host}:{self.port}" if self.kind == "tcp" else f"rtu://{self.device}"


@dataclass(frozen=True)
class RigConfig:
    id: str
    medium: str
    modbus: ModbusEndpoint
    unit_id: int = 1
    watchdog_ms: int = 3000
    poll_ms: int = 200
    idle_poll_ms: int = 1000  # no cylinder, no permit, nothing pending: polled this often
    timeout_ms: int = 1000
    permit_timeout_s: float = 120.0
    # A scanner or RFID reading made while no cylinder stood on the scale waits this long for
    # one to be placed (then it is judged for that cylinder), else it is void. Cameras: never.
    hold_reading_s: float = 5.0
    buzzer_ms: int = 300
    registers: RegisterMap = RegisterMap()
    readers: tuple[ReaderConfig, ...] = ()


@dataclass(frozen=True)
class Operator:
    name: str
    badge: str = ""
    role: str = "operator"  # operator | supervisor


@dataclass(frozen=True)
class FillConfig:
    tolerance_kg: float = 0.5  # post-fill: beyond target ± this is overfill / underfill
    max_residual_kg: float = 0.5  # pre-fill: more gas than this left in the cylinder is noted
    refuse_residual: bool = False  # … and refused when true
    settle_timeout_s: float = 10.0  # wait this long for a stable scale after the valve closed
    start_gain_kg: float = 1.0  # a gain above this, valve never seen open: a fill all the same


@dataclass(frozen=True)
class SyncConfig:
    rate_per_s: float = 20.0  # at most this many submissions a second (0: no limit)
    backoff_cap_s: float = 300.0
    backlog_warn_h: float = 24.0
    submit_timeout_s: float = 10.0


# Never overridable (interlock-rules.md): a supervisor cannot fill these.
NEVER_OVERRIDE = ("NOT_REGISTERED", "SCRAPPED", "STOPPED", "INSPECTION_OVERDUE",
                  "SERVICE_LIFE_EXCEEDED", "TAG_FOREIGN", "BLOCKLISTED", "AMBIGUOUS_TAGS",
                  "NO_CYLINDER", "MASS_MISMATCH", "CYLINDER_FULL")


# What a station may make overridable: administrative gaps, never the physical rig, the
# operator, the medium, or the cylinder's condition.
OVERRIDABLE = ("CITY_UNAVAILABLE", "NO_USE_REGISTRATION", "FOREIGN_UNIT")


@dataclass(frozen=True)
class OverrideConfig:
    reasons: tuple[str, ...] = ("CITY_UNAVAILABLE",)
    window_s: float = 60.0
    reason_text: str = "主管现场核验后放行"


@dataclass(frozen=True)
class RetentionConfig:
    keep_years: int = 2  # records younger than this are never pruned; the law wants 2 at least


@dataclass(frozen=True)
class BackupConfig:
    dir: str = ""  # where `station backup` writes when no folder is given (a USB stick)
    keep: int = 7  # copies kept there; older ones are removed after a verified backup


@dataclass(frozen=True)
class DoctorConfig:
    max_clock_skew_s: float = 60.0  # `station doctor` fails beyond this difference to the city
    min_free_mb: int = 200  # … and when less is free under the store's folder


@dataclass(frozen=True)
class WebUser:
    name: str
    password_hash: str = field(repr=False)  # scrypt$N$r$p$salt$hash (station web --hash-password)


@dataclass(frozen=True)
class WebConfig:
    """The web pages (`station web`): operator screens and the managers' pages."""

    bind: str = "127.0.0.1"
    port: int = 8080  # 0: any free port (tests)
    session_hours: float = 12.0
    max_failed_logins: int = 5
    lockout_minutes: float = 15.0
    users: tuple[WebUser, ...] = ()
    allow: tuple[str, ...] = ()  # the tablets' networks (CIDR) besides loopback
    screen_sound: bool = False  # the operator screens beep on a refusal, overfill, …


PASSWORD_HASH = r"scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+"


@dataclass(frozen=True)
class StationConfig:
    file: str
    unit_name: str
    unit_code: str
    fills_for: tuple[str, ...]
    store: str
    qr_hosts: tuple[str, ...]
    qr_allow_http: bool
    city: CityConfig
    rules: RulesConfig
    rigs: tuple[RigConfig, ...]
    operators: tuple[Operator, ...] = ()
    offline_recheck_s: float = 15.0  # after the city failed, go to the cache this long
    fill: FillConfig = FillConfig()
    sync: SyncConfig = SyncConfig()
    override: OverrideConfig = OverrideConfig()
    web: WebConfig = WebConfig()
    retention: RetentionConfig = RetentionConfig()
    backup: BackupConfig = BackupConfig()
    doctor: DoctorConfig = DoctorConfig()

    def rig(self, rig_id: str) -> RigConfig:
        for rig in self.rigs:
            if rig.id == rig_id:
                return rig
        raise KeyError(rig_id)

    def badge(self, uid: str) -> Operator | None:
        for op in self.operators:
            if op.badge and op.badge.upper() == uid.upper():
                return op
        return None


def load(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> StationConfig:
    """Read and validate the configuration file; raise ConfigError naming file, section, key."""
    file = str(path)
    env = dict(os.environ) if env is None else env
    try:
        raw = tomllib.loads(Path(file).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(file, "-", None, "file not found") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(file, "-", None, f"not valid TOML: {err}") from err
    top = Section(file, "", raw)
    station = top.sub("station", required=True)
    unit_name = station.get_str("unit_name", maxlen=UNIT_NAME_MAX)
    unit_code = station.get_str("unit_code", maxlen=50)
    fills_for = tuple(station.get_str_list("fills_for", [], maxlen=UNIT_NAME_MAX))
    store = station.get_str("store")
    if not Path(store).is_absolute():
        store = str((Path(file).resolve().parent / store).resolve())
    station.done()
    qr = top.sub("qr")
    qr_hosts = tuple(h.lower() for h in qr.get_str_list("hosts", maxlen=253,
                                                        pattern=r"[A-Za-z0-9.-]+(:\d+)?"))
    if not qr_hosts:
        raise qr.error("hosts", "must list at least one host")
    qr_allow_http = qr.get_bool("allow_http", False)
    qr.done()
    city = _city(top.sub("city", required=True), file, env)
    offline = top.sub("offline")
    rules = _rules(top.sub("rules"), offline)
    recheck_s = offline.get_float("recheck_s", 15.0, minval=0, maxval=3600)
    offline.done()
    operators = tuple(_operator(s) for s in top.subs("operators"))
    _unique(top, "operators", [o.name for o in operators], "name")
    _unique(top, "operators", [o.badge.upper() for o in operators if o.badge], "badge")
    fill, sync = _fill(top.sub("fill")), _sync(top.sub("sync"))
    override = _override(top.sub("override"))
    web = _web(top.sub("web"))
    retention, backup = _retention(top.sub("retention")), _backup(top.sub("backup"), file)
    doctor = _doctor(top.sub("doctor"))
    rigs = tuple(_rig(s, rules) for s in top.subs("rigs", required=True))
    if not rigs:
        raise top.error("rigs", "at least one [[rigs]] is required")
    _unique(top, "rigs", [r.id for r in rigs], "id")
    _unique(top, "rigs", [(r.modbus.key, r.unit_id) for r in rigs], "modbus + unit_id")
    _unique(top, "rigs", [rd.port or rd.source for r in rigs for rd in r.readers],
            "readers.port/source")
    _unique(top, "rigs", [rd.id for r in rigs for rd in r.readers], "readers.id")
    top.done()
    return StationConfig(file=file, unit_name=unit_name, unit_code=unit_code, fills_for=fills_for,
                         store=store, qr_hosts=qr_hosts, qr_allow_http=qr_allow_http, city=city,
                         rules=rules, rigs=rigs, operators=operators, web=web,
                         offline_recheck_s=recheck_s, fill=fill, sync=sync, override=override,
                         retention=retention, backup=backup, doctor=doctor)


def _unique(sec: Section, key: str, values: list, what: str) -> None:
    seen = set()
    for v in values:
        if v in seen:
            raise sec.error(key, f"{what} {v!r} appears twice")
        seen.add(v)


def _city(sec: Section, file: str, env: dict[str, str]) -> CityConfig:
    base_url = sec.get_str("base_url").rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise sec.error("base_url", "must be an https:// (or, for a simulator, http://) URL")
    app_key = sec.get_str("app_key", maxlen=100)
    secret_file = sec.get_str("secret_file", "", allow_empty=True)
    secret_env = sec.get_str("secret_env", "STATION_APP_SECRET", pattern=r"[A-Z_][A-Z0-9_]*")
    secret = env.get(secret_env, "")
    creds = env.get("CREDENTIALS_DIRECTORY", "")  # systemd's LoadCredential=app_secret:FILE
    if not secret_file and creds and Path(creds, "app_secret").is_file():
        secret_file = str(Path(creds, "app_secret"))
    if secret_file:
        sfile = Path(secret_file)
        if not sfile.is_absolute():
            sfile = Path(file).resolve().parent / sfile
        try:
            secret = sfile.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise sec.error("secret_file", f"cannot read {sfile}: {err.strerror}") from err
    if not secret:
        raise sec.error("secret_file", f"no app secret: give secret_file, load the credential "
                        f"app_secret (systemd) or set ${secret_env}")
    ca_bundle = sec.get_str("ca_bundle", "", allow_empty=True)
    if ca_bundle and not Path(ca_bundle).is_file():
        raise sec.error("ca_bundle", f"{ca_bundle} is not a file")
    pin = sec.get_str("cert_sha256", "", allow_empty=True, pattern=r"([0-9A-Fa-f]{2}:?){32}")
    if pin and not base_url.startswith("https://"):
        raise sec.error("cert_sha256", "a certificate pin needs an https:// base_url")
    max_reply = sec.get_int("max_reply_kb", 4096, minval=16, maxval=256 * 1024) * 1024
    connect = sec.get_float("connect_timeout_s", 1.0, minval=0.05, maxval=30)
    read = sec.get_float("read_timeout_s", 2.0, minval=0.05, maxval=60)
    deadline = sec.get_float("decision_deadline_s", 3.0, minval=0.2, maxval=30)
    probe = sec.get_float("probe_deadline_s", 5.0, minval=0.2, maxval=60)
    margin = sec.get_float("token_margin_s", 60.0, minval=0, maxval=3600)
    workers = sec.get_int("workers", 4, minval=1, maxval=64)
    p = sec.sub("paths")
    d = CityPaths()
    paths = CityPaths(*(p.get_str(k, getattr(d, k), pattern=r"/[^\s]*")
                        for k in ("token", "query", "bind", "submit", "inspections", "trace")))
    p.done()
    profile = _profile(sec.sub("profile"))
    sec.done()
    return CityConfig(base_url=base_url, app_key=app_key, app_secret=secret,
                      connect_timeout_s=connect, read_timeout_s=read,
                      decision_deadline_s=deadline, probe_deadline_s=probe,
                      token_margin_s=margin, ca_bundle=ca_bundle,
                      cert_sha256=pin.replace(":", "").lower(), max_reply_bytes=max_reply,
                      workers=workers, paths=paths, profile=profile)


NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"


def _profile(sec: Section) -> CityProfile:
    """[city.profile]: the deployment's envelope keys, codes, field names and signature."""
    d = CityProfile()
    keys = {k: sec.get_str(k, getattr(d, k), maxlen=64, pattern=NAME)
            for k in ("code_key", "message_key", "data_key", "token_key", "expires_key",
                      "auth_header", "sign_header")}
    if len({keys["code_key"], keys["message_key"], keys["data_key"]}) < 3:
        raise sec.error("data_key", "code_key, message_key and data_key must differ")
    scheme = sec.get_str("auth_scheme", d.auth_scheme, maxlen=32, allow_empty=True,
                         pattern=r"[A-Za-z-]*")
    sign_in = sec.get_str("sign_in", d.sign_in, choices=("body", "header"))
    template = sec.get_str("string_to_sign", DEFAULT_SIGN, maxlen=200)
    try:
        template.format(**dict.fromkeys(SIGN_FIELDS, ""))
    except (KeyError, IndexError, ValueError) as err:
        raise sec.error("string_to_sign", f"may name only {{{'}, {'.join(SIGN_FIELDS)}}} "
                        f"({err!r})") from err
    c = sec.sub("codes")
    codes = {m: tuple(c.get_str_list(m, list(v), maxlen=32)) for m, v in DEFAULT_CODES.items()}
    c.done()
    seen: dict[str, str] = {}
    for meaning, values in codes.items():
        if not values:
            raise c.error(meaning, "needs at least one code")
        for v in values:
            if v in seen:
                raise c.error(meaning, f"code {v!r} also means {seen[v]}")
            seen[v] = meaning
    f = sec.sub("fields")
    fields = {k: f.get_str(k, maxlen=64, pattern=NAME) for k in list(f.data)}
    f.done()
    if len(set(fields.values())) < len(fields):
        raise f.error(None, "two fields are given the same name")
    sec.done()
    return CityProfile(**keys, auth_scheme=scheme, sign_in=sign_in, string_to_sign=template,
                       codes=codes, fields=fields)


def _rules(sec: Section, offline: Section) -> RulesConfig:
    warn_days = sec.get_int("inspection_warning_days", 30, minval=0, maxval=365)
    refill = sec.get_float("refill_warning_min", 30.0, minval=0, maxval=24 * 60)
    skew = sec.get_float("max_clock_skew_s", 300.0, minval=0, maxval=86400)
    stamped = sec.get_float("tare_tolerance_pct", 5.0, minval=0.5, maxval=50)
    nominal = sec.get_float("nominal_tare_tolerance_pct", 15.0, minval=stamped, maxval=50)
    floor_kg = sec.get_float("tare_tolerance_min_kg", 0.3, minval=0.02, maxval=20)
    lives = []
    for s in sec.subs("service_life"):
        lives.append(ServiceLife(
            variety=s.get_str("variety", choices=tuple(VARIETIES)),
            media=tuple(s.get_str_list("media", [], choices=MEDIUM_CODES)),
            years=s.get_int("years", minval=1, maxval=100)))
        s.done()
    types = []
    for s in sec.subs("cylinder_types"):
        vol = s.get_float("volume_l", 0.0, minval=0, maxval=10000)
        types.append(CylinderType(
            medium=s.get_str("medium", choices=MEDIUM_CODES),
            net_kg=s.get_float("net_kg", minval=0.1, maxval=5000),
            tare_kg=s.get_float("tare_kg", minval=0.1, maxval=5000),
            volume_l=vol or None))
        s.done()
    sec.done()
    max_age = offline.get_float("max_age_h", 72.0, minval=0, maxval=24 * 365)
    return RulesConfig(inspection_warning_days=warn_days, refill_warning_min=refill,
                       offline_max_age_h=max_age, max_clock_skew_s=skew,
                       tare_tolerance_pct=stamped, nominal_tare_tolerance_pct=nominal,
                       tare_tolerance_min_kg=floor_kg,
                       service_life=tuple(lives) or DEFAULT_SERVICE_LIFE,
                       cylinder_types=tuple(types) or DEFAULT_CYLINDER_TYPES)


def _fill(sec: Section) -> FillConfig:
    cfg = FillConfig(
        tolerance_kg=sec.get_float("tolerance_kg", 0.5, minval=0.01, maxval=100),
        max_residual_kg=sec.get_float("max_residual_kg", 0.5, minval=0, maxval=1000),
        refuse_residual=sec.get_bool("refuse_residual", False),
        settle_timeout_s=sec.get_float("settle_timeout_s", 10.0, minval=0.5, maxval=120),
        start_gain_kg=sec.get_float("start_gain_kg", 1.0, minval=0.2, maxval=100))
    sec.done()
    return cfg


def _sync(sec: Section) -> SyncConfig:
    cfg = SyncConfig(
        rate_per_s=sec.get_float("rate_per_s", 20.0, minval=0, maxval=10000),
        backoff_cap_s=sec.get_float("backoff_cap_s", 300.0, minval=1, maxval=86400),
        backlog_warn_h=sec.get_float("backlog_warn_h", 24.0, minval=0.01, maxval=24 * 365),
        submit_timeout_s=sec.get_float("submit_timeout_s", 10.0, minval=0.5, maxval=120))
    sec.done()
    return cfg


def _override(sec: Section) -> OverrideConfig:
    reasons = tuple(sec.get_str_list("reasons", ["CITY_UNAVAILABLE"], choices=OVERRIDABLE))
    cfg = OverrideConfig(reasons=reasons,
                         window_s=sec.get_float("window_s", 60.0, minval=5, maxval=60),
                         reason_text=sec.get_str("reason_text", "主管现场核验后放行", maxlen=100))
    sec.done()
    return cfg


def _retention(sec: Section) -> RetentionConfig:
    cfg = RetentionConfig(keep_years=sec.get_int("keep_years", 2, minval=2, maxval=100))
    sec.done()
    return cfg


def _backup(sec: Section, file: str) -> BackupConfig:
    folder = sec.get_str("dir", "", allow_empty=True)
    if folder and not Path(folder).is_absolute():
        folder = str((Path(file).resolve().parent / folder).resolve())
    cfg = BackupConfig(dir=folder, keep=sec.get_int("keep", 7, minval=1, maxval=1000))
    sec.done()
    return cfg


def _doctor(sec: Section) -> DoctorConfig:
    cfg = DoctorConfig(
        max_clock_skew_s=sec.get_float("max_clock_skew_s", 60.0, minval=0, maxval=86400),
        min_free_mb=sec.get_int("min_free_mb", 200, minval=0, maxval=10_000_000))
    sec.done()
    return cfg


def _web(sec: Section) -> WebConfig:
    users = []
    for s in sec.subs("users"):
        users.append(WebUser(name=s.get_str("name", maxlen=64, pattern=r"[^\s\x00-\x1f]+"),
                             password_hash=s.get_str("password_hash", maxlen=400,
                                                     pattern=PASSWORD_HASH)))
        s.done()
    _unique(sec, "users", [u.name for u in users], "name")
    cfg = WebConfig(
        bind=sec.get_str("bind", "127.0.0.1", maxlen=253, pattern=r"[A-Za-z0-9.:-]+"),
        port=sec.get_int("port", 8080, minval=0, maxval=65535),
        session_hours=sec.get_float("session_hours", 12.0, minval=0.05, maxval=24 * 30),
        max_failed_logins=sec.get_int("max_failed_logins", 5, minval=1, maxval=100),
        lockout_minutes=sec.get_float("lockout_minutes", 15.0, minval=0.1, maxval=24 * 60),
        users=tuple(users), allow=_networks(sec),
        screen_sound=sec.get_bool("screen_sound", False))
    loopback = cfg.bind == "localhost" or cfg.bind.startswith("127.") or cfg.bind == "::1"
    if not loopback and not cfg.allow:
        raise sec.error("allow", f"bind = {cfg.bind!r} serves the LAN: list the tablets' "
                        "networks, e.g. allow = [\"192.168.10.0/24\"] (the web unit's "
                        "IPAddressAllow= is written from it)")
    sec.done()
    return cfg


def _networks(sec: Section) -> tuple[str, ...]:
    """[web] allow: networks in CIDR (or single addresses), normalised; never "any"."""
    out = []
    for text in sec.get_str_list("allow", [], maxlen=64, pattern=r"[0-9A-Fa-f.:/]+"):
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError as err:
            raise sec.error("allow", f"{text!r} is not a network: {err}") from err
        if net.prefixlen == 0:
            raise sec.error("allow", f"{text!r} is every address: list the station's LAN")
        out.append(str(net))
    return tuple(out)


def _operator(sec: Section) -> Operator:
    op = Operator(name=sec.get_str("name", maxlen=OPERATOR_NAME_MAX),
                  badge=sec.get_str("badge", "", allow_empty=True, maxlen=64, pattern=HEX),
                  role=sec.get_str("role", "operator", choices=("operator", "supervisor")))
    sec.done()
    return op


def _endpoint(sec: Section) -> ModbusEndpoint:
    url = sec.get_str("modbus")
    parts = urlsplit(url)
    if parts.scheme == "tcp":
        try:
            port = parts.port or 502
        except ValueError as err:
            raise sec.error("modbus", f"bad port in {url!r}") from err
        if not parts.hostname:
            raise sec.error("modbus", f"no host in {url!r}; want tcp://host:port")
        for k in ("baudrate", "parity", "stopbits"):
            if k in sec.data:
                raise sec.error(k, "only applies to an rtu:// endpoint")
        return ModbusEndpoint("tcp", host=parts.hostname, port=port)
    if parts.scheme == "rtu":
        if not parts.path:
            raise sec.error("modbus", f"no serial device in {url!r}; want rtu:///dev/ttyUSB0")
        return ModbusEndpoint(
            "rtu", device=parts.path,
            baudrate=sec.get_int("baudrate", 9600, minval=1200, maxval=921600),
            parity=sec.get_str("parity", "N", choices=("N", "E", "O")),
            stopbits=sec.get_int("stopbits", 1, minval=1, maxval=2))
    raise sec.error("modbus", f"{url!r}: want tcp://host:port or rtu:///dev/ttyXXX")


def _registers(sec: Section) -> RegisterMap:
    d = RegisterMap()
    values = {k: sec.get_int(k, getattr(d, k), minval=0, maxval=65535)
              for k in RegisterMap.__dataclass_fields__}
    sec.done()
    return RegisterMap(**values)


def _reader(sec: Section, rig_id: str, index: int) -> ReaderConfig:
    kind = sec.get_str("kind", choices=READER_KINDS)
    common = {"id": sec.get_str("id", f"{rig_id}-reader{index + 1}", maxlen=64),
              "kind": kind, "dedup_s": sec.get_float("dedup_s", 3.0, minval=0, maxval=600)}
    foreign = CAMERA_KEYS if kind != "camera" else SERIAL_KEYS
    for key in foreign:
        if key in sec.data:
            raise sec.error(key, f"does not apply to a reader of kind {kind!r}")
    r = ReaderConfig(**common, **(_camera(sec) if kind == "camera" else _serial(sec, kind)))
    sec.done()
    return r


def _serial(sec: Section, kind: str) -> dict:
    return {
        "port": sec.get_str("port", maxlen=255),
        "baudrate": sec.get_int("baudrate", 9600, minval=1200, maxval=921600),
        "terminator": sec.get_str("terminator", "any", choices=("any", "cr", "lf", "crlf")),
        "strip_aim": sec.get_bool("strip_aim", kind == "scanner"),
        "prefix": sec.get_str("prefix", "", allow_empty=True, maxlen=16),
        "suffix": sec.get_str("suffix", "", allow_empty=True, maxlen=16),
        "max_length": sec.get_int("max_length", 1000, minval=16, maxval=8192)}


def _camera(sec: Section) -> dict:
    if "roi" not in sec.data:  # the camera must look at the scale, not the whole shop floor
        raise sec.error("roi", "is required for a camera: [x, y, width, height] in pixels of "
                        "the frame, around the tag of a cylinder standing on the scale")
    roi = sec.data["roi"]
    if not (isinstance(roi, list) and len(roi) == 4 and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in roi)
            and roi[2] > 0 and roi[3] > 0):
        raise sec.error("roi", "must be [x, y, width, height] in pixels (width, height > 0)")
    sec.used.add("roi")
    return {"source": sec.get_str("source", maxlen=1000),
            "decoder": sec.get_str("decoder", "zxing", choices=("zxing", "pyzbar", "opencv")),
            "fps": sec.get_float("fps", 10.0, minval=0.5, maxval=60),
            "roi": tuple(roi),
            "confirm_frames": sec.get_int("confirm_frames", 3, minval=1, maxval=30),
            "max_frame_age_s": sec.get_float("max_frame_age_s", 1.0, minval=0.05, maxval=10),
            "silent_warn_min": sec.get_float("silent_warn_min", 10.0, minval=0, maxval=1440)}


def _rig(sec: Section, rules: RulesConfig) -> RigConfig:
    rig_id = sec.get_str("id", maxlen=32, pattern=r"[A-Za-z0-9_.-]+")
    rig = RigConfig(
        id=rig_id,
        medium=sec.get_str("medium", choices=MEDIUM_CODES),
        modbus=_endpoint(sec),
        unit_id=sec.get_int("unit_id", 1, minval=1, maxval=247),
        watchdog_ms=sec.get_int("watchdog_ms", 3000, minval=300, maxval=60000),
        poll_ms=sec.get_int("poll_ms", 200, minval=20, maxval=5000),
        idle_poll_ms=sec.get_int("idle_poll_ms", 1000, minval=20, maxval=10000),
        timeout_ms=sec.get_int("timeout_ms", 1000, minval=50, maxval=10000),
        permit_timeout_s=sec.get_float("permit_timeout_s", 120.0, minval=1, maxval=3600),
        hold_reading_s=sec.get_float("hold_reading_s", 5.0, minval=0, maxval=60),
        buzzer_ms=sec.get_int("buzzer_ms", 300, minval=0, maxval=5000),
        registers=_registers(sec.sub("registers")),
        readers=tuple(_reader(s, rig_id, i) for i, s in enumerate(sec.subs("readers"))))
    if rig.poll_ms * 3 > rig.watchdog_ms:
        raise sec.error("poll_ms", "must be at most a third of watchdog_ms")
    if rig.timeout_ms * 3 > rig.watchdog_ms:
        raise sec.error("timeout_ms", "must be at most a third of watchdog_ms")
    if rig.idle_poll_ms < rig.poll_ms:
        raise sec.error("idle_poll_ms", "must be at least poll_ms")
    sec.done()
    return rig
