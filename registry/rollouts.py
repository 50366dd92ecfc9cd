"""Rolling out a version: aliases, the traffic policy, promote, and a guard
that trips. Part of the registry's one write path (registry.actions): every
change is recorded in the model's history and announced on commit, so every
worker serves it from its next request.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction

from . import changes
from .actions import _made_by, _switch
from .exceptions import (
    CandidateIsActive,
    CandidateNotReady,
    InvalidAlias,
    InvalidGuard,
    InvalidSticky,
    InvalidWeight,
    NoActiveVersion,
    NoCandidate,
    UnknownAlias,
)
from .models import (
    Activation,
    Alias,
    AliasMove,
    MLModel,
    ModelVersion,
    PolicyChange,
    TrafficPolicy,
)

# Names a URL could read as a version: ``v3`` is /v3/, ``latest`` is reserved.
_VERSION_LIKE = re.compile(r"^v\d+$", re.IGNORECASE)
_RESERVED = {"latest"}
# RFC 9110's token: what a header name may hold.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Guard windows: requests and minutes a guard may look back over.
MAX_GUARD_REQUESTS = 100_000
MAX_GUARD_MINUTES = 7 * 24 * 60
DEFAULT_GUARD_REQUESTS = 100


def check_alias_name(name: str) -> str:
    """A slug-like name that no URL reads as a version."""
    try:
        validate_slug(name)
    except ValidationError:
        raise InvalidAlias(
            f"Alias {name[:60]!r} must be letters, digits, '-' or '_'."
        ) from None
    if len(name) > 50:
        raise InvalidAlias("An alias name is at most 50 characters.")
    if _VERSION_LIKE.match(name) or name.lower() in _RESERVED:
        raise InvalidAlias(
            f"Alias {name!r} reads as a version; 'v<digits>' and 'latest' are reserved."
        )
    return name


def set_alias(
    model: MLModel,
    name: str,
    version: ModelVersion,
    *,
    user: AbstractBaseUser | None = None,
    channel: str = Activation.Channel.CLI,
) -> AliasMove | None:
    """Point ``model@name`` at ``version``; None if it already does."""
    check_alias_name(name)
    _ready(model, version, role="An alias")
    with transaction.atomic():
        locked = MLModel.objects.select_for_update().get(pk=model.pk)
        alias = Alias.objects.filter(model=locked, name=name).first()
        previous = alias.version.number if alias is not None else None
        if previous == version.number:
            return None
        if alias is None:
            Alias.objects.create(model=locked, name=name, version=version)
        else:
            Alias.objects.filter(pk=alias.pk).update(version=version)
        changes.announce()
        return AliasMove.objects.create(
            model=locked,
            name=name,
            from_number=previous,
            to_number=version.number,
            **_made_by(user, channel),
        )


def delete_alias(
    model: MLModel,
    name: str,
    *,
    user: AbstractBaseUser | None = None,
    channel: str = Activation.Channel.CLI,
) -> AliasMove:
    """Remove ``model@name``: its URL answers 404 unknown_alias from the next
    request."""
    with transaction.atomic():
        locked = MLModel.objects.select_for_update().get(pk=model.pk)
        alias = Alias.objects.filter(model=locked, name=name).first()
        if alias is None:
            raise UnknownAlias(f"Model '{model.slug}' has no alias '{name[:60]}'.")
        previous = alias.version.number
        alias.delete()
        changes.announce()
        return AliasMove.objects.create(
            model=locked,
            name=name,
            from_number=previous,
            to_number=None,
            **_made_by(user, channel),
        )


@dataclass(frozen=True)
class Guards:
    """When a candidate is rolled back by itself (registry.guards)."""

    error_rate: float | None = None
    p95_ms: float | None = None
    p95_ratio: float | None = None
    last_requests: int | None = None
    minutes: float | None = None
    min_requests: int = 20

    @property
    def any(self) -> bool:
        return any(
            v is not None for v in (self.error_rate, self.p95_ms, self.p95_ratio)
        )


@dataclass(frozen=True)
class PolicySpec:
    """A traffic policy as a caller asks for it, before it is checked."""

    candidate: ModelVersion | None = None
    weight: float = 0.0
    sticky_header: str = ""
    sticky_feature: str = ""
    shadow: ModelVersion | None = None
    guards: Guards = Guards()


def set_policy(
    model: MLModel,
    spec: PolicySpec,
    *,
    user: AbstractBaseUser | None = None,
    channel: str = Activation.Channel.CLI,
) -> TrafficPolicy:
    """Replace the model's traffic policy with ``spec`` (checked first:
    nothing is stored unless all of it is valid)."""
    _check_spec(model, spec)
    with transaction.atomic():
        locked = MLModel.objects.select_for_update().get(pk=model.pk)
        _check_against_active(locked, spec)
        before = describe(_policy_of(locked))
        guards = spec.guards
        if guards.any and guards.last_requests is None and guards.minutes is None:
            guards = Guards(
                **{**guards.__dict__, "last_requests": DEFAULT_GUARD_REQUESTS}
            )
        policy, _ = TrafficPolicy.objects.update_or_create(
            model=locked,
            defaults={
                "candidate": spec.candidate,
                "weight": spec.weight if spec.candidate is not None else 0.0,
                "sticky_header": spec.sticky_header,
                "sticky_feature": spec.sticky_feature,
                "shadow": spec.shadow,
                "guard_error_rate": guards.error_rate,
                "guard_p95_ms": guards.p95_ms,
                "guard_p95_ratio": guards.p95_ratio,
                "guard_last_requests": guards.last_requests,
                "guard_minutes": guards.minutes,
                "guard_min_requests": guards.min_requests,
            },
        )
        _record(
            locked, PolicyChange.Action.SET, before, describe(policy), user, channel
        )
        return policy


def end_policy(
    model: MLModel,
    *,
    user: AbstractBaseUser | None = None,
    channel: str = Activation.Channel.CLI,
) -> bool:
    """Delete the policy: the active version takes all traffic again, no
    shadow. False if there was none."""
    with transaction.atomic():
        locked = MLModel.objects.select_for_update().get(pk=model.pk)
        policy = _policy_of(locked)
        if policy is None:
            return False
        before = describe(policy)
        policy.delete()
        _record(locked, PolicyChange.Action.END, before, None, user, channel)
        return True


def promote(
    model: MLModel,
    *,
    user: AbstractBaseUser | None = None,
    channel: str = Activation.Channel.CLI,
) -> Activation:
    """Make the candidate the active version, in one recorded step. The
    policy keeps its shadow (unless that is the new active version) and
    loses its candidate."""
    with transaction.atomic():
        locked = MLModel.objects.select_for_update().get(pk=model.pk)
        policy = _policy_of(locked)
        if policy is None or policy.candidate_id is None:
            raise NoCandidate(f"Model '{model.slug}' has no candidate to promote.")
        candidate = policy.candidate
        before = describe(policy)
        activation = _switch(
            locked,
            candidate,
            user=user,
            channel=channel,
            rollback=False,
            promoting=True,
        )
        if policy.shadow_id is None or policy.shadow_id == candidate.pk:
            policy.delete()
            after = None
        else:
            policy.candidate = None
            policy.weight = 0.0
            policy.save(update_fields=["candidate", "weight", "updated_at"])
            after = describe(policy)
        _record(locked, PolicyChange.Action.PROMOTE, before, after, user, channel)
        return activation


def leave_policy(
    model: MLModel,
    version: ModelVersion,
    *,
    user: AbstractBaseUser | None,
    channel: str,
) -> None:
    """``version`` is being activated: the active version is never also the
    candidate or the shadow, so the policy lets go of it (recorded). The
    caller holds the model's row lock."""
    policy = _policy_of(model)
    if policy is None or version.pk not in (policy.candidate_id, policy.shadow_id):
        return
    before = describe(policy)
    if policy.candidate_id == version.pk:
        policy.candidate, policy.weight = None, 0.0
    if policy.shadow_id == version.pk:
        policy.shadow = None
    policy.save(update_fields=["candidate", "weight", "shadow", "updated_at"])
    _record(
        model,
        PolicyChange.Action.SET,
        before,
        describe(policy),
        user,
        channel,
        reason=f"v{version.number} was activated",
    )


