"""A per-request time limit on model code that leaves the worker alive.

gunicorn's own timeout kills the worker: the client gets no JSON and no log
row. SIGALRM interrupts the model in the worker's main thread instead; in
other threads (gthread workers) no limit applies and gunicorn's timeout is
the backstop.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .exceptions import PredictionTimeout


class _Expired(BaseException):
    """Raised inside model code: no `except Exception` there can swallow it."""


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _Expired

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Expired:
        raise PredictionTimeout(
            f"{what} took longer than the {seconds:g} s limit."
        ) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
