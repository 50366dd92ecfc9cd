"""The cluster's quota in Redis (REDIS_URL): one allowance for every host,
and predictions that go on when Redis does not answer."""

from __future__ import annotations

import logging
import time

import pytest
import redis

from api.access import cluster_quota
from api.access.cluster_quota import ClusterQuota
from monitoring.models import RequestLog
from tests.api.dataplane.test_errors import IRIS_ROW, post
from tests.api.test_web_only_middleware import sample
from tests.redis_server import own_redis_server, silent_server, unique_prefix
from tests.servers import free_port

TIMEOUT = 0.1
FAIL_OPEN = "modelhub_throttle_fail_open_total"


def quota(url: str, prefix: str) -> ClusterQuota:
    """A quota with its own connections, as one host has."""
    return ClusterQuota(url, prefix=prefix, timeout=TIMEOUT)


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == cluster_quota.__name__ and r.levelno == logging.WARNING
    ]


def test_hosts_sharing_a_redis_share_one_allowance(redis_url, redis_prefix):
    first, second = quota(redis_url, redis_prefix), quota(redis_url, redis_prefix)
    answers = [q.take("caller", "4/minute") for q in (first, second) * 3]
    assert answers.count(None) == 4


def test_a_burst_is_allowed_then_each_refusal_names_the_wait(redis_url, redis_prefix):
    limiter = quota(redis_url, redis_prefix)
    answers = [limiter.take("caller", "5/minute") for _ in range(6)]
    assert answers[:5] == [None] * 5
    assert answers[5] is not None and 11 < answers[5] <= 12


def test_an_idle_callers_counter_expires_once_its_allowance_is_back(
    redis_url, redis_prefix
):
    assert quota(redis_url, redis_prefix).take("idle", "20/second") is None
    client = redis.Redis.from_url(redis_url)
    key = f"{redis_prefix}quota:idle"
    assert 0 < client.pttl(key) <= 50  # one request's interval
    time.sleep(0.2)
    assert client.exists(key) == 0


def test_installs_sharing_a_redis_count_apart(redis_url, redis_prefix):
    one, other = quota(redis_url, redis_prefix + "a:"), quota(redis_url, redis_prefix)
    assert one.take("caller", "1/hour") is None
    assert other.take("caller", "1/hour") is None


def test_the_default_prefix_names_the_install_not_its_secret(settings):
    settings.SECRET_KEY = "one install's key"
    prefix = cluster_quota.default_prefix()
    assert prefix.startswith("modelhub:") and "key" not in prefix
    settings.SECRET_KEY = "another install's key"
    assert cluster_quota.default_prefix() != prefix


def test_throttle_holds_for_the_whole_cluster(
    client, iris, settings, redis_url, redis_prefix
):
    settings.REDIS_URL = redis_url
    settings.MODELHUB_REDIS_PREFIX = redis_prefix
    settings.MODELHUB_THROTTLE_RATE = "3/minute"
    statuses = [
        post(client, "/api/predict/iris/", {"data": IRIS_ROW}).status_code
        for _ in range(3)
    ]
    refused = post(client, "/api/predict/iris/", {"data": IRIS_ROW})
    assert statuses == [200] * 3
    assert refused.status_code == 429, refused.content
    assert refused.json()["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 20
    assert RequestLog.objects.filter(error_code="throttled").count() == 1
    # Another host asks the same Redis: the caller's allowance is spent there too.
    assert quota(redis_url, redis_prefix).take("addr:127.0.0.1", "3/minute")


def test_predictions_go_on_when_redis_is_down(client, iris, settings, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    settings.MODELHUB_THROTTLE_RATE = "1/hour"
    before = sample(FAIL_OPEN)
    statuses = [
        post(client, "/api/predict/iris/", {"data": IRIS_ROW}).status_code
        for _ in range(5)
    ]
    assert statuses == [200] * 5
    assert sample(FAIL_OPEN) - before == 5
    assert len(outage_lines(caplog)) == 1
    assert "could not count requests" in outage_lines(caplog)[0]


def test_a_hung_redis_is_asked_once_a_second_not_on_every_request():
    with silent_server() as server:
        limiter = quota(server.url, unique_prefix())
        started = time.monotonic()
        answers = [limiter.take("caller", "1/hour") for _ in range(20)]
        took = time.monotonic() - started
        assert answers == [None] * 20
        assert len(server.accepted) == 1
        assert took < 2  # one short timeout, not redis-py's 5 s
        time.sleep(cluster_quota.RETRY_SECONDS)
        assert limiter.take("caller", "1/hour") is None
        assert len(server.accepted) == 2


def test_an_outage_is_logged_once_and_again_after_a_recovery(caplog):
    caplog.set_level(logging.INFO, logger=cluster_quota.__name__)
    port = free_port()
    limiter = quota(f"redis://127.0.0.1:{port}/0", unique_prefix())
    before = sample(FAIL_OPEN)
    assert [limiter.take("caller", "1/hour") for _ in range(3)] == [None] * 3
    assert len(outage_lines(caplog)) == 1

    with own_redis_server(port):
        time.sleep(cluster_quota.RETRY_SECONDS)
        assert limiter.take("caller", "1/hour") is None  # counted in Redis
        assert limiter.take("caller", "1/hour") is not None
    assert any("3 went through unthrottled" in r.getMessage() for r in caplog.records)
    assert sample(FAIL_OPEN) - before == 3

    assert limiter.take("caller", "1/hour") is None
    assert len(outage_lines(caplog)) == 2
    assert sample(FAIL_OPEN) - before == 4
