"""The one conftest: fixtures every folder shares (the city simulator, a Modbus transport).

Helpers to import live in `tests/support.py` (and `citytoml.py`, `records_maker.py` beside it):
this folder is on `sys.path` for every test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import city_dataset  # noqa: E402

from simulators.city import CitySimulator  # noqa: E402


@pytest.fixture
def city_data() -> dict:
    return city_dataset()


@pytest.fixture
def city_sim(city_data):
    """A running city simulator on 127.0.0.1 (ephemeral port), stopped after the test."""
    sim = CitySimulator(city_data).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(params=["tcp", "rtu"])
def transport(request) -> str:
    """A Modbus transport: TCP on loopback, or RTU over a null-modem pty pair."""
    return request.param
