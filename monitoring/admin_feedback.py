"""Feedback in the admin: the labels joined so far (read-only), and a CSV
upload of more, through the same path as POST /api/feedback/<slug>/."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from registry.models import MLModel

from . import feedback
from .exceptions import MonitoringError
from .models import Feedback

# A CSV of MODELHUB_MAX_ROWS labels with long request ids stays well under it.
MAX_CSV_BYTES = 10 * 1024 * 1024


class FeedbackUploadForm(forms.Form):
    model = forms.ModelChoiceField(
        queryset=MLModel.objects.order_by("slug"), to_field_name="slug"
    )
    file = forms.FileField(
        help_text="A CSV with the header request_id,row,label (rows counted "
        "from 0) or request_id,id,label (rows named by the ids the requests "
        "carried). Labels sent again replace the earlier ones."
    )

    def clean_file(self) -> str:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_CSV_BYTES:
            raise forms.ValidationError(
                f"The file is over {MAX_CSV_BYTES // (1024 * 1024)} MB."
            )
        try:
            return upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError("The file is not UTF-8 text.") from None


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = [
        "received_at",
        "slug",
        "version",
        "route",
        "request_id",
        "row",
        "label",
        "predicted",
        "error",
    ]
    list_filter = ["route", "slug"]
    search_fields = ["=request_id"]
    ordering = ["-id"]
    show_full_result_count = False
    change_list_template = "admin/monitoring/feedback/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def may_upload(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff

    def get_urls(self) -> list[URLPattern]:
        upload = self.admin_site.admin_view(self.upload_view)
        return [
            path("upload/", upload, name="monitoring_feedback_upload"),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "may_upload": self.may_upload(request)}
        return super().changelist_view(request, extra)

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not self.may_upload(request):
            raise PermissionDenied
        form = FeedbackUploadForm(request.POST or None, request.FILES or None)
        outcome = None
        if request.method == "POST" and form.is_valid():
            try:
                labels = feedback.read_csv(form.cleaned_data["file"])
            except MonitoringError as exc:
                form.add_error("file", exc.message)
            else:
                outcome = feedback.record(form.cleaned_data["model"].slug, labels)
                level = messages.SUCCESS if outcome.accepted else messages.WARNING
                self.message_user(
                    request,
                    f"{outcome.accepted} label(s) accepted, "
                    f"{len(outcome.unknown)} request id(s) unknown, "
                    f"{len(outcome.rejected)} label(s) rejected.",
                    level,
                )
                if not outcome.unknown and not outcome.rejected:
                    return redirect("admin:monitoring_feedback_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Upload feedback (CSV)",
            "form": form,
            "opts": self.model._meta,
            "outcome": outcome,
        }
        return TemplateResponse(
            request, "admin/monitoring/feedback/upload.html", context
        )
