"""Can the per-request time limit work outside the main thread (a gthread
request thread, a batcher thread)? A demonstration and its cost, run by hand
(issue 23, part 2; findings in bench/README.md):

    flock /tmp/modelhub-bench.lock .venv/bin/python bench/thread_time_limit.py

Today (api/dataplane/timeouts.py) the limit is SIGALRM, which Python runs
in the main thread only. The candidate mechanism here: a timer thread calls
``PyThreadState_SetAsyncExc(thread_id, _Expired)``, which raises _Expired in
the thread running the model at its next bytecode boundary, exactly where a
SIGALRM handler would raise (native code that never returns to the
interpreter is left to the watchdog, registry/inflight.py, as today). As
with SIGALRM: the exception fires again every REPEAT seconds until the block
ends (a model that catches BaseException), and a block that ends past its
deadline is a timeout whatever it returned. The timer and the block's exit
take one lock, and the exit clears an exception the timer set but the
thread has not raised yet (SetAsyncExc with NULL), so it never lands in the
code after the block.

Two timers are compared for the cost of arming and disarming per call:
``threading.Timer`` (a new thread per call) and one shared timer thread
with a heap of deadlines (arming = a push, disarming = a flag).
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import signal
import sys
import threading
import time
import timeit
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

REPEAT = 0.05
_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)


class _Expired(BaseException):
    """Raised inside model code: no `except Exception` there can swallow it."""


class Timeout(Exception):
    pass


class _Entry:
    """One armed block: which thread, until when, and whether it is done."""

    __slots__ = ("thread_id", "deadline", "armed", "fired")

    def __init__(self, thread_id: int, deadline: float) -> None:
        self.thread_id = thread_id
        self.deadline = deadline
        self.armed = True
        self.fired = False


_lock = threading.Lock()


def _fire(entry: _Entry) -> bool:
    """Raise _Expired in the entry's thread if it is still inside; True if
    it should fire again REPEAT later."""
    with _lock:
        if not entry.armed:
            return False
        entry.fired = True
        _set_async_exc(entry.thread_id, _Expired)
        return True


def _disarm(entry: _Entry) -> None:
    with _lock:
        entry.armed = False
        if entry.fired:
            # set but maybe not raised yet: cleared, so it never lands after
            _set_async_exc(entry.thread_id, ctypes.py_object())


class HeapTimer:
    """One thread for every armed block of the process."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Entry]] = []
        self._order = itertools.count()
        self._wake = threading.Condition(threading.Lock())
        threading.Thread(target=self._run, daemon=True).start()

    def arm(self, entry: _Entry) -> None:
        with self._wake:
            heapq.heappush(self._heap, (entry.deadline, next(self._order), entry))
            if self._heap[0][2] is entry:
                self._wake.notify()

    def disarm(self, entry: _Entry) -> None:
        _disarm(entry)  # stays in the heap, skipped when it comes up

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    if self._heap:
                        self._wake.wait(self._heap[0][0] - time.monotonic())
                    else:
                        self._wake.wait()
                _, _, entry = heapq.heappop(self._heap)
            if _fire(entry):
                entry.deadline = time.monotonic() + REPEAT
                self.arm(entry)


class ThreadingTimer:
    """A threading.Timer per armed block (re-armed while it fires)."""

    def arm(self, entry: _Entry) -> None:
        delay = max(0.0, entry.deadline - time.monotonic())
        timer = threading.Timer(delay, self._expire, (entry,))
        timer.daemon = True
        entry_timers[id(entry)] = timer
        timer.start()

    def _expire(self, entry: _Entry) -> None:
        if _fire(entry):
            entry.deadline = time.monotonic() + REPEAT
            self.arm(entry)

    def disarm(self, entry: _Entry) -> None:
        _disarm(entry)
        timer = entry_timers.pop(id(entry), None)
        if timer is not None:
            timer.cancel()


