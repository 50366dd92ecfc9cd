"""Which signed-in users a private model answers: staff, and the users and
groups granted it on its admin page."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from registry.models import MLModel


def granted(user: Any, slug: str) -> bool:
    """One indexed query; only a non-staff user calling a private model pays it."""
    return (
        MLModel.objects.filter(slug=slug)
        .filter(Q(granted_users=user) | Q(granted_groups__user=user))
        .exists()
    )


def visible_to_user(models: QuerySet[MLModel], user: Any) -> QuerySet[MLModel]:
    """Public models, and the private ones granted to ``user``."""
    if user is not None and user.is_authenticated and user.is_staff:
        return models
    if user is None or not user.is_authenticated:
        return models.filter(private=False)
    return models.filter(
        Q(private=False) | Q(granted_users=user) | Q(granted_groups__user=user)
    ).distinct()