def abort(
    model: MLModel,
    *,
    user: AbstractBaseUser | None = None,
    channel: str = Activation.Channel.CLI,
) -> bool:
    """The candidate's weight goes to 0, the rest of the policy stays (and is
    not checked again: an abort must work on a candidate gone bad). False
    when no candidate had any traffic."""
    return _zero_weight(model, PolicyChange.Action.ABORT, user, channel, reason="")


def trip(model: MLModel, *, candidate_id: int, reason: str) -> bool:
    """A guard tripped: the candidate's weight goes to 0 (channel ``auto``).
    False when the policy no longer sends that candidate any traffic (another
    worker tripped it first, or a person changed it)."""
    return _zero_weight(
        model,
        PolicyChange.Action.TRIP,
        None,
        Activation.Channel.AUTO,
        reason=reason,
        candidate_id=candidate_id,
    )


def _zero_weight(
    model: MLModel,
    action: str,
    user: AbstractBaseUser | None,
    channel: str,
    *,
    reason: str,
    candidate_id: int | None = None,
) -> bool:
    with transaction.atomic():
        locked = MLModel.objects.select_for_update().get(pk=model.pk)
        policy = _policy_of(locked)
        if policy is None or policy.candidate_id is None or policy.weight <= 0:
            return False
        if candidate_id is not None and policy.candidate_id != candidate_id:
            return False
        before = describe(policy)
        policy.weight = 0.0
        policy.save(update_fields=["weight", "updated_at"])
        _record(locked, action, before, describe(policy), user, channel, reason=reason)
        return True


