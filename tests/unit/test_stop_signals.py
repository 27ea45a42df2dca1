"""The supervisor's stop signals: the first stops it, later ones cannot cut the ordered stop short."""

from __future__ import annotations

import signal

import pytest

from service.stop_signals import stop_signals


def test_the_first_signal_interrupts_and_later_ones_only_say_the_stop_is_under_way(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with stop_signals("still stopping") as signals:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert signals.stopping
        # A double Ctrl-C, then a SIGTERM: the stop goes on.
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGTERM)
    assert capfd.readouterr().err == "still stopping\nstill stopping\n"


def test_sigterm_stops_like_ctrl_c() -> None:
    with stop_signals("still stopping"), pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)


def test_a_stop_begun_for_another_reason_is_not_interrupted(capfd: pytest.CaptureFixture[str]) -> None:
    with stop_signals("still stopping") as signals:
        signals.begin()
        signal.raise_signal(signal.SIGINT)
    assert capfd.readouterr().err == "still stopping\n"


def test_the_previous_handlers_are_back_after() -> None:
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    with stop_signals("still stopping"):
        pass
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_a_child_stopped_while_starting_is_a_clean_stop_and_a_killed_or_unclean_one_is_not() -> None:
    from service.run import _clean

    assert _clean(0) and _clean(-signal.SIGTERM)
    assert not _clean(70) and not _clean(-signal.SIGKILL) and not _clean(1)
