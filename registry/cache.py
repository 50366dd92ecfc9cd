"""The per-process LRU of loaded models, keyed by (version id, sha256).

A version's file never changes, so a loaded estimator never needs
invalidation. What may change is the rest of the version's row (its input
schema after an edit, its model's privacy): routing resolves that per
request, and an entry whose ref differs from the one resolved is handed out
with the new ref and without what was derived from the old one.
Estimators live here, never in django.core.cache (which would pickle them).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from django.conf import settings

from . import loading
from .exceptions import ModelUnavailable
from .loading import LoadedModel, VersionRef

Key = tuple[int, str]
Listener = Callable[[str, VersionRef, float, int], None]


class ModelCache:
    def __init__(self) -> None:
        self._entries: OrderedDict[Key, LoadedModel] = OrderedDict()
        self._failures: dict[Key, tuple[float, ModelUnavailable]] = {}
        self._lock = threading.Lock()
        self._loading: dict[Key, threading.Lock] = {}
        self.misses = 0
        self.listeners: list[Listener] = []

    def get(self, ref: VersionRef) -> LoadedModel:
        """The loaded model for ``ref``, loading it on a miss (once per process)."""
        key = (ref.id, ref.sha256)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            else:
                key_lock = self._loading.setdefault(key, threading.Lock())
        if entry is not None:
            self.notify("hit", ref, 0.0)
            return entry if entry.ref is ref else self._rebound(key, entry, ref)
        with key_lock:
            with self._lock:
                entry = self._entries.get(key)
                if entry is None:
                    self.misses += 1
                    self._raise_recent_failure(key)
            if entry is not None:  # loaded by another thread meanwhile
                return entry if entry.ref is ref else self._rebound(key, entry, ref)
            try:
                entry = loading.load(ref)
            except ModelUnavailable as exc:
                with self._lock:
                    self._failures[key] = (time.monotonic(), exc)
                self.notify("load_failed", ref, 0.0)
                raise
            with self._lock:
                self._entries[key] = entry
                self._failures.pop(key, None)
                self._loading.pop(key, None)
                while len(self._entries) > max(1, settings.MODELHUB_MODEL_CACHE_SIZE):
                    _, evicted = self._entries.popitem(last=False)
                    self.notify("evicted", evicted.ref, 0.0)
        self.notify("loaded", ref, entry.load_seconds)
        return entry

    def adopt(self, entry: LoadedModel) -> None:
        """Keeps a model loaded outside ``get``: the gunicorn master's, which
        its workers inherit. Listeners are not told; they count per worker."""
        with self._lock:
            self._entries[(entry.ref.id, entry.ref.sha256)] = entry
            while len(self._entries) > max(1, settings.MODELHUB_MODEL_CACHE_SIZE):
                self._entries.popitem(last=False)

    def _rebound(self, key: Key, entry: LoadedModel, ref: VersionRef) -> LoadedModel:
        """``entry``'s estimator under ``ref``: an edited row (schema, privacy)
        is served from the request that resolved it, with the input spec and
        anything else derived from the old row built again."""
        # An equal ref (another object for the same row) keeps what was derived.
        extra = entry.extra if entry.ref == ref else {}
        rebound = dataclasses.replace(entry, ref=ref, extra=extra)
        with self._lock:
            if key in self._entries:
                self._entries[key] = rebound
        return rebound

    def _raise_recent_failure(self, key: Key) -> None:
        """A broken file is re-read at most every MODELHUB_LOAD_RETRY_SECONDS."""
        failure = self._failures.get(key)
        if (
            failure
            and time.monotonic() - failure[0] < settings.MODELHUB_LOAD_RETRY_SECONDS
        ):
            raise failure[1]

    def failure(self, ref: VersionRef) -> ModelUnavailable | None:
        """Why ``ref`` last failed to load, while that is remembered."""
        with self._lock:
            failure = self._failures.get((ref.id, ref.sha256))
        return failure[1] if failure else None

    def loaded(self) -> list[VersionRef]:
        with self._lock:
            return [entry.ref for entry in self._entries.values()]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._failures.clear()
            self._loading.clear()
            self.misses = 0

    def notify(self, event: str, ref: VersionRef, seconds: float) -> None:
        for listener in self.listeners:
            listener(event, ref, seconds, len(self._entries))

    def __len__(self) -> int:
        return len(self._entries)


model_cache = ModelCache()
