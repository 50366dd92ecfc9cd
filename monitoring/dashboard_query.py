"""The dashboard's query: what it is asked to show (a window or a custom
range, one model and version, auto-refresh), read and checked from the URL,
the window it opens on when none is asked, the models and versions it
offers, and the links that keep the rest of the query."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import quote

from django.utils import timezone

from registry.models import MLModel, ModelVersion

from . import stats, windows
from .exceptions import InvalidFilter, InvalidSince
from .rollup import UNKNOWN_MODELS

WINDOWS = ("15m", "1h", "6h", "24h", "7d")
REFRESH_SECONDS = 10
_MAX_SLUG = 100  # the log's and the registry's column
_MAX_VERSION_DIGITS = 9  # within every database's integer


@dataclass(frozen=True)
class DashboardQuery:
    """The window [since, until] and the focus. ``since_asked`` and
    ``until_asked`` are the URL's values ("" when absent): links keep them,
    so a relative window stays relative."""

    since: datetime
    until: datetime
    since_asked: str = ""
    until_asked: str = ""
    opened_on: str = ""  # the window chosen when none was asked
    slug: str | None = None
    version: int | None = None
    refresh: bool = False

    @property
    def window(self) -> str:
        """The window the selector shows as chosen ("" for a custom range)."""
        if self.until_asked:
            return ""
        if self.opened_on:
            return self.opened_on
        return self.since_asked if windows.is_window(self.since_asked) else ""

    @property
    def custom(self) -> bool:
        return bool(self.since_asked) and not self.window

    def href(self, **changes: Any) -> str:
        """This page's query with ``changes`` (since, until, model, version,
        refresh; None drops one): "?since=1h&model=iris"."""
        values = {
            "since": self.since_asked,
            "until": self.until_asked,
            "model": self.slug,
            "version": self.version,
            "refresh": 1 if self.refresh else None,
        }
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"not a dashboard parameter: {sorted(unknown)}")
        values |= changes
        pairs = [
            f"{name}={quote(str(value), safe='/')}"
            for name, value in values.items()
            if value not in (None, "", False)
        ]
        return "?" + "&".join(pairs)

    def log_window(self) -> dict[str, str]:
        """since and until for the request-log admin's time filter: a window
        as asked, a moment with its offset (a datetime-local value has none,
        and the admin reads such a time as UTC)."""
        window = self.window
        found = {"since": window if window else self.since.isoformat()}
        if self.until_asked:
            found["until"] = self.until.isoformat()
        return found


def read(params: Mapping[str, str], now: datetime) -> DashboardQuery:
    """The query in ``params``; InvalidSince or InvalidFilter (a 400 page)
    when a value is malformed. Without 'since', the window is the shortest
    that holds a request of the focus (the rollup must be current)."""
    since_asked = (params.get("since") or "").strip()
    until_asked = (params.get("until") or "").strip()
    slug = _slug(params.get("model"))
    version = _version(params.get("version"), slug)
    focus = {"slug": slug, "version": version, "refresh": params.get("refresh") == "1"}
    if until_asked and not since_asked:
        raise InvalidSince("A custom range needs both ends: 'until' without 'since'.")
    if not since_asked:
        opened_on = opening_window(now, slug=slug, version=version)
        since = windows.parse_since(opened_on, now)
        return DashboardQuery(since=since, until=now, opened_on=opened_on, **focus)
    since, until = windows.parse_range(
        since_asked, until_asked or None, now, zone=timezone.get_current_timezone()
    )
    return DashboardQuery(
        since=since,
        until=until,
        since_asked=since_asked,
        until_asked=until_asked,
        **focus,
    )


def blank(now: datetime) -> DashboardQuery:
    """What the links of a page that refused its query start from."""
    return DashboardQuery(since=now, until=now)


def opening_window(
    now: datetime, *, slug: str | None = None, version: int | None = None
) -> str:
    """The shortest of WINDOWS that holds a request, so a new service does
    not open on an empty day of axis; the default when none does. One EXISTS
    on the rollup per window tried."""
    for window in WINDOWS:
        since = windows.parse_since(window, now)
        if stats.has_requests(since, now, slug=slug, version=version):
            return window
    return windows.DEFAULT_WINDOW


def _slug(raw: str | None) -> str | None:
    slug = (raw or "").strip()
    if not slug:
        return None
    if len(slug) > _MAX_SLUG or not slug.isprintable():
        raise InvalidFilter(
            f"'model' must be a model's slug (at most {_MAX_SLUG} printable "
            f"characters); got {slug[:40]!r}."
        )
    return slug


def _version(raw: str | None, slug: str | None) -> int | None:
    value = (raw or "").strip()
    if not value:
        return None
    if slug is None:
        raise InvalidFilter(
            "'version' needs 'model': choose a model to choose one of its versions."
        )
    if not (value.isascii() and value.isdigit()) or len(value) > _MAX_VERSION_DIGITS:
        raise InvalidFilter(f"'version' must be a version number; got {value[:40]!r}.")
    number = int(value)
    if number < 1:
        raise InvalidFilter("'version' must be a version number, from 1.")
    return number


class Choices(NamedTuple):
    """What the model and version pickers offer, and whether the registry
    knows the ones chosen."""

    models: list[str]
    versions: list[int]
    known_model: bool
    known_version: bool


def choices(query: DashboardQuery) -> Choices:
    """The registry's models and the chosen model's versions: two queries.
    A slug the registry does not know (a deleted model, UNKNOWN_MODELS) is
    offered too while chosen."""
    models = list(MLModel.objects.order_by("slug").values_list("slug", flat=True))
    known_model = query.slug is None or query.slug in models
    if query.slug is not None and not known_model:
        models.append(query.slug)
    versions: list[int] = []
    if query.slug is not None and known_model:
        versions = list(
            ModelVersion.objects.filter(model__slug=query.slug)
            .order_by("-number")
            .values_list("number", flat=True)
        )
    known_version = query.version is None or query.version in versions
    if query.version is not None and not known_version:
        versions.append(query.version)
    return Choices(
        models=models,
        versions=versions,
        known_model=known_model or query.slug == UNKNOWN_MODELS,
        known_version=known_version,
    )
