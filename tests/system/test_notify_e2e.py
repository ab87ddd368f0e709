"""`station run` under a systemd-like notify socket: READY, then WATCHDOG pings, then STOPPING."""

import socket
import time

from simulators.harness import RigSpec, SimStation


def messages(sock, until, timeout=10.0):
    """Datagrams received until `until(messages)` holds (or the timeout passes)."""
    got, deadline = [], time.monotonic() + timeout
    while not until(got) and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    return got


def test_ready_then_watchdog_pings_then_stopping(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # WatchdogSec=0.4: a ping every 0.2 s
    st = SimStation(tmp_path, (RigSpec("rig-01", 1), RigSpec("rig-02", 2))).start()
    try:
        got = messages(sock, lambda m: m.count("WATCHDOG=1") >= 5)
        assert got[0] == "READY=1", got
        assert got[1:6] == ["WATCHDOG=1"] * 5, got
        assert st.stop_daemon() == 0
        rest = messages(sock, lambda m: "STOPPING=1" in m, timeout=5)
        assert "STOPPING=1" in rest and "READY=1" not in rest
    finally:
        st.stop()
        sock.close()
