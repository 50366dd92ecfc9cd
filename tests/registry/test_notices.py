"""Registry changes pushed on PostgreSQL: routes served without a query until
a notice says otherwise (registry.notices; the tests every generation source
passes are in test_changes.py).

This process listens as a worker does (``route_listener``); the changes are
committed for real, and the other side of the channel is a connection of
its own, as another process or host would hold. Under gunicorn:
test_route_push_under_gunicorn.py.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection, transaction

from registry import actions, generation, notices, routing
from registry.models import MLModel


def other_connection() -> psycopg.Connection:
    """A session of its own on the test database: another process's, say."""
    params = notices._connection_params()
    return psycopg.connect(**{**params, "application_name": "test-other-process"})


def wait_until(condition, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not seen after {timeout}s"
        time.sleep(0.01)


def test_a_change_committed_on_another_connection_is_served_once_its_notice_is_here(
    route_listener, publish, iris_classifier, settings
):
    """What another process's action does: the UPDATE and the NOTIFY in one
    transaction. From the moment its notice reaches this process's socket,
    read by the listener or not yet, the next resolve serves the change.
    (How long after the commit that is: bench/README.md.)"""
    settings.MODELHUB_ROUTE_RECHECK_MS = 600_000
    v1 = publish(iris_classifier, "iris")
    publish(iris_classifier, "iris")
    assert routing.resolve("iris").number == 2
    before = route_listener._generation
    with other_connection() as other, other.transaction():
        other.execute(
            "UPDATE registry_mlmodel SET active_version_id = %s WHERE slug = 'iris'",
            (v1.pk,),
        )
        other.execute("SELECT pg_notify(%s, 'elsewhere')", (notices.CHANNEL,))
    wait_until(
        lambda: (
            notices._readable(route_listener._fd)
            or route_listener._generation != before
        ),
        "the notice",
    )
    assert routing.resolve("iris").number == 1


def test_the_process_making_a_change_waits_until_its_own_notice_is_back(
    route_listener, publish, iris_classifier
):
    version = publish(iris_classifier, "iris", activate=False)
    before = generation.seen(connection)
    actions.activate(version)
    assert generation.seen(connection) > before  # at once: no sleep
    assert route_listener._sent not in route_listener._waiting


def test_a_rolled_back_change_sends_no_notice(route_listener, publish, iris_classifier):
    version = publish(iris_classifier, "iris")
    seen = generation.seen(connection)
    with pytest.raises(RuntimeError), transaction.atomic():
        actions.edit_version(version, metadata={"b": 2})
        raise RuntimeError("rolled back")
    time.sleep(0.2)
    assert generation.seen(connection) == seen


def test_changes_in_one_transaction_arrive_as_one_batch(
    route_listener, publish, iris_classifier
):
    """The listener bumps its generation once per read, however many notices
    the read brings."""
    publish(iris_classifier, "iris")
    publish(iris_classifier, "other")
    before = generation.seen(connection)
    with transaction.atomic():
        actions.delete_models(list(MLModel.objects.all()))
    assert generation.seen(connection) == before + 1


def test_a_lost_listening_connection_drops_every_cached_route(
    route_listener, publish, iris_classifier, settings, django_assert_num_queries
):
    """A raw UPDATE sends no notice: it stands for one missed while the
    listening connection was down. Once the listener is back, the route is
    asked for again, long before the recheck interval."""
    settings.MODELHUB_ROUTE_RECHECK_MS = 600_000
    v1 = publish(iris_classifier, "iris")
    publish(iris_classifier, "iris")
    assert routing.resolve("iris").number == 2
    MLModel.objects.filter(slug="iris").update(active_version=v1)
    with django_assert_num_queries(0):
        assert routing.resolve("iris").number == 2  # nothing told this process

    before = generation.seen(connection)
    with other_connection() as other:
        (killed,) = other.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database() "
            "AND pid = %s",
            (notices.APPLICATION_NAME, route_listener._conn.info.backend_pid),
        ).fetchone()
    assert killed
    wait_until(lambda: generation.seen(connection) is None, "the loss")
    wait_until(lambda: generation.seen(connection) is not None, "the reconnect")
    assert generation.seen(connection) != before
    with django_assert_num_queries(1):
        assert routing.resolve("iris").number == 1


def test_while_not_listening_every_request_asks_the_database(
    route_listener, publish, iris_classifier, django_assert_num_queries
):
    publish(iris_classifier, "iris")
    notices.stop()
    with django_assert_num_queries(1):
        routing.resolve("iris")  # starts the listener again: not connected yet
    wait_until(lambda: generation.seen(connection) is not None, "the reconnect")


def test_a_notice_waiting_unread_makes_the_generation_unknown(route_listener):
    """Bytes on the listening socket that its thread has not read yet: the
    request that asks then goes to the database rather than to its cache."""
    before = generation.seen(connection)
    assert before is not None
    with route_listener._lock:  # the listener's thread cannot read meanwhile
        with other_connection() as other:
            other.execute("SELECT pg_notify(%s, 'x')", (notices.CHANNEL,))
        wait_until(lambda: notices._readable(route_listener._fd), "the notice")
        assert generation.seen(connection) is None
    wait_until(lambda: generation.seen(connection) == before + 1, "the read")
