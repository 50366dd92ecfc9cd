"""A per-request time limit on model code that leaves the worker alive.

gunicorn's own timeout kills the worker: the client gets no JSON and no log
row. SIGALRM interrupts the model in the worker's main thread instead; in
other threads (gthread workers) no limit applies and gunicorn's timeout is
the backstop.

A model may catch BaseException and carry on: the alarm then fires again
every _REPEAT_SECONDS until the block ends, and a block that ends past its
deadline is a timeout whatever it returned. Native code that never returns
to the interpreter is beyond any signal: api/dataplane/watchdog.py ends it.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import PredictionTimeout


class _Expired(BaseException):
    """Raised inside model code: no `except Exception` there can swallow it."""


# SIGALRM means "the current limit has passed" only while a limit is set: a
# signal that lands after the block (it was about to be disarmed) is ignored.
_REPEAT_SECONDS = 0.05
_armed = False
_installed = False


def _expire(signum: int, frame: Any) -> None:
    if _armed:
        raise _Expired


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """The handler is installed once per process: swapping it around every
    prediction cost about as much as the timer itself (signal.signal converts
    both handlers through enum lookups)."""
    global _armed, _installed
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    if not _installed:
        signal.signal(signal.SIGALRM, _expire)
        _installed = True
    deadline = time.monotonic() + seconds
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
    if expired or time.monotonic() >= deadline:
        raise PredictionTimeout(f"{what} took longer than the {seconds:g} s limit.")
