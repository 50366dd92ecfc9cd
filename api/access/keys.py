"""API keys on the hot path: one hash check per key, then a per-process cache.

Keys are high-entropy random strings, so the library's unsalted SHA-512 is
the right hash (a password hasher's deliberate slowness protects only
guessable secrets). A verified key is remembered for
MODELHUB_KEY_RECHECK_MS: a request with a known key costs a dict lookup and
a SHA-256 of the key, never a query. A key revoked or edited in this process
is forgotten at once; other workers see it at their next recheck.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed

from registry.exceptions import RegistryUnavailable

from ..models import ApiKey

logger = logging.getLogger(__name__)

SCHEMES = frozenset({"api-key", "bearer"})
_MAX_KEY_LENGTH = 200
_MAX_CACHED = 1024
LAST_USED_EVERY = 60.0  # seconds between two writes of a key's last-used time


@dataclass(frozen=True, eq=False)
class KeyGrant:
    """What a verified key may do, detached from the ORM."""

    id: str
    name: str
    prefix: str
    owner: Any  # the owner's User, read-only here
    predict: str
    slugs: frozenset[str]
    management: str
    throttle_rate: str
    expires_at: float | None  # a Unix time

    def may_predict(self, slug: str, *, private: bool) -> bool:
        if self.predict == ApiKey.Predict.ALL:
            return True
        if self.predict == ApiKey.Predict.LISTED:
            return slug in self.slugs
        return not private

    def may_manage(self, *, write: bool) -> bool:
        """The management API's scope; the owner's permissions apply on top."""
        if write:
            return self.management == ApiKey.Management.WRITE
        return self.management != ApiKey.Management.NONE

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and time.time() >= self.expires_at


_verified: dict[bytes, tuple[KeyGrant, float]] = {}
_last_written: dict[str, float] = {}
_due: set[str] = set()
_lock = threading.Lock()


def verify(key: str) -> KeyGrant:
    """The grant of a valid key; AuthenticationFailed (401) otherwise."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    now = time.monotonic()
    cached = _verified.get(digest)
    if cached is not None and now - cached[1] < settings.MODELHUB_KEY_RECHECK_MS / 1000:
        grant = cached[0]
    else:
        grant = _looked_up(key, digest, cached)
        with _lock:
            if len(_verified) >= _MAX_CACHED:
                _verified.clear()
            _verified[digest] = (grant, now)
    if grant.expired:
        raise AuthenticationFailed("This API key has expired.")
    _note_use(grant)
    return grant


def _looked_up(
    key: str, digest: bytes, cached: tuple[KeyGrant, float] | None
) -> KeyGrant:
    prefix, dot, _ = key.partition(".")
    if not dot or not prefix or len(key) > _MAX_KEY_LENGTH:
        raise AuthenticationFailed("Invalid API key.")
    try:
        row = ApiKey.objects.select_related("owner").filter(prefix=prefix).first()
        if row is None or not ApiKey.objects.key_generator.verify(key, row.hashed_key):
            raise AuthenticationFailed("Invalid API key.")
        slugs = (
            frozenset(row.allowed_models.values_list("slug", flat=True))
            if row.predict == ApiKey.Predict.LISTED
            else frozenset()
        )
    except DatabaseError:
        if cached is not None:
            # The database is away: a key this worker knew keeps working, as
            # routes do (registry.routing).
            return cached[0]
        raise RegistryUnavailable(
            "The registry is unavailable and this API key was not used on "
            "this instance before."
        ) from None
    if row.revoked:
        raise AuthenticationFailed("This API key was revoked.")
    if not row.owner.is_active:
        raise AuthenticationFailed("Invalid API key.")
    return KeyGrant(
        id=row.pk,
        name=row.name,
        prefix=row.prefix,
        owner=row.owner,
        predict=row.predict,
        slugs=slugs,
        management=row.management,
        throttle_rate=row.throttle_rate,
        expires_at=row.expiry_date.timestamp() if row.expiry_date else None,
    )


def _note_use(grant: KeyGrant) -> None:
    if time.monotonic() - _last_written.get(grant.id, -LAST_USED_EVERY) >= (
        LAST_USED_EVERY
    ):
        _due.add(grant.id)


def write_last_used(**_: Any) -> None:
    """request_finished receiver: the response is sent, so the keys used since
    the last write get their last-used time (at most once a minute each)."""
    if not _due:
        return
    with _lock:
        due = list(_due)
        _due.clear()
        now = time.monotonic()
        for key_id in due:
            _last_written[key_id] = now
    try:
        ApiKey.objects.filter(pk__in=due).update(last_used_at=timezone.now())
    except DatabaseError:
        logger.warning("could not record the last use of %d API key(s)", len(due))


def forget(**_: Any) -> None:
    """Drop every verified key (this process): one was created, changed or
    revoked here."""
    with _lock:
        _verified.clear()
