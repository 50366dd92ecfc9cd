"""The model page's aliases and traffic policy through the Django test client:
every change goes through registry.rollouts, is recorded with the admin's
user, and every refusal is an admin message with nothing stored."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from registry import actions, rollouts
from registry.models import (
    Activation,
    Alias,
    AliasMove,
    MLModel,
    PolicyChange,
    TrafficPolicy,
)

pytestmark = pytest.mark.django_db

POSTS = [
    "alias_set",
    "alias_delete",
    "policy_set",
    "policy_promote",
    "policy_abort",
    "policy_end",
]


@pytest.fixture
def iris(publish, iris_classifier) -> MLModel:
    """iris with v1 active and v2, v3 ready beside it."""
    model = publish(iris_classifier, "iris").model
    for _ in range(2):
        publish(iris_classifier, "iris", activate=False)
    model.refresh_from_db()
    return model


def url(name: str, model: MLModel) -> str:
    return reverse(f"admin:registry_mlmodel_{name}", args=[model.pk])


def post(client: Client, name: str, model: MLModel, data: dict | None = None):
    """POST to one of the panel's URLs; it always lands back on the model page."""
    response = client.post(url(name, model), data or {}, follow=True)
    assert response.redirect_chain == [(url("change", model), 302)]
    return response


def shown(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in response.context["messages"]]


def page(client: Client, model: MLModel) -> str:
    response = client.get(url("change", model))
    assert response.status_code == 200
    return response.content.decode()


def policy_data(**fields: object) -> dict[str, object]:
    return {f"policy-{name}": value for name, value in fields.items()}


def set_alias(client: Client, model: MLModel, name: str, number: int):
    return post(
        client, "alias_set", model, {"alias-name": name, "alias-version": number}
    )


def test_admin_sets_moves_and_deletes_an_alias(staff_client, staff_user, iris):
    first = set_alias(staff_client, iris, "champion", 1)
    assert shown(first) == [("success", "Alias iris@champion now points to v1.")]
    moved = set_alias(staff_client, iris, "champion", 2)
    assert shown(moved) == [("success", "Moved alias iris@champion from v1 to v2.")]
    again = set_alias(staff_client, iris, "champion", 2)
    assert shown(again) == [("success", "Alias iris@champion already points to v2.")]
    assert Alias.objects.get(model=iris, name="champion").version.number == 2

    deleted = post(staff_client, "alias_delete", iris, {"name": "champion"})
    assert shown(deleted) == [
        ("success", "Deleted alias iris@champion (it pointed to v2).")
    ]
    assert not Alias.objects.exists()
    moves = AliasMove.objects.order_by("id").values_list(
        "name", "from_number", "to_number", "channel", "user", "username"
    )
    assert list(moves) == [
        ("champion", None, 1, "admin", staff_user.pk, "staff"),
        ("champion", 1, 2, "admin", staff_user.pk, "staff"),
        ("champion", 2, None, "admin", staff_user.pk, "staff"),
    ]


def test_admin_alias_table_lists_name_version_and_delete_button(staff_client, iris):
    set_alias(staff_client, iris, "staging", 3)
    set_alias(staff_client, iris, "champion", 1)
    content = page(staff_client, iris)
    table = content[
        content.index('id="aliases"') : content.index('id="traffic-policy"')
    ]
    assert table.index("champion") < table.index("staging")
    assert "<td>v1 (active)</td>" in table
    assert "<td>v3</td>" in table
    assert 'aria-label="Delete alias staging"' in table
    assert f'action="{url("alias_delete", iris)}"' in table
    assert '<option value="1">v1 (active)</option>' in table


@pytest.mark.parametrize(
    ("name", "number", "message"),
    [
        ("v3", 2, "reads as a version"),
        ("latest", 2, "reads as a version"),
        ("two words", 2, "must be letters, digits"),
        ("champion", 9, "Version: iris has no v9."),
        ("", 2, "Alias: This field is required."),
    ],
    ids=["version-like", "latest", "not-a-slug", "unknown-version", "no-name"],
)
def test_admin_alias_refusals_are_error_messages_and_store_nothing(
    staff_client, iris, name, number, message
):
    response = set_alias(staff_client, iris, name, number)
    [(level, text)] = shown(response)
    assert level == "error"
    assert message in text
    assert not Alias.objects.exists()
    assert not AliasMove.objects.exists()


