"""The registry's generation: how every worker on a machine learns, without a
query, that no model or version changed since it last resolved a route.

Only for a SQLite file, whose every writer is on this machine. A file beside
the database (``<database>-registry.gen``) grows by one byte each time a
transaction that wrote to the registry's tables commits, in any process
that uses Django's connection (web workers, the admin, ``manage.py``
commands); its size is the generation, read with one ``stat``. A write made
past Django (the sqlite3 shell) is not seen: routing asks the database again
at least every ``MODELHUB_ROUTE_RECHECK_MS`` anyway. On PostgreSQL, in
memory, or where the file cannot be made, there is no generation and routing
asks the database on every request.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from . import dbfiles

logger = logging.getLogger(__name__)

SUFFIX = "-registry.gen"
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC")


@functools.cache
def _registry_tables() -> tuple[str, ...]:
    from .models import MLModel, ModelVersion

    return (MLModel._meta.db_table, ModelVersion._meta.db_table)


# (vendor, database name) -> generation file: routing asks on every request.
_files: dict[tuple[str, Any], str | None] = {}


def file_for(db: BaseDatabaseWrapper) -> str | None:
    """The generation file of ``db``, or None where it has none."""
    key = (db.vendor, db.settings_dict["NAME"])
    try:
        return _files[key]
    except KeyError:
        path = _files[key] = dbfiles.beside(db, SUFFIX)
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


def _writes_registry(sql: str) -> bool:
    head = sql.lstrip()[:6].upper()
    return head in _WRITES and any(table in sql for table in _registry_tables())


def _advance_on_commit(
    execute: Callable[..., Any],
    sql: str,
    params: Any,
    many: bool,
    context: dict[str, Any],
) -> Any:
    result = execute(sql, params, many, context)
    if isinstance(sql, str) and _writes_registry(sql):
        db = context["connection"]
        path = file_for(db)
        if path is None:
            return result
        if db.in_atomic_block or db.get_autocommit():
            # At once in autocommit; after the outermost commit otherwise, so
            # no worker can cache a route it read before the change.
            db.on_commit(functools.partial(bump, path))
        else:
            # Manual transaction management (unused here) has no commit hook:
            # now, and the recheck interval bounds what a worker caches early.
            bump(path)
    return result


def watch(db: BaseDatabaseWrapper) -> None:
    """Advance ``db``'s generation after each committed registry write
    (connected to ``connection_created``; once per connection object)."""
    path = file_for(db)
    if path is None or _advance_on_commit in db.execute_wrappers:
        return
    # The file exists from the first connection on: until then, routing
    # trusts nothing it cached.
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    except OSError as exc:
        logger.warning("no registry generation beside the database: %s", exc)
    db.execute_wrappers.append(_advance_on_commit)
