"""How the registry tells every other process that what it serves changed.

The action functions (registry.actions) call ``announce()`` inside the
transaction that makes a change; the announcement goes out when it commits,
never for a change rolled back. Today the announcement is the SQLite
generation file (registry.generation), read by routing on every request;
without one (PostgreSQL), routing asks the database on every request and
needs no announcement.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS

from . import generation


def announce(using: str = DEFAULT_DB_ALIAS) -> None:
    """Tell every process, on commit, that routes or served versions changed."""
    generation.advance_on_commit(using)
