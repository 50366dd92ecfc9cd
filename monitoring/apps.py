"""App configuration for monitoring: the request log, stats and metrics."""

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from registry.cache import model_cache
        from registry.signals import reference_sample_given

        from .drift_upload import store_reference
        from .metrics import on_cache_event

        if on_cache_event not in model_cache.listeners:
            model_cache.listeners.append(on_cache_event)
        reference_sample_given.connect(
            store_reference, dispatch_uid="monitoring.drift_upload"
        )
