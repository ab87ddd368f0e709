"""Pure helpers of the Modbus rig driver: address spans, runs of adjacent points, 32-bit pairs."""

from __future__ import annotations

from dataclasses import astuple

from .rig import RigStatus

U16_MAX, U32_MAX = 0xFFFF, 0xFFFFFFFF
CHANGE_G = 50  # a gross mass change above this (g) counts as a change


def _span(addresses: list[int], limit: int) -> tuple[int, int]:
    start = min(addresses)
    count = max(addresses) - start + 1
    if count > limit:
        raise ValueError(f"registers {start}..{start + count - 1} span more than {limit}")
    return start, count


def _u32(name: str, value: int) -> list[int]:
    if not 0 <= value <= U32_MAX:
        raise ValueError(f"{name}={value} does not fit an unsigned 32-bit register pair")
    return [value >> 16, value & U16_MAX]


def _runs(points: dict[int, object]) -> list[tuple[int, list]]:
    """Addresses and values grouped into runs of consecutive addresses: one write each."""
    runs: list[tuple[int, list]] = []
    for addr in sorted(points):
        if runs and runs[-1][0] + len(runs[-1][1]) == addr:
            runs[-1][1].append(points[addr])
        else:
            runs.append((addr, [points[addr]]))
    return runs


def _changed(a: RigStatus, b: RigStatus) -> bool:
    """Anything but the gross mass differs, or the mass moved more than CHANGE_G."""
    flags_a, flags_b = astuple(a), astuple(b)
    return (flags_a[:8] + flags_a[9:]) != (flags_b[:8] + flags_b[9:]) or abs(
        a.gross_g - b.gross_g) > CHANGE_G
