"""Drift on the dashboard: the chosen model's features worst first, the
reference each version is read against, and the worst features per hour."""

from __future__ import annotations

import json
import re

from tests.monitoring.test_drift import iris_like, send


def dashboard(client, **params) -> str:
    response = client.get("/dashboard/", {"since": "1h", **params})
    assert response.status_code == 200
    return response.content.decode()


def test_a_shifted_feature_tops_the_drift_table_as_an_alert(
    settings, client, staff_client, iris, iris_frame
):
    settings.MODELHUB_DRIFT_BASELINE_ROWS = 1000
    send(client, iris_like(iris_frame, 1000, seed=1))
    send(client, iris_like(iris_frame, 500, seed=7, shift={"petal width (cm)": 2.0}))

    html = dashboard(staff_client, model="iris")
    table = html[html.index('id="drift-v1"') :].split("</table>")[0]
    assert "against its baseline, its first predicted rows (1000 rows)" in table
    features = re.findall(r'<tr data-feature="([^"]+)">', table)
    assert features[0] == "petal width (cm)"
    assert features[-1] == "(predictions)"
    first_row = table.split('<tr data-feature="petal width (cm)">')[1].split("</tr>")[0]
    assert "drift-alert" in first_row
    # versions side by side say the reference and the worst feature
    versions = html[html.index('id="versions-table"') :].split("</table>")[0]
    assert "baseline (1000 rows)" in versions
    assert "petal width (cm)" in versions
    chart = json.loads(
        re.search(
            r'<script id="drift-series" type="application/json">(.*?)</script>',
            html,
            re.S,
        ).group(1)
    )
    (version,) = chart["versions"]
    assert version["features"][0]["name"] == "petal width (cm)"
    assert max(p for p in version["features"][0]["psi"] if p is not None) >= 0.25


def test_a_version_collecting_its_baseline_says_so(
    settings, client, staff_client, iris, iris_frame
):
    settings.MODELHUB_DRIFT_BASELINE_ROWS = 400
    send(client, iris_like(iris_frame, 150, seed=1))
    html = dashboard(staff_client, model="iris")
    assert "collecting its baseline (150 of 400 predicted rows)" in html
    assert 'id="drift-chart"' not in html


def test_drift_is_shown_only_for_a_chosen_model(client, staff_client, iris, iris_frame):
    send(client, iris_like(iris_frame, 50, seed=1))
    assert 'id="drift-panel"' not in dashboard(staff_client)
