"""The control plane tests' callers: a client and a staff token."""

from __future__ import annotations

import pytest
from django.test import Client

from .callers import token_for


@pytest.fixture
def api() -> Client:
    """A test client that answers a crash with its 500 instead of raising."""
    return Client(raise_request_exception=False)


@pytest.fixture
def staff(staff_user) -> dict[str, str]:
    """Headers of a staff token holding every registry permission."""
    return token_for(staff_user)
