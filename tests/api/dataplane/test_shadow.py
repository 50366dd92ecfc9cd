"""A shadow version predicts every unpinned request after the response:
one row of its own per request (route shadow, the same request id), nothing
of it in the client's response, its comparison with what was served in the
stats, its failures its own, and its time within the worker's budget."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY
from sklearn.linear_model import LinearRegression
from sklearn.tree import DecisionTreeClassifier

from api.dataplane import shadow
from monitoring.models import RequestLog
from registry import rollouts
from registry.models import MLModel
from registry.rollouts import PolicySpec

from .test_predict import post, records


class FailingTree(DecisionTreeClassifier):
    """Fitted on iris, but refuses more than one row at a time: passes the
    preflight's one-row test, then fails the live traffic, a shadow gone bad."""

    def predict(self, x):
        if len(x) > 1:
            raise ValueError("this shadow refuses live traffic")
        return super().predict(x)


@pytest.fixture(autouse=True)
def fresh_budget():
    shadow.budget.reset()
    yield
    shadow.budget.reset()


def shadow_with(number: int, slug: str = "iris", **spec) -> None:
    model = MLModel.objects.get(slug=slug)
    rollouts.set_policy(
        model, PolicySpec(shadow=model.versions.get(number=number), **spec)
    )


def rows_by_route(request_id: str) -> dict[str, RequestLog]:
    return {row.route: row for row in RequestLog.objects.filter(request_id=request_id)}


def test_each_request_gets_one_shadow_row_with_its_request_id(
    client, iris_versions, iris_sample
):
    shadow_with(2)
    body = {"data": records(iris_sample)}
    for index in range(10):
        response = post(client, "iris", body, HTTP_X_REQUEST_ID=f"req-{index}")
        assert response.status_code == 200
        assert response["X-Model-Route"] == "active"
        assert set(response.json()) == {"model", "version", "request_id", "predictions"}
        assert response.json()["version"] == 1
        assert "shadow" not in response.content.decode()

    for index in range(10):
        found = rows_by_route(f"req-{index}")
        assert set(found) == {"active", "shadow"}
        assert (found["active"].version, found["shadow"].version) == (1, 2)
        assert (found["shadow"].status, found["shadow"].rows) == (200, 4)
    assert RequestLog.objects.filter(route="shadow").count() == 10


def test_the_shadow_row_counts_the_rows_it_disagrees_on(
    client, iris_versions, iris_frame, staff_client
):
    x, _ = iris_frame
    served_model = iris_versions[0]
    shadow_with(2)
    sample = x.iloc[::5].reset_index(drop=True)  # 30 rows, all three classes
    response = post(client, "iris", {"data": records(sample)}, HTTP_X_REQUEST_ID="cmp")
    served = response.json()["predictions"]

    import joblib
    from django.core.files.storage import default_storage

    two = joblib.load(default_storage.path(iris_versions[1].file.name))
    differing = int((np.asarray(served) != two.predict(sample)).sum())
    assert 0 < differing < 30, "the two versions must disagree somewhere"
    assert rows_by_route("cmp")["shadow"].shadow_diff == differing
    assert served_model.number == 1

    stats = staff_client.get("/api/stats/", {"since": "1h"}).json()
    (model,) = stats["models"]
    assert model["requests"] == 1, "the shadow is no client request"
    (two_stats,) = [v for v in model["versions"] if v["version"] == 2]
    comparison = two_stats["routes"]["shadow"]["comparison"]
    assert comparison == {"rows": 30, "agreement": round(1 - differing / 30, 4)}


def test_a_regressor_shadow_reports_its_mean_absolute_difference(
    client, publish, numpy_regressor, diabetes_rows, staff_client
):
    publish(numpy_regressor, "diabetes")
    rng = np.random.default_rng(0)
    other = LinearRegression().fit(diabetes_rows, rng.normal(size=len(diabetes_rows)))
    publish(other, "diabetes", activate=False)
    shadow_with(2, slug="diabetes")
    rows = diabetes_rows[:8]
    response = post(client, "diabetes", {"inputs": rows.tolist()})
    served = np.asarray(response.json()["predictions"])

    comparison = staff_client.get("/api/stats/", {"since": "1h"}).json()["models"][0][
        "versions"
    ][0]["routes"]["shadow"]["comparison"]
    mae = float(np.abs(served - other.predict(rows)).mean())
    assert comparison["rows"] == len(rows)
    assert comparison["mae"] == pytest.approx(mae, rel=1e-6)
    assert comparison["served_std"] == pytest.approx(float(served.std()), rel=1e-6)
    assert comparison["mae_to_std"] == pytest.approx(mae / served.std(), rel=1e-3)


