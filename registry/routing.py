"""Slug -> version to serve, in at most one indexed query per request.

Each request asks the database, so an activation made anywhere (admin, CLI,
another machine) is served by every worker from its next request; on a
SQLite file, none while the registry's generation says nothing changed
(registry.generation). When the database is unreachable, a warm worker
serves the last version it resolved.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections

from . import generation
from .exceptions import (
    ModelUnavailable,
    NoActiveVersion,
    RegistryUnavailable,
    UnknownModel,
    UnknownVersion,
)
from .loading import VersionRef
from .models import MLModel, ModelVersion

logger = logging.getLogger(__name__)

# The route's own columns, then its version's: one row, one query.
_ROUTE_FIELDS = ("private", "batch_max_rows", "batch_max_wait_ms")
_VERSION_FIELDS = (
    "id",
    "number",
    "sha256",
    "file",
    "format",
    "kind",
    "input_schema",
    "classes",
    "status",
)
_last_resolved: dict[tuple[str, int | None], VersionRef] = {}
# Rows as the database sent them -> their VersionRef: an unchanged row (the
# usual case) skips JSON decoding; any change to the row is a new key.
_refs: dict[tuple[Any, ...], VersionRef] = {}
_MAX_REFS = 1024
_lock = threading.Lock()


def resolve(slug: str, number: int | None = None) -> VersionRef:
    """The version ``slug`` serves now (or version ``number`` of it)."""
    seen = generation.current(_generation_file())
    if seen is not None:
        ref = _trusted(seen, (slug, number))
        if ref is not None:
            return ref
    try:
        ref = _query(slug, number)
    except DatabaseError as exc:
        reconnect_later()
        with _lock:
            cached = _last_resolved.get((slug, number))
        if cached is None:
            raise RegistryUnavailable(
                "The model registry is unavailable and this model was not "
                "served by this instance before."
            ) from exc
        logger.warning(
            "database unavailable; serving last known %s v%s", slug, cached.number
        )
        return cached
    with _lock:
        _last_resolved[(slug, number)] = ref
        if seen is not None:
            _trust(seen, (slug, number), ref)
    return ref


# Routes resolved under one registry generation (registry.generation): while
# it stands, for at most MODELHUB_ROUTE_RECHECK_MS, they are served without a
# query.
_trusted_routes: dict[tuple[str, int | None], VersionRef] = {}
_trusted_state = [-1, 0.0]  # the generation, when the routes were first cached


def _generation_file() -> str | None:
    return generation.file_for(connections[DEFAULT_DB_ALIAS])


def _fresh(seen: int, now: float) -> bool:
    held, since = _trusted_state
    return seen == held and (now - since) * 1000 < settings.MODELHUB_ROUTE_RECHECK_MS


def _trusted(seen: int, key: tuple[str, int | None]) -> VersionRef | None:
    return _trusted_routes.get(key) if _fresh(seen, time.monotonic()) else None


def _trust(seen: int, key: tuple[str, int | None], ref: VersionRef) -> None:
    """Caller holds _lock."""
    now = time.monotonic()
    if not _fresh(seen, now):
        _trusted_routes.clear()
        _trusted_state[:] = [seen, now]
    _trusted_routes[key] = ref


def last_resolved() -> list[VersionRef]:
    with _lock:
        return list(_last_resolved.values())


def forget() -> None:
    with _lock:
        _last_resolved.clear()
        _refs.clear()
        _trusted_routes.clear()
        _trusted_state[:] = [-1, 0.0]


# The per-request query, compiled by the ORM once per process and database
# vendor: compiling it is most of its cost, running it is not (bench/README.md).
_SLUG, _NUMBER = "\x00slug", 987_654_321
_MAX_NUMBER = 2_147_483_647  # PositiveIntegerField's range on every backend


@functools.cache
def _active_statement() -> tuple[str, tuple[Any, ...]]:
    fields = [*_ROUTE_FIELDS, *(f"active_version__{f}" for f in _VERSION_FIELDS)]
    query = MLModel.objects.filter(slug=_SLUG).values_list(*fields)[:1].query
    return query.sql_with_params()


@functools.cache
def _pinned_statement() -> tuple[str, tuple[Any, ...]]:
    fields = [*(f"model__{f}" for f in _ROUTE_FIELDS), *_VERSION_FIELDS]
    versions = ModelVersion.objects.filter(model__slug=_SLUG, number=_NUMBER)
    return versions.values_list(*fields)[:1].query.sql_with_params()


def _fetch_one(
    statement: tuple[str, tuple[Any, ...]], slug: str, number: int | None = None
) -> tuple[Any, ...] | None:
    """Run the statement on the DB-API connection itself.

    Django's cursor wrapper and SQLite placeholder rewriting cost more than
    this indexed lookup (bench/README.md has the figures); errors still surface
    as Django's DatabaseError. With DEBUG or a test capturing queries, the
    query goes through Django's cursor so that it is recorded.
    """
    sql, template = statement
    params = [slug if p == _SLUG else number if p == _NUMBER else p for p in template]
    if connection.queries_logged:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            cursor.execute(_native(sql, connection.vendor), params)
            return cursor.fetchone()
        finally:
            cursor.close()


@functools.cache
def _native(sql: str, vendor: str) -> str:
    """The driver's placeholder style: sqlite3 takes '?' (the ORM's statements
    here hold no literal '%')."""
    return sql.replace("%s", "?") if vendor == "sqlite" else sql


# Row positions of the version's fields: the row starts with the route's.
_ID, _NUMBER_COLUMN = (
    len(_ROUTE_FIELDS) + _VERSION_FIELDS.index(f) for f in ("id", "number")
)
_JSON_COLUMNS = tuple(
    len(_ROUTE_FIELDS) + _VERSION_FIELDS.index(f) for f in ("input_schema", "classes")
)


def _decoded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """What the ORM's converters would give: JSON parsed, booleans as bool."""
    values = list(row)
    values[0] = bool(values[0])
    for index in _JSON_COLUMNS:
        if isinstance(values[index], str):
            values[index] = json.loads(values[index])
    return tuple(values)


