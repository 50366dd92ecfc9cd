"""What runs around every prediction besides the view: URL resolution,
Django's request_finished receivers, the modelhub_* metrics."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.urls import get_resolver, resolve
from prometheus_client import REGISTRY

from api.apps import caches_need_closing
from monitoring.metrics import UNRESOLVED
from tests.api.dataplane.test_errors import IRIS_ROW, post
from tests.api.test_web_only_middleware import sample


def backend(path: str) -> dict[str, str]:
    return {"BACKEND": path, "LOCATION": "unused"}


LOCMEM = backend("django.core.cache.backends.locmem.LocMemCache")
DUMMY = backend("django.core.cache.backends.dummy.DummyCache")
DATABASE = backend("django.core.cache.backends.db.DatabaseCache")
REDIS = backend("django.core.cache.backends.redis.RedisCache")
MEMCACHED = backend("django.core.cache.backends.memcached.PyMemcacheCache")


class ClosingCache(LocMemCache):
    """A backend with a connection of its own to close (django-redis style)."""

    def close(self, **kwargs: object) -> None:
        pass


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ({"default": LOCMEM}, False),
        ({"default": DUMMY, "other": DATABASE}, False),
        ({"default": REDIS}, False),  # Django's keeps its pool across requests
        ({"default": LOCMEM, "x": backend(f"{__name__}.ClosingCache")}, True),
        ({"default": LOCMEM, "sessions": MEMCACHED}, True),
    ],
)
def test_caches_need_closing_only_when_a_backend_holds_a_connection(
    configured, expected
):
    assert caches_need_closing(configured) is expected


def test_finishing_a_prediction_does_not_close_the_local_memory_cache(
    client, iris, monkeypatch
):
    closed = []
    monkeypatch.setattr(LocMemCache, "close", lambda self, **kw: closed.append(1))
    caches["default"].get("warm")  # initialized: Django would close it
    response = post(client, "/api/predict/iris/", {"data": IRIS_ROW})
    assert response.status_code == 200, response.content
    assert closed == []


def test_prediction_routes_are_the_first_top_level_patterns():
    first, second = get_resolver().url_patterns[:2]
    assert (first.name, second.name) == ("predict", "predict-version")
    assert get_resolver().url_patterns[2].name == "predict-alias"
    match = resolve("/api/predict/iris/v3/")
    assert (match.url_name, match.kwargs) == (
        "predict-version",
        {"slug": "iris", "version": 3},
    )


def requests_counted(model: str, version: str, status: str) -> float:
    return sample(
        "modelhub_predictions_total",
        model=model,
        version=version,
        route="active",
        status=status,
    )


def test_requests_for_made_up_slugs_share_one_metric_series(client, db):
    before = requests_counted(UNRESOLVED, "", "404")
    for i in range(3):
        response = post(client, f"/api/predict/made-up-{i}/", {"data": IRIS_ROW})
        assert response.status_code == 404
    assert requests_counted(UNRESOLVED, "", "404") == before + 3
    made_up = {"model": "made-up-0", "version": "", "route": "active", "status": "404"}
    assert REGISTRY.get_sample_value("modelhub_predictions_total", made_up) is None


def test_served_requests_are_counted_under_their_model_and_version(client, iris):
    def rows() -> float:
        return sample("modelhub_prediction_rows_total", model="iris", version="1")

    before, before_rows = requests_counted("iris", "1", "200"), rows()
    for _ in range(2):
        response = post(client, "/api/predict/iris/", {"data": [IRIS_ROW, IRIS_ROW]})
        assert response.status_code == 200, response.content
    assert requests_counted("iris", "1", "200") == before + 2
    assert rows() == before_rows + 4
