"""GET /: the catalog of the models a visitor may see, and the ways on."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from registry import actions
from registry.models import MLModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(publish, iris_classifier, numpy_regressor):
    """iris (public), diabetes (public), vault (private), draft (no version)."""
    publish(iris_classifier, "iris", metadata={})
    publish(numpy_regressor, "diabetes")
    publish(iris_classifier, "vault", private=True)
    actions.create_model(slug="draft", name="Draft model")


def listed_slugs(response) -> list[str]:
    return [entry["slug"] for entry in response.context["models"]]


def test_landing_lists_public_models_to_anonymous_visitors(client, catalog):
    response = client.get("/")
    assert response.status_code == 200
    assert listed_slugs(response) == ["diabetes", "draft", "iris"]
    html = response.content.decode()
    assert "vault" not in html
    assert 'href="/models/iris/"' in html
    assert 'href="/api/docs/"' in html
    assert 'href="/admin/"' not in html


def test_landing_shows_each_models_active_version_kind_and_status(client, catalog):
    entries = {e["slug"]: e for e in client.get("/").context["models"]}
    assert entries["iris"]["active_version"] == 1
    assert entries["iris"]["kind"] == "classifier"
    assert entries["iris"]["status"] == "ready"
    assert entries["diabetes"]["kind"] == "regressor"
    assert entries["draft"]["active_version"] is None
    assert entries["draft"]["status"] == "no active version"


def test_landing_lists_private_models_and_admin_links_to_staff(staff_client, catalog):
    response = staff_client.get("/")
    assert listed_slugs(response) == ["diabetes", "draft", "iris", "vault"]
    html = response.content.decode()
    assert 'href="/admin/"' in html
    assert 'href="/dashboard/"' in html
    assert "private" in html


def test_landing_lists_a_private_model_to_the_user_granted_it(client, catalog):
    user = get_user_model().objects.create_user("ana", password="ana-pass-123")
    actions.set_grants(MLModel.objects.get(slug="vault"), users=[user], groups=[])
    client.force_login(user)
    assert listed_slugs(client.get("/")) == ["diabetes", "draft", "iris", "vault"]
    other = get_user_model().objects.create_user("bob", password="bob-pass-123")
    client.force_login(other)
    assert listed_slugs(client.get("/")) == ["diabetes", "draft", "iris"]


def test_landing_on_an_empty_registry_says_how_to_add_a_model(staff_user):
    anonymous = Client().get("/").content.decode()
    assert "No models are published here yet" in anonymous
    assert "manage.py loadmodel" in anonymous
    staff_client = Client()
    staff_client.force_login(staff_user)
    staff = staff_client.get("/").content.decode()
    assert 'href="/admin/registry/mlmodel/add/"' in staff
    assert "manage.py loadmodel" in staff


def test_admin_view_site_goes_to_the_landing_page(staff_client):
    html = staff_client.get("/admin/").content.decode()
    assert '<a href="/">View site</a>' in html


def test_landing_answers_head_for_uptime_checks(client):
    assert client.head("/").status_code == 200
    assert client.post("/").status_code == 405
