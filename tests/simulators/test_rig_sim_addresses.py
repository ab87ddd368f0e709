"""The rig simulator answers illegal-address (exception code 2) outside contracts/rig-modbus.md's
map, for reads and writes of every kind (issue 16: coils and discrete inputs 4–15 read 0 and took
writes), over real Modbus TCP."""

from __future__ import annotations

import pytest
from pymodbus.client import ModbusTcpClient

from simulators.rig import RigSimulator
from station.config import RegisterMap

ILLEGAL_ADDRESS = 2


@pytest.fixture(scope="module")
def client():
    sim = RigSimulator([1], start_delay_s=None).start()
    c = ModbusTcpClient("127.0.0.1", port=sim.port, timeout=3)
    assert c.connect()
    yield c
    c.close()
    sim.stop()


def refused(answer) -> bool:
    return answer.isError() and getattr(answer, "exception_code", None) == ILLEGAL_ADDRESS


OUTSIDE = [
    ("read_coils", 4, {"count": 1}),
    ("read_coils", 15, {"count": 1}),
    ("read_coils", 0, {"count": 5}),
    ("write_coil", 4, {"value": True}),
    ("write_coil", 15, {"value": True}),
    ("write_coils", 3, {"values": [True, True]}),
    ("read_discrete_inputs", 4, {"count": 1}),
    ("read_discrete_inputs", 12, {"count": 4}),
    ("read_discrete_inputs", 0, {"count": 5}),
    ("read_holding_registers", 6, {"count": 1}),
    ("read_holding_registers", 0, {"count": 7}),
    ("write_register", 6, {"value": 1}),
    ("write_registers", 5, {"values": [1, 2]}),
    ("read_input_registers", 4, {"count": 1}),
    ("read_input_registers", 0, {"count": 5}),
]


@pytest.mark.parametrize("call, address, kw", OUTSIDE)
def test_an_address_outside_the_map_is_illegal(client, call, address, kw):
    assert refused(getattr(client, call)(address, device_id=1, **kw))


@pytest.mark.parametrize("call, address, kw", [
    ("read_coils", 0, {"count": 4}),
    ("write_coil", 3, {"value": False}),
    ("read_discrete_inputs", 0, {"count": 4}),
    ("read_holding_registers", 0, {"count": 6}),
    ("write_register", 1, {"value": 3000}),
    ("read_input_registers", 0, {"count": 4}),
])
def test_the_map_itself_answers(client, call, address, kw):
    assert not getattr(client, call)(address, device_id=1, **kw).isError()


def test_a_refused_write_changes_nothing(client):
    assert refused(client.write_coils(2, [True, True, True], device_id=1))  # 2..4: 4 is outside
    assert client.read_coils(0, count=4, device_id=1).bits[2] is False


def test_a_configured_map_moves_the_legal_addresses():
    regs = RegisterMap(fill_permit=10, valve_open=7, gross_g=20, scale_status=22, fault_code=23,
                       heartbeat=30, watchdog_ms=31, target_net_g=32, tare_g=34)
    with RigSimulator([1], registers=regs, start_delay_s=None) as sim:
        c = ModbusTcpClient("127.0.0.1", port=sim.port, timeout=3)
        assert c.connect()
        try:
            assert not c.read_coils(1, count=10, device_id=1).isError()  # 1..10: the daemon's span
            assert refused(c.read_coils(0, count=1, device_id=1))
            assert refused(c.read_coils(11, count=1, device_id=1))
            assert not c.read_input_registers(20, count=4, device_id=1).isError()
            assert refused(c.read_input_registers(24, count=1, device_id=1))
            assert refused(c.write_register(29, 1, device_id=1))
        finally:
            c.close()
