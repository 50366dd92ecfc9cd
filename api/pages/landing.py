"""The landing page's catalog: the models a visitor may see, one row each."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from registry.models import MLModel

from ..control import catalog

NO_ACTIVE_VERSION = "no active version"


def entries(request: HttpRequest) -> list[dict[str, Any]]:
    """The API's catalog (api.control.catalog) as the page lists it; the same
    visibility, so a private model is absent for whoever it does not answer."""
    return [_entry(model) for model in catalog.visible_models(request)]


def _entry(model: MLModel) -> dict[str, Any]:
    active = model.active_version
    return {
        **catalog.model_summary(model),
        "status": active.status if active else NO_ACTIVE_VERSION,
        "url": reverse("model-page", args=[model.slug]),
    }
