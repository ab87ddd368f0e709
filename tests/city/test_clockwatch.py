"""Clock trust, pure: steps back and forward, with and without the city's Date to compare."""

import pytest

from station.city.clockwatch import CitySample, clock_problem

T = 1_800_000_000.0  # our wall clock when the city last answered
MONO = 5_000.0  # our monotonic clock then
IN_STEP = CitySample(city=T - 0.4, wall=T, mono=MONO)  # the Date header truncates to the second


@pytest.mark.parametrize(("name", "now", "mono", "newest", "sample", "trusted"), [
    ("no city, clock after the newest record", T, MONO, T - 10, None, True),
    ("no city, within the tolerance", T - 1.5, MONO, T, None, True),
    ("no city, clock went back", T - 60, MONO, T, None, False),
    ("city agrees, no step since", T + 100, MONO + 100, T, IN_STEP, True),
    ("city agrees, clock behind the newest record (it ran ahead)", T + 100, MONO + 100, T + 86400,
     IN_STEP, True),
    ("stepped back an hour since the city answered", T - 3500, MONO + 100, 0, IN_STEP, False),
    ("stepped forward a day since the city answered", T + 86500, MONO + 100, 0, IN_STEP, False),
    ("stepped by less than the limit", T + 400, MONO + 100, 0, IN_STEP, True),
    ("the city says our clock is 10 min slow", T, MONO, 0,
     CitySample(city=T + 600, wall=T, mono=MONO), False),
    ("the city says our clock is 10 min fast", T, MONO, 0,
     CitySample(city=T - 600, wall=T, mono=MONO), False),
])
def test_clock_problem(name, now, mono, newest, sample, trusted):
    why = clock_problem(now, mono, newest, sample, max_skew_s=300)
    assert (why is None) is trusted, f"{name}: {why}"


def test_limit_zero_never_compares_with_the_city():
    off = CitySample(city=T + 86400, wall=T, mono=MONO)
    assert clock_problem(T, MONO, 0, off, max_skew_s=0) is None
    assert clock_problem(T - 60, MONO, T, off, max_skew_s=0) is not None
