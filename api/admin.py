"""API keys in the admin: created here (the key shown once), revoked here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from .access import issuing
from .models import ApiKey

# The library's own concrete model is unused: ModelHub's keys carry scopes.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    list_display = [
        "prefix",
        "name",
        "owner",
        "predict",
        "management",
        "throttle_rate",
        "created",
        "expiry_date",
        "_has_expired",
        "revoked",
        "last_used_at",
    ]
    list_filter = ["predict", "management", "revoked", "created"]
    search_fields = ["name", "prefix", "owner__username"]
    fields = [
        "name",
        "owner",
        "predict",
        "allowed_models",
        "management",
        "throttle_rate",
        "expiry_date",
        "revoked",
        "prefix",
        "last_used_at",
    ]
    filter_horizontal = ["allowed_models"]
    actions = ["revoke"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (*super().get_readonly_fields(request, obj), "last_used_at")

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"owner": request.user.pk}

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        prefixes = list(queryset.filter(revoked=False).values_list("prefix", flat=True))
        for prefix in prefixes:
            issuing.revoke(prefix)
        self.message_user(request, f"Revoked {len(prefixes)} key(s).", messages.SUCCESS)
