"""The registry's generation: how a worker learns, without a query, that no
model or version changed since it last resolved a route.

Routing asks ``seen()`` and does not care where the number comes from:

- a SQLite file, whose every writer is on this machine: a file beside the
  database (``<database>-registry.gen``) grows by one byte each time the
  registry's action functions (registry.actions) commit a change, in
  whatever process ran them (web workers, the admin, ``manage.py``
  commands); its size is the generation, read with one ``stat``;
- PostgreSQL: the count of notices this process's listener received, pushed
  on commit by every process on every host (registry.notices);
- otherwise (SQLite in memory, a file that cannot be made,
  MODELHUB_ROUTE_LISTEN off): none, and routing asks the database on every
  request.

A write made past the actions (the sqlite3 shell, a raw UPDATE) is not
announced: routing asks the database again at least every
``MODELHUB_ROUTE_RECHECK_MS`` anyway.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from . import dbfiles, notices

logger = logging.getLogger(__name__)

SUFFIX = "-registry.gen"

# (vendor, database name) -> generation file: routing asks on every request.
_files: dict[tuple[str, Any], str | None] = {}


def file_for(db: BaseDatabaseWrapper) -> str | None:
    """The generation file of ``db``, or None where it has none.

    The file is made the first time a process asks: until it exists, routing
    trusts nothing it cached.
    """
    key = (db.vendor, db.settings_dict["NAME"])
    try:
        return _files[key]
    except KeyError:
        path = _files[key] = dbfiles.beside(db, SUFFIX)
        if path is not None:
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
            except OSError as exc:
                logger.warning("no registry generation beside the database: %s", exc)
        return path


def current(path: str | None) -> int | None:
    """The generation in ``path``; None = unknown (ask the database)."""
    if path is None or path in _unwritable:
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


# Generation files this process could not advance: it trusts none of its own
# cached routes there (other processes ask again within the recheck interval).
_unwritable: set[str] = set()


def bump(path: str) -> None:
    """One byte appended: O_APPEND makes concurrent bumps add up. Never
    raises: the registry change it follows is already committed."""
    try:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, b".")
        finally:
            os.close(fd)
    except OSError as exc:
        _unwritable.add(path)
        logger.warning("registry generation not advanced (%s): %s", path, exc)


def seen(db: BaseDatabaseWrapper) -> int | None:
    """The generation of ``db`` as this process sees it; None = unknown."""
    path = file_for(db)
    if path is not None:
        return current(path)
    if db.vendor == "postgresql":
        return notices.generation()
    return None


def advance_on_commit(using: str = DEFAULT_DB_ALIAS) -> None:
    """Advance the generation once the current transaction commits (at once in
    autocommit), so no worker can cache a route it read before the change."""
    db = connections[using]
    path = file_for(db)
    if path is not None:
        transaction.on_commit(functools.partial(bump, path), using=using)
    elif db.vendor == "postgresql":
        notices.send(using)
