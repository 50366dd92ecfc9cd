"""Fixtures shared by the registry's tests."""

from __future__ import annotations

import pytest

from registry import generation


@pytest.fixture
def generation_file(tmp_path, monkeypatch, transactional_db):
    """A generation file for the test database, as a SQLite file database
    has one (registry.generation): the actions advance it at commit."""
    path = str(tmp_path / f"db.sqlite3{generation.SUFFIX}")
    open(path, "w").close()
    monkeypatch.setattr(generation, "file_for", lambda db: path)
    return path
