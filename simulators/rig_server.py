"""The rig simulator's Modbus face: the datastore blocks of a unit, the hook that runs the
RigModel on every request, and the register map's guard (illegal address outside the map)."""

from __future__ import annotations

import time
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from station.config import RegisterMap

from .rig_model import COIL_NAMES, INPUT_NAMES, RigModel

# -- the Modbus server ---------------------------------------------------------------------------
_FC_KIND = {1: "coils", 5: "coils", 15: "coils", 2: "inputs", 4: "input"}
_FC_KIND.update(dict.fromkeys((3, 6, 16, 22, 23), "holding"))


def _block_sizes(m: RegisterMap) -> dict[str, int]:
    return {
        "coils": max(getattr(m, n) for n in COIL_NAMES) + 1,
        "inputs": max([getattr(m, n) for n in INPUT_NAMES] + [m.checks_ok]) + 1,
        "holding": max(m.heartbeat, m.watchdog_ms, m.target_net_g + 1, m.tare_g + 1) + 1,
        "input": max(m.gross_g + 1, m.scale_status, m.fault_code) + 1,
    }


def _sim_device(unit_id: int, m: RegisterMap, action) -> SimDevice:
    sizes = _block_sizes(m)

    def bits(n: int) -> list[SimData]:
        return [SimData(0, count=n, values=False, datatype=DataType.BITS)]

    def regs(n: int) -> list[SimData]:
        return [SimData(0, count=n, values=0, datatype=DataType.REGISTERS)]

    blocks = (
        bits(sizes["coils"]),
        bits(sizes["inputs"]),
        regs(sizes["holding"]),
        regs(sizes["input"]),
    )
    return SimDevice(id=unit_id, simdata=blocks, action=action)


def _model_action(model: RigModel):
    """The SimDevice hook: advance the model, apply a write to it, refresh the block it touches."""

    async def action(
        fc: int,
        _start: int,
        address: int,
        _count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        kind = _FC_KIND.get(fc)
        if kind is None:
            return ExcCodes.ILLEGAL_FUNCTION
        now = time.monotonic()
        if set_values and kind == "coils":
            set_values[:] = model.write_coils(address, [bool(v) for v in set_values], now)
        elif set_values and kind == "holding":
            set_values[:] = model.write_holding(address, [int(v) for v in set_values], now)
        n = len(registers) - 1  # the last register is pymodbus's end marker
        if kind in ("coils", "inputs"):
            registers[:n] = SimUtils.bitsToRegisters(model.read_bits(kind, n * 16, now))
        else:
            registers[:n] = model.read_words(kind, n, now)
        return None

    return action


class MapGuard:
    """The server's datastore behind a check of the register map: a request that touches an
    address outside the map answers illegal-address (exception code 2) for a rig's unit id, as a
    controller does (issue 16: coils and discrete inputs 4–15 read 0 and took writes, because
    pymodbus keeps bits 16 to a register). "The map" is, per kind, the span from its lowest to
    its highest point: the daemon reads each kind as one span (drivers/modbus_rig.py)."""

    def __init__(self, inner: Any, m: RegisterMap, units: set[int]):
        self.inner, self.units = inner, units
        self.spans = {kind: (min(addrs), max(addrs)) for kind, addrs in _map_points(m).items()}

    def allows(self, func_code: int, address: int, count: int) -> bool:
        kind = _FC_KIND.get(func_code)
        if kind is None:
            return True  # the device answers illegal-function itself
        low, high = self.spans[kind]
        return count >= 1 and low <= address and address + count - 1 <= high

    async def async_getValues(self, device_id: int, func_code: int, address: int,
                              count: int = 1) -> Any:
        if device_id in self.units and not self.allows(func_code, address, count):
            return ExcCodes.ILLEGAL_ADDRESS
        return await self.inner.async_getValues(device_id, func_code, address, count)

    async def async_setValues(self, device_id: int, func_code: int, address: int,
                              values: list[int] | list[bool]) -> Any:
        if device_id in self.units and not self.allows(func_code, address, len(values)):
            return ExcCodes.ILLEGAL_ADDRESS
        return await self.inner.async_setValues(device_id, func_code, address, values)

    def __getattr__(self, name: str) -> Any:  # device_ids() and whatever else the server asks
        return getattr(self.inner, name)


def _map_points(m: RegisterMap) -> dict[str, list[int]]:
    """Every address of the map, per kind (32-bit values take two registers)."""
    return {
        "coils": [getattr(m, n) for n in COIL_NAMES],
        "inputs": [getattr(m, n) for n in INPUT_NAMES] + ([m.checks_ok] if m.checks_ok >= 0
                                                           else []),
        "holding": [m.heartbeat, m.watchdog_ms, m.target_net_g, m.target_net_g + 1, m.tare_g,
                    m.tare_g + 1],
        "input": [m.gross_g, m.gross_g + 1, m.scale_status, m.fault_code],
    }