def test_a_failing_shadow_fails_only_its_own_row(
    client, iris, publish, iris_frame, iris_sample
):
    x, y = iris_frame
    publish(FailingTree(max_depth=2).fit(x, y), "iris", activate=False)
    shadow_with(2)
    response = post(
        client, "iris", {"data": records(iris_sample)}, HTTP_X_REQUEST_ID="f"
    )
    assert response.status_code == 200
    found = rows_by_route("f")
    assert (found["active"].status, found["shadow"].status) == (200, 422)
    assert found["shadow"].error_code == "model_error"


def test_pinned_alias_and_failed_requests_have_no_shadow(
    client, iris_versions, iris_sample
):
    shadow_with(2)
    rollouts.set_alias(MLModel.objects.get(slug="iris"), "champion", iris_versions[0])
    body = {"data": records(iris_sample)}
    assert (
        client.post(
            "/api/predict/iris/v1/", json.dumps(body), content_type="application/json"
        ).status_code
        == 200
    )
    assert post(client, "iris@champion", body).status_code == 200
    assert post(client, "iris", {"data": [{"nope": 1}]}).status_code == 400
    assert not RequestLog.objects.filter(route="shadow").exists()


def test_shadows_past_the_budget_are_skipped_and_counted(
    client, iris_versions, iris_sample, settings
):
    def skipped() -> float:
        return (
            REGISTRY.get_sample_value(
                "modelhub_shadow_skipped_total", {"model": "iris"}
            )
            or 0.0
        )

    shadow_with(2)
    settings.MODELHUB_SHADOW_MAX_SHARE = 0.0
    before = skipped()
    for _ in range(5):
        assert post(client, "iris", {"data": records(iris_sample)}).status_code == 200
    assert not RequestLog.objects.filter(route="shadow").exists()
    assert skipped() == before + 5


def test_the_budget_allows_a_share_of_the_time_only():
    budget = shadow.Budget()
    assert budget.allows()
    budget.spend(100.0)  # far beyond half of ten seconds
    assert not budget.allows()


def test_a_shadow_with_its_own_schema_decodes_the_body_for_itself(
    client, churn, publish, pipeline_classifier, mixed_sample
):
    publish(pipeline_classifier, "churn", activate=False)
    shadow_with(2, slug="churn")
    frame = pd.DataFrame(mixed_sample)
    response = post(client, "churn", {"data": records(frame)}, HTTP_X_REQUEST_ID="m")
    assert response.status_code == 200
    found = rows_by_route("m")
    assert (found["shadow"].status, found["shadow"].shadow_diff) == (200, 0.0)


def test_the_batch_process_skips_and_counts_jobs_past_its_queue_or_not_taken(
    iris_versions,
):
    import threading
    import time

    from registry.routing import version_ref

    release = threading.Event()
    taken = []

    def predict(jobs):
        taken.extend(jobs)
        release.wait(10)
        return None  # as when no shadow process could be started

    ref = version_ref("iris", 2)
    job = shadow.ShadowJob(ref, b"{}", "application/json", "rest", None, [], "j", "")

    def skipped() -> float:
        labels = {"model": "iris"}
        return REGISTRY.get_sample_value("modelhub_shadow_skipped_total", labels) or 0.0

    jobs = shadow.ShadowQueue(size=2, predict=predict)
    before = skipped()
    jobs.offer([job])  # taken by the thread, which then waits
    deadline = time.monotonic() + 5
    while not taken and time.monotonic() < deadline:
        time.sleep(0.01)
    for _ in range(4):
        jobs.offer([job])  # two wait, two are skipped
    assert skipped() == before + 2
    release.set()
    jobs.join(5)
    assert len(taken) == 3
    assert skipped() == before + 2 + 3


def shadow_job(request_id: str, rows: list[dict], served: list) -> shadow.ShadowJob:
    from registry.routing import version_ref

    body = json.dumps({"data": rows}).encode()
    return shadow.ShadowJob(
        version_ref("iris", 2),
        body,
        "application/json",
        "rest",
        None,
        served,
        request_id,
        "",
    )


