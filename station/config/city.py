"""[city], [city.paths], [city.profile]: where the city system is, how to reach and sign for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from station.city.profile import DEFAULT_CODES, SIGN_FIELDS, CityProfile
from station.config.spec import opt, read
from station.confread import Section

NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"


@dataclass(frozen=True)
class CityPaths:
    token: str = opt("/api/v1/auth/token", pattern=r"/[^\s]*")
    query: str = opt("/api/v1/cylinders/query", pattern=r"/[^\s]*")
    bind: str = opt("/api/v1/tags/bind", pattern=r"/[^\s]*")
    submit: str = opt("/api/v1/fillings/submit", pattern=r"/[^\s]*")
    inspections: str = opt("/api/v1/inspections/submit", pattern=r"/[^\s]*")
    trace: str = opt("/api/v1/trace/query", pattern=r"/[^\s]*")


@dataclass(frozen=True)
class CityConfig:
    base_url: str
    app_key: str
    app_secret: str = field(repr=False)  # never logged
    connect_timeout_s: float = opt(1.0, 0.05, 30)
    read_timeout_s: float = opt(2.0, 0.05, 60)
    decision_deadline_s: float = opt(3.0, 0.2, 30)
    probe_deadline_s: float = opt(5.0, 0.2, 60)  # the whole time `station doctor` waits per call
    token_margin_s: float = opt(60.0, 0, 3600)
    ca_bundle: str = opt("", allow_empty=True)
    # a pin: the SHA-256 fingerprint of the city's certificate (hex)
    cert_sha256: str = opt("", allow_empty=True, pattern=r"([0-9A-Fa-f]{2}:?){32}")
    max_reply_bytes: int = 4 * 1024 * 1024  # a longer answer is refused (transient); key: _kb
    workers: int = opt(4, 1, 64)
    paths: CityPaths = CityPaths()
    profile: CityProfile = CityProfile()


SECRET_ENV = "STATION_APP_SECRET"


def city(sec: Section, file: str, env: dict[str, str]) -> CityConfig:
    """[city] → CityConfig; the secret from secret_file, the systemd credential, or the env."""
    base_url = sec.get_str("base_url").rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise sec.error("base_url", "must be an https:// (or, for a simulator, http://) URL")
    app_key = sec.get_str("app_key", maxlen=100)
    secret_file = sec.get_str("secret_file", "", allow_empty=True)
    secret_env = sec.get_str("secret_env", SECRET_ENV, pattern=r"[A-Z_][A-Z0-9_]*")
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
    values = read(sec, CityConfig)
    if values["ca_bundle"] and not Path(values["ca_bundle"]).is_file():
        raise sec.error("ca_bundle", f"{values['ca_bundle']} is not a file")
    if values["cert_sha256"] and not base_url.startswith("https://"):
        raise sec.error("cert_sha256", "a certificate pin needs an https:// base_url")
    values["cert_sha256"] = values["cert_sha256"].replace(":", "").lower()
    max_reply = sec.get_int("max_reply_kb", CityConfig.max_reply_bytes // 1024, minval=16,
                            maxval=256 * 1024) * 1024
    p = sec.sub("paths")
    paths = CityPaths(**read(p, CityPaths))
    p.done()
    profile = _profile(sec.sub("profile"))
    sec.done()
    return CityConfig(base_url=base_url, app_key=app_key, app_secret=secret,
                      max_reply_bytes=max_reply, paths=paths, profile=profile, **values)


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
    template = sec.get_str("string_to_sign", d.string_to_sign, maxlen=200)
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
    names = {k: f.get_str(k, maxlen=64, pattern=NAME) for k in list(f.data)}
    f.done()
    if len(set(names.values())) < len(names):
        raise f.error(None, "two fields are given the same name")
    sec.done()
    return CityProfile(**keys, auth_scheme=scheme, sign_in=sign_in, string_to_sign=template,
                       codes=codes, fields=names)

