"""Replay: captured bodies predicted again by another version, compared with
what was served, printed and kept; live traffic and stats never touched, and
nothing captured said plainly."""

from __future__ import annotations

import io
import json

import joblib
import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from sklearn.linear_model import LinearRegression

from monitoring.models import ReplayReport, RequestLog, RequestStat
from monitoring.rollup import catch_up_all
from registry import actions
from registry.models import MLModel

from .test_predict import post, records


def capture(slug: str = "iris") -> None:
    model = MLModel.objects.get(slug=slug)
    actions.update_model(
        model,
        name=model.name,
        description=model.description,
        private=model.private,
        capture_payloads=True,
    )


def replay(*args: str) -> str:
    out = io.StringIO()
    call_command("replay", *args, stdout=out)
    return out.getvalue()


def stored(version) -> object:
    return joblib.load(default_storage.path(version.file.name))


@pytest.fixture
def captured_iris(client, iris_versions, iris_frame):
    """Twelve captured requests of three rows each, in JSON, CSV and V2."""
    capture()
    x, _ = iris_frame
    for index in range(12):
        rows = x.iloc[index * 12 : index * 12 + 3].reset_index(drop=True)
        if index % 3 == 0:
            response = post(
                client, "iris", {"data": records(rows)}, HTTP_X_REQUEST_ID=f"r{index}"
            )
        elif index % 3 == 1:
            response = client.post(
                "/api/predict/iris/",
                rows.to_csv(index=False),
                content_type="text/csv",
                HTTP_X_REQUEST_ID=f"r{index}",
            )
        else:
            inputs = [
                {"name": c, "shape": [3], "datatype": "FP64", "data": rows[c].tolist()}
                for c in rows.columns
            ]
            response = client.post(
                "/v2/models/iris/infer",
                json.dumps({"inputs": inputs}),
                content_type="application/json",
                HTTP_X_REQUEST_ID=f"r{index}",
            )
        assert response.status_code == 200, response.content
    return x


def test_replay_reports_agreement_and_the_requests_that_differ_most(
    captured_iris, iris_versions
):
    one, two = stored(iris_versions[0]), stored(iris_versions[1])
    differing = {}
    for index in range(12):
        rows = captured_iris.iloc[index * 12 : index * 12 + 3]
        count = int((one.predict(rows) != two.predict(rows)).sum())
        if count:
            differing[f"r{index}"] = count
    assert differing, "the two versions must disagree somewhere"

    out = replay("iris", "--version", "2")

    report = ReplayReport.objects.get()
    assert (report.requests, report.rows_compared, report.errors) == (12, 36, 0)
    total = sum(differing.values())
    assert report.agreement == pytest.approx(1 - total / 36)
    worst = report.details["worst"]
    assert {e["request_id"]: e["differing"] for e in worst} == differing
    assert worst[0]["differing"] == max(differing.values())
    assert f"Agreement: {1 - total / 36:.2%} ({total} of 36 rows differ)." in out
    assert f"Report {report.pk} kept" in out


def test_replay_never_touches_live_traffic_or_stats(captured_iris):
    catch_up_all()
    logged, stats = RequestLog.objects.count(), list(RequestStat.objects.values())
    replay("iris", "--version", "2", "--limit", "5")
    catch_up_all()
    assert RequestLog.objects.count() == logged
    assert list(RequestStat.objects.values()) == stats
    assert ReplayReport.objects.get().requests == 5


def test_nothing_captured_is_said_plainly(client, iris_versions, iris_sample):
    assert post(client, "iris", {"data": records(iris_sample)}).status_code == 200
    with pytest.raises(CommandError) as refused:
        replay("iris", "--version", "2")
    message = str(refused.value)
    assert "Nothing captured to replay for 'iris'" in message
    assert "1 request(s) were logged" in message
    assert '"capture_payloads": true' in message
    assert "(nothing_captured)" in message
    assert not ReplayReport.objects.exists()