def test_waiting_jobs_of_one_version_share_one_call_and_keep_their_own_rows(
    iris_versions, iris_sample
):
    rows = records(iris_sample)
    served = ["setosa", "versicolor", "virginica", "virginica"]
    jobs = [
        shadow_job("a", rows[:1], served[:1]),
        shadow_job("b", rows[1:], served[1:]),
        shadow_job("c", rows, served),
    ]
    together = shadow.predicted_together(jobs)
    alone = [shadow.predicted(job) for job in jobs]

    assert [e.request_id for e in together] == ["a", "b", "c"]
    assert [e.batch_size for e in together] == [3, 3, 3]
    assert [(e.status, e.rows, e.shadow_diff) for e in together] == [
        (e.status, e.rows, e.shadow_diff) for e in alone
    ]
    assert [e.rows for e in together] == [1, 3, 4]


def test_a_job_that_fails_in_a_batch_fails_alone(iris_versions, iris_sample):
    rows = records(iris_sample)
    bad = shadow_job("bad", [{"sepal length (cm)": "long"}], ["setosa"])
    jobs = [shadow_job("a", rows[:2], ["setosa"] * 2), bad, shadow_job("c", rows, [])]
    entries = shadow.predicted_together(jobs)

    assert [(e.request_id, e.status) for e in entries] == [
        ("a", 200),
        ("bad", 400),
        ("c", 200),
    ]
    assert entries[1].error_code
    assert [e.batch_size for e in entries] == [2, None, 2]


def test_past_its_share_of_a_core_the_shadow_process_rests_and_jobs_wait(
    iris_versions, settings
):
    """The batch process's queue spends the CPU the shadow process reports;
    past MODELHUB_SHADOW_MAX_SHARE of a core (over a second or so) it waits
    before the next batch, the jobs waiting meanwhile, none dropped."""
    settings.MODELHUB_SHADOW_MAX_SHARE = 0.5  # 0.5 s of CPU a second
    handed: list[shadow.ShadowJob] = []

    def predict(jobs):
        handed.extend(jobs)
        return [shadow.failed_entry(job, 503, "model_crashed") for job in jobs], 0.6

    queue = shadow.ShadowQueue(predict=predict)
    before = skipped_shadows()
    queue._run([shadow_job("first", [], [])])  # allowed: nothing spent yet
    assert queue.budget.pause() > 0, "0.6 s spent, more than the share"
    queue._run([shadow_job("second", [], []), shadow_job("third", [], [])])

    assert [job.request_id for job in handed] == ["first", "second", "third"]
    assert skipped_shadows() == before
    assert RequestLog.objects.filter(route="shadow").count() == 3


def test_with_a_share_of_zero_every_job_is_skipped_and_counted(iris_versions, settings):
    settings.MODELHUB_SHADOW_MAX_SHARE = 0.0
    queue = shadow.ShadowQueue(predict=lambda jobs: pytest.fail("none predicted"))
    before = skipped_shadows()
    queue._run([shadow_job("a", [], []), shadow_job("b", [], [])])
    assert skipped_shadows() == before + 2


def skipped_shadows() -> float:
    labels = {"model": "iris"}
    return REGISTRY.get_sample_value("modelhub_shadow_skipped_total", labels) or 0.0


def test_a_worker_sends_the_shadow_jobs_of_one_window_in_one_message(
    iris_versions, settings, tmp_path
):
    """Under gunicorn a worker's shadow jobs go to the batch process a window
    at a time: one message, one wakeup of each process, for many requests."""
    import socket
    import threading

    from api.dataplane.batch_wire import receive

    path = str(tmp_path / "batch.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    messages: list[tuple] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            while True:
                messages.append(receive(conn))
        except EOFError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    settings.MODELHUB_BATCH_SOCKET = path
    sender = shadow.ShadowSender(window=0.2)
    for index in range(5):
        sender.add(shadow_job(f"sent-{index}", [], []))
    deadline = time.monotonic() + 5
    while not messages and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)

    assert len(messages) == 1
    kind, jobs = messages[0]
    assert kind == "shadows"
    assert [job.request_id for job in jobs] == [f"sent-{i}" for i in range(5)]
    listener.close()
