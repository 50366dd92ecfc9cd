"""Configuration sanity as Django system checks (registry.E00x)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_registry_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    media = Path(settings.MEDIA_ROOT)
    probe = media if media.exists() else media.parent
    if not os.access(probe, os.W_OK):
        problems.append(
            Error(
                f"MEDIA_ROOT {media} is not writable: model uploads would fail.",
                hint="Set MODELHUB_MEDIA_ROOT to a writable directory.",
                id="registry.E001",
            )
        )
    for name in settings.MODELHUB_SKOPS_TRUSTED_TYPES:
        if "." not in name:
            problems.append(
                Error(
                    f"MODELHUB_SKOPS_TRUSTED_TYPES entry {name!r} is not a dotted "
                    "type path (module.Class).",
                    id="registry.E002",
                )
            )
    for directory in settings.MODELHUB_PLUGIN_DIRS:
        if not Path(directory).is_dir():
            problems.append(
                Warning(
                    f"MODELHUB_PLUGIN_DIRS entry {directory} is not a directory.",
                    id="registry.W001",
                )
            )
    return problems
