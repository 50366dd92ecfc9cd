"""Registry changes pushed to every worker on PostgreSQL: NOTIFY on commit,
one LISTEN connection per process.

``send()`` (from registry.changes.announce) runs ``pg_notify(CHANNEL, token)``
inside the transaction that makes a change. PostgreSQL delivers it only when,
and if, that transaction commits, to every session of the same database
listening on CHANNEL (a channel belongs to its database, so one name serves
every install), on this host or any other.

Each process runs one listener: a daemon thread with a connection of its own
(application_name APPLICATION_NAME), started on first use and again in a
forked child (gunicorn's master preloads the app and forks its workers; the
master stops its own before forking, registry.forkshare). Each read of
notices advances the process's generation, which routing compares with the
one its cached routes were resolved under (registry.generation). While the
listener is not connected the generation is unknown (None: routing asks the
database on every request); a connection lost and regained gets a generation
never used before in this process, so every route cached before is dropped,
as a notice may have been missed meanwhile. A storm of notices costs a read
and one counter bump per batch.

"From the next request": between a commit and a listener thread handling its
notice there is a window. Two things close it as far as they can: a request
asking for the generation while notice bytes wait unread on the listener's
socket gets None (one poll(2), under the lock the listener holds while it
reads and bumps), and the process that made the change waits, on commit, at
most WAIT_SECONDS for its own listener to receive its notice: by the time
an admin or API write answers, the server has signalled every listening
session. Each sends on its own, so another may still lag by a fraction of a
millisecond (a few at worst on a busy machine, more across a slow network:
bench/README.md has the figures); the recheck bounds everything.
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import threading
import uuid
from functools import partial
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction

logger = logging.getLogger(__name__)

CHANNEL = "modelhub_registry"
APPLICATION_NAME = "modelhub-route-listener"
# How long a process that made a change waits, on commit, for its own
# listener to receive the notice (and, before its first change, to connect).
WAIT_SECONDS = 1.0
_MAX_WAITING = 10_000
# Reconnecting: the first retry soon, then backing off to this.
RETRY_FIRST_SECONDS = 0.05
RETRY_MAX_SECONDS = 2.0
# A silently dropped connection (a host gone, a firewall) is noticed by TCP
# keepalives within about idle + interval x count seconds.
_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "connect_timeout": 5,
}


class Listener:
    """One process's LISTEN connection and the generation it keeps."""

    def __init__(self) -> None:
        self._counter = 0  # never reset, not even in a forked child
        self._orphans: list[Any] = []
        self._fresh()
        # A lock held by another thread at a fork stays held in the child.
        os.register_at_fork(after_in_child=self._fresh)
        # A clean goodbye to the server (daemon threads are just dropped).
        atexit.register(self.stop)

    def _fresh(self) -> None:
        if getattr(self, "_conn", None) is not None:
            # The parent's connection: closing it here would end the parent's
            # session too (libpq sends Terminate on the shared socket).
            self._orphans.append(self._conn)
        self._pid = 0  # the process whose thread runs, 0 = none
        self._starting = threading.Lock()
        self._lock = threading.RLock()  # held while notices are read and counted
        self._seen = threading.Condition()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._fd = -1
        self._generation: int | None = None
        self._connected = threading.Event()
        self._stopping = False
        self._wake: tuple[int, int] | None = None
        self._origin = uuid.uuid4().hex[:12]  # this process, in tokens
        self._sent = 0
        # This process's notices whose commit waits for them to come back
        # (a rolled-back one never comes: the set is cleared past _MAX_WAITING).
        self._waiting: set[int] = set()

    # -- the request path ---------------------------------------------------

    def generation(self) -> int | None:
        """The generation now; None = unknown (ask the database)."""
        if self._pid != os.getpid():
            self.start()
            return None
        with self._lock:
            generation = self._generation
            if generation is None or _readable(self._fd):
                return None  # not listening, or a notice waits unread
            return generation

    # -- the write path -----------------------------------------------------

    def send(self, using: str) -> None:
        """NOTIFY inside the current transaction (delivered on commit); on
        commit, wait for this process's listener to receive it."""
        listening = using == DEFAULT_DB_ALIAS and self.listening(WAIT_SECONDS)
        with self._seen:
            self._sent += 1
            number = self._sent
            if listening:
                if len(self._waiting) >= _MAX_WAITING:
                    self._waiting.clear()
                self._waiting.add(number)
        token = f"{self._origin}.{number}"
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, token])
        if listening:
            transaction.on_commit(partial(self.wait_for, number), using=using)

    def listening(self, timeout: float) -> bool:
        """Started and connected, waiting at most ``timeout`` for it."""
        if self._pid != os.getpid():
            self.start()
        return self._connected.wait(timeout)

    def wait_for(self, number: int, timeout: float = WAIT_SECONDS) -> bool:
        """Whether notice ``number`` of this process came back within
        ``timeout`` seconds."""
        with self._seen:
            back = self._seen.wait_for(lambda: number not in self._waiting, timeout)
            self._waiting.discard(number)
            return back

    # -- the thread -----------------------------------------------------------

    def start(self) -> None:
        with self._starting:
            if self._pid == os.getpid():
                return
            self._stopping = False
            self._wake = os.pipe()
            params = _connection_params()
            self._thread = threading.Thread(
                target=self._run,
                args=(params, self._wake[0]),
                name="registry-notices",
                daemon=True,
            )
            self._pid = os.getpid()
            self._thread.start()

    def stop(self) -> None:
        """End the thread and close its connection (before a fork, or a test
        database is dropped); the next use starts it again."""
        with self._starting:
            if self._pid != os.getpid() or self._thread is None:
                return
            self._stopping = True
            assert self._wake is not None
            os.write(self._wake[1], b"x")
            self._thread.join(timeout=10)
            for fd in self._wake:
                os.close(fd)
            self._wake, self._thread, self._pid = None, None, 0

    def _run(self, params: dict[str, Any], wake: int) -> None:
        delay = RETRY_FIRST_SECONDS
        while not self._stopping:
            try:
                conn = psycopg.connect(**params)
            except psycopg.Error as exc:
                if delay == RETRY_FIRST_SECONDS:  # once per outage, not per try
                    logger.warning("registry notices: cannot connect (%s)", exc)
                if _woken(wake, delay):
                    return
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            try:
                conn.execute(f"LISTEN {CHANNEL}")
                with self._lock:
                    # A value never used before: every route cached while
                    # not listening is dropped.
                    self._counter += 1
                    self._conn, self._fd = conn, conn.fileno()
                    self._generation = self._counter
                self._connected.set()
                delay = RETRY_FIRST_SECONDS
                self._listen(conn, wake)
            except (psycopg.Error, OSError) as exc:
                if not self._stopping:
                    logger.warning(
                        "registry notices: connection lost, every cached route "
                        "is dropped (%s)",
                        exc,
                    )
            finally:
                self._connected.clear()
                with self._lock:
                    self._conn, self._fd, self._generation = None, -1, None
                conn.close()
            if not self._stopping and _woken(wake, delay):
                return

    def _listen(self, conn: psycopg.Connection, wake: int) -> None:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        poller.register(wake, select.POLLIN)
        while not self._stopping:
            events = dict(poller.poll())
            if wake in events:
                return
            with self._lock:
                batch = list(conn.notifies(timeout=0))
                if conn.closed or conn.pgconn.status != psycopg.pq.ConnStatus.OK:
                    raise psycopg.OperationalError("the server closed the connection")
                if batch:
                    self._counter += 1
                    self._generation = self._counter
            mine = [
                int(n.payload.rpartition(".")[2])
                for n in batch
                if n.payload.startswith(self._origin + ".")
            ]
            if mine:
                with self._seen:
                    self._waiting.difference_update(mine)
                    self._seen.notify_all()


def _readable(fd: int) -> bool:
    """Whether bytes wait on ``fd`` (an unread notice): one poll(2)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _woken(wake: int, seconds: float) -> bool:
    """Sleep ``seconds`` unless stop() wakes the thread first."""
    return bool(select.select([wake], [], [], seconds)[0])


def _connection_params() -> dict[str, Any]:
    """The default database's connection settings, for a session of its own."""
    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    return {
        **_KEEPALIVES,
        **params,
        "autocommit": True,
        "application_name": APPLICATION_NAME,
    }


_listener = Listener()


def enabled() -> bool:
    return settings.MODELHUB_ROUTE_LISTEN


def generation() -> int | None:
    """This process's generation of the registry; None = unknown."""
    return _listener.generation() if enabled() else None


def send(using: str = DEFAULT_DB_ALIAS) -> None:
    """Announce a change on commit (registry.changes)."""
    if enabled():
        _listener.send(using)
    else:
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, ""])


def stop() -> None:
    _listener.stop()
