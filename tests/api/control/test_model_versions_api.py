"""GET /api/models/<slug>/versions/: a model's versions, newest first, a page
at a time, shown to whoever may see the model (the catalog's rules)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from api.models import ApiKey

from .callers import assert_error, key_for, make_user, token_for

pytestmark = pytest.mark.django_db

PRIVATE = "zz-orchid-vault-7q"
UNKNOWN = "zz-absent-lilac-3k"  # as long as PRIVATE: bodies compare byte for byte


@pytest.fixture
def three_versions(publish, iris_classifier) -> list[Any]:
    """iris v1, v2 (served) and v3 (uploaded, not served)."""
    return [
        publish(iris_classifier, "iris"),
        publish(iris_classifier, "iris"),
        publish(iris_classifier, "iris", activate=False),
    ]


def listing(api: Client, slug: str = "iris", headers: Any = None, **query: Any):
    return api.get(f"/api/models/{slug}/versions/", query, **(headers or {}))


def test_versions_list_shows_newest_first_with_the_served_one_marked(
    api, three_versions
):
    response = listing(api)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 3
    assert (body["next"], body["previous"]) == (None, None)
    assert [(v["version"], v["active"]) for v in body["results"]] == [
        (3, False),
        (2, True),
        (1, False),
    ]
    newest = body["results"][0]
    assert newest["sha256"] == three_versions[2].sha256
    assert newest["kind"] == "classifier"
    assert newest["status"] == "ready"
    assert newest["estimator"].endswith("LogisticRegression")


def test_versions_list_pages_through_with_page_and_page_size(api, three_versions):
    first = listing(api, page_size=2).json()
    assert [v["version"] for v in first["results"]] == [3, 2]
    assert first["count"] == 3
    assert first["previous"] is None
    assert first["next"].endswith("/api/models/iris/versions/?page=2&page_size=2")
    second = api.get(first["next"]).json()
    assert [v["version"] for v in second["results"]] == [1]
    assert second["next"] is None
    assert second["previous"].endswith("/api/models/iris/versions/?page_size=2")


def test_versions_list_of_a_model_without_versions_is_an_empty_page(api, staff_user):
    created = api.post(
        "/api/models/",
        {"slug": "empty"},
        content_type="application/json",
        **token_for(staff_user),
    )
    assert created.status_code == 201
    body = listing(api, "empty").json()
    assert body == {"count": 0, "next": None, "previous": None, "results": []}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "abc"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"page": "²"}, "page"),
        ({"page": "last"}, "page"),
        ({"page": "9" * 40}, "page"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "101"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
    ],
)
def test_versions_list_refuses_an_unreadable_page_or_page_size_with_400(
    api, three_versions, query, field
):
    body = assert_error(listing(api, **query), 400, "invalid_field")
    assert body["field"] == field


def test_versions_list_past_the_last_page_is_404_invalid_page(api, three_versions):
    body = assert_error(listing(api, page=3, page_size=2), 404, "invalid_page")
    assert "last page (2)" in body["detail"]


def test_versions_of_an_unknown_model_are_404_unknown_model(api, db):
    assert_error(listing(api, UNKNOWN), 404, "unknown_model")


@pytest.fixture
def private_model(publish, iris_classifier) -> Any:
    return publish(iris_classifier, PRIVATE, private=True).model


def assert_hidden(api: Client, headers: dict[str, str]) -> None:
    private = listing(api, PRIVATE, headers)
    unknown = listing(api, UNKNOWN, headers)
    assert_error(private, 404, "unknown_model")
    assert private.content.replace(PRIVATE.encode(), UNKNOWN.encode()) == (
        unknown.content
    )


def test_private_model_versions_answer_404_to_anonymous_as_an_unknown_slug(
    api, private_model
):
    assert_hidden(api, {})


def test_private_model_versions_answer_404_to_a_key_without_its_scope(
    api, private_model, django_user_model
):
    owner = django_user_model.objects.create_user("robot")
    assert_hidden(api, key_for(owner))
    assert_hidden(api, token_for(make_user("plain", staff=False)))


@pytest.mark.parametrize(
    "scope",
    [
        {"predict": ApiKey.Predict.LISTED, "listed": True},
        {"predict": ApiKey.Predict.ALL},
    ],
    ids=["listed", "all"],
)
def test_private_model_versions_are_listed_to_a_key_whose_scope_names_it(
    api, private_model, django_user_model, scope
):
    owner = django_user_model.objects.create_user("robot")
    models = [private_model] if scope.pop("listed", False) else []
    response = listing(api, PRIVATE, key_for(owner, models=models, **scope))
    assert response.status_code == 200, response.content
    assert [v["version"] for v in response.json()["results"]] == [1]


def test_private_model_versions_are_listed_to_staff_and_granted_users(
    api, private_model, staff_user
):
    granted = make_user("granted", staff=False)
    private_model.granted_users.add(granted)
    for headers in (token_for(staff_user), token_for(granted)):
        assert listing(api, PRIVATE, headers).json()["count"] == 1


def test_versions_list_needs_a_token_when_the_hub_requires_one(
    api, three_versions, settings, staff_user
):
    settings.MODELHUB_REQUIRE_TOKEN = True
    assert_error(listing(api), 401, "not_authenticated")
    assert listing(api, headers=token_for(staff_user)).status_code == 200
