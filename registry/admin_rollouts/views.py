"""The rollout panel on the model's admin page and its POST-only views,
each one call of registry.rollouts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import URLPattern, path
from django.views.decorators.http import require_POST

from .. import rollouts
from ..exceptions import NoCandidate, RegistryError
from ..models import Activation, MLModel, ModelVersion, TrafficPolicy
from .forms import AliasForm, PolicyForm, initial_for, spec_of, version_label
from .history import percent, summarize, summarize_guards

ADMIN = Activation.Channel.ADMIN


def panel(
    model_admin: admin.ModelAdmin, request: HttpRequest, model: MLModel
) -> dict[str, Any]:
    """What the model page's rollout panel shows, and to whom its forms."""
    may_change = model_admin.has_change_permission(request, model)
    policy = policy_of(model)
    context: dict[str, Any] = {
        "may_change": may_change,
        "aliases": model.aliases.select_related("version").order_by("name"),
        "policy": policy,
        "current": current_rows(policy, model) if policy is not None else [],
    }
    if not may_change:
        return context
    ready = list(
        model.versions.filter(status=ModelVersion.Status.READY).order_by("-number")
    )
    alias_form = AliasForm(model=model)
    alias_form.offer("version", ready, blank=False)
    policy_form = PolicyForm(model=model, initial=initial_for(policy))
    others = [v for v in ready if v.pk != model.active_version_id]
    for name in ("candidate", "shadow"):
        current = getattr(policy, name) if policy is not None else None
        stale = [current] if current is not None and current not in others else []
        policy_form.offer(name, [*others, *stale], blank=True)
    features = feature_names(model.active_version)
    if features:
        policy_form.fields["sticky_feature"].widget.attrs["list"] = "policy-features"
    return {
        **context,
        "alias_form": alias_form,
        "policy_form": policy_form,
        "policy_groups": policy_form.grouped(),
        "features": features,
    }


def current_rows(policy: TrafficPolicy, model: MLModel) -> list[tuple[str, str]]:
    """The stored policy, a row per part, as the panel shows it."""
    candidate = policy.candidate
    if candidate is None:
        split = "none: the active version answers every unpinned request"
    else:
        split = f"{version_label(candidate, model)} takes {percent(policy.weight)}"
        if candidate.status != ModelVersion.Status.READY:
            split += " (not ready: it is sent nothing)"
    if policy.sticky_header:
        sticky = f"by header {policy.sticky_header}"
    elif policy.sticky_feature:
        sticky = f"by feature {policy.sticky_feature}"
    else:
        sticky = "no: a fresh draw per request"
    guards = summarize_guards(asdict(spec_of(policy).guards))
    return [
        ("Candidate", split),
        ("Sticky", sticky),
        ("Shadow", version_label(policy.shadow, model) if policy.shadow else "none"),
        ("Guards", guards.removeprefix("guards: ") or "none"),
        ("Updated", f"{policy.updated_at:%Y-%m-%d %H:%M:%S} UTC"),
    ]


def feature_names(version: ModelVersion | None) -> list[str]:
    """The features a sticky feature may name, offered as the field's list."""
    schema = version.input_schema if version is not None else None
    return [str(f.get("name")) for f in (schema or {}).get("features") or []]


