"""Routes pushed to gunicorn workers on PostgreSQL (registry.notices).

Each worker serves the routes it resolved without a query until a notice
says otherwise; the recheck interval is set far beyond each test here, so
what the workers serve after a change comes from the push alone. The
changes are made by another process (``manage.py shell``, as an operator's
CLI or another host would) or past ModelHub (a raw UPDATE, which sends no
notice).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.servers import (
    PROJECT_ROOT,
    Install,
    Outcome,
    Server,
    Traffic,
    report_gate,
    send_all,
    start_gunicorn,
    suite_uses_postgres,
)

pytestmark = pytest.mark.skipif(
    not suite_uses_postgres(),
    reason="routes are pushed with PostgreSQL's LISTEN/NOTIFY (the suite runs "
    "on SQLite: tests/registry/test_changes.py covers its generation file)",
)
WORKERS = 2
LISTENER = "modelhub-route-listener"
STORM = 1000


def serve(install: Install, run_dir, **env: str) -> Server:
    settings = {**install.env, "MODELHUB_ROUTE_RECHECK_MS": "600000", **env}
    return start_gunicorn(settings, run_dir, workers=WORKERS)


def listener_pids(install: Install) -> set[int]:
    rows = install.query(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
        "AND datname = current_database()",
        (LISTENER,),
    )
    return {pid for (pid,) in rows}


def wait_for_listeners(server: Server, install: Install, old: set[int]) -> set[int]:
    """Every worker's listener connected, none of them one of ``old``."""
    found: set[int] = set()

    def connected() -> bool:
        nonlocal found
        found = listener_pids(install)
        return len(found) == WORKERS and not found & old

    server.wait_for(connected, f"{WORKERS} listeners", timeout=20)
    return found


def from_every_worker(server: Server, prefix: str) -> list[Outcome]:
    """Batches of requests until each worker has answered some."""
    outcomes: list[Outcome] = []
    for batch in range(10):
        outcomes += send_all(server, f"{prefix}{batch}", 16, clients=4)
        if len(server.pids_that_served(prefix)) == WORKERS:
            return outcomes
    pytest.fail(f"not every worker answered {prefix}")


def warm(server: Server, install: Install) -> set[int]:
    """Every worker listening and holding the route it resolved since; the
    listeners' pids."""
    pids = wait_for_listeners(server, install, set())
    assert set(versions(from_every_worker(server, "warm-"))) == {(200, "1")}
    return pids


def versions(outcomes: list[Outcome]) -> Counter:
    return Counter((o.status, o.version) for o in outcomes)


def test_an_activation_in_another_process_is_served_by_every_worker_next(
    install: Install, tmp_path, gunicorn_servers
):
    server = serve(install, tmp_path)
    warm(server, install)

    install.shell("actions.activate(model.versions.get(number=2))")
    outcomes = from_every_worker(server, "after-")
    assert set(versions(outcomes)) == {(200, "2")}
    assert outcomes[0].json()["predictions"] == [install.predictions[2]]
    assert "Traceback" not in server.log_text()


def test_a_lost_listening_connection_drops_the_cached_routes_of_every_worker(
    install: Install, tmp_path, gunicorn_servers
):
    """A raw UPDATE sends no notice: it stands for a notice missed while the
    listening connections were down."""
    server = serve(install, tmp_path)
    before = warm(server, install)
    install.query(
        "UPDATE registry_mlmodel SET active_version_id = "
        "(SELECT id FROM registry_modelversion WHERE number = 2) "
        "WHERE slug = 'iris' RETURNING id"
    )
    assert set(versions(from_every_worker(server, "unannounced-"))) == {(200, "1")}

    install.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = %s AND datname = current_database()",
        (LISTENER,),
    )
    wait_for_listeners(server, install, before)
    assert set(versions(from_every_worker(server, "reconnected-"))) == {(200, "2")}
    assert "connection lost, every cached route is dropped" in server.log_text()


STORM_SCRIPT = f"""
import time
started = time.monotonic()
v1, v2 = model.versions.get(number=1), model.versions.get(number=2)
for i in range({STORM}):
    actions.activate(v2 if i % 2 == 0 else v1)
actions.activate(v2)
print("storm-seconds", round(time.monotonic() - started, 2))
"""


@pytest.mark.slow
def test_a_storm_of_activations_leaves_workers_correct_and_responsive(
    install: Install, tmp_path, gunicorn_servers
):
    server = serve(install, tmp_path)
    warm(server, install)
    storm = subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-c", _shell(STORM_SCRIPT)],
        cwd=PROJECT_ROOT,
        env=install.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    during: list[Outcome] = []
    started = time.monotonic()
    while storm.poll() is None and time.monotonic() - started < 120:
        during += Traffic(server, f"storm{len(during)}-", 16, clients=4).finish()
    out, err = storm.communicate(timeout=60)
    assert storm.returncode == 0, err
    storm_seconds = float(out.split("storm-seconds")[1])

    predictions = {str(n): [p] for n, p in install.predictions.items()}
    assert {o.status for o in during} == {200}
    assert {o.version for o in during} <= {"1", "2"}
    assert all(o.json()["predictions"] == predictions[o.version] for o in during)
    after = from_every_worker(server, "after-")
    assert set(versions(after)) == {(200, "2")}
    assert "Traceback" not in server.log_text()
    report_gate(
        "a storm of activations under traffic (routes pushed)",
        activations=STORM + 1,
        storm_seconds=storm_seconds,
        requests_during=len(during),
        by_version=dict(Counter(o.version for o in during)),
        errors=0,
    )


def _shell(statement: str) -> str:
    return (
        "from registry import actions\n"
        "from registry.models import MLModel\n"
        "model = MLModel.objects.get(slug='iris')\n" + statement
    )