entry_timers: dict[int, threading.Timer] = {}


@contextmanager
def time_limit(seconds: float, timer: HeapTimer | ThreadingTimer) -> Iterator[None]:
    """As api/dataplane/timeouts.py's, in whichever thread runs the block."""
    deadline = time.monotonic() + seconds
    entry = _Entry(threading.get_ident(), deadline)
    expired = False
    try:
        timer.arm(entry)  # inside: a short limit may fire before arm returns
        yield
    except _Expired:
        expired = True
    finally:
        while True:
            try:
                timer.disarm(entry)
                break
            except _Expired:  # raised between the block's end and the lock
                expired = True
    if expired or time.monotonic() >= deadline:
        raise Timeout(f"took longer than the {seconds:g} s limit")


# --- the models ---------------------------------------------------------


class SlowPythonModel:
    """Pure Python that would run for ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def predict(self, rows: list) -> list:
        end = time.monotonic() + self.seconds
        total = 0
        while time.monotonic() < end:
            total += 1
        return [total] * len(rows)


class StubbornModel(SlowPythonModel):
    """Catches BaseException (the time limit's too) and carries on."""

    def predict(self, rows: list) -> list:
        end = time.monotonic() + self.seconds
        caught = 0
        while time.monotonic() < end:
            try:
                while time.monotonic() < end:
                    pass
            except BaseException:  # noqa: BLE001 - the point of this model
                caught += 1
        self.caught = caught
        return [0] * len(rows)


def _forest() -> tuple[object, object]:
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(
        n_samples=2000, n_features=20, n_informative=10, random_state=0
    )
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(x, y)
    return forest, np.tile(x, (100, 1))  # 200,000 rows: seconds of predict


def _limited(
    model: object, rows: object, limit: float, timer: HeapTimer | ThreadingTimer
) -> tuple[str, float]:
    started = time.monotonic()
    try:
        with time_limit(limit, timer):
            model.predict(rows)
        outcome = "finished"
    except Timeout:
        outcome = "timed out"
    return outcome, time.monotonic() - started


def demonstrate(timer: HeapTimer | ThreadingTimer, label: str) -> None:
    forest, big = _forest()
    cases: list[tuple[str, object, object, float]] = [
        ("pure-Python model, 2 s of work", SlowPythonModel(2.0), [0], 0.2),
        ("model catching BaseException", StubbornModel(2.0), [0], 0.2),
        ("100-tree forest, 200,000 rows", forest, big, 0.2),
        ("pure-Python model within its limit", SlowPythonModel(0.05), [0], 0.2),
    ]
    print(f"\n{label}: each in a pool thread (not the main thread), limit 0.2 s")
    with ThreadPoolExecutor(max_workers=4) as pool:
        for name, model, rows, limit in cases:
            outcome, took = pool.submit(_limited, model, rows, limit, timer).result()
            extra = ""
            if isinstance(model, StubbornModel):
                extra = f" (it caught the exception {model.caught} times)"
            print(f"  {name:38} {outcome:9} after {took:.3f} s{extra}")
        # four at once, with a busy thread holding the GIL in between
        busy_stop = threading.Event()

        def busy() -> None:
            while not busy_stop.is_set():
                sum(range(1000))

        spinner = threading.Thread(target=busy)
        spinner.start()
        try:
            futures = [
                pool.submit(_limited, SlowPythonModel(2.0), [0], 0.1 + 0.05 * i, timer)
                for i in range(3)
            ]
            for i, future in enumerate(futures):
                outcome, took = future.result()
                print(
                    f"  concurrent block {i}, limit {0.1 + 0.05 * i:.2f} s,"
                    f" a GIL-bound thread beside: {outcome} after {took:.3f} s"
                )
        finally:
            busy_stop.set()
            spinner.join()
    if isinstance(timer, HeapTimer):
        # threading.Timer starts a thread inside the block: see new_thread_hazard
        print(f"  2,000 blocks ending at their limit: {_strays(timer)} landed after")


def _strays(timer: HeapTimer) -> int:
    """Exceptions that land after their block (must be 0)."""
    stray = 0
    for _ in range(2000):
        try:
            try:
                with time_limit(0.0002, timer):
                    end = time.monotonic() + 0.0002
                    while time.monotonic() < end:
                        pass
            except Timeout:
                pass
            for _ in range(200):  # code after the block
                pass
        except _Expired:
            stray += 1
    return stray


def new_thread_hazard(seconds: float = 2.0) -> None:
    """A thread interrupted while it starts a thread (threading.Timer's arm,
    joblib's threading backend in a model): on Python 3.11 the exception can
    go to the new thread, which dies unstarted, and the starting thread waits
    in Thread.start() for ever (3.12 gives a new thread its id only when it
    runs)."""
    stop = threading.Event()
    ident: list[int] = []
    caught = 0

    def starter() -> None:
        nonlocal caught
        ident.append(threading.get_ident())
        while not stop.is_set():
            try:
                child = threading.Thread(target=lambda: None, daemon=True)
                child.start()
                child.join(0.5)
            except _Expired:
                caught += 1

    hook, threading.excepthook = threading.excepthook, lambda args: None
    thread = threading.Thread(target=starter, daemon=True)
    thread.start()
    while not ident:
        time.sleep(0.01)
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        _set_async_exc(ident[0], _Expired)
        sent += 1
        time.sleep(0.0005)
    stop.set()
    thread.join(1)
    threading.excepthook = hook
    print(
        f"\nnew-thread hazard, Python {sys.version.split()[0]}: {sent} sent to a thread"
        f" starting threads, {caught} raised in it; stuck in Thread.start():"
        f" {thread.is_alive()}"
    )


def _per_call_us(arm_disarm: Callable[[], None], number: int) -> float:
    return min(timeit.repeat(arm_disarm, number=number, repeat=5)) / number * 1e6


def costs() -> None:
    heap = HeapTimer()
    plain = ThreadingTimer()

    def with_heap() -> None:
        with time_limit(30, heap):
            pass

    def with_thread_timer() -> None:
        with time_limit(30, plain):
            pass

    def nothing() -> None:
        pass

    def with_sigalrm() -> None:  # today's, main thread only
        signal.setitimer(signal.ITIMER_REAL, 30, REPEAT)
        signal.setitimer(signal.ITIMER_REAL, 0)

    signal.signal(signal.SIGALRM, lambda *a: None)
    print("\narm + disarm per call (best of 5, main thread, µs)")
    for name, fn, n in (
        ("empty call", nothing, 200_000),
        ("setitimer arm + disarm (today's SIGALRM)", with_sigalrm, 200_000),
        ("shared heap timer thread + SetAsyncExc", with_heap, 100_000),
        ("threading.Timer per call + SetAsyncExc", with_thread_timer, 5_000),
    ):
        print(f"  {name:42} {_per_call_us(fn, n):8.2f}")

    # the same from 8 request threads at once (a gthread worker)
    print("arm + disarm per call from 8 threads at once (wall µs per call)")
    for name, fn, n in (
        ("shared heap timer thread", with_heap, 20_000),
        ("threading.Timer per call", with_thread_timer, 1_000),
    ):
        with ThreadPoolExecutor(max_workers=8) as pool:
            started = time.perf_counter()
            list(pool.map(lambda _, f=fn, k=n: [f() for _ in range(k)], range(8)))
            took = time.perf_counter() - started
        print(f"  {name:42} {took / (8 * n) * 1e6:8.2f}")


def main() -> None:
    print(f"Python {sys.version.split()[0]}")
    demonstrate(HeapTimer(), "shared heap timer")
    demonstrate(ThreadingTimer(), "threading.Timer")
    costs()
    new_thread_hazard()


if __name__ == "__main__":
    main()
