"""The one reconnect schedule: doubling from the start, capped, reset after a success."""

import random

import pytest

from station.backoff import Backoff
from station.city.sync import backoff_s


def test_doubles_to_the_cap_and_stays():
    b = Backoff(start_s=0.1, cap_s=1.0)
    assert [round(b.next(), 6) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_reset_starts_again():
    b = Backoff(start_s=0.2, cap_s=5.0)
    b.next(), b.next(), b.next()
    b.reset()
    assert b.next() == 0.2
    assert b.next() == 0.4


def test_factor_is_used():
    b = Backoff(start_s=1.0, cap_s=100.0, factor=3.0)
    assert [b.next() for _ in range(4)] == [1.0, 3.0, 9.0, 27.0]


def test_ceiling_without_state():
    b = Backoff(start_s=1.0, cap_s=300.0)
    assert [b.ceiling_s(n) for n in (0, 1, 5, 8, 9, 1000)] == [1.0, 2.0, 32.0, 256.0, 300.0, 300.0]


@pytest.mark.parametrize("args", [dict(start_s=0, cap_s=1), dict(start_s=1, cap_s=0),
                                  dict(start_s=1, cap_s=1, factor=0.5)])
def test_refuses_a_schedule_that_never_waits_or_shrinks(args):
    with pytest.raises(ValueError):
        Backoff(**args)


def test_sync_jitter_is_as_before():
    """The outbox's full-jitter draw is the same number as the hand-written formula gave."""
    for attempts in (0, 1, 4, 9, 40):
        a, b = random.Random(attempts), random.Random(attempts)
        expected = min(300.0, max(b.uniform(0, min(300.0, 2.0 ** min(attempts, 30))), 0.0))
        assert backoff_s(attempts, 300.0, None, a) == expected
    assert backoff_s(0, 300.0, 120.0, random.Random(1)) == 120.0
