"""App configuration for the prediction API."""

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Prediction API"

    def ready(self) -> None:
        from registry.cache import model_cache

        from .metrics import on_cache_event

        if on_cache_event not in model_cache.listeners:
            model_cache.listeners.append(on_cache_event)
