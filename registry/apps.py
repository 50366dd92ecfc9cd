"""App configuration for the model registry."""

from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        import sys

        from django.conf import settings

        from . import checks  # noqa: F401 - registers system checks
        from .cache import model_cache
        from .serving import on_cache_event

        if on_cache_event not in model_cache.listeners:
            model_cache.listeners.append(on_cache_event)

        # Custom estimator code must import in workers as in the preflight.
        for directory in settings.MODELHUB_PLUGIN_DIRS:
            if directory not in sys.path:
                sys.path.append(directory)
