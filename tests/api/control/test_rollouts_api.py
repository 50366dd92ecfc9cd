"""The management API's rollouts: aliases, the traffic policy and promote,
each recorded in the model's history with the API channel and the caller,
and every refusal a coded 4xx that leaves what is stored as it was."""

from __future__ import annotations

import json

import pytest

from registry.models import AliasMove, PolicyChange, TrafficPolicy

from .callers import assert_error, make_user, token_for


@pytest.fixture
def iris_two(iris_versions):
    return iris_versions


def put(api, path, body, headers):
    return api.put(path, json.dumps(body), content_type="application/json", **headers)


def policy_of(slug="iris"):
    from registry import rollouts

    return rollouts.describe(TrafficPolicy.objects.filter(model__slug=slug).first())


# --- aliases ---------------------------------------------------------------------


def test_an_alias_set_through_the_api_serves_its_version(api, staff, iris_two):
    response = put(api, "/api/models/iris/aliases/champion/", {"version": 2}, staff)
    assert response.status_code == 200, response.content
    assert response.json() == {"model": "iris", "alias": "champion", "version": 2}

    detail = api.get("/api/models/iris/", **staff).json()
    assert detail["aliases"] == [{"name": "champion", "version": 2}]
    assert api.get("/api/models/iris/aliases/champion/", **staff).json()["version"] == 2
    move = AliasMove.objects.get()
    assert (move.name, move.from_number, move.to_number, move.channel) == (
        "champion",
        None,
        2,
        "api",
    )
    assert move.username == "staff" or move.user is not None


def test_moving_and_deleting_an_alias_are_in_the_model_history(api, staff, iris_two):
    put(api, "/api/models/iris/aliases/champion/", {"version": 2}, staff)
    put(api, "/api/models/iris/aliases/champion/", {"version": 1}, staff)
    assert api.delete("/api/models/iris/aliases/champion/", **staff).status_code == 204

    history = api.get("/api/models/iris/history/", **staff).json()["results"]
    moves = [
        (e["from_version"], e["to_version"]) for e in history if e["type"] == "alias"
    ]
    assert moves == [(1, None), (2, 1), (None, 2)]
    assert all(e["channel"] == "api" for e in history if e["type"] == "alias")
    assert_error(
        api.get("/api/models/iris/aliases/champion/", **staff), 404, "unknown_alias"
    )


@pytest.mark.parametrize("name", ["v3", "V12", "latest", "has.dot"])
def test_an_alias_that_reads_as_a_version_is_refused(api, staff, iris_two, name):
    response = put(api, f"/api/models/iris/aliases/{name}/", {"version": 2}, staff)
    assert_error(response, 400, "invalid_alias")
    assert not AliasMove.objects.exists()


def test_an_alias_to_an_invalid_or_unknown_version_is_refused(api, staff, iris_two):
    bad = put(api, "/api/models/iris/aliases/champion/", {"version": 3}, staff)
    assert_error(bad, 400, "candidate_not_ready")
    missing = put(api, "/api/models/iris/aliases/champion/", {"version": 9}, staff)
    assert_error(missing, 404, "unknown_version")
    wrong = put(api, "/api/models/iris/aliases/champion/", {"version": "2"}, staff)
    assert_error(wrong, 400, "invalid_field")
    assert api.get("/api/models/iris/", **staff).json()["aliases"] == []


def test_an_alias_needs_a_staff_token_with_change_permission(api, iris_two):
    anonymous = put(api, "/api/models/iris/aliases/champion/", {"version": 2}, {})
    assert anonymous.status_code == 401
    viewer = token_for(make_user("viewer", staff=True, permissions=("view_mlmodel",)))
    refused = put(api, "/api/models/iris/aliases/champion/", {"version": 2}, viewer)
    assert refused.status_code == 403
    assert not AliasMove.objects.exists()


def test_a_version_an_alias_points_to_cannot_be_deleted(api, staff, iris_two):
    put(api, "/api/models/iris/aliases/champion/", {"version": 2}, staff)
    response = api.delete("/api/models/iris/versions/2/", **staff)
    assert_error(response, 409, "version_in_use")
    assert api.get("/api/models/iris/versions/2/", **staff).status_code == 200


# --- the traffic policy ------------------------------------------------------------


