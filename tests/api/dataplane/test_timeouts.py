"""The per-request time limit on model code (api.dataplane.timeouts)."""

from __future__ import annotations

import contextlib
import signal
import threading
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


# Outside the main thread: a gthread request thread, a batcher's thread -----


def in_a_thread(work):
    """Runs ``work`` in a new thread; returns what it returned or raised."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(("returned", work()))
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome.append(("raised", exc))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the limit never fired"
    return outcome[0]


def test_time_limit_interrupts_a_model_in_another_thread():
    def slow() -> None:
        with time_limit(0.05, "'m' v1"):
            busy(3)

    started = time.monotonic()
    kind, value = in_a_thread(slow)
    assert kind == "raised" and isinstance(value, PredictionTimeout), value
    assert time.monotonic() - started < 1


def test_time_limit_in_another_thread_interrupts_again_what_swallowed_it():
    def falls_back_to_more_work() -> None:
        with time_limit(0.1, "'m' v1"):
            try:
                busy(3)
            except BaseException:  # noqa: BLE001 - the misbehaviour under test
                busy(3)

    started = time.monotonic()
    kind, value = in_a_thread(falls_back_to_more_work)
    assert kind == "raised" and isinstance(value, PredictionTimeout), value
    assert time.monotonic() - started < 1


def test_threads_keep_their_own_limits():
    """A fast block in one thread is never hit by another thread's expiry."""
    results: dict[str, object] = {}

    def slow() -> None:
        try:
            with time_limit(0.1, "slow"):
                busy(3)
        except PredictionTimeout as exc:
            results["slow"] = exc

    def fast() -> None:
        for _ in range(200):
            with time_limit(5, "fast"):
                busy(0.001)
        results["fast"] = "finished"

    threads = [threading.Thread(target=slow), threading.Thread(target=fast)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert isinstance(results["slow"], PredictionTimeout)
    assert results["fast"] == "finished"


def test_nothing_is_raised_into_a_thread_after_its_block_ended():
    def many_short_blocks_then_work() -> str:
        for _ in range(500):
            # Limits so short that the clock often fires as the block ends.
            with contextlib.suppress(PredictionTimeout):
                with time_limit(0.0002, "tiny"):
                    busy(0.0002)
        busy(0.2)  # an exception set but not yet raised would land here
        return "clean"

    assert in_a_thread(many_short_blocks_then_work) == ("returned", "clean")
