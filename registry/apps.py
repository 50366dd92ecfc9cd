"""App configuration for the model registry."""

from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers system checks