class RolloutViews:
    """The panel's POST-only views. The admin site checks login, staff and
    CSRF (``admin_view``); the model admin's change permission gates every
    change, as it gates Activate and Roll back."""

    def __init__(self, model_admin: admin.ModelAdmin) -> None:
        self.model_admin = model_admin

    def urls(self) -> list[URLPattern]:
        views: dict[str, tuple[str, Callable[..., HttpResponse]]] = {
            "alias_set": ("aliases/set/", self.set_alias),
            "alias_delete": ("aliases/delete/", self.delete_alias),
            "policy_set": ("policy/set/", self.set_policy),
            "policy_promote": ("policy/promote/", self.promote),
            "policy_abort": ("policy/abort/", self.abort),
            "policy_end": ("policy/end/", self.end_policy),
        }
        site = self.model_admin.admin_site
        return [
            path(
                f"<int:pk>/{route}",
                site.admin_view(require_POST(view)),
                name=f"registry_mlmodel_{name}",
            )
            for name, (route, view) in views.items()
        ]

    def set_alias(self, request: HttpRequest, pk: int) -> HttpResponse:
        model = self._model(request, pk)
        form = AliasForm(request.POST, model=model)

        def change() -> str:
            name, version = form.cleaned_data["name"], form.cleaned_data["version"]
            move = rollouts.set_alias(
                model, name, version, user=request.user, channel=ADMIN
            )
            if move is None:
                return f"Alias {model.slug}@{name} already points to v{version.number}."
            if move.from_number is None:
                return f"Alias {model.slug}@{name} now points to v{move.to_number}."
            return (
                f"Moved alias {model.slug}@{name} from v{move.from_number} "
                f"to v{move.to_number}."
            )

        return self._run(request, model, change, form)

    def delete_alias(self, request: HttpRequest, pk: int) -> HttpResponse:
        model = self._model(request, pk)
        name = request.POST.get("name", "")

        def change() -> str:
            move = rollouts.delete_alias(model, name, user=request.user, channel=ADMIN)
            was = f"v{move.from_number}"
            return f"Deleted alias {model.slug}@{name} (it pointed to {was})."

        return self._run(request, model, change)

    def set_policy(self, request: HttpRequest, pk: int) -> HttpResponse:
        model = self._model(request, pk)
        form = PolicyForm(request.POST, model=model)

        def change() -> str:
            policy = rollouts.set_policy(
                model, form.spec(), user=request.user, channel=ADMIN
            )
            summary = summarize(rollouts.describe(policy))
            return f"Saved the traffic policy of {model.slug}: {summary}."

        return self._run(request, model, change, form)

    def promote(self, request: HttpRequest, pk: int) -> HttpResponse:
        model = self._model(request, pk)

        def change() -> str:
            switch = rollouts.promote(model, user=request.user, channel=ADMIN)
            return (
                f"Promoted v{switch.to_number}: it is the active version of "
                f"{model.slug} (was v{switch.from_number})."
            )

        return self._run(request, model, change)

    def abort(self, request: HttpRequest, pk: int) -> HttpResponse:
        model = self._model(request, pk)

        def change() -> str:
            policy = abort_candidate(model, user=request.user)
            return (
                f"Aborted: v{policy.candidate.number} takes no traffic (weight 0); "
                f"{model.slug} answers with v{model.active_version.number}."
            )

        return self._run(request, model, change)

    def end_policy(self, request: HttpRequest, pk: int) -> HttpResponse:
        model = self._model(request, pk)
        if not rollouts.end_policy(model, user=request.user, channel=ADMIN):
            self.model_admin.message_user(
                request,
                f"Nothing to end: {model.slug} has no traffic policy.",
                messages.WARNING,
            )
        else:
            self.model_admin.message_user(
                request,
                f"Ended the traffic policy of {model.slug}: its active version "
                "takes all traffic.",
                messages.SUCCESS,
            )
        return _back(model)

    def _model(self, request: HttpRequest, pk: int) -> MLModel:
        if not self.model_admin.has_change_permission(request):
            raise PermissionDenied
        model = get_object_or_404(
            MLModel.objects.select_related("active_version"), pk=pk
        )
        if not self.model_admin.has_change_permission(request, model):
            raise PermissionDenied
        return model

    def _run(
        self,
        request: HttpRequest,
        model: MLModel,
        change: Callable[[], str],
        form: forms.Form | None = None,
    ) -> HttpResponse:
        """One change, its outcome as an admin message, back to the page."""
        if form is not None and not form.is_valid():
            self.model_admin.message_user(request, form_errors(form), messages.ERROR)
            return _back(model)
        try:
            text = change()
        except RegistryError as exc:
            self.model_admin.message_user(request, exc.message, messages.ERROR)
        else:
            self.model_admin.message_user(request, text, messages.SUCCESS)
        return _back(model)


def form_errors(form: forms.Form) -> str:
    """A refused form in one message: the page shows messages, not the form
    that was posted."""
    return " ".join(
        f"{form[name].label}: {' '.join(errors)}"
        if name in form.fields
        else " ".join(errors)
        for name, errors in form.errors.items()
    )


def _back(model: MLModel) -> HttpResponse:
    return redirect("admin:registry_mlmodel_change", model.pk)


def abort_candidate(model: MLModel, *, user: AbstractBaseUser | None) -> TrafficPolicy:
    """The candidate's weight to 0, the rest of the policy kept (recorded as
    an abort, not checked again: it must work on a candidate gone bad)."""
    if not rollouts.abort(model, user=user, channel=ADMIN):
        raise NoCandidate(f"Model '{model.slug}' has no candidate taking traffic.")
    policy = policy_of(model)
    assert policy is not None
    return policy


def policy_of(model: MLModel) -> TrafficPolicy | None:
    """The stored policy with its versions, read once for the whole panel."""
    return (
        TrafficPolicy.objects.filter(model=model)
        .select_related("candidate", "shadow")
        .first()
    )