def test_admin_alias_to_an_invalid_version_is_refused(staff_client, iris):
    actions.mark_invalid(iris.versions.get(number=3), message="no longer loads")
    response = set_alias(staff_client, iris, "champion", 3)
    [(level, text)] = shown(response)
    assert level == "error"
    assert "An alias must point to a ready version; iris v3 is invalid." in text
    assert not AliasMove.objects.exists()


def test_admin_deleting_an_unknown_alias_is_an_error_message(staff_client, iris):
    response = post(staff_client, "alias_delete", iris, {"name": "ghost"})
    assert shown(response) == [("error", "Model 'iris' has no alias 'ghost'.")]
    assert not AliasMove.objects.exists()


def test_admin_saves_a_policy_and_shows_it(staff_client, staff_user, iris):
    data = policy_data(
        candidate=2,
        weight="0.2",
        sticky_header="X-User-Id",
        shadow=3,
        error_rate="0.05",
        p95_ms="250",
        last_requests="200",
        min_requests="",
    )
    response = post(staff_client, "policy_set", iris, data)
    assert shown(response) == [
        (
            "success",
            "Saved the traffic policy of iris: candidate v2 at 20%, sticky by "
            "header X-User-Id, shadow v3, guards: error rate > 0.05 or p95 > "
            "250 ms, last 200 requests, min 20 requests.",
        )
    ]
    policy = TrafficPolicy.objects.get(model=iris)
    assert (policy.candidate.number, policy.weight, policy.shadow.number) == (2, 0.2, 3)
    assert (policy.sticky_header, policy.guard_error_rate) == ("X-User-Id", 0.05)
    assert (policy.guard_last_requests, policy.guard_min_requests) == (200, 20)
    change = PolicyChange.objects.get()
    assert (change.action, change.channel, change.user) == ("set", "admin", staff_user)
    assert change.before is None
    assert change.after == rollouts.describe(policy)

    content = page(staff_client, iris)
    assert "<td>v2 takes 20%</td>" in content
    assert "<td>by header X-User-Id</td>" in content
    assert 'value="Promote v2"' in content
    assert 'value="Abort"' in content
    assert '<option value="2" selected>v2</option>' in content
    assert 'name="policy-weight" value="0.2"' in content


def test_admin_policy_form_offers_ready_versions_other_than_the_active(
    staff_client, iris
):
    actions.mark_invalid(iris.versions.get(number=3), message="no longer loads")
    content = page(staff_client, iris)
    form = content[content.index('id="policy-form"') :]
    candidate = form[form.index('name="policy-candidate"') : form.index("</select>")]
    assert '<option value="2">v2</option>' in candidate
    assert 'value="1"' not in candidate
    assert 'value="3"' not in candidate
    assert '<option value="" selected>— none —</option>' in candidate


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"candidate": 2, "weight": "1.5"}, "The weight must be a number from 0 to 1"),
        ({"candidate": 3, "weight": "0.1"}, "The candidate must point to a ready"),
        ({"candidate": 1, "weight": "0.1"}, "v1 is already the active version."),
        ({"shadow": 1}, "The shadow v1 is the active version"),
        (
            {"candidate": 2, "sticky_header": "X-A", "sticky_feature": "petal"},
            "Stick by a header or by a feature, not both.",
        ),
        ({"candidate": 2, "sticky_header": "not a header"}, "is not an HTTP header"),
        ({"candidate": 2, "sticky_feature": "colour"}, "has no input feature"),
        ({"candidate": 2, "error_rate": "2"}, "Guard 'error_rate' must be a number"),
        ({"candidate": 2, "min_requests": "0"}, "Guard 'min_requests' must be a whole"),
        ({"candidate": 2, "weight": "lots"}, "Weight: Enter a number."),
        ({"candidate": 2, "weight": "nan"}, "Weight: Enter a number."),
        ({"candidate": 7}, "Candidate: iris has no v7."),
    ],
    ids=[
        "weight",
        "not-ready",
        "same-as-active",
        "shadow-is-active",
        "both-sticky",
        "bad-header",
        "unknown-feature",
        "guard",
        "min-requests",
        "weight-not-a-number",
        "weight-nan",
        "unknown-version",
    ],
)
def test_admin_policy_refusals_are_error_messages_and_store_nothing(
    staff_client, iris, fields, message
):
    actions.mark_invalid(iris.versions.get(number=3), message="no longer loads")
    response = post(staff_client, "policy_set", iris, policy_data(**fields))
    [(level, text)] = shown(response)
    assert level == "error"
    assert message in text
    assert not TrafficPolicy.objects.exists()
    assert not PolicyChange.objects.exists()


