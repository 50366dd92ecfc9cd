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
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from .access import keys
        from .models import ApiKey

        if settings.REDIS_URL:
            # Imported once in the gunicorn master, not by each worker.
            from .access import cluster_quota  # noqa: F401

        if not caches_need_closing(settings.CACHES):
            request_finished.disconnect(close_caches)
        # After the response: a used key's last-used time, at most once a minute.
        request_finished.connect(keys.write_last_used, dispatch_uid="key_last_used")
        for signal in (post_save, post_delete):
            signal.connect(keys.forget, sender=ApiKey, dispatch_uid=f"key_{signal}")
        m2m_changed.connect(
            keys.forget, sender=ApiKey.allowed_models.through, dispatch_uid="key_m2m"
        )
