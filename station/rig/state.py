"""What one rig's loop knows of its rig besides the fill cycle, shared by the loop's pieces."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from drivers.rig import RigStatus
from station.city.lookup import Answer
from station.core.fillcycle import torn
from station.core.model import Reading
from station.core.onscale import Scale


@dataclass
class RigState:
    """The rig as the loop last saw it: link, status sample, scale placements, what is shown."""

    connected: bool | None = None  # None: not tried yet
    fault: str = "not connected yet"
    status: RigStatus | None = None
    # a scanner's last reading (discrete readers): key, when, the placement it was made on
    last_tag: tuple[str, float, tuple[int, bool]] = ("", 0.0, (0, False))
    scale: Scale = field(default_factory=Scale)  # placements, held readings, tag sightings
    # the last overridable refusal, for an override: when, reading, answer, decision id, and
    # the placement (which cylinder on the scale) and gross (g) it was refused at
    refusal: tuple[float, Reading, Answer | None, int, int | None, int | None] | None = None
    shown: dict | None = None  # the last verdict, as the operator screen shows it
    published: dict | None = None
    published_at: float = 0.0
    alive_at: float = field(default_factory=time.monotonic)
    lamps: tuple[bool, bool] | None = None  # (green, red) as the controller holds them
    buzz_key: str = ""  # the screen key (hmi.Screen.key) the buzzer last sounded for
    buzz_off: asyncio.TimerHandle | None = None  # the pending end of a buzzer pulse

    def stable_gross(self) -> int | None:
        """The gross (g) of a cylinder standing stable on the scale in the latest sample; None
        without one (or without a link, or on a sample torn by a placement)."""
        st = self.status
        if st is None or not self.connected or not st.cylinder_present or not st.stable \
                or torn(st):
            return None
        return st.gross_g
