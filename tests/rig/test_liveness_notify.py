"""The watchdog decision (pure) and sd_notify over a real datagram socket."""

import asyncio
import os
import socket

import pytest

from station.errors import RigFault
from station.notify import notify, socket_address, watchdog_interval_s
from station.rig.liveness import Progress, Watched, hung_after_s, hung_rigs


def progress(alive_ago, exchanged_ago=None, connected=True, watchdog_ms=3000, rig="rig-01"):
    now = 1000.0
    return Progress(rig=rig, alive_at=now - alive_ago,
                    exchanged_at=now - (alive_ago if exchanged_ago is None else exchanged_ago),
                    connected=connected, watchdog_ms=watchdog_ms, timeout_ms=1000)


@pytest.mark.parametrize("p,hung", [
    (progress(0.1), False),  # polling
    (progress(10.9), False),  # 3 × 3 s + 2 s = 11 s
    (progress(11.1), True),  # a connected loop that stopped polling: hung
    (progress(11.1, exchanged_ago=0.5), True),  # connected: only completed polls count
    (progress(60, exchanged_ago=3, connected=False), False),  # rig down, reconnecting: a fault
    (progress(60, exchanged_ago=16.9, connected=False), False),  # 11 + 5 backoff + 1 timeout
    (progress(60, exchanged_ago=17.1, connected=False), True),  # not even reconnecting: hung
    (progress(30, exchanged_ago=30, connected=None), True),  # never got going
    (progress(2.8, watchdog_ms=300), False),  # 3 × 0.3 + 2 = 2.9 s
    (progress(3.0, watchdog_ms=300), True),
])
def test_hung_decision(p, hung):
    assert hung_rigs([p], 1000.0) == (["rig-01"] if hung else [])


def test_one_hung_rig_among_several_is_named():
    ps = [progress(0.1, rig="rig-01"), progress(20, rig="rig-02"), progress(0.2, rig="rig-03")]
    assert hung_rigs(ps, 1000.0) == ["rig-02"]
    assert hung_after_s(ps[0]) == 11.0


def test_watched_stamps_answers_and_faults_but_not_cancellation():
    class Controller:
        rig_id = "rig-01"

        async def read_status(self):
            return "status"

        async def heartbeat(self):
            raise RigFault("no answer")

        async def configure(self, watchdog_ms):
            await asyncio.Event().wait()

    async def scenario():
        w = Watched(Controller())
        w.exchanged_at = 0.0
        assert await w.read_status() == "status" and w.exchanged_at > 0
        w.exchanged_at = 0.0
        with pytest.raises(RigFault):
            await w.heartbeat()
        assert w.exchanged_at > 0
        w.exchanged_at = 0.0
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(w.configure(3000), 0.01)
        assert w.exchanged_at == 0.0 and w.rig_id == "rig-01"

    asyncio.run(scenario())


@pytest.fixture
def listener(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def test_notify_sends_to_a_path_socket(listener):
    sock, path = listener
    assert notify("READY=1", {"NOTIFY_SOCKET": path})
    assert sock.recv(100) == b"READY=1"


def test_notify_sends_to_an_abstract_socket():
    name = f"station-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"WATCHDOG=1"


def test_without_a_socket_nothing_is_sent(tmp_path):
    assert not notify("READY=1", {})
    assert socket_address({"NOTIFY_SOCKET": "vsock:2:1234"}) is None
    assert not notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})


def test_watchdog_interval_is_half_the_period():
    assert watchdog_interval_s({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}) is None
    pid = str(os.getpid())
    assert watchdog_interval_s({"WATCHDOG_USEC": "4000", "WATCHDOG_PID": pid}) == 0.002
