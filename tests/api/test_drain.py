"""Draining a host (MODELHUB_DRAIN_FILE): the balancer is told to stop
sending traffic through /readyz, while what still arrives is served."""

from __future__ import annotations

import pytest

from tests.api.dataplane.test_errors import IRIS_ROW, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def drain_file(settings, tmp_path):
    settings.MODELHUB_DRAIN_FILE = str(tmp_path / "drain")
    return tmp_path / "drain"


def test_a_draining_host_is_not_ready_and_still_serves(
    client, publish, iris_classifier, drain_file
):
    publish(iris_classifier, "iris")
    assert client.get("/readyz").json()["status"] == "ready"

    drain_file.touch()
    draining = client.get("/readyz")
    assert draining.status_code == 503
    assert draining.json()["status"] == "draining"
    assert post(client, "/api/predict/iris/", {"data": IRIS_ROW}).status_code == 200

    drain_file.unlink()
    assert client.get("/readyz").status_code == 200


def test_without_a_drain_file_setting_nothing_drains(
    client, publish, iris_classifier, settings, tmp_path
):
    settings.MODELHUB_DRAIN_FILE = ""
    (tmp_path / "drain").touch()
    publish(iris_classifier, "iris")
    assert client.get("/readyz").status_code == 200
