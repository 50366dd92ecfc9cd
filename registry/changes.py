"""How the registry tells every other process that what it serves changed.

The action functions (registry.actions, registry.rollouts) call
``announce()`` inside the transaction that makes a change; the announcement
reaches other processes when it commits, never for a change rolled back. It
advances the registry's generation (registry.generation): on a SQLite file,
one byte appended to the generation file at commit; on PostgreSQL, a NOTIFY
sent in the transaction, which the server delivers on commit to every
worker's listener on every host (registry.notices). Routing serves its
cached routes while the generation stands.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS

from . import generation


def announce(using: str = DEFAULT_DB_ALIAS) -> None:
    """Tell every process, on commit, that routes or served versions changed."""
    generation.advance_on_commit(using)
