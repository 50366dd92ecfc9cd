"""manage.py alias and rollout, on the real database with real iris versions."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from registry import actions, rollouts
from registry.models import (
    Activation,
    Alias,
    AliasMove,
    MLModel,
    ModelVersion,
    PolicyChange,
    TrafficPolicy,
)

pytestmark = pytest.mark.django_db

FEATURE = "petal length (cm)"


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue().strip()


def refusal(command: str, *args: str) -> str:
    with pytest.raises(CommandError) as caught:
        run(command, *args)
    return str(caught.value)


@pytest.fixture
def iris3(publish, iris_classifier) -> list[ModelVersion]:
    """iris v1 (active), v2 and v3 (ready, not served), v4 (marked invalid)."""
    versions = [publish(iris_classifier, "iris", activate=i == 0) for i in range(4)]
    actions.mark_invalid(versions[3], message="checkmodels: no longer loads")
    return versions


def aliases() -> dict[str, int]:
    return dict(Alias.objects.values_list("name", "version__number"))


def moves() -> list[tuple[str, int | None, int | None, str]]:
    return list(
        AliasMove.objects.order_by("id").values_list(
            "name", "from_number", "to_number", "channel"
        )
    )


def policy() -> dict[str, Any] | None:
    return rollouts.describe(TrafficPolicy.objects.first())


def policy_changes() -> list[tuple[str, str]]:
    return list(PolicyChange.objects.order_by("id").values_list("action", "channel"))


# alias


def test_alias_command_points_a_new_alias_at_a_version_and_records_it(iris3):
    assert run("alias", "iris", "champion", "2") == "iris@champion: none -> v2"
    assert aliases() == {"champion": 2}
    assert moves() == [("champion", None, 2, "cli")]


def test_alias_command_moves_an_alias_and_records_from_and_to(iris3):
    run("alias", "iris", "champion", "1")
    assert run("alias", "iris", "champion", "v2") == "iris@champion: v1 -> v2"
    assert aliases() == {"champion": 2}
    assert moves() == [("champion", None, 1, "cli"), ("champion", 1, 2, "cli")]


def test_alias_command_says_when_the_alias_already_points_there(iris3):
    run("alias", "iris", "champion", "2")
    assert run("alias", "iris", "champion", "2") == (
        "iris@champion already points to v2"
    )
    assert moves() == [("champion", None, 2, "cli")]


def test_alias_command_deletes_an_alias_and_records_it(iris3):
    run("alias", "iris", "champion", "2")
    assert run("alias", "iris", "champion", "--delete") == (
        "iris@champion: v2 -> deleted"
    )
    assert aliases() == {}
    assert moves()[-1] == ("champion", 2, None, "cli")


def test_alias_command_lists_the_aliases_one_per_line(iris3):
    run("alias", "iris", "staging", "3")
    run("alias", "iris", "champion", "2")
    assert run("alias", "iris") == "champion -> v2\nstaging -> v3"


def test_alias_command_says_when_a_model_has_no_aliases(iris3):
    assert run("alias", "iris") == "Model 'iris' has no aliases."


def test_alias_command_prints_where_one_alias_points(iris3):
    run("alias", "iris", "champion", "3")
    assert run("alias", "iris", "champion") == "iris@champion: v3"


@pytest.mark.parametrize("name", ["v3", "V12", "latest", "LATEST", "not/a/slug"])
def test_alias_command_refuses_a_name_that_reads_as_a_version(iris3, name):
    message = refusal("alias", "iris", name, "2")
    assert message.endswith("(invalid_alias)")
    assert aliases() == {}
    assert moves() == []


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("iris", "champion", "9"), "unknown_version"),
        (("nope", "champion", "1"), "unknown_model"),
        (("iris", "champion", "4"), "candidate_not_ready"),
        (("iris", "staging", "--delete"), "unknown_alias"),
        (("iris", "staging"), "unknown_alias"),
    ],
)
def test_alias_command_refusal_names_its_code_and_changes_nothing(iris3, args, code):
    run("alias", "iris", "champion", "1")
    message = refusal("alias", *args)
    assert message.endswith(f"({code})")
    assert aliases() == {"champion": 1}
    assert moves() == [("champion", None, 1, "cli")]


def test_alias_command_refuses_delete_with_a_version(iris3):
    run("alias", "iris", "champion", "1")
    assert "--delete" in refusal("alias", "iris", "champion", "2", "--delete")
    assert aliases() == {"champion": 1}


def test_alias_command_refuses_a_version_that_is_no_number(iris3):
    assert "not a version number" in refusal("alias", "iris", "champion", "two")
    assert aliases() == {}


def test_alias_command_exits_non_zero_with_the_code_on_stderr(manage_cli, iris_path):
    loaded = manage_cli("loadmodel", str(iris_path), "--slug", "iris")
    assert loaded.returncode == 0, loaded.stderr
    done = manage_cli("alias", "iris", "latest", "1")
    assert done.returncode == 1
    assert "(invalid_alias)" in done.stderr
    listed = manage_cli("alias", "iris")
    assert listed.stdout.strip() == "Model 'iris' has no aliases."


# rollout


def test_rollout_command_sets_candidate_weight_sticky_shadow_and_guards(iris3):
    out = run(
        "rollout",
        "iris",
        "--candidate=2",
        "--weight=0.1",
        "--sticky=X-Route-Key",
        "--shadow=3",
        "--guard-error-rate=0.05",
        "--guard-p95-ms=200",
        "--guard-p95-ratio=2",
        "--guard-last-requests=100",
        "--guard-minutes=5",
        "--guard-min-requests=30",
    )
    assert out.splitlines() == [
        "iris: active v1",
        "candidate: v2, weight 0.1 (10% of unpinned requests)",
        "sticky: header X-Route-Key",
        "shadow: v3",
        "guards: error_rate 0.05, p95_ms 200, p95_ratio 2, last_requests 100, "
        "minutes 5, min_requests 30",
    ]
    stored = TrafficPolicy.objects.get()
    assert (stored.candidate.number, stored.weight, stored.shadow.number) == (2, 0.1, 3)
    assert (stored.sticky_header, stored.sticky_feature) == ("X-Route-Key", "")
    assert (stored.guard_error_rate, stored.guard_p95_ms, stored.guard_p95_ratio) == (
        0.05,
        200,
        2,
    )
    assert (
        stored.guard_last_requests,
        stored.guard_minutes,
        stored.guard_min_requests,
    ) == (100, 5, 30)
    change = PolicyChange.objects.get()
    assert (change.action, change.channel) == ("set", "cli")
    assert change.before is None
    assert change.after == policy()


def test_rollout_command_keeps_the_values_it_is_not_given(iris3):
    run(
        "rollout",
        "iris",
        "--candidate=2",
        "--weight=0.1",
        "--sticky=X-Route-Key",
        "--shadow=3",
        "--guard-error-rate=0.05",
    )
    before = policy()
    run("rollout", "iris", "--weight=0.5", "--guard-p95-ms=250")
    after = policy()
    assert after == {
        **before,
        "weight": 0.5,
        "guards": {**before["guards"], "p95_ms": 250},
    }
    change = PolicyChange.objects.order_by("id").last()
    assert (change.action, change.channel) == ("set", "cli")
    assert (change.before, change.after) == (before, after)


def test_rollout_command_takes_a_weight_of_zero_as_given(iris3):
    run("rollout", "iris", "--candidate=2", "--weight=0.4")
    run("rollout", "iris", "--weight=0")
    assert (policy()["candidate"], policy()["weight"]) == (2, 0.0)
    assert policy_changes() == [("set", "cli"), ("set", "cli")]


def test_rollout_command_clears_shadow_sticky_and_guards_when_asked(iris3):
    run(
        "rollout",
        "iris",
        "--candidate=2",
        "--weight=0.2",
        "--sticky=X-Route-Key",
        "--shadow=3",
        "--guard-error-rate=0.05",
    )
    out = run("rollout", "iris", "--no-shadow", "--no-sticky", "--no-guards")
    assert out.splitlines()[2:] == [
        "sticky: none (random per request)",
        "shadow: none",
        "guards: none",
    ]
    after = policy()
    assert (after["candidate"], after["weight"]) == (2, 0.2)
    assert (after["sticky"], after["sticky_feature"], after["shadow"]) == (
        None,
        None,
        None,
    )
    assert after["guards"]["error_rate"] is None


def test_rollout_command_sticky_feature_replaces_a_sticky_header(iris3):
    run("rollout", "iris", "--candidate=2", "--weight=0.2", "--sticky=X-Route-Key")
    out = run("rollout", "iris", f"--sticky-feature={FEATURE}")
    assert f"sticky: feature {FEATURE}" in out.splitlines()
    assert (policy()["sticky"], policy()["sticky_feature"]) == (None, FEATURE)


def test_rollout_command_promotes_the_candidate_and_records_it(iris3):
    run("rollout", "iris", "--candidate=2", "--weight=0.3", "--shadow=3")
    out = run("rollout", "iris", "--promote")
    assert out.splitlines()[:3] == [
        "iris: v2 is now active (was v1)",
        "iris: active v2",
        "candidate: none",
    ]
    assert MLModel.objects.get().active_version.number == 2
    activation = Activation.objects.order_by("id").last()
    assert (activation.from_number, activation.to_number, activation.channel) == (
        1,
        2,
        "cli",
    )
    assert policy_changes() == [("set", "cli"), ("promote", "cli")]
    assert (policy()["candidate"], policy()["shadow"]) == (None, 3)


def test_rollout_command_aborts_by_weight_zero_keeping_the_rest(iris3):
    run("rollout", "iris", "--candidate=2", "--weight=0.3", "--sticky=X-Route-Key")
    before = policy()
    out = run("rollout", "iris", "--abort")
    assert "candidate: v2, weight 0 (0% of unpinned requests)" in out.splitlines()
    assert policy() == {**before, "weight": 0.0}
    assert policy_changes() == [("set", "cli"), ("abort", "cli")]
    assert MLModel.objects.get().active_version.number == 1


def test_rollout_command_ends_the_policy_and_records_it(iris3):
    run("rollout", "iris", "--candidate=2", "--weight=0.3")
    before = policy()
    out = run("rollout", "iris", "--end")
    assert out == ("iris: traffic policy ended; the active version takes all traffic")
    assert TrafficPolicy.objects.count() == 0
    change = PolicyChange.objects.order_by("id").last()
    assert (change.action, change.channel, change.before, change.after) == (
        "end",
        "cli",
        before,
        None,
    )
    assert run("rollout", "iris", "--end") == "iris: no traffic policy to end"
    assert PolicyChange.objects.count() == 2


def test_rollout_command_prints_the_current_policy(iris3):
    run(
        "rollout",
        "iris",
        "--candidate=3",
        "--weight=0.25",
        f"--sticky-feature={FEATURE}",
    )
    assert run("rollout", "iris").splitlines() == [
        "iris: active v1",
        "candidate: v3, weight 0.25 (25% of unpinned requests)",
        f"sticky: feature {FEATURE}",
        "shadow: none",
        "guards: none",
    ]
    assert PolicyChange.objects.count() == 1


def test_rollout_command_says_when_there_is_no_policy(iris3):
    assert run("rollout", "iris") == "iris: active v1\nno traffic policy"
    assert PolicyChange.objects.count() == 0


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("--weight=1.5",), "invalid_weight"),
        (("--weight=-0.1",), "invalid_weight"),
        (("--weight=nan",), "invalid_weight"),
        (("--candidate=1",), "same_as_active"),
        (("--shadow=1",), "same_as_active"),
        (("--candidate=4",), "candidate_not_ready"),
        (("--shadow=4",), "candidate_not_ready"),
        (("--candidate=9",), "unknown_version"),
        (("--sticky=Not A Header",), "invalid_sticky"),
        (("--sticky-feature=colour",), "invalid_sticky"),
        (("--guard-error-rate=2",), "invalid_guard"),
        (("--guard-last-requests=0",), "invalid_guard"),
        (("--promote", "--weight=0.2"), None),
        (("--no-guards", "--guard-p95-ms=100"), None),
    ],
)
def test_rollout_command_refusal_leaves_the_stored_policy_unchanged(iris3, args, code):
    run("rollout", "iris", "--candidate=2", "--weight=0.1", "--shadow=3")
    before = policy()
    message = refusal("rollout", "iris", *args)
    if code is not None:
        assert message.endswith(f"({code})")
    assert policy() == before
    assert policy_changes() == [("set", "cli")]
    assert MLModel.objects.get().active_version.number == 1


def test_rollout_command_refuses_an_unknown_model(iris3):
    assert refusal("rollout", "nope", "--end").endswith("(unknown_model)")


@pytest.mark.parametrize("step", ["--promote", "--abort"])
def test_rollout_command_refuses_a_step_that_needs_a_candidate(iris3, step):
    run("rollout", "iris", "--shadow=3")
    assert refusal("rollout", "iris", step).endswith("(no_candidate)")
    assert policy_changes() == [("set", "cli")]


def test_rollout_command_refuses_a_weight_without_a_candidate(iris3):
    assert refusal("rollout", "iris", "--weight=0.5").endswith("(no_candidate)")
    assert TrafficPolicy.objects.count() == 0
    assert policy_changes() == []


def test_rollout_command_refuses_two_steps_at_once(iris3):
    run("rollout", "iris", "--candidate=2", "--weight=0.1")
    refusal("rollout", "iris", "--promote", "--end")
    assert policy()["candidate"] == 2
    assert policy_changes() == [("set", "cli")]
