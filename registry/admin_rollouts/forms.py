"""The rollout panel's forms: they parse what was posted about a model and
the registry (registry.rollouts) judges the rest, so a refusal reads the same
in the admin, the CLI and the API."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from django import forms

from .. import rollouts
from ..models import MLModel, ModelVersion, TrafficPolicy

NO_VERSION = ("", "— none —")


class VersionField(forms.IntegerField):
    """A version of the page's model, posted as its number.

    The select lists the versions worth picking, but any number of the model
    is accepted: a page gone stale (that version was activated meanwhile)
    then gets the registry's own refusal, not a vaguer form error.
    """

    widget = forms.Select

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, **kwargs)


class RolloutForm(forms.Form):
    """Parses what was posted about ``model``; the registry judges the rest."""

    def __init__(self, *args: Any, model: MLModel, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = model

    def version(self, name: str) -> ModelVersion | None:
        """Field ``name``'s number as a version of the model (any status)."""
        number = self.cleaned_data.get(name)
        if number is None:
            return None
        version = self.model.versions.filter(number=number).first()
        if version is None:
            raise forms.ValidationError(f"{self.model.slug} has no v{number}.")
        return version

    def offer(
        self, name: str, versions: Iterable[ModelVersion], *, blank: bool
    ) -> None:
        """Lists ``versions`` in the select of field ``name``."""
        choices = [(v.number, version_label(v, self.model)) for v in versions]
        self.fields[name].widget.choices = [NO_VERSION, *choices] if blank else choices


class AliasForm(RolloutForm):
    prefix = "alias"
    # Its length and form are the registry's to check (InvalidAlias).
    name = forms.CharField(
        label="Alias",
        widget=forms.TextInput(attrs={"maxlength": 50, "placeholder": "champion"}),
    )
    version = VersionField(label="Version")

    def clean_version(self) -> ModelVersion | None:
        return self.version("version")


class PolicyForm(RolloutForm):
    prefix = "policy"
    # The fields under the page's headings, in the page's order.
    GROUPS = [
        ("Split", ["candidate", "weight", "sticky_header", "sticky_feature", "shadow"]),
        (
            "Guards",
            [
                "error_rate",
                "p95_ms",
                "p95_ratio",
                "last_requests",
                "minutes",
                "min_requests",
            ],
        ),
    ]
    candidate = VersionField(
        required=False,
        help_text="Takes the weight's share of unpinned requests; the active "
        "version answers the rest.",
    )
    weight = forms.FloatField(
        required=False,
        widget=forms.NumberInput(attrs={"step": "any", "min": 0, "max": 1}),
        help_text="From 0 to 1: 0.2 sends a fifth of unpinned requests to the "
        "candidate.",
    )
    sticky_header = forms.CharField(
        required=False,
        max_length=100,
        help_text="A request header whose value keeps each caller on one version "
        "(X-User-Id). Empty, with no sticky feature: a fresh draw per request.",
    )
    sticky_feature = forms.CharField(
        required=False,
        max_length=200,
        help_text="Or an input feature whose value does (not both).",
    )
    shadow = VersionField(
        required=False,
        help_text="Also predicts every request after the response; callers never "
        "see its answers.",
    )
    error_rate = forms.FloatField(
        label="Guard: error rate",
        required=False,
        help_text="The candidate goes to weight 0 when its error rate is above "
        "this (0 to 1).",
    )
    p95_ms = forms.FloatField(
        label="Guard: p95 (ms)",
        required=False,
        help_text="…or its 95th percentile latency is above this many ms.",
    )
    p95_ratio = forms.FloatField(
        label="Guard: p95 ratio",
        required=False,
        help_text="…or its p95 is above this multiple of the active version's.",
    )
    last_requests = forms.IntegerField(
        label="Over the last requests",
        required=False,
        help_text=f"The guards' window, in requests (default "
        f"{rollouts.DEFAULT_GUARD_REQUESTS} when no minutes are given)…",
    )
    minutes = forms.FloatField(
        label="Over the last minutes",
        required=False,
        help_text="…or in minutes.",
    )
    min_requests = forms.IntegerField(
        label="Minimum requests",
        required=False,
        help_text=f"No guard trips on fewer candidate requests than this "
        f"(default {rollouts.Guards().min_requests}).",
    )

    def clean_candidate(self) -> ModelVersion | None:
        return self.version("candidate")

    def clean_shadow(self) -> ModelVersion | None:
        return self.version("shadow")

    def spec(self) -> rollouts.PolicySpec:
        """The posted policy as the registry takes it."""
        data = self.cleaned_data

        def given(name: str, default: Any) -> Any:
            # Not ``or``: a posted 0 is the registry's to refuse or keep.
            return default if data[name] is None else data[name]

        guards = rollouts.Guards(
            error_rate=data["error_rate"],
            p95_ms=data["p95_ms"],
            p95_ratio=data["p95_ratio"],
            last_requests=data["last_requests"],
            minutes=data["minutes"],
            min_requests=given("min_requests", rollouts.Guards().min_requests),
        )
        return rollouts.PolicySpec(
            candidate=data["candidate"],
            weight=given("weight", 0.0),
            sticky_header=data["sticky_header"],
            sticky_feature=data["sticky_feature"],
            shadow=data["shadow"],
            guards=guards,
        )

    def grouped(self) -> list[tuple[str, list[forms.BoundField]]]:
        """The fields under the page's headings, in the page's order."""
        return [(title, [self[name] for name in names]) for title, names in self.GROUPS]


def version_label(version: ModelVersion, model: MLModel) -> str:
    """``v3``, and what makes it special on this page."""
    if version.pk == model.active_version_id:
        return f"v{version.number} (active)"
    if version.status != ModelVersion.Status.READY:
        return f"v{version.number} ({version.status})"
    return f"v{version.number}"


def spec_of(policy: TrafficPolicy) -> rollouts.PolicySpec:
    """A stored policy as a spec, to set it again with one thing changed."""
    return rollouts.PolicySpec(
        candidate=policy.candidate,
        weight=policy.weight,
        sticky_header=policy.sticky_header,
        sticky_feature=policy.sticky_feature,
        shadow=policy.shadow,
        guards=rollouts.Guards(
            error_rate=policy.guard_error_rate,
            p95_ms=policy.guard_p95_ms,
            p95_ratio=policy.guard_p95_ratio,
            last_requests=policy.guard_last_requests,
            minutes=policy.guard_minutes,
            min_requests=policy.guard_min_requests,
        ),
    )


def initial_for(policy: TrafficPolicy | None) -> dict[str, Any]:
    """The policy form filled with the stored policy, to change one part."""
    if policy is None:
        return {"weight": 0, "min_requests": rollouts.Guards().min_requests}
    spec = spec_of(policy)
    return {
        "candidate": spec.candidate.number if spec.candidate else None,
        "weight": spec.weight,
        "sticky_header": spec.sticky_header,
        "sticky_feature": spec.sticky_feature,
        "shadow": spec.shadow.number if spec.shadow else None,
        **asdict(spec.guards),
    }
