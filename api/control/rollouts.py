"""The management API's rollout writes: aliases and the traffic policy.

Bodies are read strictly (no "0.1" for a number, no unknown keys) and the
writes go through registry.rollouts with the API channel and the token's
user, as the admin's and the CLI's do.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser

from registry import rollouts
from registry.exceptions import NoCandidate
from registry.models import Activation, MLModel, ModelVersion, TrafficPolicy
from registry.rollouts import Guards, PolicySpec

from ..errors import InvalidField
from .publishing import MAX_VERSION, get_model, get_version

_POLICY_KEYS = {"candidate", "weight", "sticky", "sticky_feature", "shadow", "guards"}
_GUARD_KEYS = {
    "error_rate": float,
    "p95_ms": float,
    "p95_ratio": float,
    "last_requests": int,
    "minutes": float,
    "min_requests": int,
}


def set_alias(
    *, slug: str, name: str, data: Any, user: AbstractBaseUser
) -> dict[str, Any]:
    """PUT {"version": n}: point the alias at version n (idempotent)."""
    model = get_model(slug)
    rollouts.check_alias_name(name)
    if not isinstance(data, dict) or set(data) != {"version"}:
        raise InvalidField('The body must be {"version": n}.', field="version")
    version = get_version(slug, _number(data, "version"))
    rollouts.set_alias(model, name, version, user=user, channel=Activation.Channel.API)
    return alias_detail(model, name, version.number)


def delete_alias(*, slug: str, name: str, user: AbstractBaseUser) -> None:
    rollouts.delete_alias(
        get_model(slug), name, user=user, channel=Activation.Channel.API
    )


def alias_detail(model: MLModel, name: str, number: int) -> dict[str, Any]:
    return {"model": model.slug, "alias": name, "version": number}


def set_policy(*, slug: str, data: Any, user: AbstractBaseUser) -> dict[str, Any]:
    """PUT: the whole policy (what is left out is not kept)."""
    model = get_model(slug)
    spec = read_policy(model, data)
    rollouts.set_policy(model, spec, user=user, channel=Activation.Channel.API)
    return policy_detail(model)


def end_policy(*, slug: str, user: AbstractBaseUser) -> None:
    rollouts.end_policy(get_model(slug), user=user, channel=Activation.Channel.API)


def promote(*, slug: str, user: AbstractBaseUser) -> ModelVersion:
    model = get_model(slug)
    rollouts.promote(model, user=user, channel=Activation.Channel.API)
    model.refresh_from_db(fields=["active_version"])
    return model.active_version


def abort(*, slug: str, user: AbstractBaseUser) -> dict[str, Any]:
    model = get_model(slug)
    if not rollouts.abort(model, user=user, channel=Activation.Channel.API):
        raise NoCandidate(f"Model '{slug}' has no candidate taking traffic.")
    return policy_detail(model)


def policy_detail(model: MLModel) -> dict[str, Any]:
    """The model's active version and its policy (null: all traffic active)."""
    model.refresh_from_db(fields=["active_version"])
    active = model.active_version
    policy = TrafficPolicy.objects.filter(model=model).first()
    return {
        "model": model.slug,
        "active_version": active.number if active is not None else None,
        "policy": rollouts.describe(policy),
    }


def read_policy(model: MLModel, data: Any) -> PolicySpec:
    """The JSON body of a policy PUT, strictly typed."""
    if not isinstance(data, dict):
        raise InvalidField("The body must be a JSON object.")
    unknown = sorted(set(data) - _POLICY_KEYS)
    if unknown:
        raise InvalidField(
            f"Unknown field '{unknown[0][:100]}': a policy has "
            + ", ".join(sorted(_POLICY_KEYS))
            + ".",
            field=unknown[0][:100],
        )
    candidate = _version_or_none(model, data, "candidate")
    weight = data.get("weight", 0.0 if candidate is None else None)
    if weight is None:
        raise InvalidField("A candidate needs a 'weight' from 0 to 1.", field="weight")
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise InvalidField("'weight' must be a number from 0 to 1.", field="weight")
    return PolicySpec(
        candidate=candidate,
        weight=float(weight),
        sticky_header=_text_or_empty(data, "sticky"),
        sticky_feature=_text_or_empty(data, "sticky_feature"),
        shadow=_version_or_none(model, data, "shadow"),
        guards=_guards(data.get("guards")),
    )


def _number(data: dict[str, Any], field: str) -> int:
    number = data.get(field)
    if type(number) is not int or not 1 <= number <= MAX_VERSION:
        raise InvalidField(f"'{field}' must be a version number.", field=field)
    return number


def _version_or_none(
    model: MLModel, data: dict[str, Any], field: str
) -> ModelVersion | None:
    if data.get(field) is None:
        return None
    return get_version(model.slug, _number(data, field))


def _text_or_empty(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidField(f"'{field}' must be a string or null.", field=field)
    return value


def _guards(value: Any) -> Guards:
    if value is None:
        return Guards()
    if not isinstance(value, dict):
        raise InvalidField("'guards' must be an object.", field="guards")
    unknown = sorted(set(value) - set(_GUARD_KEYS))
    if unknown:
        raise InvalidField(
            f"Unknown guard '{unknown[0][:100]}': guards are "
            + ", ".join(_GUARD_KEYS)
            + ".",
            field="guards",
        )
    given: dict[str, Any] = {}
    for key, kind in _GUARD_KEYS.items():
        raw = value.get(key)
        if raw is None:
            continue
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise InvalidField(f"Guard '{key}' must be a number.", field="guards")
        if kind is int and (not isinstance(raw, int)):
            raise InvalidField(f"Guard '{key}' must be a whole number.", field="guards")
        given[key] = raw
    return Guards(**given)
