"""Slug -> version to serve, in one indexed query per request.

Each request asks the database, so an activation made anywhere (admin, CLI,
another machine) is served by every worker from its next request. When the
database is unreachable, a warm worker serves the last version it resolved.
"""

from __future__ import annotations

import logging
import threading

from django.db import DatabaseError, connection

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
_lock = threading.Lock()


def resolve(slug: str, number: int | None = None) -> VersionRef:
    """The version ``slug`` serves now (or version ``number`` of it)."""
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
    return ref


def last_resolved() -> list[VersionRef]:
    with _lock:
        return list(_last_resolved.values())


def forget() -> None:
    with _lock:
        _last_resolved.clear()


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
        fields = ["private", *(f"active_version__{f}" for f in _VERSION_FIELDS)]
        row = MLModel.objects.filter(slug=slug).values_list(*fields).first()
        if row is None:
            raise UnknownModel(f"No model with slug '{slug}'.")
        if row[1] is None:
            raise NoActiveVersion(f"Model '{slug}' has no active version.")
    else:
        fields = ["model__private", *_VERSION_FIELDS]
        row = (
            ModelVersion.objects.filter(model__slug=slug, number=number)
            .values_list(*fields)
            .first()
        )
        if row is None:
            if not MLModel.objects.filter(slug=slug).exists():
                raise UnknownModel(f"No model with slug '{slug}'.")
            raise UnknownVersion(f"Model '{slug}' has no version {number}.")
    private, vid, num, sha, file_name, fmt, kind, schema, classes, status = row
    if status != ModelVersion.Status.READY:
        raise ModelUnavailable(f"'{slug}' v{num} is marked {status}.")
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
    )
