"""A per-request time limit on model code that leaves the worker alive.

gunicorn's own timeout kills the worker: the client gets no JSON and no log
row. So the limit interrupts the model instead, where the model runs:

- in a sync worker's main thread, SIGALRM (it also cuts a sleep short);
- in any other thread (a gthread worker's request thread, a batcher's
  thread), one clock thread per process raises the same exception inside the
  model's thread with ``PyThreadState_SetAsyncExc``, at its next bytecode: as
  SIGALRM's handler does, except that a call blocked in C (a sleep, a lock)
  finishes first.

Either way a model that catches BaseException gets it again every
_REPEAT_SECONDS until the block ends, and a block that ends past its deadline
is a timeout whatever it returned. Native code that never returns to the
interpreter is beyond both: registry/inflight.py's watchdog ends it.
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import PredictionTimeout


class _Expired(BaseException):
    """Raised inside model code: no `except Exception` there can swallow it."""


_REPEAT_SECONDS = 0.05


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Raise PredictionTimeout when the block runs past ``seconds``."""
    if seconds <= 0:
        yield
        return
    deadline = time.monotonic() + seconds
    if threading.current_thread() is threading.main_thread():
        expired = yield from _with_alarm(seconds)
    else:
        expired = yield from _with_clock(deadline)
    if expired or time.monotonic() >= deadline:
        raise PredictionTimeout(f"{what} took longer than the {seconds:g} s limit.")


# The main thread: SIGALRM --------------------------------------------------

# SIGALRM means "the current limit has passed" only while a limit is set: a
# signal that lands after the block (it was about to be disarmed) is ignored.
_armed = False
_installed = False


def _expire(signum: int, frame: Any) -> None:
    if _armed:
        raise _Expired


def _with_alarm(seconds: float) -> Iterator[None]:
    """The handler is installed once per process: swapping it around every
    prediction cost about as much as the timer itself (signal.signal converts
    both handlers through enum lookups)."""
    global _armed, _installed
    if not _installed:
        signal.signal(signal.SIGALRM, _expire)
        _installed = True
    expired = False
    _armed = True
    signal.setitimer(signal.ITIMER_REAL, seconds, _REPEAT_SECONDS)
    try:
        yield
    except _Expired:
        expired = True
    finally:
        _armed = False  # first, with no call before it: no alarm raises after
        signal.setitimer(signal.ITIMER_REAL, 0)
    return expired


# Other threads: one clock thread per process -------------------------------

# No argtypes: None is passed as NULL, which clears a pending exception.
_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc


class _Limit:
    __slots__ = ("thread_id", "deadline", "armed")

    def __init__(self, thread_id: int, deadline: float) -> None:
        self.thread_id = thread_id
        self.deadline = deadline
        self.armed = True


class _Clock:
    """The armed limits by thread, and one thread that sleeps until the
    earliest. Arming takes a lock and wakes the clock only when the new
    deadline is earlier than the one it sleeps towards (with one limit for
    every request, hardly ever): a limit per prediction costs microseconds."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._condition = threading.Condition()
        # Held while the clock raises into a thread, and by that thread while
        # it leaves its block: nothing is raised into it after it has left.
        self.firing = threading.Lock()
        self._active: dict[int, _Limit] = {}
        self._wake_at = math.inf
        self._pid = 0

    def arm(self, deadline: float) -> _Limit:
        limit = _Limit(threading.get_ident(), deadline)
        with self._condition:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(
                    target=self._run, name="modelhub-time-limit", daemon=True
                ).start()
            self._active[limit.thread_id] = limit
            if deadline < self._wake_at:
                self._condition.notify()
        return limit

    def leave(self, limit: _Limit) -> None:
        """No exception is raised into the thread after this returns, not
        even one the clock set a moment ago (it is cleared)."""
        with self.firing:
            limit.armed = False
            if self._active.get(limit.thread_id) is limit:
                del self._active[limit.thread_id]
            _set_async_exc(ctypes.c_ulong(limit.thread_id), None)

    def _run(self) -> None:
        condition = self._condition
        with condition:
            while True:
                now = time.monotonic()
                for limit in list(self._active.values()):
                    if limit.deadline <= now:
                        self._fire(limit)
                        limit.deadline = now + _REPEAT_SECONDS  # if swallowed
                deadlines = [limit.deadline for limit in self._active.values()]
                self._wake_at = min(deadlines, default=math.inf)
                condition.wait(
                    None if self._wake_at == math.inf else self._wake_at - now
                )

    def _fire(self, limit: _Limit) -> None:
        with self.firing:
            if limit.armed:
                _set_async_exc(
                    ctypes.c_ulong(limit.thread_id), ctypes.py_object(_Expired)
                )


_clock = _Clock()


def _with_clock(deadline: float) -> Iterator[None]:
    limit = _clock.arm(deadline)
    expired = False
    try:
        yield
    except _Expired:
        expired = True
    finally:
        while True:
            try:
                _clock.leave(limit)
                break
            except _Expired:  # landed while leaving
                expired = True
    return expired
