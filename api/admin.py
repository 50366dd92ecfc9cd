"""API keys in the admin: created here (the key shown once), revoked here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from .access import issuing
from .models import ApiKey

# The library's own concrete model is unused: ModelHub's keys carry scopes.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)

_NEW_KEY = "_modelhub_new_api_key"  # the request attribute save_model leaves it in


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

    def save_model(
        self, request: HttpRequest, obj: ApiKey, form: Any, change: bool
    ) -> None:
        """The library shows a new key in a message, which the session stores
        (MESSAGE_STORAGE) until the next page: the key would sit in the
        database, readable, if that page never came. It goes into this
        response only (response_add)."""
        secret = issuing.store(obj, new=not change)
        if secret is not None:
            setattr(request, _NEW_KEY, secret)

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: Any = None
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "API key created",
            "key": obj,
            "secret": getattr(request, _NEW_KEY),
        }
        response = TemplateResponse(request, "admin/api/apikey/created.html", context)
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        prefixes = list(queryset.filter(revoked=False).values_list("prefix", flat=True))
        for prefix in prefixes:
            issuing.revoke(prefix)
        self.message_user(request, f"Revoked {len(prefixes)} key(s).", messages.SUCCESS)
