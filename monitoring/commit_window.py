"""Group commit for the request log: one commit per window, not per request.

A row is committed at most MODELHUB_LOG_COMMIT_MS after its response was
sent, or as soon as MODELHUB_LOG_COMMIT_ROWS rows wait. The commit happens
on a thread of the worker's own (with its own database connection), so a
sync worker waiting in accept() for its next request still commits on time
and a request never waits for another's commit. Every graceful exit commits
what waits first (``close``, from gunicorn's worker_exit hook and atexit);
a SIGKILL loses only the rows not yet committed.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

# After a failed commit (the database down), rows are retried this often
# even if no request comes to trigger it.
RETRY_SECONDS = 1.0


class CommitWindow:
    """Calls ``commit`` (True when it failed and should be retried) when a
    window closes. Started lazily in each process: a thread does not survive
    a fork, and gunicorn's master forks its workers after importing this."""

    def __init__(self, commit: Callable[[], bool]) -> None:
        self._commit = commit
        self._pid = 0  # the process whose thread runs, 0 = none
        self._fresh()
        # A lock held by another thread at a fork stays held in the child.
        os.register_at_fork(after_in_child=self._fresh)

    def _fresh(self) -> None:
        self._starting = threading.Lock()
        self._condition = threading.Condition()
        self._due: float | None = None  # when the open window closes
        # The run due is only a reminder (``soon``): a row's window may close
        # before it.
        self._soft = False
        self._closed = False
        self._pid = 0

    def row_added(self, waiting: int, seconds: float, max_rows: int) -> None:
        """A row waits (``waiting`` in all): open a window, or close it now
        when the window is full."""
        if self._pid != os.getpid():
            with self._starting:
                if self._pid != os.getpid():
                    self._start()
        with self._condition:
            now = time.monotonic()
            if waiting >= max_rows:
                self._due, self._soft = now, False
                self._condition.notify()
            elif self._due is None or (self._soft and self._due > now + seconds):
                self._due, self._soft = now + seconds, False
                self._condition.notify()

    def soon(self, seconds: float) -> None:
        """Run the commit again within ``seconds`` even if no row comes (work
        owed after it, such as drift counts); a row's window still closes on
        time."""
        if self._pid != os.getpid():
            return  # no thread here: the next row starts it
        with self._condition:
            if self._due is None:
                self._due, self._soft = time.monotonic() + seconds, True
                self._condition.notify()

    def close(self) -> None:
        """Stop the thread; the caller commits what waits (see writer.close)."""
        with self._condition:
            self._closed = True
            self._condition.notify()

    def _start(self) -> None:
        self._pid = os.getpid()
        thread = threading.Thread(
            target=self._run, name="modelhub-log-commit", daemon=True
        )
        thread.start()

    def _run(self) -> None:
        condition = self._condition
        while True:
            with condition:
                while not self._closed and (
                    self._due is None or self._due > time.monotonic()
                ):
                    due = self._due
                    condition.wait(None if due is None else due - time.monotonic())
                if self._closed:
                    return
                self._due, self._soft = None, False
            try:
                failed = self._commit()
            except Exception:  # the thread must outlive any one failure
                logger.exception("request log: commit failed")
                failed = True
            if failed:
                with condition:
                    retry = time.monotonic() + RETRY_SECONDS
                    self._due = retry if self._due is None else min(self._due, retry)


def commit_at_exit(close: Callable[[], object]) -> None:
    """Outside gunicorn (runserver, a management command) atexit is the
    graceful path; gunicorn's worker_exit hook runs before it."""
    atexit.register(close)
