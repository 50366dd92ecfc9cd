"""``{% calling_panel obj %}``: the how-to-call panel on the admin's model and
version pages.

registry's admin templates ``{% load calling %}`` by name: a template names a
tag library of an installed app, it imports no Python, so registry still
imports nothing from api (tests/test_import_direction.py) while the panel's
code stays here, beside the page that shows the same panel.
"""

from __future__ import annotations

from typing import Any

from django import template

from registry.models import MLModel, ModelVersion

from ..pages.calling import how_to_call

register = template.Library()


@register.inclusion_tag("pages/calling_admin.html", takes_context=True)
def calling_panel(
    context: template.Context, obj: MLModel | ModelVersion
) -> dict[str, Any]:
    """A model: its active version through the model's own URLs; a version:
    pinned to that version."""
    request = context["request"]
    panel: dict[str, Any] = {"try_it": request.user.is_staff, "calling": None}
    if isinstance(obj, ModelVersion):
        panel["calling"] = how_to_call(obj, request=request, pinned=True)
    elif obj.active_version is not None:
        panel["calling"] = how_to_call(
            obj.active_version, request=request, pinned=False
        )
    panel["model"] = obj if isinstance(obj, MLModel) else obj.model
    return panel
