"""The how-to-call panel on the admin's model and version pages
({% calling_panel %}, api/templatetags/calling.py)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from registry import actions

pytestmark = pytest.mark.django_db


def test_model_admin_page_shows_how_to_call_its_active_version(
    staff_client, publish, iris_classifier
):
    v1 = publish(iris_classifier, "iris")
    publish(iris_classifier, "iris", activate=False)
    response = staff_client.get(
        reverse("admin:registry_mlmodel_change", args=[v1.model_id])
    )
    assert response.status_code == 200
    calling = response.context["calling"]
    assert (calling.number, calling.pinned) == (1, False)
    assert calling.try_path == "/api/predict/iris/"
    assert "curl -sS -X POST http://testserver/api/predict/iris/" in calling.curl
    html = response.content.decode()
    assert 'id="how-to-call"' in html
    assert "<code>sepal length (cm)</code>" in html
    assert "<code>setosa</code>" in html
    assert 'class="pages-try-it"' in html
    assert 'href="/models/iris/"' in html


def test_version_admin_page_pins_its_snippets_to_that_version(
    staff_client, publish, iris_classifier
):
    publish(iris_classifier, "iris")
    v2 = publish(iris_classifier, "iris", activate=False)
    response = staff_client.get(
        reverse("admin:registry_modelversion_change", args=[v2.pk])
    )
    assert response.status_code == 200
    calling = response.context["calling"]
    assert (calling.number, calling.pinned) == (2, True)
    assert calling.try_path == "/api/predict/iris/v2/"
    assert "http://testserver/api/predict/iris/v2/" in calling.curl
    assert "model_version='2'" in calling.tritonclient
    assert list(json.loads(calling.body_json)["data"])[0] == "sepal length (cm)"


def test_model_admin_page_without_an_active_version_says_what_to_do(staff_client):
    model = actions.create_model(slug="draft")
    html = staff_client.get(
        reverse("admin:registry_mlmodel_change", args=[model.pk])
    ).content.decode()
    assert "No active version yet" in html


def test_version_admin_page_of_an_invalid_version_says_it_is_not_served(
    staff_client, publish, iris_classifier
):
    publish(iris_classifier, "iris")
    v2 = publish(iris_classifier, "iris", activate=False)
    actions.mark_invalid(v2, message="its file went missing")
    html = staff_client.get(
        reverse("admin:registry_modelversion_change", args=[v2.pk])
    ).content.decode()
    assert "Version 2 is invalid: it is not served" in html
