"""TLS as a station meets it: a CA bundle, a certificate pin, and plain errors for an untrusted,
expired or wrong-host certificate, against the city simulator over HTTPS on 127.0.0.1 with a CA
made here."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulators.city import CitySimulator
from station import config as config_mod
from station.city.client import CityClient
from station.city.wire import cert_fingerprint
from station.config import CityConfig
from station.errors import ConfigError

DEADLINE = 0.5
NOW = datetime.now(UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class CA:
    """A throwaway certificate authority and the certificates it signs."""

    def __init__(self, folder: Path):
        self.folder, self.key = folder, ec.generate_private_key(ec.SECP256R1())
        self.cert = (x509.CertificateBuilder().subject_name(_name("test city CA"))
                     .issuer_name(_name("test city CA")).public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(NOW - timedelta(days=1))
                     .not_valid_after(NOW + timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .add_extension(x509.KeyUsage(True, False, False, False, False, True, True,
                                                  False, False), True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                         self.key.public_key()), False)
                     .sign(self.key, hashes.SHA256()))
        self.bundle = folder / "ca.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def server(self, name: str, *, hosts: tuple[str, ...] = ("127.0.0.1",),
               days: tuple[int, int] = (-1, 30)) -> tuple[ssl.SSLContext, bytes]:
        """A server context for a certificate valid for `hosts` from/to NOW + `days`."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.IPAddress(ipaddress.ip_address(h)) if h[0].isdigit() else x509.DNSName(h)
                for h in hosts]
        cert = (x509.CertificateBuilder().subject_name(_name(hosts[0]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(NOW + timedelta(days=days[0]))
                .not_valid_after(NOW + timedelta(days=days[1]))
                .add_extension(x509.SubjectAlternativeName(sans), False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()), False)
                .sign(self.key, hashes.SHA256()))
        cert_file, key_file = self.folder / f"{name}.pem", self.folder / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        return ctx, cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return CA(tmp_path_factory.mktemp("ca"))


def https_city(ca: CA, data: dict, **cert) -> tuple[CitySimulator, bytes]:
    ctx, der = ca.server(f"city-{time.monotonic_ns()}", **cert)
    return CitySimulator(data, tls=ctx).start(), der


def ask(sim: CitySimulator, data: dict, **over) -> tuple:
    cred = data["credentials"][0]
    kw = {"base_url": sim.url, "app_key": cred["app_key"], "app_secret": cred["app_secret"],
          "connect_timeout_s": 0.3, "read_timeout_s": 0.5, "decision_deadline_s": DEADLINE}
    client = CityClient(CityConfig(**(kw | over)), cred["unit_code"])
    start = time.monotonic()
    try:
        reply = client.query({"info_code": "ICC001"})
    finally:
        client.close()
    return reply, time.monotonic() - start


def test_city_over_https_with_the_ca_bundle(ca, city_data, tmp_path, monkeypatch):
    # requests lets $REQUESTS_CA_BUNDLE override a Session's verify: [city] ca_bundle must win
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(CA(tmp_path).bundle))
    sim, _ = https_city(ca, city_data)
    try:
        assert sim.url.startswith("https://")
        reply, _ = ask(sim, city_data, ca_bundle=str(ca.bundle))
    finally:
        sim.stop()
    assert reply.outcome == "found" and reply.items[0]["id"] == "C001"


@pytest.mark.parametrize("cert, bundle, says", [
    ({}, False, "unable to get local issuer certificate"),  # the system store: no
    ({"days": (-30, -1)}, True, "certificate has expired"),
    ({"days": (2, 30)}, True, "certificate is not yet valid"),
    ({"hosts": ("city.elsewhere.example",)}, True, "mismatch"),
], ids=["untrusted", "expired", "not-yet-valid", "wrong-host"])
def test_a_certificate_not_to_trust_is_a_plain_error_never_a_downgrade(ca, city_data, cert,
                                                                       bundle, says):
    sim, _ = https_city(ca, city_data, **cert)
    try:
        reply, took = ask(sim, city_data, **({"ca_bundle": str(ca.bundle)} if bundle else {}))
    finally:
        sim.stop()
    assert reply.outcome == "transient" and reply.code is None
    assert "TLS: the city's certificate is not trusted" in reply.message
    assert says in reply.message
    assert sim.requests == {}  # nothing was sent in the clear, nor over the bad connection
    assert took < DEADLINE  # not retried: waiting would not make the certificate right