def test_a_policy_put_is_shown_by_the_model_and_recorded(api, staff, iris_two):
    body = {"candidate": 2, "weight": 0.1, "sticky": "X-Route-Key"}
    response = put(api, "/api/models/iris/policy/", body, staff)
    assert response.status_code == 200, response.content
    policy = response.json()["policy"]
    assert (policy["candidate"], policy["weight"], policy["sticky"]) == (
        2,
        0.1,
        "X-Route-Key",
    )
    assert response.json()["active_version"] == 1
    assert api.get("/api/models/iris/", **staff).json()["policy"] == policy
    assert api.get("/api/models/iris/policy/", **staff).json()["policy"] == policy
    change = PolicyChange.objects.get()
    assert (change.action, change.channel, change.before) == ("set", "api", None)
    assert change.after["candidate"] == 2


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"candidate": 2, "weight": 1.5}, 400, "invalid_weight"),
        ({"candidate": 2, "weight": -0.1}, 400, "invalid_weight"),
        ({"candidate": 2, "weight": "0.2"}, 400, "invalid_field"),
        ({"candidate": 2, "weight": True}, 400, "invalid_field"),
        ({"candidate": 2}, 400, "invalid_field"),
        ({"candidate": 3, "weight": 0.2}, 400, "candidate_not_ready"),
        ({"candidate": 1, "weight": 0.2}, 400, "same_as_active"),
        ({"shadow": 1}, 400, "same_as_active"),
        ({"shadow": 3}, 400, "candidate_not_ready"),
        ({"candidate": 9, "weight": 0.2}, 404, "unknown_version"),
        (
            {"candidate": 2, "weight": 0.2, "sticky": "Bad Header"},
            400,
            "invalid_sticky",
        ),
        (
            {"candidate": 2, "weight": 0.2, "sticky_feature": "no such feature"},
            400,
            "invalid_sticky",
        ),
        (
            {"candidate": 2, "weight": 0.2, "guards": {"error_rate": 2}},
            400,
            "invalid_guard",
        ),
        (
            {"candidate": 2, "weight": 0.2, "guards": {"last_requests": 0}},
            400,
            "invalid_guard",
        ),
        ({"candidate": 2, "weight": 0.2, "guards": {"p95": 5}}, 400, "invalid_field"),
        ({"candidate": 2, "weight": 0.2, "split": "50/50"}, 400, "invalid_field"),
    ],
)
def test_a_bad_policy_is_refused_and_the_stored_one_kept(
    api, staff, iris_two, body, status, code
):
    put(api, "/api/models/iris/policy/", {"candidate": 2, "weight": 0.05}, staff)
    before = policy_of()
    changes = PolicyChange.objects.count()

    assert_error(put(api, "/api/models/iris/policy/", body, staff), status, code)
    assert policy_of() == before
    assert PolicyChange.objects.count() == changes


def test_promote_makes_the_candidate_active_in_one_recorded_step(api, staff, iris_two):
    put(api, "/api/models/iris/policy/", {"candidate": 2, "weight": 0.3}, staff)
    response = api.post("/api/models/iris/policy/promote/", **staff)
    assert response.status_code == 200, response.content
    assert (response.json()["version"], response.json()["active"]) == (2, True)
    detail = api.get("/api/models/iris/", **staff).json()
    assert detail["active_version"] == 2
    assert detail["policy"] is None  # no shadow left: the policy ended

    history = api.get("/api/models/iris/history/", **staff).json()["results"]
    assert [e["type"] for e in history[:2]] == ["policy", "activation"]
    assert history[0]["action"] == "promote"
    assert (history[1]["from_version"], history[1]["to_version"]) == (1, 2)


def test_promote_without_a_candidate_is_a_conflict(api, staff, iris_two):
    assert_error(
        api.post("/api/models/iris/policy/promote/", **staff), 409, "no_candidate"
    )
    put(api, "/api/models/iris/policy/", {"shadow": 2}, staff)
    assert_error(
        api.post("/api/models/iris/policy/promote/", **staff), 409, "no_candidate"
    )
    assert api.get("/api/models/iris/", **staff).json()["active_version"] == 1


def test_ending_the_policy_gives_the_active_version_everything(api, staff, iris_two):
    put(api, "/api/models/iris/policy/", {"candidate": 2, "weight": 1.0}, staff)
    assert api.delete("/api/models/iris/policy/", **staff).status_code == 204
    assert api.get("/api/models/iris/policy/", **staff).json()["policy"] is None
    assert [c.action for c in PolicyChange.objects.order_by("id")] == ["set", "end"]


def test_a_version_the_policy_names_cannot_be_deleted(api, staff, iris_two):
    put(api, "/api/models/iris/policy/", {"shadow": 2}, staff)
    assert_error(
        api.delete("/api/models/iris/versions/2/", **staff), 409, "version_in_use"
    )


def test_activating_the_candidate_by_hand_takes_it_out_of_the_policy(
    api, staff, iris_two
):
    put(api, "/api/models/iris/policy/", {"candidate": 2, "weight": 0.5}, staff)
    activated = api.post(
        "/api/models/iris/activate/",
        json.dumps({"version": 2}),
        content_type="application/json",
        **staff,
    )
    assert activated.status_code == 200
    policy = api.get("/api/models/iris/policy/", **staff).json()["policy"]
    assert (policy["candidate"], policy["weight"]) == (None, 0.0)
    change = PolicyChange.objects.order_by("id").last()
    assert (change.channel, change.reason) == ("api", "v2 was activated")
    assert (change.before["candidate"], change.after["candidate"]) == (2, None)


def test_the_policy_needs_a_staff_token_with_change_permission(api, iris_two):
    viewer = token_for(make_user("viewer", staff=True, permissions=("view_mlmodel",)))
    body = {"candidate": 2, "weight": 0.5}
    assert put(api, "/api/models/iris/policy/", body, viewer).status_code == 403
    assert api.post("/api/models/iris/policy/promote/", **viewer).status_code == 403
    assert api.delete("/api/models/iris/policy/", **viewer).status_code == 403
    assert not PolicyChange.objects.exists()


def test_abort_sends_the_candidate_nothing_and_keeps_the_rest(api, staff, iris_two):
    body = {"candidate": 2, "weight": 0.4, "sticky": "X-Route-Key", "shadow": 2}
    put(api, "/api/models/iris/policy/", body, staff)
    response = api.post("/api/models/iris/policy/abort/", **staff)
    assert response.status_code == 200, response.content
    policy = response.json()["policy"]
    assert (policy["candidate"], policy["weight"], policy["sticky"]) == (
        2,
        0.0,
        "X-Route-Key",
    )
    change = PolicyChange.objects.order_by("id").last()
    assert (change.action, change.channel) == ("abort", "api")
    again = api.post("/api/models/iris/policy/abort/", **staff)
    assert_error(again, 409, "no_candidate")
