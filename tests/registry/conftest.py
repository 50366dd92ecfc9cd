"""Fixtures shared by the registry's tests."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token

from registry import generation, notices


@pytest.fixture
def generation_file(tmp_path, monkeypatch, transactional_db):
    """A generation file for the test database, as a SQLite file database
    has one (registry.generation): the actions advance it at commit."""
    path = str(tmp_path / f"db.sqlite3{generation.SUFFIX}")
    open(path, "w").close()
    monkeypatch.setattr(generation, "file_for", lambda db: path)
    return path


@pytest.fixture
def route_listener(settings, transactional_db):
    """This process's listener for registry notices, as every worker on
    PostgreSQL runs one (registry.notices); stopped afterwards, so that the
    test database can be dropped. The tests commit for real."""
    if connection.vendor != "postgresql":
        pytest.skip("registry notices are PostgreSQL's LISTEN/NOTIFY")
    settings.MODELHUB_ROUTE_LISTEN = True
    listener = notices._listener
    assert listener.listening(5), "the listener did not connect"
    yield listener
    notices.stop()


@pytest.fixture(params=["file", "notices"])
def generation_source(request, transactional_db):
    """Each source of the registry's generation (registry.generation): the
    SQLite file's, and PostgreSQL's notices (skipped on SQLite)."""
    name = "generation_file" if request.param == "file" else "route_listener"
    return request.getfixturevalue(name)


@pytest.fixture
def api() -> Client:
    """Answers a crash with its 500 instead of raising, as a real client sees."""
    return Client(raise_request_exception=False)


@pytest.fixture
def token(staff_user) -> dict[str, str]:
    """Headers of a staff token holding every registry permission."""
    return {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=staff_user).key}"}
