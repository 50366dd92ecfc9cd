"""An activated version that fails to load: the last good version keeps serving.

As TF Serving and Triton do: the failure is visible (log, metric, admin,
readiness), pinned requests for the broken version get a JSON 503, and the
version serves again once its file is back.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from monitoring.models import RequestLog
from registry import actions
from registry.cache import model_cache
from registry.models import ModelVersion
from tests.api.dataplane.test_errors import IRIS_ROW, assert_error, post


@pytest.fixture
def api(client):
    client.raise_request_exception = False
    return client


def corrupt(version: ModelVersion) -> None:
    path = Path(version.file.path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def fallbacks(slug: str, failed: int) -> float:
    value = REGISTRY.get_sample_value(
        "modelhub_model_fallbacks_total",
        {"model": slug, "failed_version": str(failed)},
    )
    return value or 0.0


@pytest.fixture
def served_then_broken(api, publish, iris_classifier):
    """iris v1 served, then v2 activated with a file that no longer matches."""
    publish(iris_classifier, "iris")
    assert post(api, "/api/predict/iris/", {"data": IRIS_ROW}).status_code == 200
    broken = publish(iris_classifier, "iris", activate=False)
    corrupt(broken)
    actions.activate(broken)
    return broken


def test_failed_activation_keeps_the_previous_version_serving(api, served_then_broken):
    before = fallbacks("iris", 2)
    responses = [post(api, "/api/predict/iris/", {"data": IRIS_ROW}) for _ in range(3)]

    for response in responses:
        assert response.status_code == 200, response.content
        assert response["X-Model-Version"] == "1"
        assert response.json()["version"] == 1
    assert fallbacks("iris", 2) - before == 3
    logged = RequestLog.objects.filter(slug="iris").order_by("id")
    assert [row.version for row in logged][-3:] == [1, 1, 1]


def test_pinned_request_for_the_broken_version_gets_json_503(api, served_then_broken):
    response = post(api, "/api/predict/iris/v2/", {"data": IRIS_ROW})
    body = assert_error(response, 503, "model_unavailable")
    assert "sha256" in body["detail"]


def test_fresh_worker_falls_back_through_the_activation_history(
    api, served_then_broken
):
    from registry import routing, serving

    model_cache.clear()  # a new worker: nothing loaded, nothing remembered
    routing.forget()
    serving.forget()

    response = post(api, "/api/predict/iris/", {"data": IRIS_ROW})
    assert response.status_code == 200, response.content
    assert response["X-Model-Version"] == "1"


def test_load_failure_is_recorded_on_the_version_and_shown_in_admin(
    api, served_then_broken, staff_client
):
    post(api, "/api/predict/iris/", {"data": IRIS_ROW})
    served_then_broken.refresh_from_db()
    assert "sha256" in served_then_broken.load_error
    assert served_then_broken.load_error_at is not None

    page = staff_client.get(
        f"/admin/registry/mlmodel/{served_then_broken.model_id}/change/"
    )
    assert b"failed to load in a worker" in page.content
    version_page = staff_client.get(
        f"/admin/registry/modelversion/{served_then_broken.pk}/change/"
    )
    assert b"does not match its sha256" in version_page.content


def test_readiness_reports_the_fallback(api, served_then_broken, staff_user):
    api.force_login(staff_user)
    response = api.get("/readyz")
    assert response.status_code == 200
    state = response.json()["models"]["iris"]
    assert state["status"] == "fallback"
    assert state["version"] == 1
    assert state["active_version"] == 2


def test_model_health_names_the_version_that_serves(api, served_then_broken):
    response = api.get("/api/models/iris/health/")
    assert response.status_code == 200
    assert response.json()["version"] == 1


def test_restored_file_serves_again_and_clears_the_failure(
    api, served_then_broken, settings
):
    settings.MODELHUB_LOAD_RETRY_SECONDS = 0
    assert post(api, "/api/predict/iris/", {"data": IRIS_ROW})["X-Model-Version"] == "1"
    corrupt(served_then_broken)  # flipping the same bit again restores it

    response = post(api, "/api/predict/iris/", {"data": IRIS_ROW})
    assert response["X-Model-Version"] == "2"
    served_then_broken.refresh_from_db()
    assert served_then_broken.load_error == ""
    assert served_then_broken.load_error_at is None


def test_broken_only_version_answers_json_503(api, publish, iris_classifier):
    only = publish(iris_classifier, "iris")
    Path(only.file.path).unlink()

    response = post(api, "/api/predict/iris/", {"data": IRIS_ROW})
    assert_error(response, 503, "model_unavailable")
    assert RequestLog.objects.get(slug="iris").status == 503


def test_fallback_skips_earlier_versions_that_do_not_load_either(
    api, publish, iris_classifier
):
    good = publish(iris_classifier, "iris")
    middle = publish(iris_classifier, "iris")
    newest = publish(iris_classifier, "iris")
    for version in (middle, newest):
        Path(version.file.path).unlink()

    response = post(api, "/api/predict/iris/", {"data": IRIS_ROW})
    assert response.status_code == 200, response.content
    assert response["X-Model-Version"] == str(good.number)


def test_fallback_is_logged_once_per_minute_not_per_request(
    api, served_then_broken, caplog
):
    with caplog.at_level("ERROR", logger="registry.serving"):
        for _ in range(5):
            post(api, "/api/predict/iris/", {"data": IRIS_ROW})
    lines = [r for r in caplog.records if "serving v1 instead" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].getMessage().startswith("iris v2 cannot be served")
