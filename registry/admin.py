"""Admin for the registry: declarative; every write goes through registry.actions."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from . import actions, admin_rollouts, replay_launch
from .exceptions import InvalidReference, RegistryError
from .forms import MLModelForm, ModelVersionForm, VersionUploadForm
from .models import Activation, MLModel, ModelVersion, VersionEdit
from .upload_errors import MODEL_EXTENSIONS, technical_line


def _pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


class VersionInline(admin.TabularInline):
    model = ModelVersion
    fields = [
        "version_link",
        "status",
        "serving",
        "kind",
        "format",
        "estimator",
        "created_at",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    class Media:
        css = {"all": ["registry/admin.css"]}

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="version")
    def version_link(self, obj: ModelVersion) -> str:
        url = reverse("admin:registry_modelversion_change", args=[obj.pk])
        active = " (active)" if obj.model.active_version_id == obj.pk else ""
        return format_html('<a href="{}">v{}</a>{}', url, obj.number, active)

    @admin.display(description="serving")
    def serving(self, obj: ModelVersion) -> str:
        return load_problem(obj) or "—"


def load_problem(obj: ModelVersion) -> str:
    """A worker's last failure to load the version, as the admin shows it."""
    if not obj.load_error_at:
        return ""
    return format_html(
        '<span class="modelhub-load-error">failed to load in a worker at {} UTC: '
        "{}</span>",
        obj.load_error_at.strftime("%Y-%m-%d %H:%M:%S"),
        obj.load_error,
    )


class ActivationInline(admin.TabularInline):
    model = Activation
    verbose_name = "activation"
    verbose_name_plural = "activation history"
    fields = ["created_at", "change", "channel", "username"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="change")
    def change(self, obj: Activation) -> str:
        origin = f"v{obj.from_number}" if obj.from_number else "none"
        label = "rollback" if obj.rollback else "activation"
        return f"{origin} → v{obj.to_number} ({label})"


BATCHING_HELP = (
    "Adaptive batching: single- and few-row requests to the same version that "
    "arrive within the wait are predicted in one call, and each request gets its "
    "own results back, identical to unbatched ones. It pays off for models whose "
    "predict costs about the same for 8 rows as for 1 (forests, boosted trees). "
    "Requests meet in the host's batch process, one per gunicorn worker (or "
    "thread) at a time: a batch holds at most MODELHUB_WORKERS x MODELHUB_THREADS."
)


def describe_edit(edit: VersionEdit) -> str:
    """One line per version edit: which version, what changed."""
    parts = []
    schema = edit.changes.get("input_schema")
    if schema:
        parts.append(
            f"input schema: {', '.join(schema['from'])} → {', '.join(schema['to'])}"
        )
    if edit.changes.get("metadata"):
        parts.append(f"metadata: {', '.join(edit.changes['metadata'])}")
    return f"v{edit.number} " + "; ".join(parts)