def test_replay_of_an_unknown_or_invalid_version_is_refused(captured_iris):
    with pytest.raises(CommandError, match="unknown_version"):
        replay("iris", "--version", "9")
    with pytest.raises(CommandError, match="model_unavailable"):
        replay("iris", "--version", "3")
    with pytest.raises(CommandError, match="unknown_model"):
        replay("ghost", "--version", "1")


def test_bodies_cut_at_the_capture_cap_are_skipped_and_counted(
    client, iris_versions, iris_frame, settings
):
    capture()
    settings.MODELHUB_LOG_PAYLOAD_BYTES = 200
    x, _ = iris_frame
    post(client, "iris", {"data": records(x.iloc[:1])})  # fits
    post(client, "iris", {"data": records(x.iloc[:20])})  # cut
    out = replay("iris", "--version", "2")
    report = ReplayReport.objects.get()
    assert (report.requests, report.skipped, report.rows_compared) == (2, 1, 1)
    assert "Skipped 1 body(ies) cut at MODELHUB_LOG_PAYLOAD_BYTES." in out


def test_a_regressor_replay_reports_its_mean_absolute_difference(
    client, publish, numpy_regressor, diabetes_rows
):
    publish(numpy_regressor, "diabetes")
    other = LinearRegression().fit(diabetes_rows, np.arange(len(diabetes_rows)))
    publish(other, "diabetes", activate=False)
    capture("diabetes")
    assert (
        post(client, "diabetes", {"inputs": diabetes_rows.tolist()}).status_code == 200
    )
    out = replay("diabetes", "--version", "2")
    report = ReplayReport.objects.get()
    mae = float(
        np.abs(
            numpy_regressor.predict(diabetes_rows) - other.predict(diabetes_rows)
        ).mean()
    )
    assert report.mae == pytest.approx(mae)
    assert report.agreement is None
    assert "Mean absolute difference" in out


def test_a_body_the_replayed_version_refuses_is_an_error_of_the_report(
    client, publish, iris_classifier, iris_frame, iris_sample
):
    from sklearn.tree import DecisionTreeClassifier

    publish(iris_classifier, "iris")
    x, y = iris_frame
    renamed = x.rename(columns=lambda c: c.replace(" (cm)", ""))
    publish(DecisionTreeClassifier().fit(renamed, y), "iris", activate=False)
    capture()
    post(client, "iris", {"data": records(iris_sample)}, HTTP_X_REQUEST_ID="odd")
    out = replay("iris", "--version", "2")
    report = ReplayReport.objects.get()
    assert (report.errors, report.rows_compared) == (1, 0)
    (error,) = report.details["errors"]
    assert (error["request_id"], error["code"]) == ("odd", "missing_features")
    assert "odd  missing_features" in out


def test_capture_is_a_model_setting_of_the_api_and_the_log(
    client, iris_versions, iris_sample, staff_client
):
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    staff = get_user_model().objects.get(username="staff")
    token = Token.objects.create(user=staff).key
    response = client.patch(
        "/api/models/iris/",
        json.dumps({"capture_payloads": True}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    assert response.status_code == 200, response.content
    assert response.json()["capture_payloads"] is True
    post(client, "iris", {"data": records(iris_sample)})
    assert RequestLog.objects.get().payload.startswith('{"data"')


def test_the_admin_action_starts_the_replay_command_for_the_version(
    staff_client, iris_versions, monkeypatch
):
    from registry import replay_launch

    started = []
    monkeypatch.setattr(
        replay_launch,
        "start_replay",
        lambda slug, number, **kw: started.append((slug, number, kw)),
    )
    response = staff_client.post(
        "/admin/registry/modelversion/",
        {"action": "replay_version", "_selected_action": [iris_versions[1].pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert started == [("iris", 2, {"by": "staff"})]
    assert "started in a process of its own" in response.content.decode()
    command = replay_launch.replay_command("iris", 2, by="staff")
    assert command[2:6] == ["replay", "iris", "--version", "2"]
