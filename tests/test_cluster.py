"""Three ModelHub hosts as a cluster runs them: one PostgreSQL, one S3 store
(moto's server on 127.0.0.1), one Redis; each host its own gunicorn master,
port, local copy directory, quota file and metrics directory (separate ports
rather than network namespaces: the test runs unprivileged).

Under bounded load spread over the three: a version uploaded and activated
through host A is what B and C serve from their next request; hosts whose
local copies are empty load from the store; a host killed with -9 costs the
others nothing; a key's throttle holds for the cluster, not per host; and
/api/stats/ and /metrics (one scrape per host, summed) count every request
once.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.objectstore import ObjectStore
from tests.servers import (
    IRIS_ROW,
    Install,
    Outcome,
    Server,
    Traffic,
    make_install,
    metric_samples,
    postgres_available,
    postgres_database,
    report_gate,
    start_gunicorn,
    wait_for_rows,
)
from tests.test_two_instances import _multipart, train_third_version

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not postgres_available(),
        reason="the cluster shares a PostgreSQL database: none answers on "
        "127.0.0.1:5432 (user postgres)",
    ),
]

HOSTS = ("a", "b", "c")
PER_HOST = 240
THROTTLED_RATE, THROTTLED_SENT = "30/day", 90


@pytest.fixture
def cluster(
    object_store: ObjectStore,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
    gunicorn_servers: list[Server],
) -> Iterator[tuple[Install, dict[str, Server]]]:
    with postgres_database() as url:
        install = make_install(
            tmp_path / "install",
            url,
            **object_store.env(),
            REDIS_URL=redis_url,
            MODELHUB_REDIS_PREFIX=redis_prefix,
            MODELHUB_THROTTLE_RATE="",
        )
        hosts: dict[str, Server] = {}
        for name in HOSTS:
            run_dir = tmp_path / f"host-{name}"
            run_dir.mkdir()
            env = {
                **install.env,
                "MODELHUB_MEDIA_ROOT": str(run_dir / "media"),
                "MODELHUB_MODEL_COPY_DIR": str(run_dir / "model-copies"),
                "MODELHUB_QUOTA_FILE": str(run_dir / "quota.sqlite3"),
                "MODELHUB_DRAIN_FILE": str(run_dir / "drain"),
            }
            hosts[name] = start_gunicorn(env, run_dir, workers=2, wait=False)
            gunicorn_servers.append(hosts[name])
        for server in hosts.values():
            server.wait_for(lambda s=server: s.get("/healthz").status == 200, "up")
            server.wait_until_booted(2)
        yield install, hosts


def staff_keys(install: Install) -> tuple[str, str]:
    """A management key that may upload and activate, and a public predict
    key held to THROTTLED_RATE, both of one staff user."""
    out = install.shell(
        "from django.contrib.auth.models import Permission, User\n"
        "from api.access import issuing\n"
        "owner = User.objects.create_user('ops', is_staff=True)\n"
        "owner.user_permissions.set("
        "Permission.objects.filter(content_type__app_label='registry'))\n"
        "print('manage', issuing.create_key(name='deploy', owner=owner, "
        "management='write')[1])\n"
        f"print('limited', issuing.create_key(name='limited', owner=owner, "
        f"throttle_rate={THROTTLED_RATE!r})[1])"
    )
    keys = dict(
        line.split()
        for line in out.splitlines()
        if line.split()[:1] in (["manage"], ["limited"]) and len(line.split()) == 2
    )
    return keys["manage"], keys["limited"]


def upload_and_activate(server: Server, key: str, path: Path) -> int:
    boundary = uuid.uuid4().hex
    body = _multipart({"activate": "true"}, {"file": path}, boundary)
    response = server.request(
        "POST",
        "/api/models/iris/versions/",
        body,
        headers={
            "Authorization": f"Api-Key {key}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
        timeout=180,
    )
    assert response.status == 201, response.text
    return response.json()["version"]


def next_version(server: Server, request_id: str) -> tuple[int, Any]:
    response = server.post(
        "/api/predict/iris/", {"data": IRIS_ROW}, headers={"X-Request-ID": request_id}
    )
    assert response.status == 200, response.text
    return response.json()["version"], response.json()["predictions"]


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (its workers and their helpers)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        children = parents.get(pending.pop(), [])
        found += children
        pending += children
    return found


def kill_9(server: Server) -> None:
    """The machine is gone: master and workers at once, nothing flushed."""
    pids = [server.proc.pid, *descendants(server.proc.pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.proc.wait(timeout=30)


def copies(server: Server) -> list[str]:
    directory = Path(server.env["MODELHUB_MODEL_COPY_DIR"])
    return sorted(p.name for p in directory.glob("*.joblib"))


def requests_counted(servers: list[Server]) -> float:
    return sum(
        value
        for server in servers
        for _, value in metric_samples(server, "modelhub_predictions_total")
    )


def test_three_hosts_share_one_registry_store_and_throttle(
    cluster: tuple[Install, dict[str, Server]],
    object_store: ObjectStore,
    tmp_path: Path,
    gunicorn_servers: list[Server],
) -> None:
    install, hosts = cluster
    a, b, c = hosts["a"], hosts["b"], hosts["c"]
    manage_key, limited_key = staff_keys(install)
    v1 = install.predictions[1]

    # Every host starts with no local copy: the first load comes from the store.
    for name, server in hosts.items():
        assert next_version(server, f"warm-{name}") == (1, [v1])
        assert len(copies(server)) == 1, name

    # Bounded load on all three while A registers and activates v3.
    during = {
        name: Traffic(server, f"during-{name}", PER_HOST, clients=3)
        for name, server in hosts.items()
    }
    for load in during.values():
        load.wait_until(PER_HOST // 4)
    v3_file, v3 = train_third_version(tmp_path)
    assert upload_and_activate(a, manage_key, v3_file) == 3
    assert next_version(b, "next-b") == (3, [v3]), "B's next request serves v3"
    assert next_version(c, "next-c") == (3, [v3]), "C's next request serves v3"
    assert len(copies(b)) == 2  # v3 came from the store, not from A
    for name, load in during.items():
        outcomes = load.finish()
        assert {o.status for o in outcomes} == {200}, name
        assert {o.version for o in outcomes} <= {"1", "3"}, name

    # C goes away mid-load; A and B serve everything sent to them.
    after = {
        name: Traffic(server, f"after-{name}", PER_HOST, clients=3)
        for name, server in hosts.items()
    }
    after["c"].wait_until(PER_HOST // 4)
    kill_9(c)
    finished: dict[str, list[Outcome]] = {
        name: load.finish() for name, load in after.items()
    }
    for name in ("a", "b"):
        failed = [o for o in finished[name] if o.status != 200]
        assert failed == [], f"host {name}: {failed[:3]}"
        assert {o.version for o in finished[name]} == {"3"}
    answered_by_c = sum(o.status == 200 for o in finished["c"])
    assert answered_by_c < PER_HOST, "C was killed while it had requests to serve"

    # The limited key: THROTTLED_RATE for the cluster, however it is spread.
    throttled = []
    for index in range(THROTTLED_SENT):
        server = (a, b)[index % 2]
        response = server.post(
            "/api/predict/iris/",
            {"data": IRIS_ROW},
            headers={
                "Authorization": f"Api-Key {limited_key}",
                "X-Request-ID": f"limited-{index}",
            },
        )
        throttled.append(response.status)
    allowed = int(THROTTLED_RATE.split("/")[0])
    assert throttled.count(200) == allowed, throttled
    assert throttled.count(429) == THROTTLED_SENT - allowed

    # Every request to A and B logged once; stats and metrics agree.
    # warm-a, warm-b, both loads on both, next-b and the limited key's.
    sent_to_survivors = 2 * (1 + 2 * PER_HOST) + 1 + THROTTLED_SENT
    for prefix, expected in (
        ("during-a", PER_HOST),
        ("during-b", PER_HOST),
        ("after-a", PER_HOST),
        ("after-b", PER_HOST),
        ("limited", THROTTLED_SENT),
    ):
        logged = wait_for_rows(install, prefix, expected)
        assert sum(map(len, logged.values())) == expected, prefix
        assert all(len(rows) == 1 for rows in logged.values()), prefix
    assert requests_counted([a, b]) == sent_to_survivors

    rows = install.query("SELECT count(*) FROM api_requestlog")[0][0]
    for server in (a, b):
        stats = server.get(
            "/api/stats/?since=1h", headers={"Authorization": f"Api-Key {manage_key}"}
        ).json()
        assert stats["totals"]["requests"] == rows
    # A rolling release of B: drained, stopped, started again, nothing failed.
    drain = Path(b.env["MODELHUB_DRAIN_FILE"])
    in_flight = Traffic(b, "drain-b", 60, clients=2)
    in_flight.wait_until(10)
    drain.touch()
    draining = b.get("/readyz")
    assert (draining.status, draining.json()["status"]) == (503, "draining")
    assert a.get("/readyz").status == 200
    assert {o.status for o in in_flight.finish()} == {200}
    assert b.stop() == 0
    drain.unlink()
    b = start_gunicorn(b.env, drain.parent, workers=2)
    gunicorn_servers.append(b)
    assert b.get("/readyz").status == 200
    assert next_version(b, "restarted-b") == (3, [v3])

    report_gate(
        "three hosts: PostgreSQL, S3 store, Redis",
        requests_to_a=1 + 2 * PER_HOST + THROTTLED_SENT // 2,
        requests_to_b=1 + 2 * PER_HOST + 1 + THROTTLED_SENT // 2,
        answered_by_c_in_the_load_it_was_killed_in=answered_by_c,
        failed_on_survivors=0,
        drained_and_restarted_b_failed=0,
        throttle_allowed=throttled.count(200),
        throttle_refused=throttled.count(429),
        rows_logged=rows,
        objects_in_store=len(object_store.keys()),
    )