@admin.register(MLModel)
class MLModelAdmin(admin.ModelAdmin):
    form = MLModelForm
    list_display = ["slug", "name", "active", "version_count", "private", "updated_at"]
    search_fields = ["slug", "name", "description"]
    readonly_fields = [
        "active_version",
        "created_at",
        "updated_at",
        "edit_history",
        admin_rollouts.alias_history,
        admin_rollouts.policy_history,
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "slug",
                    "name",
                    "description",
                    "private",
                    "granted_users",
                    "granted_groups",
                ]
            },
        ),
        (
            "Batching",
            {
                "fields": ["batch_max_rows", "batch_max_wait_ms"],
                "description": BATCHING_HELP,
            },
        ),
        (
            "Feedback",
            {
                "fields": ["keep_predictions"],
                "description": "Ground-truth labels sent to POST "
                "/api/feedback/<slug>/ (or uploaded as CSV under Monitoring › "
                "Feedback) are joined to what each request was answered, for "
                "live accuracy or error per version on the dashboard.",
            },
        ),
        (
            "Replay",
            {
                "fields": ["capture_payloads"],
                "description": "Captured bodies can be predicted again by "
                "another version, away from live traffic: the 'Replay captured "
                "traffic' action on a version, or manage.py replay.",
            },
        ),
        (None, {"fields": readonly_fields}),
    ]
    filter_horizontal = ["granted_users", "granted_groups"]
    inlines = [VersionInline, ActivationInline]
    actions = ["roll_back"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[MLModel]:
        return (
            super()
            .get_queryset(request)
            .select_related("active_version")
            .annotate(version_count=Count("versions"))
        )

    @admin.display(description="active version", ordering="active_version__number")
    def active(self, obj: MLModel) -> str:
        return f"v{obj.active_version.number}" if obj.active_version else "—"

    @admin.display(description="version edits")
    def edit_history(self, obj: MLModel) -> str:
        """Schema and metadata edits, newest first (who, when, channel, what)."""
        edits = obj.edits.all()[:50] if obj.pk else []
        if not edits:
            return "—"
        return format_html_join(
            "",
            "<div>{} UTC · {} · {} · {}</div>",
            (
                (
                    e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    describe_edit(e),
                    e.channel,
                    e.username or "—",
                )
                for e in edits
            ),
        )

    @admin.display(description="versions", ordering="version_count")
    def version_count(self, obj: MLModel) -> int:
        return obj.version_count

    @admin.action(
        description="Roll back to the previously served version",
        permissions=["change"],
    )
    def roll_back(self, request: HttpRequest, queryset: QuerySet[MLModel]) -> None:
        for model in queryset:
            try:
                switch = actions.rollback(
                    model, user=request.user, channel=Activation.Channel.ADMIN
                )
            except RegistryError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Rolled back {model.slug} from v{switch.from_number} "
                    f"to v{switch.to_number}.",
                    messages.SUCCESS,
                )

    def save_model(
        self, request: HttpRequest, obj: MLModel, form: Any, change: bool
    ) -> None:
        fields = {
            "slug": obj.slug,
            "name": obj.name,
            "description": obj.description,
            "private": obj.private,
            "batch_max_rows": obj.batch_max_rows,
            "batch_max_wait_ms": obj.batch_max_wait_ms,
            "capture_payloads": obj.capture_payloads,
            "keep_predictions": obj.keep_predictions,
        }
        if change:
            actions.update_model(obj, **fields)
        else:
            created = actions.create_model(**fields)
            obj.pk = created.pk

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        actions.set_grants(
            form.instance,
            users=form.cleaned_data.get("granted_users", []),
            groups=form.cleaned_data.get("granted_groups", []),
        )
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def response_add(
        self, request: HttpRequest, obj: MLModel, post_url_continue: str | None = None
    ) -> HttpResponse:
        """A new model serves nothing until a version is uploaded: plain "Save"
        leads to its upload form; the other buttons keep their meaning."""
        response = super().response_add(request, obj, post_url_continue)
        chose_another_page = any(
            key in request.POST for key in ("_continue", "_addanother", "_popup")
        )
        if chose_another_page or not isinstance(response, HttpResponseRedirect):
            return response
        if not request.user.has_perm("registry.add_modelversion"):
            return response
        url = reverse("admin:registry_modelversion_add")
        return HttpResponseRedirect(f"{url}?model={obj.pk}")

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The page warns when batching is on but can never happen: the server
        runs one request at a time, so no two requests meet."""
        at_once = settings.MODELHUB_WORKERS * settings.MODELHUB_THREADS
        extra = {**(extra_context or {}), "one_request_at_a_time": at_once == 1}
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self) -> list[URLPattern]:
        return [*admin_rollouts.RolloutViews(self).urls(), *super().get_urls()]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: MLModel | None = None,
    ) -> HttpResponse:
        """The page's rollout panel: aliases and the traffic policy."""
        if obj is not None:
            context = {**context, "rollouts": admin_rollouts.panel(self, request, obj)}
        return super().render_change_form(request, context, add, change, form_url, obj)

    def delete_model(self, request: HttpRequest, obj: MLModel) -> None:
        actions.delete_models([obj])

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[MLModel]
    ) -> None:
        actions.delete_models(list(queryset))


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    form = ModelVersionForm
    list_display = [
        "__str__",
        "is_active",
        "status",
        "kind",
        "format",
        "estimator",
        "file_size",
        "created_at",
        "created_by",
    ]
    list_filter = ["status", "kind", "format", "model"]
    search_fields = ["model__slug", "sha256", "estimator"]
    list_select_related = ["model", "created_by"]
    actions = ["activate_version", "replay_version"]
    readonly_fields = [
        "model",
        "number",
        "is_active",
        "status",
        "status_message",
        "load_problem",
        "stored_file",
        "original_filename",
        "sha256",
        "file_size",
        "format",
        "kind",
        "estimator",
        "classes_json",
        "smoke_test",
        "warnings_json",
        "library_versions_json",
        "created_by",
        "created_at",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "model",
                    "number",
                    "is_active",
                    "status",
                    "status_message",
                    "load_problem",
                ]
            },
        ),
        (
            "File",
            {
                "fields": [
                    "stored_file",
                    "original_filename",
                    "sha256",
                    "file_size",
                    "format",
                ]
            },
        ),
        (
            "Estimator",
            {
                "fields": [
                    "kind",
                    "estimator",
                    "classes_json",
                    "input_schema",
                    "smoke_test",
                ]
            },
        ),
        (
            "Metadata",
            {
                "fields": [
                    "metadata",
                    "warnings_json",
                    "library_versions_json",
                    "created_by",
                    "created_at",
                ]
            },
        ),
    ]

    @admin.display(description="serving problem")
    def load_problem(self, obj: ModelVersion) -> str:
        return load_problem(obj) or "none"

    @admin.display(description="active", boolean=True)
    def is_active(self, obj: ModelVersion) -> bool:
        return obj.model.active_version_id == obj.pk

    @admin.display(description="stored as")
    def stored_file(self, obj: ModelVersion) -> str:
        # A name, not a link: model files are never served over HTTP.
        return obj.file.name

    @admin.display(description="size", ordering="size")
    def file_size(self, obj: ModelVersion) -> str:
        return filesizeformat(obj.size)

    @admin.display(description="classes")
    def classes_json(self, obj: ModelVersion) -> str:
        return _pretty_json(obj.classes)

    @admin.display(description="warnings (scikit-learn version mismatch, ...)")
    def warnings_json(self, obj: ModelVersion) -> str:
        return _pretty_json(obj.warnings)

    @admin.display(description="library versions at upload")
    def library_versions_json(self, obj: ModelVersion) -> str:
        return _pretty_json(obj.library_versions)

    @admin.action(description="Activate the selected version", permissions=["activate"])
    def activate_version(
        self, request: HttpRequest, queryset: QuerySet[ModelVersion]
    ) -> None:
        versions = list(queryset.select_related("model"))
        slugs = [v.model.slug for v in versions]
        for version in versions:
            if slugs.count(version.model.slug) > 1:
                self.message_user(
                    request,
                    f"Select only one version of {version.model.slug} to activate.",
                    messages.ERROR,
                )
                continue
            try:
                switch = actions.activate(
                    version, user=request.user, channel=Activation.Channel.ADMIN
                )
            except RegistryError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                continue
            text = f"Activated {version}." if switch else f"Already active: {version}."
            self.message_user(request, text, messages.SUCCESS)

    @admin.action(
        description="Replay the last 24 h of captured traffic against the "
        "selected version",
        permissions=["activate"],
    )
    def replay_version(
        self, request: HttpRequest, queryset: QuerySet[ModelVersion]
    ) -> None:
        for version in queryset.select_related("model"):
            if version.status != ModelVersion.Status.READY:
                self.message_user(
                    request,
                    f"{version} is {version.status}: not replayed.",
                    messages.ERROR,
                )
                continue
            replay_launch.start_replay(
                version.model.slug, version.number, by=request.user.get_username()
            )
            self.message_user(
                request,
                f"Replay of {version.model.slug}'s captured traffic against "
                f"v{version.number} started in a process of its own; its report "
                "appears under Replay reports when it ends (a model without "
                "payload capture has nothing to replay: turn on 'Capture "
                "payloads' on the model first).",
                messages.SUCCESS,
            )

    def get_urls(self) -> list[URLPattern]:
        activate = self.admin_site.admin_view(require_POST(self.activate_view))
        return [
            path("<int:pk>/activate/", activate, name="registry_modelversion_activate"),
            *super().get_urls(),
        ]

    def activate_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The version page's Activate button: the list action, for one version."""
        if not self.has_activate_permission(request):
            raise PermissionDenied
        get_object_or_404(ModelVersion, pk=pk)
        self.activate_version(request, ModelVersion.objects.filter(pk=pk))
        return redirect("admin:registry_modelversion_change", pk)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: ModelVersion | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context = {**context, **self.version_buttons(request, obj)}
        return super().render_change_form(request, context, add, change, form_url, obj)

    def version_buttons(
        self, request: HttpRequest, version: ModelVersion
    ) -> dict[str, Any]:
        """What the version page offers: a button, or why there is none."""
        active = version.model.active_version_id == version.pk
        may_delete = super().has_delete_permission(request, version)
        if active:
            activate_refusal = "This version is active: it serves the model now."
        elif version.status != ModelVersion.Status.READY:
            activate_refusal = (
                f"This version is {version.status}: it failed its check and "
                "cannot be served."
            )
        else:
            activate_refusal = ""
        return {
            "may_activate": self.has_activate_permission(request),
            "activate_refusal": activate_refusal,
            "may_delete": may_delete,
            "delete_refusal": (
                "The active version cannot be deleted: activate another one first."
                if active and may_delete
                else ""
            ),
        }

    def has_activate_permission(self, request: HttpRequest) -> bool:
        """Activating changes what a model serves: the permission the REST
        API's ActivateView asks for, not one on versions."""
        return request.user.has_perm("registry.change_mlmodel")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.model.active_version_id == obj.pk:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: ModelVersion, form: Any, change: bool
    ) -> None:
        """The form checked the edit (ModelVersionForm.clean); applying it is
        the registry's write, recorded and announced there."""
        actions.apply_version_edit(
            form.checked_edit, user=request.user, channel=Activation.Channel.ADMIN
        )

    def delete_model(self, request: HttpRequest, obj: ModelVersion) -> None:
        actions.delete_version(obj)

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[ModelVersion]
    ) -> None:
        for version in queryset.select_related("model"):
            try:
                actions.delete_version(version)
            except RegistryError as exc:
                self.message_user(request, exc.message, messages.ERROR)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        """Upload page; not the stock add form, which holds a transaction open."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = VersionUploadForm(
            request.POST or None,
            request.FILES or None,
            initial={"model": request.GET.get("model"), "activate": True},
        )
        technical, refused = "", ""
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                version = actions.register_version(
                    slug=form.cleaned_data["model"].slug,
                    source=upload,
                    filename=upload.name,
                    metadata=form.cleaned_data["metadata"],
                    user=request.user,
                    channel=Activation.Channel.ADMIN,
                    activate=form.cleaned_data["activate"],
                    create=False,
                    reference=form.cleaned_data["reference"],
                )
            except RegistryError as exc:
                refused = "reference" if isinstance(exc, InvalidReference) else "file"
                form.add_error(refused, exc.message)
                technical = technical_line(exc)
            else:
                self.log_addition(request, version, [{"added": {}}])
                state = (
                    "and activated it"
                    if form.cleaned_data["activate"]
                    else "(not active)"
                )
                self.message_user(
                    request, f"Registered {version} {state}.", messages.SUCCESS
                )
                return redirect("admin:registry_modelversion_change", version.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Upload a model version",
            "form": form,
            "opts": self.model._meta,
            "pickle_allowed": request.user.has_perm(actions.UPLOAD_PERMISSION),
            "max_bytes": settings.MODELHUB_MAX_MODEL_BYTES,
            "max_reference_bytes": settings.MODELHUB_MAX_REFERENCE_BYTES,
            "timeout": settings.MODELHUB_PREFLIGHT_TIMEOUT,
            "technical": technical,
            "refused_field": refused,
            "extensions": ", ".join(MODEL_EXTENSIONS),
        }
        return TemplateResponse(
            request, "admin/registry/modelversion/upload.html", context
        )
