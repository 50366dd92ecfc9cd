"""Creating and revoking API keys: the admin and `manage.py apikey` both call
these, so a key is made and shown the same way whatever the channel."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from registry.models import MLModel

from ..models import ApiKey
from . import keys


@transaction.atomic
def create_key(
    *,
    name: str,
    owner: AbstractBaseUser,
    predict: str = ApiKey.Predict.PUBLIC,
    models: Iterable[MLModel] = (),
    management: str = ApiKey.Management.NONE,
    expires: datetime | None = None,
    throttle_rate: str = "",
) -> tuple[ApiKey, str]:
    """The stored key and the key itself, which is shown once and never kept."""
    key = ApiKey(
        name=name,
        owner=owner,
        predict=predict,
        management=management,
        expiry_date=expires,
        throttle_rate=throttle_rate,
    )
    key.full_clean(exclude=["id", "prefix", "hashed_key", "allowed_models"])
    secret = ApiKey.objects.assign_key(key)
    key.save()
    key.allowed_models.set(list(models))
    return key, secret


def store(key: ApiKey, *, new: bool) -> str | None:
    """The admin's save: a new key gets its secret (returned to be shown once,
    never stored); an edit is saved and forgotten by this process's cache."""
    secret = ApiKey.objects.assign_key(key) if new else None
    key.save()
    keys.forget()
    return secret


def revoke(prefix: str) -> ApiKey:
    """Revoked for good (the library refuses to un-revoke)."""
    key = ApiKey.objects.get(prefix=prefix)
    if not key.revoked:
        key.revoked = True
        key.save(update_fields=["revoked"])
    keys.forget()
    return key
