"""Which loaded model answers: the resolved version, or the last good one.

TF Serving and Triton keep serving the old version when a new one fails to
load; so does ModelHub. When a slug's active version cannot be loaded in this
worker (file missing, altered, no longer deserializes), an unpinned request
is served by the version this worker served last for that slug, or, in a
fresh worker, by the most recent earlier version in the activation history
that loads. Pinned requests (``/v<N>/``) never fall back: they asked for
that version. Each failure is logged, counted (metric) and recorded on the
version, so the admin shows it.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import DatabaseError

from . import actions
from .cache import model_cache
from .exceptions import ModelUnavailable, RegistryError
from .loading import LoadedModel, VersionRef
from .models import Activation

logger = logging.getLogger(__name__)

# Earlier versions tried, newest first, when a fresh worker has no last good.
_HISTORY_DEPTH = 5
# Every request served by a fallback is counted; the log line is rate-limited.
_LOG_EVERY_SECONDS = 60.0

_last_good: dict[str, VersionRef] = {}
_logged_at: dict[tuple[int, int], float] = {}
_lock = threading.Lock()


def serve(ref: VersionRef, *, pinned: bool = False) -> LoadedModel:
    """The loaded model that answers a request resolved to ``ref``."""
    try:
        loaded = model_cache.get(ref)
    except ModelUnavailable as failure:
        if pinned:
            raise
        loaded = _fall_back(ref, failure)
        if loaded is None:
            raise
        return loaded
    if not pinned:
        with _lock:
            _last_good[ref.slug] = ref
    return loaded


def forget() -> None:
    with _lock:
        _last_good.clear()
        _logged_at.clear()


def _fall_back(failed: VersionRef, failure: ModelUnavailable) -> LoadedModel | None:
    with _lock:
        previous = _last_good.get(failed.slug)
    candidates = [previous] if previous is not None and previous != failed else []
    candidates += [c for c in _history(failed) if c not in candidates]
    for candidate in candidates:
        try:
            loaded = model_cache.get(candidate)
        except RegistryError:
            continue
        model_cache.notify("fallback", failed, 0.0)
        now = time.monotonic()
        with _lock:
            key = (failed.id, candidate.id)
            due = now - _logged_at.get(key, -_LOG_EVERY_SECONDS) >= _LOG_EVERY_SECONDS
            if due:
                _logged_at[key] = now
        if due:
            logger.error(
                "%s v%s cannot be served (%s); serving v%s instead",
                failed.slug,
                failed.number,
                failure.message,
                candidate.number,
            )
        return loaded
    return None


def _history(failed: VersionRef) -> list[VersionRef]:
    """Earlier ready versions of the slug, most recently activated first."""
    from .routing import version_ref

    try:
        numbers: list[int] = []
        for from_number, to_number in Activation.objects.filter(
            model__slug=failed.slug
        ).values_list("from_number", "to_number")[: _HISTORY_DEPTH * 2]:
            for number in (to_number, from_number):
                if number and number != failed.number and number not in numbers:
                    numbers.append(number)
        refs = []
        for number in numbers[:_HISTORY_DEPTH]:
            try:
                refs.append(version_ref(failed.slug, number))
            except RegistryError:
                continue
        return refs
    except DatabaseError:
        return []


def on_cache_event(event: str, ref: VersionRef, seconds: float, size: int) -> None:
    """Records load failures on the version (once per retry window per worker)."""
    if event == "load_failed":
        failure = model_cache.failure(ref)
        detail = failure.message if failure else "failed to load"
        actions.record_load_failure(ref.id, detail)
    elif event == "loaded":
        actions.clear_load_failure(ref.id)
