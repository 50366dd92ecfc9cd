"""The request log's writers queue on a file lock beside a SQLite database.

SQLite answers a writer that finds its write lock taken with the busy
handler, which sleeps a whole millisecond before it looks again (then 2, 5,
10 ms...). With every worker committing one row per request, about one write
in ten finds another worker's commit in progress, and that worker then sits
idle for a millisecond or more (bench/README.md has the numbers). A blocking
``flock`` on ``<database>-log.lock`` queues the log's writers in the kernel
instead: a waiter wakes as soon as the holder's commit is done.

Only the request log's own transactions take it (a row, a batch after an
outage, a fold), never one that is already inside another transaction:
that one may hold SQLite's lock, and the next writer in the queue would wait
on it. Other writers (the admin) still meet SQLite's busy handler. On
PostgreSQL, in memory, or where the lock file cannot be made (a read-only
directory), nothing is locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator

from django.db.backends.base.base import BaseDatabaseWrapper

from registry import dbfiles

logger = logging.getLogger(__name__)

NONE = -1
SUFFIX = "-log.lock"

# Database file -> this process's descriptor of its lock file (NONE: no lock).
# flock() locks belong to an open file description, which a fork shares: a
# child opens its own, or it would not queue behind its parent or siblings.
_descriptors: dict[str, int] = {}


def _forget_after_fork() -> None:
    for fd in _descriptors.values():
        if fd != NONE:
            with contextlib.suppress(OSError):
                os.close(fd)
    _descriptors.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _descriptor(db: BaseDatabaseWrapper) -> int:
    name = str(db.settings_dict["NAME"])
    fd = _descriptors.get(name)
    if fd is None:
        fd = NONE
        path = dbfiles.beside(db, SUFFIX)
        if path is not None:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                logger.warning(
                    "request log: no writer queue beside %s (%s); "
                    "concurrent writers fall back to SQLite's busy wait",
                    name,
                    exc,
                )
        _descriptors[name] = fd
    return fd


def acquire(db: BaseDatabaseWrapper) -> int:
    """Wait for this process's turn to write to ``db``; pass the result to
    ``release``."""
    if db.vendor != "sqlite" or db.in_atomic_block:
        return NONE
    fd = _descriptor(db)
    if fd != NONE:
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def release(fd: int) -> None:
    if fd != NONE:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def held(db: BaseDatabaseWrapper) -> Iterator[None]:
    fd = acquire(db)
    try:
        yield
    finally:
        release(fd)
