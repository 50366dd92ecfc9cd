"""The read side of the registry for API clients: listings and example bodies."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework.request import Request

from registry import rollouts
from registry.exceptions import UnknownVersion
from registry.inspection import placeholder
from registry.models import MLModel, ModelVersion, TrafficPolicy

from .. import access


def visible_models(request: Request) -> QuerySet[MLModel]:
    models = MLModel.objects.select_related("active_version").order_by("slug")
    return access.visible(request, models)


def get_visible_model(slug: str, request: Request) -> MLModel:
    """A private model is a 404 to whoever it does not answer: its existence
    is private too."""
    model = visible_models(request).filter(slug=slug).first()
    if model is None:
        raise access.unknown_model(slug)
    return model


def get_visible_version(slug: str, number: int, request: Request) -> ModelVersion:
    model = get_visible_model(slug, request)
    version = model.versions.filter(number=number).first()
    if version is None:
        raise UnknownVersion(f"Model '{slug}' has no version {number}.")
    return version


def version_detail(version: ModelVersion) -> dict[str, Any]:
    """One version with what the preflight learned: the answer to an upload."""
    model = version.model
    return {
        "model": model.slug,
        **describe_version(version, active_id=model.active_version_id),
        "input_schema": version.input_schema,
        "classes": version.classes,
        "metadata": version.metadata,
        "warnings": version.warnings,
    }


def describe_version(version: ModelVersion, *, active_id: int | None) -> dict[str, Any]:
    return {
        "version": version.number,
        "active": version.pk == active_id,
        "status": version.status,
        "kind": version.kind,
        "format": version.format,
        "estimator": version.estimator,
        "sha256": version.sha256,
        "size": version.size,
        "created_at": version.created_at,
    }


def model_summary(model: MLModel) -> dict[str, Any]:
    active = model.active_version
    return {
        "slug": model.slug,
        "name": model.display_name,
        "description": model.description,
        "private": model.private,
        "active_version": active.number if active else None,
        "kind": active.kind if active else None,
        "estimator": active.estimator if active else None,
    }


def model_detail(model: MLModel) -> dict[str, Any]:
    versions = list(model.versions.order_by("-number"))
    shown = model.active_version or (versions[0] if versions else None)
    return {
        **model_summary(model),
        "versions": [
            describe_version(v, active_id=model.active_version_id) for v in versions
        ],
        "input_schema": shown.input_schema if shown else None,
        "classes": shown.classes if shown else None,
        "metadata": shown.metadata if shown else None,
        "example_request": example_request(shown) if shown else None,
        "batch_max_rows": model.batch_max_rows,
        "batch_max_wait_ms": model.batch_max_wait_ms,
        "capture_payloads": model.capture_payloads,
        "keep_predictions": model.keep_predictions,
        "aliases": [
            {"name": name, "version": number}
            for name, number in model.aliases.order_by("name").values_list(
                "name", "version__number"
            )
        ],
        "policy": rollouts.describe(TrafficPolicy.objects.filter(model=model).first()),
    }


def example_request(version: ModelVersion) -> dict[str, Any]:
    """A body that passes validation: the input example, else typed placeholders."""
    example = version.metadata.get("input_example") if version.metadata else None
    features = version.input_schema.get("features", [])
    if isinstance(example, dict):
        return {"data": example}
    if isinstance(example, list) and example:
        return (
            {"data": example[0]}
            if isinstance(example[0], dict)
            else {"inputs": [example[0]]}
        )
    if not version.input_schema.get("named") and features:
        return {"inputs": [[placeholder(f, "") for f in features]]}
    return {"data": {f["name"]: placeholder(f, "") for f in features}}
