"""Quotas and revocations hold across a host's workers: real gunicorn with two
workers, keys made and revoked by ``manage.py apikey`` as an operator would."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.servers import (
    IRIS_ROW,
    Install,
    Server,
    assert_quota_held,
    manage,
    start_gunicorn,
)

WORKERS = 2
RECHECK_MS = 200


def predict(server: Server, request_id: str, key: str | None = None):
    headers = {"X-Request-ID": request_id}
    if key is not None:
        headers["Authorization"] = f"Api-Key {key}"
    return server.post("/api/predict/iris/", {"data": IRIS_ROW}, headers=headers)


def start(install: Install, gunicorn_servers: list[Server], **env: str) -> Server:
    server = start_gunicorn(
        {
            **install.env,
            "MODELHUB_QUOTA_FILE": str(install.run_dir / "quota.sqlite3"),
            **env,
        },
        install.run_dir,
        workers=WORKERS,
    )
    gunicorn_servers.append(server)
    return server


def test_quota_is_shared_by_every_worker_of_the_host(
    install: Install, gunicorn_servers: list[Server]
) -> None:
    """5/minute is five answers from the host, not five per worker: twelve
    requests at once, each on its own connection, so both workers take some."""
    server = start(install, gunicorn_servers, MODELHUB_THROTTLE_RATE="5/minute")
    ids = [f"quota-{i}" for i in range(12)]
    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        responses = list(pool.map(lambda i: predict(server, i), ids))
    # 5/minute: one request every 12 s once the burst is spent.
    assert_quota_held(responses, allowed=5, wait=12)
    assert server.pids_that_served("quota-") == set(server.booted_workers())


def test_key_revoked_by_manage_is_refused_by_every_worker_within_the_recheck(
    install: Install, gunicorn_servers: list[Server]
) -> None:
    secret = manage(install.env, "apikey", "create", "batch", "--owner", "ops")
    server = start(install, gunicorn_servers, MODELHUB_KEY_RECHECK_MS=str(RECHECK_MS))
    workers = set(server.booted_workers())
    answered = until_every_worker_served(server, "before", secret.strip(), workers)
    assert answered == {200}

    manage(install.env, "apikey", "revoke", secret.partition(".")[0])
    # Each worker still trusts the key it verified, for at most the recheck.
    time.sleep(RECHECK_MS / 1000 + 0.1)
    answered = until_every_worker_served(server, "after", secret.strip(), workers)
    assert answered == {401}


def until_every_worker_served(
    server: Server, tag: str, key: str, workers: set[str]
) -> set[int]:
    """Statuses of requests sent a few at a time until each worker took some."""
    statuses: set[int] = set()
    sent = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        while sent < 8 or server.pids_that_served(f"{tag}-") != workers:
            assert sent < 200, f"a worker took no request:\n{server.log_text()}"
            ids = [f"{tag}-{i}" for i in range(sent, sent + 8)]
            statuses |= {
                r.status for r in pool.map(lambda i: predict(server, i, key), ids)
            }
            sent += len(ids)
    return statuses


@pytest.fixture(autouse=True)
def operator(install: Install) -> None:
    """The staff user keys are made for."""
    manage(
        install.env,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model\n"
        "get_user_model().objects.create_user('ops', is_staff=True)",
    )
