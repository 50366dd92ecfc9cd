"""Prediction rate limit, read from settings at request time."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class PredictRateThrottle(SimpleRateThrottle):
    """MODELHUB_THROTTLE_RATE per token user, or per client address.

    Counters live in the default cache: per process unless REDIS_URL is set.
    """

    scope = "predict"

    def get_rate(self) -> str | None:
        return settings.MODELHUB_THROTTLE_RATE or None

    def get_cache_key(self, request, view) -> str:  # type: ignore[no-untyped-def]
        user = getattr(request, "user", None)
        ident = user.pk if user is not None and user.is_authenticated else None
        return self.cache_format % {
            "scope": self.scope,
            "ident": ident if ident is not None else self.get_ident(request),
        }
