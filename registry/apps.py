"""App configuration for the model registry."""

from django.apps import AppConfig
from django.db.backends.base.base import BaseDatabaseWrapper


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        import sys

        from django.conf import settings
        from django.db.backends.signals import connection_created

        from . import checks  # noqa: F401 - registers system checks
        from .cache import model_cache
        from .serving import on_cache_event

        if on_cache_event not in model_cache.listeners:
            model_cache.listeners.append(on_cache_event)
        connection_created.connect(
            _watch_registry_writes, dispatch_uid="registry-generation"
        )

        # Custom estimator code must import in workers as in the preflight.
        for directory in settings.MODELHUB_PLUGIN_DIRS:
            if directory not in sys.path:
                sys.path.append(directory)


def _watch_registry_writes(
    sender: object, connection: BaseDatabaseWrapper, **kwargs: object
) -> None:
    from . import generation

    generation.watch(connection)
