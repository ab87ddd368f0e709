"""The city's contract as configuration ([city.profile]): how a deployment names and signs things.

The client thinks in the terms of contracts/city-api.md (field names, codes "200"/"404"/…, the
HMAC over unit_code, app_key, timestamp and nonce); a profile translates those terms to and from
what a deployment puts on the wire. The default profile is the contract itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# The contract's codes, by meaning; a profile gives the wire codes of each meaning.
MEANINGS = {"ok": "200", "invalid": "400", "token_invalid": "401", "refused": "403",
            "not_found": "404", "duplicate": "409", "busy": "429", "server_error": "500"}
DEFAULT_CODES = {"ok": ("200",), "invalid": ("400",), "token_invalid": ("401",),
                 "refused": ("403",), "not_found": ("404",), "duplicate": ("409",),
                 "busy": ("429",), "server_error": ("500", "502", "503", "504")}
DEFAULT_SIGN = "{unit_code}\n{app_key}\n{timestamp}\n{nonce}"
SIGN_FIELDS = ("unit_code", "app_key", "timestamp", "nonce")


def _frozen(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class CityProfile:
    """One deployment's wire terms; every default is contracts/city-api.md."""

    code_key: str = "code"
    message_key: str = "message"
    data_key: str = "data"
    codes: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: _frozen(DEFAULT_CODES), hash=False)
    fields: Mapping[str, str] = field(default_factory=lambda: _frozen({}),
                                      hash=False)  # ours → theirs
    string_to_sign: str = DEFAULT_SIGN
    sign_in: str = "body"  # or "header"
    sign_header: str = "X-Sign"
    token_key: str = "token"
    expires_key: str = "expires_in"
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"  # "" sends the bare token

    def __post_init__(self) -> None:
        object.__setattr__(self, "codes", _frozen(self.codes))
        object.__setattr__(self, "fields", _frozen(self.fields))

    # ---- codes ------------------------------------------------------------------------------
    def contract_code(self, wire: str) -> str:
        """The contract's code for a wire code ("1004" → "404"); an unknown one stays itself,
        marked when it would read as a contract code it does not mean."""
        for meaning, wires in self.codes.items():
            if wire in wires:
                same = meaning == "server_error" and wire in DEFAULT_CODES["server_error"]
                return wire if same else MEANINGS[meaning]
        return f"raw:{wire}" if wire in _CONTRACT_CODES else wire

    def wire_code(self, contract: str) -> str:
        """The wire code a deployment uses for a contract code (the simulator's side)."""
        for meaning, code in MEANINGS.items():
            contract_codes = DEFAULT_CODES[meaning]
            if contract == code or contract in contract_codes:
                wires = self.codes[meaning]
                return contract if contract in wires else wires[0]
        return contract

    # ---- field names ------------------------------------------------------------------------
    def to_wire(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A request body in the deployment's field names (top-level keys)."""
        return {self.fields.get(k, k): v for k, v in body.items()}

    def from_wire(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A request body back in the contract's field names (the simulator's side)."""
        back = {v: k for k, v in self.fields.items()}
        return {back.get(k, k): v for k, v in body.items()}

    # ---- the token request ------------------------------------------------------------------
    def sign(self, secret: str, values: Mapping[str, Any]) -> str:
        """Lowercase hex HMAC-SHA256 over the string-to-sign filled with `values`."""
        text = self.string_to_sign.format(**{k: values[k] for k in SIGN_FIELDS})
        return hmac.new(secret.encode("utf-8"), text.encode("utf-8"),
                        hashlib.sha256).hexdigest()

    def token_request(self, secret: str, values: Mapping[str, Any]) -> tuple[dict, dict]:
        """(body, headers) of the token request: the signature in the body or a header."""
        sign = self.sign(secret, values)
        body = dict(values)
        headers = {}
        if self.sign_in == "header":
            headers[self.sign_header] = sign
        else:
            body["sign"] = sign
        return self.to_wire(body), headers

    def authorization(self, token: str) -> dict[str, str]:
        return {self.auth_header: f"{self.auth_scheme} {token}" if self.auth_scheme else token}


_CONTRACT_CODES = frozenset(c for codes in DEFAULT_CODES.values() for c in codes)
DEFAULT_PROFILE = CityProfile()
