"""Registry changes announced on commit, and routes served without a query
while the registry's generation stands (on PostgreSQL, pushed as notices:
test_notices.py has their own tests).

The suite's database is SQLite in memory (or PostgreSQL), which has no
generation; ``generation_file`` (tests/registry/conftest.py) gives the test
database one, as a SQLite file has, so that the action functions advance it.
The tests commit for real (transactional_db): the generation advances at
commit.
"""

from __future__ import annotations

import os
import time

import pytest
from django.db import transaction
from django.db.utils import ConnectionHandler

from monitoring.models import RequestLog
from registry import actions, generation, routing
from registry.models import MLModel, ModelVersion


def sqlite_connection(name: str):
    """A connection of its own, outside the test database's handler."""
    engine = "django.db.backends.sqlite3"
    return ConnectionHandler({"default": {"ENGINE": engine, "NAME": name}})["default"]


def test_a_sqlite_file_database_gets_a_generation_file_beside_it(db, tmp_path):
    name = tmp_path / "db.sqlite3"
    own = sqlite_connection(str(name))
    try:
        path = generation.file_for(own)
        assert path == str(name) + generation.SUFFIX
        assert generation.current(path) == 0
    finally:
        own.close()


def test_in_memory_there_is_no_generation(db):
    own = sqlite_connection(":memory:")
    try:
        assert generation.file_for(own) is None
    finally:
        own.close()


def test_an_unchanged_route_is_served_without_a_query(
    generation_source, publish, iris_classifier, django_assert_num_queries
):
    publish(iris_classifier, "iris")
    with django_assert_num_queries(1):
        first = routing.resolve("iris")
    with django_assert_num_queries(0):
        for _ in range(3):
            assert routing.resolve("iris") is first


def test_every_action_that_changes_what_is_served_advances_the_generation(
    generation_file, publish, iris_classifier
):
    seen = [generation.current(generation_file)]

    def advanced() -> bool:
        seen.append(generation.current(generation_file))
        return seen[-1] > seen[-2]

    v1 = publish(iris_classifier, "iris")
    assert advanced()
    v2 = publish(iris_classifier, "iris", activate=False)
    assert advanced()
    actions.activate(v2)
    assert advanced()
    actions.rollback(v2.model)
    assert advanced()
    actions.edit_version(v1, metadata={"note": "edited"})
    assert advanced()
    model = v1.model
    actions.update_model(model, name="Iris", description="", private=True)
    assert advanced()
    actions.mark_invalid(v2, message="broken")
    assert advanced()
    actions.delete_version(v2)
    assert advanced()
    actions.create_model(slug="other")
    assert advanced()
    actions.delete_models(list(MLModel.objects.all()))
    assert advanced()


def test_bookkeeping_and_other_tables_leave_the_generation(
    generation_file, publish, iris_classifier
):
    version = publish(iris_classifier, "iris")
    before = generation.current(generation_file)
    actions.record_load_failure(version.pk, "file missing")
    actions.clear_load_failure(version.pk)
    RequestLog.objects.create(
        created_at="2026-01-01T00:00:00Z",
        slug="iris",
        status=200,
        latency_ms=1.0,
        request_id="r",
    )
    assert list(MLModel.objects.all())
    assert generation.current(generation_file) == before


def test_an_action_in_a_transaction_announces_at_commit_only(
    generation_file, publish, iris_classifier
):
    version = publish(iris_classifier, "iris")
    before = generation.current(generation_file)
    with transaction.atomic():
        actions.edit_version(version, metadata={"a": 1})
        assert generation.current(generation_file) == before
    assert generation.current(generation_file) == before + 1

    with pytest.raises(RuntimeError), transaction.atomic():
        actions.edit_version(version, metadata={"b": 2})
        raise RuntimeError("rolled back")
    assert generation.current(generation_file) == before + 1
    version.refresh_from_db()
    assert version.metadata == {"a": 1}


def test_a_write_past_the_actions_is_not_announced(
    generation_file, publish, iris_classifier
):
    """Such writes (the sqlite3 shell) are bounded by the recheck interval."""
    version = publish(iris_classifier, "iris")
    before = generation.current(generation_file)
    ModelVersion.objects.filter(pk=version.pk).update(metadata={"raw": True})
    assert generation.current(generation_file) == before


def test_an_activation_is_served_from_the_next_request(
    generation_source, publish, iris_classifier, django_assert_num_queries
):
    v1 = publish(iris_classifier, "iris")
    publish(iris_classifier, "iris")
    assert routing.resolve("iris").number == 2
    assert routing.resolve("iris", 1).number == 1

    actions.activate(v1)
    with django_assert_num_queries(1):
        assert routing.resolve("iris").number == 1
    assert routing.resolve("iris", 2).number == 2


def test_a_process_that_cannot_advance_the_generation_trusts_nothing(
    generation_file, publish, iris_classifier, django_assert_num_queries, caplog
):
    publish(iris_classifier, "iris")
    routing.resolve("iris")
    os.remove(generation_file)
    os.mkdir(generation_file)  # stands in for a file this process cannot write
    try:
        generation.bump(generation_file)
        assert "registry generation not advanced" in caplog.text
        with django_assert_num_queries(2):
            routing.resolve("iris")
            routing.resolve("iris")
    finally:
        generation._unwritable.discard(generation_file)


def test_a_trusted_route_is_asked_again_after_the_recheck_interval(
    generation_file, publish, iris_classifier, settings, django_assert_num_queries
):
    """Bounds what a write past Django (the sqlite3 shell) can leave stale."""
    publish(iris_classifier, "iris")
    settings.MODELHUB_ROUTE_RECHECK_MS = 50
    routing.resolve("iris")
    time.sleep(0.1)
    with django_assert_num_queries(1):
        routing.resolve("iris")

    settings.MODELHUB_ROUTE_RECHECK_MS = 0
    with django_assert_num_queries(2):
        routing.resolve("iris")
        routing.resolve("iris")
