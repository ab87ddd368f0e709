"""Who may reach the pages: `[web] bind` and `allow`, and the unit's IPAddressAllow= from them.

The web unit (systemd/station-web.service) denies every address but localhost; a drop-in
written from the configuration (`station web --systemd-dropin`, by `make install`) allows the
tablets' subnets. The server itself answers only loopback and those subnets too, and the unit
refuses to start when its drop-in says otherwise than the configuration (`--check-systemd`).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from station.config import WebConfig, _web, read_toml
from station.confread import Section

DROPIN = Path("/etc/systemd/system/station-web.service.d/50-lan.conf")
HEADER = "# Written from [web] allow of the station's configuration by `make install`\n" \
         "# (station web --config FILE --systemd-dropin): edit the configuration, not this.\n"


def allowed(client: str, allow: tuple[str, ...]) -> bool:
    """Loopback always; otherwise only an address inside one of the allowed networks."""
    try:
        addr = ipaddress.ip_address(client.removeprefix("::ffff:"))
    except ValueError:
        return False
    return addr.is_loopback or any(addr in ipaddress.ip_network(n, strict=False)
                                   for n in allow)


def dropin_text(web: WebConfig) -> str:
    """The unit's drop-in for this configuration (no allowed subnet: loopback only)."""
    if not web.allow:
        return HEADER + "# [web] allow is empty: loopback only (the unit's own IPAddressAllow=)\n"
    return HEADER + "[Service]\nIPAddressAllow=" + " ".join(web.allow) + "\n"


def web_config(path: str) -> WebConfig:
    """Only the [web] section of a configuration file, validated (no secret needed)."""
    data = read_toml(path)  # a BOM accepted, as by config.load
    return _web(Section(path, "web", data.get("web", {})))


def check_dropin(web: WebConfig, dropin: Path = DROPIN) -> str:
    """'' when the installed drop-in matches the configuration; else what to do."""
    have = dropin.read_text(encoding="utf-8") if dropin.exists() else None
    want = dropin_text(web)
    if have == want or (have is None and not web.allow):
        return ""
    return (f"{dropin} does not match [web] allow = {list(web.allow)}: the tablets could not "
            f"reach the pages (or others could). Run `make install`, or `station web --config "
            f"FILE --systemd-dropin > {dropin}` and `systemctl daemon-reload`")