def test_a_pinned_certificate(ca, city_data):
    sim, der = https_city(ca, city_data)
    other_ctx, other_der = ca.server("other")
    try:
        pin = cert_fingerprint(der)
        pinned, _ = ask(sim, city_data, ca_bundle=str(ca.bundle), cert_sha256=pin)
        wrong, took = ask(sim, city_data, ca_bundle=str(ca.bundle),
                          cert_sha256=cert_fingerprint(other_der))
        unanchored, _ = ask(sim, city_data, cert_sha256=pin)  # the pin alone trusts no CA
    finally:
        sim.stop()
    assert pinned.outcome == "found"
    assert wrong.outcome == "transient" and "does not match [city] cert_sha256" in wrong.message
    assert took < DEADLINE
    assert unanchored.outcome == "transient" and "not trusted" in unanchored.message


def test_pin_configuration(tmp_path):
    (tmp_path / "s").write_text("x", encoding="utf-8")

    def load(city: str) -> config_mod.StationConfig:
        text = ("[station]\nunit_name = \"站\"\nunit_code = \"91500112MA5UTEST0X\"\n"
                "store = \"s.db\"\n[qr]\nhosts = [\"qr.example\"]\n[city]\n"
                f"app_key = \"k\"\nsecret_file = \"s\"\n{city}\n"
                "[[rigs]]\nid = \"rig-01\"\nmedium = \"G13\"\nmodbus = \"tcp://127.0.0.1:9\"\n"
                "unit_id = 1\n[[rigs.readers]]\nkind = \"scanner\"\nport = \"/dev/null\"\n")
        (tmp_path / "c.toml").write_text(text, encoding="utf-8")
        return config_mod.load(str(tmp_path / "c.toml"))

    pin = ":".join(["AB"] * 32)
    cfg = load(f'base_url = "https://city.example"\ncert_sha256 = "{pin}"')
    assert cfg.city.cert_sha256 == "ab" * 32
    with pytest.raises(ConfigError, match="cert_sha256.*https"):
        load(f'base_url = "http://city.example"\ncert_sha256 = "{pin}"')
    with pytest.raises(ConfigError, match="cert_sha256"):
        load('base_url = "https://city.example"\ncert_sha256 = "abcd"')


class TricklingRelay:
    """A TCP relay to a local port that passes the server's bytes on one at a time, every
    `every_s`: a TLS handshake (certificate and all) that crawls in."""

    def __init__(self, target: int, every_s: float):
        self.target, self.every_s, self.stop = target, every_s, threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except TimeoutError:
                continue
            except OSError:  # closed: the test is over
                return
            for src, dst, slow in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, slow), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, slow: bool) -> None:
        try:
            while data := src.recv(4096):
                if not slow:
                    dst.sendall(data)
                    continue
                for i in range(len(data)):
                    if self.stop.wait(self.every_s):
                        return
                    dst.sendall(data[i:i + 1])
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def test_a_crawling_tls_handshake_ends_by_the_deadline(ca, city_data):
    """CPython bounds a whole handshake by the socket's timeout (here ≤ connect_timeout_s, cut
    to what is left of the deadline): the guard cannot reach a socket being wrapped, and need
    not."""
    sim, _ = https_city(ca, city_data)
    relay = TricklingRelay(sim.port, every_s=0.01)  # far inside the 0.3 s per-read timeout
    cred = city_data["credentials"][0]
    client = CityClient(CityConfig(base_url=f"https://127.0.0.1:{relay.port}",
                                   app_key=cred["app_key"], app_secret=cred["app_secret"],
                                   connect_timeout_s=0.3, read_timeout_s=0.3,
                                   decision_deadline_s=DEADLINE, ca_bundle=str(ca.bundle)),
                        cred["unit_code"])
    try:
        start = time.monotonic()
        reply = client.query({"info_code": "ICC001"})
        took = time.monotonic() - start
    finally:
        client.close()
        relay.close()
        sim.stop()
    assert reply.outcome == "transient" and "deadline" in reply.message
    assert took < DEADLINE + 0.25
