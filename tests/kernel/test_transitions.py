"""The one "lost / recovered" logger: a line per change of availability, none for repeats."""

import logging

from station.transitions import Transitions


def lines(caplog):
    return [r.getMessage() for r in caplog.records]


def test_first_up_lost_once_recovered_once(caplog):
    t = Transitions(logging.getLogger("t"), lost="x_lost", recovered="x_recovered",
                    first="x_open", rig="rig-01", port="/dev/tty0")
    with caplog.at_level(logging.INFO, logger="t"):
        assert t.up() and not t.up()
        assert t.down(error="gone") and not t.down(error="still gone")
        assert t.up() and not t.up()
    assert lines(caplog) == ["event=x_open rig=rig-01 port=/dev/tty0",
                             "event=x_lost rig=rig-01 port=/dev/tty0 error=gone",
                             "event=x_recovered rig=rig-01 port=/dev/tty0"]
    assert t.state is True


def test_lost_before_ever_up_and_timed_recovery(caplog):
    t = Transitions(logging.getLogger("t"), lost="link_lost", recovered="link_recovered",
                    timed=True, endpoint="tcp:h:502")
    with caplog.at_level(logging.INFO, logger="t"):
        assert t.state is None
        assert t.down(error="refused")
        assert t.up()
    lost, back = lines(caplog)
    assert lost == "event=link_lost endpoint=tcp:h:502 error=refused"
    assert back.startswith("event=link_recovered endpoint=tcp:h:502 down_s=")
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
