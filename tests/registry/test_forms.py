"""Admin forms refuse JSON nested past MODELHUB_MAX_JSON_DEPTH as a field
error (issue #18), instead of a RecursionError page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from registry.models import MLModel, ModelVersion, VersionEdit

pytestmark = pytest.mark.django_db

UPLOAD_URL = reverse("admin:registry_modelversion_add")
TOO_DEEP = "nested deeper than 64 levels"


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.fixture
def iris_version(publish, iris_classifier) -> ModelVersion:
    return publish(iris_classifier, "iris")


@pytest.mark.parametrize("field", ["input_schema", "metadata"])
@pytest.mark.parametrize("levels", [100, 5_000])
def test_version_form_shows_a_field_error_for_deep_json(
    staff_client, iris_version, field, levels
):
    url = reverse("admin:registry_modelversion_change", args=[iris_version.pk])
    data = {"input_schema": '{"features": []}', "metadata": "{}"}
    data[field] = '{"x": ' + deep(levels) + "}"
    response = staff_client.post(url, data)
    assert response.status_code == 200
    assert TOO_DEEP in response.content.decode()
    assert not VersionEdit.objects.exists()


def test_upload_form_shows_a_field_error_for_deep_metadata(staff_client, iris_path):
    model = MLModel.objects.create(slug="iris", name="Iris")
    with open(iris_path, "rb") as handle:
        response = staff_client.post(
            UPLOAD_URL,
            {
                "model": model.pk,
                "file": handle,
                "metadata": '{"input_example": ' + deep(5_000) + "}",
            },
        )
    assert response.status_code == 200
    assert TOO_DEEP in response.content.decode()
    assert not ModelVersion.objects.exists()