def reconnect_later() -> None:
    """Drop a connection that failed, so the next query opens a fresh one.

    Django keeps a persistent connection that it only health-checks between
    requests, and never for SQLite: one opened while the file was read-only
    would stay read-only after the file is writable again.
    """
    if not connection.in_atomic_block:
        try:
            connection.close()
        except DatabaseError:
            pass


def version_ref(slug: str, number: int) -> VersionRef:
    """Version ``number`` of ``slug``, straight from the database."""
    return _query(slug, number)


def _query(slug: str, number: int | None) -> VersionRef:
    if number is None:
        row = _fetch_one(_active_statement(), slug)
        if row is None:
            raise UnknownModel(f"No model with slug '{slug}'.")
        if row[_ID] is None:
            raise NoActiveVersion(f"Model '{slug}' has no active version.")
    else:
        # A number no version can have (the path takes any digits) is not
        # sent to the database, where it would overflow the column type.
        in_range = 0 < number <= _MAX_NUMBER
        row = _fetch_one(_pinned_statement(), slug, number) if in_range else None
        if row is None:
            if not MLModel.objects.filter(slug=slug).exists():
                raise UnknownModel(f"No model with slug '{slug}'.")
            raise UnknownVersion(f"Model '{slug}' has no version {number}.")
    status = row[-1]
    if status != ModelVersion.Status.READY:
        raise ModelUnavailable(f"'{slug}' v{row[_NUMBER_COLUMN]} is marked {status}.")
    try:
        return _refs[(slug, row)]
    except KeyError:
        ref = _ref(slug, row)
        with _lock:
            if len(_refs) >= _MAX_REFS:
                _refs.pop(next(iter(_refs)))
            _refs[(slug, row)] = ref
        return ref
    except TypeError:  # a driver that decodes JSON columns itself: unhashable
        return _ref(slug, row)


def _ref(slug: str, row: tuple[Any, ...]) -> VersionRef:
    private, rows, wait_ms, vid, num, sha, file_name, fmt, kind, schema, classes, _ = (
        _decoded(row)
    )
    return VersionRef(
        id=vid,
        slug=slug,
        number=num,
        sha256=sha,
        file_name=file_name,
        format=fmt,
        kind=kind,
        input_schema=schema or {},
        classes=classes,
        private=private,
        batch_max_rows=rows,
        batch_max_wait_ms=wait_ms,
    )
