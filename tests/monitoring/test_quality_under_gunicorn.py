"""Quality and drift under real gunicorn with two workers: counts and drift
are the same whichever worker served, read from the database, never from the
process that answered."""

from __future__ import annotations

import json
import time

import numpy as np

from tests.monitoring.test_logging_under_gunicorn import start  # noqa: F401
from tests.servers import Server, Traffic

BASELINE_ROWS = 200
FEATURES = [
    "sepal length (cm)",
    "sepal width (cm)",
    "petal length (cm)",
    "petal width (cm)",
]
# iris' own means and spreads
MEANS = [5.84, 3.06, 3.76, 1.20]
SPREADS = [0.83, 0.44, 1.77, 0.76]
SHIFTED = "petal width (cm)"


def rows(count: int, seed: int, shift: float = 0.0) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    drawn = [rng.normal(m, s, count) for m, s in zip(MEANS, SPREADS, strict=True)]
    moved = FEATURES.index(SHIFTED)
    drawn[moved] = drawn[moved] + shift * SPREADS[moved]
    return [
        {n: float(drawn[i][r]) for i, n in enumerate(FEATURES)} for r in range(count)
    ]


def send(server: Server, prefix: str, batch: list[dict]) -> list:
    traffic = Traffic(
        server,
        prefix,
        len(batch),
        request_for=lambda i: ("/api/predict/iris/", {"data": batch[i]}),
        clients=4,
    )
    outcomes = traffic.finish()
    assert [o.status for o in outcomes] == [200] * len(batch)
    return outcomes


def stats_of(server: Server) -> dict:
    install = server.extra["install"]
    out = install.shell(
        "import json\n"
        "from datetime import timedelta\n"
        "from django.utils import timezone\n"
        "from monitoring import rollup, stats\n"
        "rollup.refresh()\n"
        "now = timezone.now()\n"
        "doc = stats.summary(now - timedelta(hours=1), now)\n"
        "print('STATS ' + json.dumps(doc['models'][0]['versions'][0], default=str))"
    )
    return json.loads(out.split("STATS ", 1)[1])


def scored_rows(server: Server) -> int:
    (total,) = server.extra["install"].query(
        'SELECT SUM("count") FROM monitoring_driftcount '
        "WHERE resolution = 'h' AND feature = ''"
    )
    return int(total[0] or 0)


def fitted(server: Server) -> bool:
    (found,) = server.extra["install"].query(
        "SELECT COUNT(*) FROM monitoring_driftreference"
    )
    return found[0] == 1


def wait_for(condition, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not seen in {timeout} s"
        time.sleep(0.2)


def test_counts_and_drift_are_the_same_whichever_worker_served(start):  # noqa: F811
    server = start(MODELHUB_DRIFT_BASELINE_ROWS=str(BASELINE_ROWS))
    steady = send(server, "steady", rows(BASELINE_ROWS, seed=3))
    wait_for(lambda: fitted(server), "the baseline")
    shifted = send(server, "shifted", rows(400, seed=4, shift=2.0))
    assert len(server.pids_that_served("steady")) == 2
    assert len(server.pids_that_served("shifted")) == 2

    # Every row predicted past the baseline is counted once, by whichever
    # worker served it: the workers add their counts within a second or so,
    # with or without another request to prompt them.
    wait_for(lambda: scored_rows(server) >= 400, "400 rows counted")
    assert scored_rows(server) == 400

    answers = [o.json()["predictions"][0] for o in steady + shifted]
    labels = [a if i % 4 else "setosa" for i, a in enumerate(answers)]
    feedback = {
        "feedback": [
            {"request_id": o.request_id, "row": 0, "label": label}
            for o, label in zip(steady + shifted, labels, strict=True)
        ]
    }
    response = server.post("/api/feedback/iris/", feedback)
    assert response.status == 200, response.body
    assert response.json() == {"accepted": 600, "unknown": [], "rejected": []}

    found = stats_of(server)
    right = sum(a == label for a, label in zip(answers, labels, strict=True))
    assert found["requests"] == 600
    assert found["quality"]["labelled"] == 600
    assert found["quality"]["accuracy"] == round(right / 600, 4)
    drift = found["drift"]
    assert (drift["reference"], drift["reference_rows"]) == ("baseline", BASELINE_ROWS)
    assert drift["rows"] == 400
    assert drift["features"][SHIFTED]["status"] == "alert"