def test_admin_refused_policy_keeps_the_stored_one(staff_client, iris):
    post(staff_client, "policy_set", iris, policy_data(candidate=2, weight="0.3"))
    refused = post(staff_client, "policy_set", iris, policy_data(candidate=1))
    assert shown(refused)[0][0] == "error"
    policy = TrafficPolicy.objects.get(model=iris)
    assert (policy.candidate.number, policy.weight) == (2, 0.3)
    assert PolicyChange.objects.count() == 1


def test_admin_promote_makes_the_candidate_active_in_one_recorded_step(
    staff_client, staff_user, iris
):
    post(staff_client, "policy_set", iris, policy_data(candidate=2, weight="0.2"))
    response = post(staff_client, "policy_promote", iris)
    assert shown(response) == [
        ("success", "Promoted v2: it is the active version of iris (was v1).")
    ]
    iris.refresh_from_db()
    assert iris.active_version.number == 2
    assert not TrafficPolicy.objects.exists()
    switch = Activation.objects.filter(model=iris).latest("id")
    assert (switch.from_number, switch.to_number, switch.channel, switch.user) == (
        1,
        2,
        "admin",
        staff_user,
    )
    change = PolicyChange.objects.latest("id")
    assert (change.action, change.channel, change.user) == (
        "promote",
        "admin",
        staff_user,
    )
    assert (change.before["candidate"], change.after) == (2, None)


def test_admin_promote_without_a_candidate_is_an_error_message(staff_client, iris):
    response = post(staff_client, "policy_promote", iris)
    assert shown(response) == [("error", "Model 'iris' has no candidate to promote.")]
    iris.refresh_from_db()
    assert iris.active_version.number == 1
    assert not PolicyChange.objects.exists()


def test_admin_abort_sends_the_candidate_nothing_and_keeps_the_rest(
    staff_client, staff_user, iris
):
    data = policy_data(candidate=2, weight="0.2", shadow=3, error_rate="0.1")
    post(staff_client, "policy_set", iris, data)
    response = post(staff_client, "policy_abort", iris)
    assert shown(response) == [
        ("success", "Aborted: v2 takes no traffic (weight 0); iris answers with v1.")
    ]
    policy = TrafficPolicy.objects.get(model=iris)
    assert (policy.candidate.number, policy.weight, policy.shadow.number) == (2, 0, 3)
    assert policy.guard_error_rate == 0.1
    change = PolicyChange.objects.latest("id")
    assert (change.action, change.channel, change.user) == (
        "abort",
        "admin",
        staff_user,
    )
    assert (change.before["weight"], change.after["weight"]) == (0.2, 0.0)
    assert 'value="Abort"' not in page(staff_client, iris)


def test_admin_abort_without_a_candidate_is_an_error_message(staff_client, iris):
    post(staff_client, "policy_set", iris, policy_data(shadow=2))
    response = post(staff_client, "policy_abort", iris)
    assert shown(response) == [
        ("error", "Model 'iris' has no candidate taking traffic.")
    ]
    assert PolicyChange.objects.count() == 1


def test_admin_end_policy_deletes_it_and_says_when_there_was_none(
    staff_client, staff_user, iris
):
    post(staff_client, "policy_set", iris, policy_data(candidate=2, weight="0.5"))
    ended = post(staff_client, "policy_end", iris)
    assert shown(ended) == [
        (
            "success",
            "Ended the traffic policy of iris: its active version takes all traffic.",
        )
    ]
    assert not TrafficPolicy.objects.exists()
    change = PolicyChange.objects.latest("id")
    assert (change.action, change.channel, change.user, change.after) == (
        "end",
        "admin",
        staff_user,
        None,
    )
    again = post(staff_client, "policy_end", iris)
    assert shown(again) == [("warning", "Nothing to end: iris has no traffic policy.")]
    assert PolicyChange.objects.count() == 2
    assert "No traffic policy: v1 (active) answers every unpinned request." in page(
        staff_client, iris
    )


