"""Slug -> version to serve, in at most one indexed query per request
(plus one per version the traffic policy names, when the model has one).

A route is served without a query while the registry's generation says
nothing changed since it was resolved (registry.generation: a file's size on
SQLite, notices pushed on commit on PostgreSQL), for at most
MODELHUB_ROUTE_RECHECK_MS; where the generation is unknown, each request asks
the database. Either way an activation made anywhere (admin, CLI, another
machine) is served by every worker from its next request. When the database
is unreachable, a warm worker serves the last version it resolved.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections

from . import generation
from .exceptions import (
    ModelUnavailable,
    NoActiveVersion,
    RegistryUnavailable,
    UnknownAlias,
    UnknownModel,
    UnknownVersion,
)
from .loading import VersionRef
from .models import MLModel, ModelVersion

logger = logging.getLogger(__name__)

# The route's own columns, then its version's: one row, one query.
_ROUTE_FIELDS = (
    "private",
    "batch_max_rows",
    "batch_max_wait_ms",
    "capture_payloads",
    "keep_predictions",
)
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
# The traffic policy's columns, read with the active version (a LEFT JOIN:
# all None when the model has no policy).
_POLICY_FIELDS = (
    "policy__candidate_id",
    "policy__weight",
    "policy__sticky_header",
    "policy__sticky_feature",
    "policy__shadow_id",
)


@dataclass(frozen=True, slots=True)
class Policy:
    """The unpinned URL's split (registry.models.TrafficPolicy), with the
    versions it names resolved in the same call."""

    candidate: VersionRef | None
    weight: float
    sticky_header: str
    sticky_feature: str
    shadow: VersionRef | None


@dataclass(frozen=True, slots=True)
class Route:
    """What a request URL resolves to: the version it names (the active one,
    a pinned number or an alias's) and, for the unpinned URL, the policy."""

    ref: VersionRef
    kind: str  # "active", "pinned" or "alias"
    alias: str = ""
    policy: Policy | None = None


Key = tuple[str, int | None, str]
_last_resolved: dict[Key, Route] = {}
# Rows as the database sent them -> their VersionRef: an unchanged row (the
# usual case) skips JSON decoding; any change to the row is a new key.
_refs: dict[tuple[Any, ...], VersionRef] = {}
_MAX_REFS = 1024
_lock = threading.Lock()


def resolve(slug: str, number: int | None = None) -> VersionRef:
    """The version ``slug`` serves now (or version ``number`` of it)."""
    return resolve_route(slug, number).ref


def resolve_route(slug: str, number: int | None = None, alias: str = "") -> Route:
    """What ``slug`` serves now: its active version and traffic policy, or
    version ``number``, or what ``alias`` points to."""
    key = (slug, number, alias)
    seen = generation.seen(connections[DEFAULT_DB_ALIAS])
    if seen is not None:
        route = _trusted(seen, key)
        if route is not None:
            return route
    try:
        route = _route(slug, number, alias)
    except DatabaseError as exc:
        reconnect_later()
        with _lock:
            cached = _last_resolved.get(key)
        if cached is None:
            raise RegistryUnavailable(
                "The model registry is unavailable and this model was not "
                "served by this instance before."
            ) from exc
        logger.warning(
            "database unavailable; serving last known %s v%s", slug, cached.ref.number
        )
        return cached
    with _lock:
        _last_resolved[key] = route
        if seen is not None:
            _trust(seen, key, route)
    return route


# Routes resolved under one registry generation (registry.generation): while
# it stands, for at most MODELHUB_ROUTE_RECHECK_MS, they are served without a
# query.
_trusted_routes: dict[Key, Route] = {}
_trusted_state = [-1, 0.0]  # the generation, when the routes were first cached


def _fresh(seen: int, now: float) -> bool:
    held, since = _trusted_state
    return seen == held and (now - since) * 1000 < settings.MODELHUB_ROUTE_RECHECK_MS


def _trusted(seen: int, key: Key) -> Route | None:
    return _trusted_routes.get(key) if _fresh(seen, time.monotonic()) else None


def _trust(seen: int, key: Key, route: Route) -> None:
    """Caller holds _lock."""
    now = time.monotonic()
    if not _fresh(seen, now):
        _trusted_routes.clear()
        _trusted_state[:] = [seen, now]
    _trusted_routes[key] = route


def last_resolved() -> list[VersionRef]:
    with _lock:
        return [route.ref for route in _last_resolved.values()]


def forget() -> None:
    with _lock:
        _last_resolved.clear()
        _refs.clear()
        _trusted_routes.clear()
        _trusted_state[:] = [-1, 0.0]


# The per-request query, compiled by the ORM once per process and database
# vendor: compiling it is most of its cost, running it is not (bench/README.md).
_SLUG, _NUMBER, _ALIAS = "\x00slug", 987_654_321, "\x00alias"
_MAX_NUMBER = 2_147_483_647  # PositiveIntegerField's range on every backend


@functools.cache
def _active_statement() -> tuple[str, tuple[Any, ...]]:
    fields = [
        *_ROUTE_FIELDS,
        *(f"active_version__{f}" for f in _VERSION_FIELDS),
        *_POLICY_FIELDS,
    ]
    query = MLModel.objects.filter(slug=_SLUG).values_list(*fields)[:1].query
    return query.sql_with_params()


@functools.cache
def _by_id_statement() -> tuple[str, tuple[Any, ...]]:
    fields = [*(f"model__{f}" for f in _ROUTE_FIELDS), *_VERSION_FIELDS]
    versions = ModelVersion.objects.filter(model__slug=_SLUG, id=_NUMBER)
    return versions.values_list(*fields)[:1].query.sql_with_params()


@functools.cache
def _alias_statement() -> tuple[str, tuple[Any, ...]]:
    fields = [*(f"model__{f}" for f in _ROUTE_FIELDS), *_VERSION_FIELDS]
    versions = ModelVersion.objects.filter(model__slug=_SLUG, aliases__name=_ALIAS)
    return versions.values_list(*fields)[:1].query.sql_with_params()


@functools.cache
def _pinned_statement() -> tuple[str, tuple[Any, ...]]:
    fields = [*(f"model__{f}" for f in _ROUTE_FIELDS), *_VERSION_FIELDS]
    versions = ModelVersion.objects.filter(model__slug=_SLUG, number=_NUMBER)
    return versions.values_list(*fields)[:1].query.sql_with_params()


def _fetch_one(
    statement: tuple[str, tuple[Any, ...]],
    slug: str,
    number: int | None = None,
    alias: str = "",
) -> tuple[Any, ...] | None:
    """Run the statement on the DB-API connection itself.

    Django's cursor wrapper and SQLite placeholder rewriting cost more than
    this indexed lookup (bench/README.md has the figures); errors still surface
    as Django's DatabaseError. With DEBUG or a test capturing queries, the
    query goes through Django's cursor so that it is recorded.
    """
    sql, template = statement
    given = {_SLUG: slug, _NUMBER: number, _ALIAS: alias}
    params = [given.get(p, p) for p in template]
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
_STATUS = len(_ROUTE_FIELDS) + _VERSION_FIELDS.index("status")
_VERSION_END = len(_ROUTE_FIELDS) + len(_VERSION_FIELDS)  # the policy's start


def _decoded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """What the ORM's converters would give: JSON parsed, booleans as bool."""
    values = list(row)
    values[0] = bool(values[0])
    values[3] = bool(values[3])
    values[4] = bool(values[4])
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


def _route(slug: str, number: int | None, alias: str) -> Route:
    if alias:
        return Route(_query(slug, None, alias), "alias", alias)
    if number is not None:
        return Route(_query(slug, number), "pinned")
    row = _fetch_one(_active_statement(), slug)
    if row is None:
        raise UnknownModel(f"No model with slug '{slug}'.")
    if row[_ID] is None:
        raise NoActiveVersion(f"Model '{slug}' has no active version.")
    ref = _version(slug, row[:_VERSION_END])
    candidate_id, weight, header, feature, shadow_id = row[_VERSION_END:]
    if candidate_id is None and shadow_id is None:
        return Route(ref, "active")
    policy = Policy(
        candidate=_by_id(slug, candidate_id),
        weight=float(weight or 0.0),
        sticky_header=header or "",
        sticky_feature=feature or "",
        shadow=_by_id(slug, shadow_id),
    )
    return Route(ref, "active", policy=policy)


def _by_id(slug: str, version_id: int | None) -> VersionRef | None:
    """A policy's version; None once it is no longer ready (marked invalid
    since): the policy then sends it nothing."""
    if version_id is None:
        return None
    row = _fetch_one(_by_id_statement(), slug, version_id)
    if row is None or row[_STATUS] != ModelVersion.Status.READY:
        return None
    return _version(slug, row)


def _query(slug: str, number: int | None, alias: str = "") -> VersionRef:
    if alias:
        row = _fetch_one(_alias_statement(), slug, alias=alias)
        if row is None:
            if not MLModel.objects.filter(slug=slug).exists():
                raise UnknownModel(f"No model with slug '{slug}'.")
            raise UnknownAlias(f"Model '{slug}' has no alias '{alias[:60]}'.")
    elif number is None:
        row = _fetch_one(_active_statement(), slug)
        if row is None:
            raise UnknownModel(f"No model with slug '{slug}'.")
        if row[_ID] is None:
            raise NoActiveVersion(f"Model '{slug}' has no active version.")
        row = row[:_VERSION_END]
    else:
        # A number no version can have (the path takes any digits) is not
        # sent to the database, where it would overflow the column type.
        in_range = 0 < number <= _MAX_NUMBER
        row = _fetch_one(_pinned_statement(), slug, number) if in_range else None
        if row is None:
            if not MLModel.objects.filter(slug=slug).exists():
                raise UnknownModel(f"No model with slug '{slug}'.")
            raise UnknownVersion(f"Model '{slug}' has no version {number}.")
    return _version(slug, row)


def _version(slug: str, row: tuple[Any, ...]) -> VersionRef:
    status = row[_STATUS]
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
    values = _decoded(row)
    private, rows, wait_ms, capture, keep, vid, num, sha, file_name = values[:9]
    fmt, kind, schema, classes = values[9:13]
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
        capture_payloads=capture,
        keep_predictions=keep,
    )
