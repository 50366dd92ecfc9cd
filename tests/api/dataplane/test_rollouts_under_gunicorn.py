"""The traffic policy as deployed: gunicorn with two workers, the policy set
from another process (as the admin, the API or the CLI would), load from
concurrent clients. The split is honest, a sticky key keeps its version,
weight 0 sends the candidate nothing, and promote is served by every worker
from its next request."""

from __future__ import annotations

import http.client
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.api.dataplane.test_batching_under_gunicorn import batch_servers
from tests.servers import (
    IRIS_ROW,
    Install,
    Server,
    manage,
    metric_samples,
    start_gunicorn,
    wait_for_rows,
)

WORKERS = 2


@dataclass(frozen=True)
class Answer:
    request_id: str
    status: int
    version: int
    route: str
    prediction: str


def ask(server: Server, prefix: str, count: int, *, key=None) -> list[Answer]:
    """``count`` unpinned predictions from 8 clients; ``key(i)`` gives the
    X-Route-Key of request i (none when ``key`` is None)."""

    def one(index: int) -> Answer:
        request_id = f"{prefix}-{index}"
        headers = {"X-Request-ID": request_id}
        if key is not None:
            headers["X-Route-Key"] = key(index)
        for attempt in range(3):
            try:
                response = server.post(
                    "/api/predict/iris/", {"data": IRIS_ROW}, headers=headers
                )
                break
            except (OSError, http.client.HTTPException):
                if attempt == 2:
                    raise
        body = response.json() if response.status == 200 else {}
        assert response.status == 200, response.body[:300]
        version = int(response.headers["X-Model-Version"])
        assert body["version"] == version
        return Answer(
            request_id,
            response.status,
            version,
            response.headers["X-Model-Route"],
            body["predictions"][0],
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def set_policy(install: Install, statement: str) -> None:
    install.shell(
        "from registry import rollouts\n"
        "from registry.rollouts import PolicySpec\n"
        "v2 = model.versions.get(number=2)\n" + statement
    )


def start(install: Install, gunicorn_servers: list[Server], **env: str) -> Server:
    """gunicorn with WORKERS workers on ``install``, ``env`` added."""
    started = start_gunicorn({**install.env, **env}, install.run_dir, workers=WORKERS)
    gunicorn_servers.append(started)
    return started


@pytest.fixture
def server(install, gunicorn_servers) -> Server:
    return start(
        install,
        gunicorn_servers,
        MODELHUB_LOG_COMMIT_MS="0",
        # Every shadow predicted, none skipped: the counts are exact.
        MODELHUB_SHADOW_MAX_SHARE="1.0",
    )


def assert_answers_match_their_version(install: Install, answers: list[Answer]) -> None:
    for answer in answers:
        expected_route = "candidate" if answer.version == 2 else "active"
        assert answer.route == expected_route, answer
        assert answer.prediction == install.predictions[answer.version], answer


@pytest.mark.slow
def test_the_candidate_answers_its_weight_of_5000_requests(install, server):
    set_policy(
        install, "rollouts.set_policy(model, PolicySpec(candidate=v2, weight=0.2))"
    )
    answers = ask(server, "split", 5000)

    candidate = sum(a.route == "candidate" for a in answers)
    assert 900 <= candidate <= 1100, f"{candidate / 50:.1f}% of 5000, not 20% ± 2%"
    assert_answers_match_their_version(install, answers)
    assert len(server.pids_that_served("split")) == WORKERS

    wait_for_rows(install, "split", 5000)
    logged = dict(
        install.query(
            "SELECT route, COUNT(*) FROM api_requestlog "
            "WHERE request_id LIKE 'split-%%' GROUP BY route"
        )
    )
    assert logged == {"candidate": candidate, "active": 5000 - candidate}


def test_each_of_200_sticky_keys_gets_one_version_on_every_repeat(install, server):
    set_policy(
        install,
        "rollouts.set_policy(model, PolicySpec(candidate=v2, weight=0.2, "
        "sticky_header='X-Route-Key'))",
    )
    answers = ask(server, "sticky", 2000, key=lambda i: f"caller-{i % 200}")

    versions: dict[str, set[int]] = {}
    for index, answer in enumerate(answers):
        versions.setdefault(f"caller-{index % 200}", set()).add(answer.version)
    assert all(len(seen) == 1 for seen in versions.values())
    on_candidate = sum(seen == {2} for seen in versions.values())
    assert 20 <= on_candidate <= 60, on_candidate  # 40 expected of 200
    assert_answers_match_their_version(install, answers)
    assert len(server.pids_that_served("sticky")) == WORKERS


def test_weight_zero_then_promote_in_every_worker(install, server):
    set_policy(
        install, "rollouts.set_policy(model, PolicySpec(candidate=v2, weight=0.0))"
    )
    held = ask(server, "held", 400)
    assert Counter(a.route for a in held) == {"active": 400}

    set_policy(
        install, "rollouts.set_policy(model, PolicySpec(candidate=v2, weight=0.5))"
    )
    assert {a.version for a in ask(server, "split", 200)} == {1, 2}
    set_policy(install, "rollouts.promote(model)")
    promoted = ask(server, "promoted", 400)

    assert Counter((a.version, a.route) for a in promoted) == {(2, "active"): 400}
    assert {a.prediction for a in promoted} == {install.predictions[2]}
    assert len(server.pids_that_served("promoted")) == WORKERS


def test_every_request_gets_one_shadow_row_and_no_shadow_in_its_answer(install, server):
    set_policy(install, "rollouts.set_policy(model, PolicySpec(shadow=v2))")
    answers = ask(server, "shadowed", 300)

    assert Counter((a.version, a.route) for a in answers) == {(1, "active"): 300}
    assert {a.prediction for a in answers} == {install.predictions[1]}
    logged = wait_for_rows(install, "shadowed", 600)
    assert len(logged) == 300
    assert all(sorted(rows) == [(200, 1), (200, 2)] for rows in logged.values())
    routes = dict(
        install.query(
            "SELECT route, COUNT(*) FROM api_requestlog "
            "WHERE request_id LIKE 'shadowed-%%' GROUP BY route"
        )
    )
    assert routes == {"active": 300, "shadow": 300}
    # The two iris versions disagree on this row: every shadow row says so.
    disagreements = install.query(
        "SELECT SUM(shadow_diff) FROM api_requestlog WHERE route = 'shadow'"
    )
    assert disagreements == [(300.0,)]
    (batch,) = batch_servers(server)
    (predicting,) = shadow_processes(batch)
    assert scheduling_policy(predicting) == SCHED_IDLE, "it runs on idle CPU only"


SCHED_IDLE = 5  # sched.h


def shadow_processes(batch_server: int) -> set[int]:
    """The pids of the shadow process(es) the batch server started."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"api.dataplane.shadow_host" in command and parent == batch_server:
            found.add(int(entry.name))
    return found


def scheduling_policy(pid: int) -> int:
    """Field 41 of /proc/PID/stat (the fields after the name start at 3)."""
    fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[41 - 3])


def test_a_shadow_that_ends_its_process_fails_only_its_own_rows(
    install, gunicorn_servers
):
    """Its rows say the model crashed, each crash counts against it, a new
    shadow process takes the next job; callers and the batch process never
    notice."""
    add_plugin_version(install, "ending_shadows", ENDS_ITS_PROCESS, "EndsOnLiveTraffic")
    server = start(
        install,
        gunicorn_servers,
        MODELHUB_LOG_COMMIT_MS="0",
        MODELHUB_MAX_MODEL_CRASHES="1000",
    )
    set_policy(
        install,
        "rollouts.set_policy(model, PolicySpec(shadow=model.versions.get(number=3)))",
    )

    def crashes() -> int:
        ((count,),) = install.query(
            "SELECT v.crashes FROM registry_modelversion v "
            "JOIN registry_mlmodel m ON m.id = v.model_id "
            "WHERE m.slug = 'iris' AND v.number = 3"
        )
        return count

    # The shadow process restarts at most once a second: a round of requests
    # every 1.2 s, at least four, until four processes have ended (a busy
    # machine may hand two rounds' jobs to one process).
    answers: list[Answer] = []
    batches: set[int] = set()
    rounds, deadline = 0, time.monotonic() + 60
    while rounds < 4 or (crashes() < 4 and time.monotonic() < deadline):
        answers += ask(server, f"ending-{rounds}", 5)
        batches |= batch_servers(server)
        time.sleep(1.2)
        rounds += 1
    sent = 5 * rounds
    assert Counter((a.version, a.route) for a in answers) == {(1, "active"): sent}
    assert {a.prediction for a in answers} == {install.predictions[1]}

    def shadows() -> list[tuple[int, str]]:
        return install.query(
            "SELECT status, error_code FROM api_requestlog "
            "WHERE route = 'shadow' AND request_id LIKE 'ending-%%'"
        )

    def skipped() -> float:
        return sum(
            v for _, v in metric_samples(server, "modelhub_shadow_skipped_total")
        )

    deadline = time.monotonic() + 30
    while len(shadows()) + skipped() < sent and time.monotonic() < deadline:
        time.sleep(0.2)
    crashed = shadows()
    assert len(crashed) + skipped() == sent
    assert set(crashed) == {(503, "model_crashed")}
    # A new shadow process took the jobs after each one that ended; a crash
    # is counted once for the jobs the process held together.
    assert 4 <= crashes() <= len(crashed)
    assert len(batches) == 1 and batch_servers(server) == batches


FAILS_LIVE = '''
import numpy as np
from sklearn.tree import DecisionTreeClassifier


class FailsLiveTraffic(DecisionTreeClassifier):
    """Passes the preflight's test row; refuses the live rows (long sepals)."""

    def predict(self, x):
        if (np.asarray(x, dtype=float)[:, 0] > 6).any():
            raise ValueError("this candidate refuses live traffic")
        return super().predict(x)
'''


ENDS_ITS_PROCESS = '''
import os

import numpy as np
from sklearn.tree import DecisionTreeClassifier


class EndsOnLiveTraffic(DecisionTreeClassifier):
    """Passes the preflight's test row; ends its process on the live rows."""

    def predict(self, x):
        if (np.asarray(x, dtype=float)[:, 0] > 6).any():
            os._exit(3)
        return super().predict(x)
'''


def add_plugin_version(install: Install, module: str, source: str, cls: str) -> None:
    """iris v3: ``cls`` of plugin ``module`` (``source``), trained on iris and
    uploaded without activating it."""
    import importlib
    import sys

    import joblib
    from sklearn.datasets import load_iris

    plugins = install.run_dir / "plugins"
    plugins.mkdir()
    (plugins / f"{module}.py").write_text(source)
    sys.path.insert(0, str(plugins))
    try:
        model_class = getattr(importlib.import_module(module), cls)
        data = load_iris(as_frame=True)
        labels = data.target.map(dict(enumerate(data.target_names)))
        model = model_class(max_depth=2).fit(data.data, labels)
        joblib.dump(model, install.run_dir / f"{module}.joblib")
    finally:
        sys.path.remove(str(plugins))
        sys.modules.pop(module, None)
    install.env["MODELHUB_PLUGIN_DIRS"] = str(plugins)
    path = str(install.run_dir / f"{module}.joblib")
    out = manage(install.env, "loadmodel", path, "--slug", "iris", "--no-activate")
    assert out.strip() == "iris v3"


@pytest.fixture
def failing_candidate_install(install: Install) -> Install:
    """``install`` plus iris v3, a candidate that raises for the live inputs."""
    add_plugin_version(install, "failing_candidates", FAILS_LIVE, "FailsLiveTraffic")
    return install


def test_a_candidate_failing_every_request_is_rolled_back_by_its_guard(
    failing_candidate_install, gunicorn_servers
):
    install = failing_candidate_install
    server = start(install, gunicorn_servers, MODELHUB_GUARD_CHECK_MS="200")
    install.shell(
        "from registry import rollouts\n"
        "from registry.rollouts import Guards, PolicySpec\n"
        "v3 = model.versions.get(number=3)\n"
        "rollouts.set_policy(model, PolicySpec(candidate=v3, weight=0.5, "
        "guards=Guards(error_rate=0.2, last_requests=20, min_requests=10)))"
    )

    def one(index: int) -> tuple[int, str]:
        response = server.post(
            "/api/predict/iris/",
            {"data": IRIS_ROW},
            headers={"X-Request-ID": f"guarded-{index}"},
        )
        route = response.headers.get("X-Model-Route", "")
        if response.status != 200:
            route = "candidate" if response.json()["code"] == "model_error" else "?"
        return response.status, route

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(one, range(600)))

    active = [status for status, route in outcomes if route == "active"]
    candidate = [status for status, route in outcomes if route == "candidate"]
    assert set(active) == {200}, "the active version's callers saw no failure"
    assert set(candidate) == {422}
    assert 10 <= len(candidate) <= 100, len(candidate)
    assert all(route == "active" for _, route in outcomes[-200:])

    ((action, channel, reason),) = install.query(
        "SELECT c.action, c.channel, c.reason FROM registry_policychange c "
        "WHERE c.action = 'trip'"
    )
    assert channel == "auto" and "error-rate guard of 20.0%" in reason
    ((weight,),) = install.query("SELECT weight FROM registry_trafficpolicy")
    assert weight == 0.0
    trips = sum(
        v for _, v in metric_samples(server, "modelhub_rollout_rollbacks_total")
    )
    assert trips == 1
