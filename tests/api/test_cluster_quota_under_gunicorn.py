"""The cluster's quota through the real HTTP stack: gunicorn masters of two
workers each, as two hosts of one install run them, sharing one Redis."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.servers import (
    IRIS_ROW,
    Install,
    Server,
    assert_quota_held,
    free_port,
    metric_samples,
    start_gunicorn,
)

WORKERS = 2


def start_host(
    install: Install, gunicorn_servers: list[Server], name: str, **env: str
) -> Server:
    """A host of the install: its own quota file, metrics and log."""
    run_dir = install.run_dir / name
    run_dir.mkdir()
    server = start_gunicorn(
        {
            **install.env,
            "MODELHUB_QUOTA_FILE": str(run_dir / "quota.sqlite3"),
            **env,
        },
        run_dir,
        workers=WORKERS,
    )
    gunicorn_servers.append(server)
    return server


def predict(server: Server, request_id: str):
    return server.post(
        "/api/predict/iris/", {"data": IRIS_ROW}, headers={"X-Request-ID": request_id}
    )


def test_throttle_holds_for_the_whole_cluster(
    install: Install, gunicorn_servers: list[Server], redis_url: str, redis_prefix: str
) -> None:
    """5/minute is five answers from the cluster: twelve requests at once,
    spread over two hosts whose quota files would each allow five."""
    env = {
        "REDIS_URL": redis_url,
        "MODELHUB_REDIS_PREFIX": redis_prefix,
        "MODELHUB_THROTTLE_RATE": "5/minute",
        # Counts, not timings, are asserted: a loaded test machine must not
        # let a slow answer through as an outage.
        "MODELHUB_REDIS_TIMEOUT_MS": "2000",
    }
    hosts = [start_host(install, gunicorn_servers, f"host-{n}", **env) for n in "ab"]
    calls = [(hosts[i % 2], f"cluster-{i}") for i in range(12)]
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        responses = list(pool.map(lambda call: predict(*call), calls))
    assert_quota_held(responses, allowed=5, wait=12)
    for host in hosts:
        assert host.pids_that_served("cluster-")


def test_predictions_go_on_when_redis_is_down(
    install: Install, gunicorn_servers: list[Server]
) -> None:
    """Each worker that served logs the outage once, and every request it let
    through is counted."""
    server = start_host(
        install,
        gunicorn_servers,
        "host",
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens
        MODELHUB_THROTTLE_RATE="1/hour",
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda i: predict(server, f"down-{i}"), range(12)))
    assert [r.status for r in responses] == [200] * 12
    ((_, passed),) = metric_samples(server, "modelhub_throttle_fail_open_total")
    assert passed == 12
    logged = server.log_text().count("could not count requests")
    assert 1 <= logged == len(server.pids_that_served("down-")), server.log_text()
