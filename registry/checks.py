"""Configuration sanity as Django system checks (registry.E00x).

E003 (deploy only) reloads every stored version under the installed libraries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections, router

from . import store
from .models import ModelVersion
from .skops_trust import runs_code
from .validation import check_stored_version


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
        elif runs_code(name):
            problems.append(
                Warning(
                    f"MODELHUB_SKOPS_TRUSTED_TYPES entry {name!r} lets a skops file "
                    "run code or touch the system when it loads or predicts.",
                    hint="Trust only the data types a model needs; see the README "
                    "section 'What a .skops file may hold'.",
                    id="registry.W003",
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


@register("store")
def check_model_store(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """An object store that refuses our credentials or has no bucket is said
    at start (``migrate``, ``check``, gunicorn's start: modelhub/wsgi.py),
    not by a 503 at the first upload or load."""
    reason = store.problem()
    if not reason:
        return []
    return [
        Error(
            f"The model store {store.describe()} cannot be used: {reason}.",
            hint="Check MODELHUB_S3_BUCKET, MODELHUB_S3_ENDPOINT_URL and the "
            "credentials boto3 finds (AWS_ACCESS_KEY_ID, AWS_PROFILE, a role).",
            id="registry.E004",
        )
    ]


def refuse_to_start_without_store() -> None:
    """Raise ImproperlyConfigured (the service does not start) when the model
    store cannot be used."""
    errors = [e for e in run_checks(tags=["store"]) if e.is_serious()]
    if errors:
        raise ImproperlyConfigured("\n".join(str(error) for error in errors))


@register("models", deploy=True)
def check_stored_models(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """``check --deploy``: every ready version still loads and predicts here.

    Deploy-only because it starts one preflight process per version (seconds
    each); plain ``check``, ``migrate`` and ``runserver`` never run it. It
    reports and never marks: see ``manage.py checkmodels --mark-invalid``.
    """
    if app_configs is not None and not any(c.label == "registry" for c in app_configs):
        return []
    try:
        if not _registry_is_migrated():
            return []
        versions = list(
            ModelVersion.objects.filter(status=ModelVersion.Status.READY)
            .select_related("model")
            .order_by("model__slug", "number")
        )
    except DatabaseError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return [
            Warning(
                "Could not read the model versions to reload them: "
                f"{detail[:200] or type(exc).__name__}",
                hint="Run manage.py checkmodels once the database is reachable.",
                id="registry.W002",
            )
        ]
    problems: list[Any] = []
    for version in versions:
        check = check_stored_version(version)
        if not check.ok:
            problems.append(
                Error(
                    f"no longer loads or predicts here: {check.problem}",
                    hint="See manage.py checkmodels; --mark-invalid stops serving it.",
                    obj=version,
                    id="registry.E003",
                )
            )
    return problems


def _registry_is_migrated() -> bool:
    """False for a database not created or migrated yet: nothing to reload."""
    connection = connections[router.db_for_read(ModelVersion)]
    # Connecting would create an empty SQLite file as a side effect.
    if connection.vendor == "sqlite" and not connection.is_in_memory_db():
        if not Path(str(connection.settings_dict["NAME"])).is_file():
            return False
    table = ModelVersion._meta.db_table
    return table in connection.introspection.table_names()
