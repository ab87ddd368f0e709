"""[[rigs]], [rigs.registers], [[rigs.readers]]: each filling rig, its controller and its readers."""

from __future__ import annotations

from dataclasses import dataclass, fields
from urllib.parse import urlsplit

from station.config.rules import MEDIUM_CODES
from station.config.spec import get, opt, read
from station.confread import Section


@dataclass(frozen=True)
class ReaderConfig:
    id: str
    kind: str  # scanner | rfid (serial lines) | camera (OpenCV frames, QR decoding)
    port: str = ""  # serial kinds (required there)
    baudrate: int = opt(9600, 1200, 921600)
    terminator: str = opt("any", choices=("any", "cr", "lf", "crlf"))
    strip_aim: bool = True  # default: true for a scanner, false for rfid
    prefix: str = opt("", allow_empty=True, maxlen=16)
    suffix: str = opt("", allow_empty=True, maxlen=16)
    max_length: int = opt(1000, 16, 8192)
    dedup_s: float = opt(3.0, 0, 600)
    source: str = ""  # camera (required): device index, /dev/video*, rtsp:// URL, or a file
    decoder: str = opt("zxing", choices=("zxing", "pyzbar", "opencv"))  # camera
    fps: float = opt(10.0, 0.5, 60)  # camera: frames decoded per second
    roi: tuple[int, int, int, int] | None = None  # camera (required): x, y, width, height
    confirm_frames: int = opt(3, 1, 30)  # camera: consecutive frames showing one code
    max_frame_age_s: float = opt(1.0, 0.05, 10)  # camera (live source): never decode older
    silent_warn_min: float = opt(10.0, 0, 1440)  # camera: warn when nothing decodes (0: never)


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
    # A "checks OK" button on the controller ([checks] ask = "button"): the discrete input it
    # sets while pressed; -1: the rig has none.
    checks_ok: int = -1


@dataclass(frozen=True)
class ModbusEndpoint:
    kind: str  # "tcp" | "rtu"
    host: str = ""
    port: int = 502
    device: str = ""  # serial device for RTU
    baudrate: int = opt(9600, 1200, 921600)
    parity: str = opt("N", choices=("N", "E", "O"))
    stopbits: int = opt(1, 1, 2)
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
    unit_id: int = opt(1, 1, 247)
    watchdog_ms: int = opt(3000, 300, 60000)
    poll_ms: int = opt(200, 20, 5000)  # at most a third of watchdog_ms
    idle_poll_ms: int = opt(1000, 20, 10000)  # no cylinder, no permit, nothing pending: this often
    timeout_ms: int = opt(1000, 50, 10000)  # at most a third of watchdog_ms
    permit_timeout_s: float = opt(120.0, 1, 3600)
    # A scanner or RFID reading made while no cylinder stood on the scale waits this long for
    # one to be placed (then it is judged for that cylinder), else it is void. Cameras: never.
    hold_reading_s: float = opt(5.0, 0, 60)
    buzzer_ms: int = opt(300, 0, 5000)
    registers: RegisterMap = RegisterMap()
    readers: tuple[ReaderConfig, ...] = ()


def _endpoint(sec: Section) -> ModbusEndpoint:
    url = sec.get_str("modbus")
    parts = urlsplit(url)
    if parts.scheme == "tcp":
        try:
            port = parts.port or ModbusEndpoint.port
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
        return ModbusEndpoint("rtu", device=parts.path, **read(sec, ModbusEndpoint))
    raise sec.error("modbus", f"{url!r}: want tcp://host:port or rtu:///dev/ttyXXX")


def _registers(sec: Section) -> RegisterMap:
    values = {f.name: sec.get_int(f.name, f.default, minval=-1 if f.name == "checks_ok" else 0,
                                  maxval=65535)
              for f in fields(RegisterMap)}
    sec.done()
    return RegisterMap(**values)


def _reader(sec: Section, rig_id: str, index: int) -> ReaderConfig:
    kind = sec.get_str("kind", choices=READER_KINDS)
    common = {"id": sec.get_str("id", f"{rig_id}-reader{index + 1}", maxlen=64),
              "kind": kind, "dedup_s": get(sec, ReaderConfig, "dedup_s")}
    foreign = CAMERA_KEYS if kind != "camera" else SERIAL_KEYS
    for key in foreign:
        if key in sec.data:
            raise sec.error(key, f"does not apply to a reader of kind {kind!r}")
    r = ReaderConfig(**common, **(_camera(sec) if kind == "camera" else _serial(sec, kind)))
    sec.done()
    return r


def _serial(sec: Section, kind: str) -> dict:
    out = {"port": sec.get_str("port", maxlen=255),
           "strip_aim": sec.get_bool("strip_aim", kind == "scanner")}
    return out | {k: get(sec, ReaderConfig, k) for k in SERIAL_KEYS if k not in out}


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
    out = {"source": sec.get_str("source", maxlen=1000), "roi": tuple(roi)}
    return out | {k: get(sec, ReaderConfig, k) for k in CAMERA_KEYS if k not in out}


def rig(sec: Section) -> RigConfig:
    """One [[rigs]] table → RigConfig; poll and timeout at most a third of the watchdog."""
    rig_id = sec.get_str("id", maxlen=32, pattern=r"[A-Za-z0-9_.-]+")
    cfg = RigConfig(
        id=rig_id,
        medium=sec.get_str("medium", choices=MEDIUM_CODES),
        modbus=_endpoint(sec),
        registers=_registers(sec.sub("registers")),
        readers=tuple(_reader(s, rig_id, i) for i, s in enumerate(sec.subs("readers"))),
        **read(sec, RigConfig))
    if cfg.poll_ms * 3 > cfg.watchdog_ms:
        raise sec.error("poll_ms", "must be at most a third of watchdog_ms")
    if cfg.timeout_ms * 3 > cfg.watchdog_ms:
        raise sec.error("timeout_ms", "must be at most a third of watchdog_ms")
    if cfg.idle_poll_ms < cfg.poll_ms:
        raise sec.error("idle_poll_ms", "must be at least poll_ms")
    sec.done()
    return cfg
