"""Fixtures shared by the registry's tests."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from registry import generation


@pytest.fixture
def generation_file(tmp_path, monkeypatch, transactional_db):
    """A generation file for the test database, as a SQLite file database
    has one (registry.generation): the actions advance it at commit."""
    path = str(tmp_path / f"db.sqlite3{generation.SUFFIX}")
    open(path, "w").close()
    monkeypatch.setattr(generation, "file_for", lambda db: path)
    return path


@pytest.fixture
def api() -> Client:
    """Answers a crash with its 500 instead of raising, as a real client sees."""
    return Client(raise_request_exception=False)


@pytest.fixture
def token(staff_user) -> dict[str, str]:
    """Headers of a staff token holding every registry permission."""
    return {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=staff_user).key}"}
