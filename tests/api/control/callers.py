"""Who calls the management API in these tests: token and key headers, users
holding some of the admin's permissions, and the check of a coded error."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token

from api.access import issuing

_numbers = itertools.count(1)


def token_for(user: Any) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=user).key}"}


def key_for(owner: Any, **scope: Any) -> dict[str, str]:
    name = f"{owner.get_username()}-{next(_numbers)}"
    _, secret = issuing.create_key(name=name, owner=owner, **scope)
    return {"HTTP_AUTHORIZATION": f"Api-Key {secret}"}


def make_user(name: str, *, staff: bool, permissions: tuple[str, ...] = ()) -> Any:
    user = get_user_model().objects.create_user(name, is_staff=staff)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="registry", codename__in=permissions
        )
    )
    return user


def every_permission_but(permission: str) -> tuple[str, ...]:
    return tuple(
        p.codename
        for p in Permission.objects.filter(content_type__app_label="registry")
        if f"registry.{p.codename}" != permission
    )


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    return body
