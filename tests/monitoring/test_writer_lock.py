"""The request log's writers queue on a file lock beside a SQLite database.

Another process stands in for the other worker: it probes the lock with a
non-blocking flock, as a waiting writer would find it.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
from pathlib import Path

from django.db.backends.sqlite3.base import DatabaseWrapper

from monitoring import writer_lock


def sqlite_db(name: str) -> DatabaseWrapper:
    return DatabaseWrapper({"ENGINE": "django.db.backends.sqlite3", "NAME": name})


def taken_by_someone_else(lock_file: Path) -> bool:
    """Whether a process of its own finds the lock taken (it never waits)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_probe, (str(lock_file),))


def _probe(path: str) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_log_write_to_a_sqlite_file_holds_the_lock_beside_it(tmp_path):
    db = sqlite_db(str(tmp_path / "db.sqlite3"))
    lock_file = tmp_path / f"db.sqlite3{writer_lock.SUFFIX}"

    with writer_lock.held(db):
        assert taken_by_someone_else(lock_file)
    assert not taken_by_someone_else(lock_file)


def test_a_forked_worker_queues_behind_its_parent(tmp_path):
    """gunicorn forks its workers from a process that may have written
    already: a child must not share its parent's lock."""
    db = sqlite_db(str(tmp_path / "db.sqlite3"))
    with writer_lock.held(db):  # the parent's descriptor exists before the fork
        pass
    reader, writer = os.pipe()
    fd = writer_lock.acquire(db)
    try:
        pid = os.fork()
        if pid == 0:  # the child: try its own turn without waiting
            child_fd = writer_lock._descriptor(db)
            try:
                fcntl.flock(child_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.write(writer, b"got it")
            except BlockingIOError:
                os.write(writer, b"queued")
            os._exit(0)
        os.waitpid(pid, 0)
    finally:
        writer_lock.release(fd)
    assert os.read(reader, 16) == b"queued"
    os.close(reader)
    os.close(writer)


def test_nothing_is_locked_in_memory_inside_a_transaction_or_on_postgresql(
    tmp_path,
):
    site = tmp_path / "site"
    site.mkdir()
    memory = sqlite_db(":memory:")
    assert writer_lock.acquire(memory) == writer_lock.NONE

    in_transaction = sqlite_db(str(site / "db.sqlite3"))
    in_transaction.in_atomic_block = True  # it may hold SQLite's own lock
    assert writer_lock.acquire(in_transaction) == writer_lock.NONE

    postgres = sqlite_db(str(site / "db.sqlite3"))
    postgres.vendor = "postgresql"
    assert writer_lock.acquire(postgres) == writer_lock.NONE
    assert list(site.iterdir()) == []


def test_a_lock_file_that_cannot_be_made_means_writing_without_it(tmp_path, caplog):
    """As in a read-only directory (root may write there, so the test puts a
    directory where the lock file would go)."""
    (tmp_path / f"db.sqlite3{writer_lock.SUFFIX}").mkdir()
    db = sqlite_db(str(tmp_path / "db.sqlite3"))
    with caplog.at_level(logging.WARNING, logger="monitoring.writer_lock"):
        with writer_lock.held(db):
            pass
    assert "no writer queue" in caplog.text
