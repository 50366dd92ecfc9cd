"""App configuration for the prediction API."""

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.cache import close_caches
from django.core.cache.backends.base import BaseCache
from django.core.signals import request_finished
from django.utils.module_loading import import_string


def caches_need_closing(caches: dict[str, dict[str, Any]]) -> bool:
    """Whether any configured cache backend has a connection to close.

    Django closes every cache after each request; the local-memory cache
    (the default) inherits BaseCache.close, which does nothing, and walking
    the caches through their thread-local handler is a measurable part of a
    prediction (bench/README.md). Disconnecting Django's close_caches receiver
    in ApiConfig.ready() replaces that walk when nothing needs closing.
    """
    return any(
        import_string(options["BACKEND"]).close is not BaseCache.close
        for options in caches.values()
    )


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Prediction API"

    def ready(self) -> None:
        if not caches_need_closing(settings.CACHES):
            request_finished.disconnect(close_caches)