def describe(policy: TrafficPolicy | None) -> dict[str, Any] | None:
    """The policy as the API shows it and the history keeps it."""
    if policy is None:
        return None
    number = _number_of
    return {
        "candidate": number(policy.candidate_id),
        "weight": policy.weight,
        "sticky": policy.sticky_header or None,
        "sticky_feature": policy.sticky_feature or None,
        "shadow": number(policy.shadow_id),
        "guards": {
            "error_rate": policy.guard_error_rate,
            "p95_ms": policy.guard_p95_ms,
            "p95_ratio": policy.guard_p95_ratio,
            "last_requests": policy.guard_last_requests,
            "minutes": policy.guard_minutes,
            "min_requests": policy.guard_min_requests,
        },
    }


def _number_of(version_id: int | None) -> int | None:
    if version_id is None:
        return None
    return (
        ModelVersion.objects.filter(pk=version_id)
        .values_list("number", flat=True)
        .first()
    )


def _policy_of(model: MLModel) -> TrafficPolicy | None:
    return TrafficPolicy.objects.filter(model=model).first()


def _record(
    model: MLModel,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    user: AbstractBaseUser | None,
    channel: str,
    *,
    reason: str = "",
) -> None:
    changes.announce()
    PolicyChange.objects.create(
        model=model,
        action=action,
        before=before,
        after=after,
        reason=reason[:500],
        **_made_by(user, channel),
    )


def _ready(model: MLModel, version: ModelVersion, *, role: str) -> None:
    if version.model_id != model.pk:
        raise CandidateNotReady(f"v{version.number} does not belong to '{model.slug}'.")
    if version.status != ModelVersion.Status.READY:
        raise CandidateNotReady(
            f"{role} must point to a ready version; {version} is {version.status}."
        )


def _check_spec(model: MLModel, spec: PolicySpec) -> None:
    weight = spec.weight
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int | float)
        or not math.isfinite(weight)
        or not 0.0 <= weight <= 1.0
    ):
        raise InvalidWeight(f"The weight must be a number from 0 to 1, not {weight!r}.")
    if spec.candidate is not None:
        _ready(model, spec.candidate, role="The candidate")
    if spec.shadow is not None:
        _ready(model, spec.shadow, role="The shadow")
    if spec.sticky_header and spec.sticky_feature:
        raise InvalidSticky("Stick by a header or by a feature, not both.")
    header = spec.sticky_header
    if header and (len(header) > 100 or not _HEADER_NAME.match(header)):
        raise InvalidSticky(f"{header[:100]!r} is not an HTTP header name.")
    if len(spec.sticky_feature) > 200:
        raise InvalidSticky("A sticky feature's name is at most 200 characters.")
    _check_guards(spec.guards)


def _check_against_active(model: MLModel, spec: PolicySpec) -> None:
    active = model.active_version_id
    if active is None and (spec.candidate or spec.shadow):
        raise NoActiveVersion(
            f"Model '{model.slug}' serves no version yet: activate one first."
        )
    _check_feature(spec, model.active_version)
    if spec.candidate is not None and spec.candidate.pk == active:
        raise CandidateIsActive(
            f"v{spec.candidate.number} is already the active version."
        )
    if spec.shadow is not None and spec.shadow.pk == active:
        raise CandidateIsActive(
            f"The shadow v{spec.shadow.number} is the active version: it would "
            "only agree with itself."
        )


def _check_feature(spec: PolicySpec, active: ModelVersion | None) -> None:
    """Under the model's lock: the active version read then is the one served."""
    feature = spec.sticky_feature
    if not feature:
        return
    for version in (spec.candidate, active):
        names = _feature_names(version)
        if names and feature not in names:
            raise InvalidSticky(f"{version} has no input feature {feature[:100]!r}.")


def _check_guards(guards: Guards) -> None:
    def bounded(name: str, value: float | None, low: float, high: float) -> None:
        if value is None:
            return
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not low < value <= high
        ):
            raise InvalidGuard(
                f"Guard '{name}' must be a number above {low:g} and at most {high:g}."
            )

    bounded("error_rate", guards.error_rate, 0, 1)
    bounded("p95_ms", guards.p95_ms, 0, 3_600_000)
    bounded("p95_ratio", guards.p95_ratio, 0, 1000)
    bounded("minutes", guards.minutes, 0, MAX_GUARD_MINUTES)
    for name, value, high in (
        ("last_requests", guards.last_requests, MAX_GUARD_REQUESTS),
        ("min_requests", guards.min_requests, MAX_GUARD_REQUESTS),
    ):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 1 <= value <= high
        ):
            raise InvalidGuard(
                f"Guard '{name}' must be a whole number from 1 to {high}."
            )


def _feature_names(version: ModelVersion | None) -> list[str]:
    if version is None:
        return []
    return [
        str(f.get("name")) for f in (version.input_schema or {}).get("features") or []
    ]
