"""GET /api/models/<slug>/history/: who changed what a model serves, when,
through which channel, from which version to which; newest first, paged."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from api.models import ApiKey
from registry import actions
from registry.models import Activation

from .callers import assert_error, every_permission_but, key_for, make_user, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def changed_iris(api, staff, publish, iris_classifier) -> None:
    """v1 then v2 served from the CLI, v1 again through the API, a rollback to
    v2 in the admin, then an edit of v2's metadata through the API."""
    publish(iris_classifier, "iris")
    publish(iris_classifier, "iris")
    activated = api.post(
        "/api/models/iris/activate/",
        {"version": 1},
        content_type="application/json",
        **staff,
    )
    assert activated.status_code == 200
    model = actions.get_model("iris")
    actions.rollback(model, channel=Activation.Channel.ADMIN)
    edited = api.patch(
        "/api/models/iris/versions/2/",
        json.dumps({"metadata": {"owner": "ml-team"}}),
        content_type="application/json",
        **staff,
    )
    assert edited.status_code == 200, edited.content


def history(api: Client, headers: dict[str, str], slug: str = "iris", **query: Any):
    return api.get(f"/api/models/{slug}/history/", query, **headers)


def test_history_lists_activations_rollbacks_and_edits_newest_first(
    api, staff, staff_user, changed_iris
):
    response = history(api, staff)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 5
    entries = body["results"]
    for entry in entries:
        assert entry.pop("at")
    assert entries == [
        {
            "type": "edit",
            "user": staff_user.username,
            "channel": "api",
            "version": 2,
            "changes": {"metadata": ["owner"]},
        },
        {
            "type": "rollback",
            "user": None,
            "channel": "admin",
            "from_version": 1,
            "to_version": 2,
        },
        {
            "type": "activation",
            "user": staff_user.username,
            "channel": "api",
            "from_version": 2,
            "to_version": 1,
        },
        {
            "type": "activation",
            "user": None,
            "channel": "cli",
            "from_version": 1,
            "to_version": 2,
        },
        {
            "type": "activation",
            "user": None,
            "channel": "cli",
            "from_version": None,
            "to_version": 1,
        },
    ]


def test_history_times_go_from_newest_to_oldest(api, staff, changed_iris):
    times = [entry["at"] for entry in history(api, staff).json()["results"]]
    assert times == sorted(times, reverse=True)


def test_history_pages_hold_every_entry_once_in_the_same_order(
    api, staff, changed_iris
):
    whole = history(api, staff).json()["results"]
    pages = [history(api, staff, page=n, page_size=2).json() for n in (1, 2, 3)]
    assert [len(p["results"]) for p in pages] == [2, 2, 1]
    assert [e for p in pages for e in p["results"]] == whole
    assert pages[2]["next"] is None
    assert_error(history(api, staff, page=4, page_size=2), 404, "invalid_page")
    body = assert_error(history(api, staff, page_size=500), 400, "invalid_field")
    assert body["field"] == "page_size"


def test_history_of_a_model_never_changed_is_empty(api, staff):
    created = api.post(
        "/api/models/", {"slug": "fresh"}, content_type="application/json", **staff
    )
    assert created.status_code == 201
    assert history(api, staff, "fresh").json()["results"] == []


def test_history_of_an_unknown_model_is_404(api, staff, db):
    assert_error(history(api, staff, "zz-absent"), 404, "unknown_model")


def test_history_refuses_anonymous_with_401_and_non_staff_with_403(api, changed_iris):
    assert_error(history(api, {}), 401, "not_authenticated")
    analyst = make_user("analyst", staff=False, permissions=("view_mlmodel",))
    assert_error(history(api, token_for(analyst)), 403, "permission_denied")


def test_history_needs_the_view_model_permission(api, changed_iris):
    clerk = make_user(
        "clerk", staff=True, permissions=every_permission_but("registry.view_mlmodel")
    )
    body = assert_error(history(api, token_for(clerk)), 403, "permission_denied")
    assert "registry.view_mlmodel" in body["detail"]


def test_history_answers_a_staff_session_as_the_admin_would(staff_client, changed_iris):
    assert staff_client.get("/api/models/iris/history/").json()["count"] == 5


@pytest.mark.parametrize(
    ("scope", "status"),
    [
        (ApiKey.Management.NONE, 403),
        (ApiKey.Management.READ, 200),
        (ApiKey.Management.WRITE, 200),
    ],
)
def test_history_needs_a_key_that_may_read_the_management_api(
    api, changed_iris, staff_user, scope, status
):
    headers = key_for(staff_user, predict=ApiKey.Predict.ALL, management=scope)
    response = history(api, headers)
    if status == 403:
        assert_error(response, 403, "forbidden")
    else:
        assert response.status_code == 200


def test_history_of_a_private_model_answers_a_management_key_of_staff(
    api, publish, iris_classifier, staff_user
):
    publish(iris_classifier, "zz-secret", private=True)
    headers = key_for(staff_user, management=ApiKey.Management.READ)
    response = history(api, headers, "zz-secret")
    assert response.status_code == 200
    assert [e["to_version"] for e in response.json()["results"]] == [1]