@pytest.fixture
def rolled_out(iris) -> MLModel:
    """iris@champion on v1, and v2 a candidate taking 20%."""
    rollouts.set_policy(
        iris, rollouts.PolicySpec(candidate=iris.versions.get(number=2), weight=0.2)
    )
    rollouts.set_alias(iris, "champion", iris.versions.get(number=1))
    return iris


def login_staff(client: Client, *codenames: str) -> None:
    user = get_user_model().objects.create_user(
        "viewer", password="x-pass-123", is_staff=True
    )
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)


@pytest.mark.parametrize("name", POSTS)
def test_admin_rollout_posts_are_refused_without_the_change_permission(
    client, rolled_out, name
):
    iris = rolled_out
    login_staff(client, "view_mlmodel", "view_modelversion")
    data = {
        "alias-name": "staging",
        "alias-version": 2,
        "name": "champion",
        **policy_data(candidate=3, weight="1"),
    }
    assert client.post(url(name, iris), data).status_code == 403
    iris.refresh_from_db()
    assert iris.active_version.number == 1
    assert list(Alias.objects.values_list("name", "version__number")) == [
        ("champion", 1)
    ]
    assert TrafficPolicy.objects.get(model=iris).weight == 0.2
    assert AliasMove.objects.count() == PolicyChange.objects.count() == 1


def test_admin_rollout_panel_shows_view_only_staff_no_forms(client, rolled_out):
    iris = rolled_out
    login_staff(client, "view_mlmodel", "view_modelversion")
    content = page(client, iris)
    assert '<th scope="row">champion</th>' in content
    assert "<td>v2 takes 20%</td>" in content
    for name in POSTS:
        assert url(name, iris) not in content
    assert 'name="policy-weight"' not in content
    assert 'value="Promote v2"' not in content


@pytest.mark.parametrize("name", POSTS)
def test_admin_rollout_urls_are_post_only(staff_client, iris, name):
    assert staff_client.get(url(name, iris)).status_code == 405


def test_admin_rollout_posts_enforce_csrf(iris, staff_user):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff_user)
    data = {"alias-name": "champion", "alias-version": 1}
    assert strict.post(url("alias_set", iris), data).status_code == 403
    assert strict.post(url("policy_end", iris)).status_code == 403
    assert not AliasMove.objects.exists()


def test_admin_rollout_posts_for_an_unknown_model_are_404(staff_client, iris):
    missing = reverse("admin:registry_mlmodel_policy_end", args=[iris.pk + 100])
    assert staff_client.post(missing).status_code == 404


def test_admin_model_history_shows_alias_moves_and_policy_changes(staff_client, iris):
    set_alias(staff_client, iris, "champion", 1)
    set_alias(staff_client, iris, "champion", 2)
    post(staff_client, "alias_delete", iris, {"name": "champion"})
    post(staff_client, "policy_set", iris, policy_data(candidate=2, weight="0.2"))
    rollouts.trip(
        iris,
        candidate_id=iris.versions.get(number=2).pk,
        reason="error rate 0.31 > 0.05 over the last 100 requests",
    )
    post(staff_client, "policy_set", iris, policy_data(candidate=3, weight="0.1"))
    post(staff_client, "policy_promote", iris)

    content = page(staff_client, iris)
    moves = content[content.index("field-alias_history") :]
    moves = moves[: moves.index("field-policy_history")]
    for line in (
        "champion: none → v1 · admin · staff",
        "champion: v1 → v2 · admin · staff",
        "champion: v2 → deleted · admin · staff",
    ):
        assert line in moves
    changes = content[content.index("field-policy_history") :]
    for line in (
        "set · no policy → candidate v2 at 20% · admin · staff",
        "guard tripped · candidate v2 at 20% → candidate v2 at 0% · auto · — · "
        "reason: error rate 0.31 &gt; 0.05 over the last 100 requests",
        "set · candidate v2 at 0% → candidate v3 at 10% · admin · staff",
        "promoted · candidate v3 at 10% → no policy · admin · staff",
    ):
        assert line in changes
    assert changes.index("promoted") < changes.index("guard tripped")
    assert "v1 → v3 (activation)" in content
