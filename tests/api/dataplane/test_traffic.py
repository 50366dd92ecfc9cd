"""Which version answers: aliases and pinned versions name theirs, the
unpinned URL follows the traffic policy (a fresh draw per request, or a
sticky key's hash), and every response and log row says why it answered."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from monitoring.models import RequestLog
from registry import actions, rollouts
from registry.models import MLModel, ModelVersion
from registry.rollouts import PolicySpec
from tests.servers import IRIS_ROW

from .test_predict import post


def model() -> MLModel:
    return MLModel.objects.get(slug="iris")


def version(number: int) -> ModelVersion:
    return model().versions.get(number=number)


def set_policy(**spec) -> None:
    for field in ("candidate", "shadow"):
        if isinstance(spec.get(field), int):
            spec[field] = version(spec[field])
    rollouts.set_policy(model(), PolicySpec(**spec))


def answered(response) -> tuple[int, str]:
    assert response.status_code == 200, response.content
    assert response.json()["version"] == int(response["X-Model-Version"])
    return response.json()["version"], response["X-Model-Route"]


def v2_infer(client, path: str, **headers):
    body = {
        "inputs": [
            {"name": k, "shape": [1], "datatype": "FP64", "data": [v]}
            for k, v in IRIS_ROW.items()
        ]
    }
    return client.post(
        path, json.dumps(body), content_type="application/json", **headers
    )


# --- aliases and pins ------------------------------------------------------------


def test_an_alias_answers_at_the_at_path_the_query_and_v2(client, iris_versions):
    rollouts.set_alias(model(), "champion", version(2))

    assert answered(post(client, "iris@champion", {"data": IRIS_ROW})) == (
        2,
        "alias:champion",
    )
    assert answered(
        post(client, "iris", {"data": IRIS_ROW}, query="?alias=champion")
    ) == (2, "alias:champion")
    v2 = v2_infer(client, "/v2/models/iris/versions/champion/infer")
    assert v2.status_code == 200, v2.content
    assert (v2.json()["model_version"], v2["X-Model-Route"]) == ("2", "alias:champion")
    assert answered(post(client, "iris", {"data": IRIS_ROW})) == (1, "active")

    routes = list(RequestLog.objects.order_by("id").values_list("slug", "route"))
    assert routes == [("iris", "alias")] * 3 + [("iris", "active")]


def test_an_alias_moved_is_served_from_the_next_request(client, iris_versions):
    rollouts.set_alias(model(), "champion", version(2))
    assert answered(post(client, "iris@champion", {"data": IRIS_ROW}))[0] == 2
    rollouts.set_alias(model(), "champion", version(1))
    assert answered(post(client, "iris@champion", {"data": IRIS_ROW}))[0] == 1


def test_an_unknown_alias_is_a_404_with_its_code(client, iris_versions):
    response = post(client, "iris@nobody", {"data": IRIS_ROW})
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_alias"
    v2 = v2_infer(client, "/v2/models/iris/versions/nobody/infer")
    assert v2.status_code == 404 and "alias" in v2.json()["error"]
    ghost = post(client, "ghost@champion", {"data": IRIS_ROW})
    assert ghost.json()["code"] == "unknown_model"
    row = RequestLog.objects.order_by("id").first()
    assert (row.slug, row.error_code) == ("iris", "unknown_alias")


def test_version_and_alias_together_are_refused(client, iris_versions):
    response = post(client, "iris", {"data": IRIS_ROW}, query="?version=1&alias=x")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_params"


def test_a_pinned_version_says_so_and_ignores_the_policy(client, iris_versions):
    set_policy(candidate=2, weight=1.0)
    response = client.post(
        "/api/predict/iris/v1/",
        json.dumps({"data": IRIS_ROW}),
        content_type="application/json",
    )
    assert answered(response) == (1, "pinned")
    assert RequestLog.objects.get().route == "pinned"


# --- the split -----------------------------------------------------------------


def test_without_a_policy_the_active_version_answers(client, iris_versions):
    answers = {answered(post(client, "iris", {"data": IRIS_ROW})) for _ in range(20)}
    assert answers == {(1, "active")}


def test_a_weight_of_one_sends_every_request_to_the_candidate(client, iris_versions):
    set_policy(candidate=2, weight=1.0)
    answers = {answered(post(client, "iris", {"data": IRIS_ROW})) for _ in range(20)}
    assert answers == {(2, "candidate")}
    assert set(RequestLog.objects.values_list("route", "version")) == {("candidate", 2)}


def test_a_weight_of_zero_sends_the_candidate_nothing(client, iris_versions):
    set_policy(candidate=2, weight=0.0)
    answers = Counter(
        answered(post(client, "iris", {"data": IRIS_ROW})) for _ in range(200)
    )
    assert answers == {(1, "active"): 200}


def test_a_half_split_answers_with_both_versions(client, iris_versions):
    set_policy(candidate=2, weight=0.5)
    answers = Counter(
        answered(post(client, "iris", {"data": IRIS_ROW})) for _ in range(200)
    )
    assert set(answers) == {(1, "active"), (2, "candidate")}
    assert 60 <= answers[2, "candidate"] <= 140  # 0.5 ± 5.6 standard deviations


def test_a_sticky_header_gives_each_caller_one_version(client, iris_versions):
    set_policy(candidate=2, weight=0.5, sticky_header="X-Route-Key")
    seen: dict[str, set[int]] = {}
    for _repeat in range(4):
        for key in range(40):
            response = post(
                client, "iris", {"data": IRIS_ROW}, HTTP_X_ROUTE_KEY=f"user-{key}"
            )
            seen.setdefault(f"user-{key}", set()).add(answered(response)[0])
    assert all(len(versions) == 1 for versions in seen.values()), seen
    assert {v for versions in seen.values() for v in versions} == {1, 2}


def test_raising_the_weight_keeps_sticky_callers_on_the_candidate(
    client, iris_versions
):
    def versions() -> dict[int, int]:
        return {
            key: answered(
                post(client, "iris", {"data": IRIS_ROW}, HTTP_X_ROUTE_KEY=str(key))
            )[0]
            for key in range(60)
        }

    set_policy(candidate=2, weight=0.2, sticky_header="X-Route-Key")
    low = versions()
    set_policy(candidate=2, weight=0.6, sticky_header="X-Route-Key")
    high = versions()
    assert {k for k, v in low.items() if v == 2} <= {
        k for k, v in high.items() if v == 2
    }


def test_a_sticky_feature_gives_each_value_one_version(client, iris_versions):
    set_policy(candidate=2, weight=0.5, sticky_feature="petal length (cm)")
    seen: dict[float, set[int]] = {}
    for _repeat in range(3):
        for tenth in range(10, 70, 2):
            length = tenth / 10
            row = {**IRIS_ROW, "petal length (cm)": length}
            seen.setdefault(length, set()).add(
                answered(post(client, "iris", {"data": row}))[0]
            )
    assert all(len(versions) == 1 for versions in seen.values()), seen
    assert {v for versions in seen.values() for v in versions} == {1, 2}


def test_requests_without_the_sticky_header_are_still_split(client, iris_versions):
    set_policy(candidate=2, weight=1.0, sticky_header="X-Route-Key")
    assert answered(post(client, "iris", {"data": IRIS_ROW})) == (2, "candidate")


def test_a_candidate_marked_invalid_leaves_all_traffic_to_the_active(
    client, iris_versions
):
    set_policy(candidate=2, weight=1.0)
    actions.mark_invalid(version(2), message="found wanting")
    assert answered(post(client, "iris", {"data": IRIS_ROW})) == (1, "active")


def test_promote_serves_the_candidate_from_the_next_request(client, iris_versions):
    set_policy(candidate=2, weight=0.1)
    rollouts.promote(model())
    answers = {answered(post(client, "iris", {"data": IRIS_ROW})) for _ in range(20)}
    assert answers == {(2, "active")}


@pytest.mark.parametrize(
    ("spec", "registry_queries"),
    [({}, 1), ({"candidate": 2, "weight": 0.5}, 2)],
    ids=["no policy", "a candidate"],
)
def test_a_policy_costs_one_query_per_version_it_names(
    client, iris_versions, settings, spec, registry_queries
):
    settings.MODELHUB_LOG_ROLLUP_MS = 60_000  # no fold due during the request
    settings.MODELHUB_GUARD_CHECK_MS = 60_000  # nor a guard check
    if spec:
        set_policy(**spec)
    for _ in range(10):  # warm: both versions loaded
        post(client, "iris", {"data": IRIS_ROW})
    with CaptureQueriesContext(connection) as queries:
        assert post(client, "iris", {"data": IRIS_ROW}).status_code == 200
    statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    assert len([sql for sql in statements if "registry_" in sql]) == registry_queries
    assert len(statements) == registry_queries + 1  # and the log row
