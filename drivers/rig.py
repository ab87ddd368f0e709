"""The rig controller device kind: what the daemon can ask of a filling rig's controller."""

from __future__ import annotations

import abc
from dataclasses import dataclass


@dataclass(frozen=True)
class RigStatus:
    """One consistent-enough picture of a rig: coils, discrete inputs and scale registers."""

    permit: bool
    lamp_green: bool
    lamp_red: bool
    buzzer: bool
    valve_open: bool
    cylinder_present: bool
    estop: bool
    fill_done: bool
    gross_g: int
    stable: bool
    overload: bool
    scale_fault: bool
    fault_code: int
    checks_ok: bool = False  # the controller's "checks OK" button, pressed (when it has one)

    @property
    def healthy(self) -> bool:
        """No emergency stop, no overload, no scale fault."""
        return not (self.estop or self.overload or self.scale_fault)

    def fault_text(self) -> str:
        """What is wrong, in English; "" when healthy."""
        problems = [
            text
            for flag, text in (
                (self.estop, "ESTOP active"),
                (self.overload, "scale overload"),
                (self.scale_fault, "scale fault"),
            )
            if flag
        ]
        if problems and self.fault_code:
            problems.append(f"controller fault code {self.fault_code}")
        return ", ".join(problems)


class RigController(abc.ABC):
    """One rig's controller. Every write is absolute and read back; every failure is a RigFault."""

    rig_id: str

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open (or join) the connection to the controller; raises RigFault."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Leave the connection; never raises for an already broken link."""

    @abc.abstractmethod
    async def configure(self, watchdog_ms: int) -> None:
        """Set WATCHDOG_MS, FILL_PERMIT=0 and the lamps off, each read back."""

    @abc.abstractmethod
    async def read_status(self) -> RigStatus:
        """Read coils, discrete inputs and the scale registers."""

    @abc.abstractmethod
    async def heartbeat(self) -> None:
        """Write the next HEARTBEAT value (a counter 1..65535, then 1 again)."""

    @abc.abstractmethod
    async def grant_permit(self, tare_g: int, target_g: int) -> None:
        """Write TARE_G and TARGET_NET_G, then FILL_PERMIT=1, LAMP_GREEN=1, LAMP_RED=0.

        A permit the controller refuses (reads back 0) is a RigFault.
        """

    @abc.abstractmethod
    async def withdraw_permit(self) -> None:
        """FILL_PERMIT=0, read back."""

    @abc.abstractmethod
    async def set_lamps(self, green: bool, red: bool, buzzer: bool = False) -> None:
        """Set the operator lamps and the buzzer, read back."""

    @abc.abstractmethod
    async def set_buzzer(self, on: bool) -> None:
        """Set the buzzer alone (the lamps untouched), read back: a pulse's end never
        re-applies lamps of an older state."""
