"""Request quotas shared by every worker of a host: a GCRA counter per caller
in a small SQLite file (or, with ``REDIS_URL``, by every host: cluster_quota).

Each worker of a host opens the same file; ``BEGIN IMMEDIATE`` makes the
read-and-advance of a caller's counter atomic across them, so N workers allow
the rate once, not N times. GCRA (a leaky bucket kept as one timestamp per
caller) lets a caller spend its whole allowance in a burst and then holds it
to the rate, with the exact wait for ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
import threading
import time
from typing import Protocol

from django.conf import settings

from ..rates import parse_rate

_PRUNE_EVERY = 1000  # takes between two deletes of idle callers' rows


def default_path() -> str:
    """One file per install on this host (its database names the install)."""
    db = settings.DATABASES["default"]
    install = f"{db.get('HOST', '')}:{db.get('PORT', '')}/{db.get('NAME', '')}"
    digest = hashlib.sha256(install.encode()).hexdigest()[:16]
    return os.path.join(
        tempfile.gettempdir(), f"modelhub-quota-{os.getuid()}-{digest}.sqlite3"
    )


class HostQuota:
    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._takes = 0

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS quota (ident TEXT PRIMARY KEY, tat REAL)"
            )
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def take(self, ident: str, rate: str) -> float | None:
        """None when allowed (the request is counted); else seconds to wait."""
        allowed, period = parse_rate(rate)
        interval = period / allowed
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read under the lock: a clock read before it could be older than
            # the one the last writer advanced from, and the wait would
            # exceed the interval.
            now = time.time()
            row = conn.execute(
                "SELECT tat FROM quota WHERE ident = ?", (ident,)
            ).fetchone()
            tat = max(row[0], now) if row else now
            wait = tat + interval - now - period
            if wait > 0:
                return wait
            conn.execute(
                "INSERT INTO quota (ident, tat) VALUES (?, ?) "
                "ON CONFLICT (ident) DO UPDATE SET tat = excluded.tat",
                (ident, tat + interval),
            )
            self._takes += 1
            if self._takes % _PRUNE_EVERY == 0:
                conn.execute("DELETE FROM quota WHERE tat < ?", (now,))
            return None
        finally:
            conn.execute("COMMIT")


class Quota(Protocol):
    def take(self, ident: str, rate: str) -> float | None: ...


def shared_quota() -> Quota:
    """The quota every worker counts in: the cluster's when ``REDIS_URL`` is
    set (api.access.cluster_quota), else this host's file."""
    if not settings.REDIS_URL:
        return host_quota()
    # Imported here: redis-py takes ~0.15 s to import, which only installs
    # with a Redis should pay (ApiConfig.ready() imports it before the fork).
    from .cluster_quota import cluster_quota

    return cluster_quota()


_quota: HostQuota | None = None


def host_quota() -> HostQuota:
    global _quota
    path = settings.MODELHUB_QUOTA_FILE or default_path()
    if _quota is None or _quota.path != path:
        _quota = HostQuota(path)
    return _quota
