"""The per-request time limit on model code (api.dataplane.timeouts)."""

from __future__ import annotations

import signal
import time

import pytest

from api.dataplane import timeouts
from api.dataplane.timeouts import time_limit
from api.errors import PredictionTimeout


@pytest.fixture(autouse=True)
def fresh_handler(monkeypatch):
    """Each test starts as a fresh worker would: no handler installed yet."""
    previous = signal.getsignal(signal.SIGALRM)
    monkeypatch.setattr(timeouts, "_installed", False, raising=False)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def busy(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def test_time_limit_interrupts_code_that_runs_too_long_every_time():
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(PredictionTimeout, match="'m' v1 took longer than"):
            with time_limit(0.05, "'m' v1"):
                busy(2)
        assert time.monotonic() - started < 1


def test_time_limit_installs_its_signal_handler_once_per_process(monkeypatch):
    calls = []
    install = signal.signal

    def counting(signum, handler):
        calls.append(signum)
        return install(signum, handler)

    monkeypatch.setattr(timeouts.signal, "signal", counting)
    for _ in range(5):
        with time_limit(5, "fast"):
            pass
    assert calls == [signal.SIGALRM]


def test_time_limit_leaves_no_timer_running():
    with time_limit(5, "fast"):
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with pytest.raises(PredictionTimeout):
        with time_limit(0.05, "slow"):
            busy(2)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_an_alarm_arriving_after_the_block_is_ignored():
    with time_limit(5, "fast"):
        pass
    signal.raise_signal(signal.SIGALRM)  # as if the timer fired while disarming
    busy(0.01)


def test_no_limit_when_the_setting_is_zero():
    with time_limit(0, "unlimited"):
        busy(0.05)
    assert not timeouts._installed


def test_time_limit_interrupts_again_code_that_swallowed_the_first_interruption():
    """A model that catches BaseException and falls back to more slow work;
    one that swallows every interruption forever is api.dataplane.watchdog's."""

    def falls_back_to_more_work() -> str:
        try:
            busy(3)
        except BaseException:  # noqa: BLE001 - the misbehaviour under test
            busy(3)
        return "finished anyway"

    started = time.monotonic()
    with pytest.raises(PredictionTimeout, match="took longer than the 0.1 s limit"):
        with time_limit(0.1, "'m' v1"):
            falls_back_to_more_work()
    assert time.monotonic() - started < 1
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_time_limit_is_a_timeout_when_the_block_returns_past_its_deadline():
    def swallows_once() -> str:
        try:
            busy(2)
        except BaseException:  # noqa: BLE001 - the misbehaviour under test
            return "a result past the limit"
        return "on time"

    with pytest.raises(PredictionTimeout):
        with time_limit(0.05, "'m' v1"):
            swallows_once()
