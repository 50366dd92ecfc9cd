"""Request quotas shared by every host: the GCRA counters of api.access.quota,
kept in the Redis of ``REDIS_URL``.

One Lua script reads and advances a caller's counter, so it is atomic however
many workers on however many hosts ask at once, and it reads Redis's clock,
so hosts whose clocks disagree still agree on the wait. A counter expires
once its caller is idle long enough to have its whole allowance back:
nothing is lost, since a missing counter and a spent-out one mean the same.

A quota is not a cache, so this is redis-py, not Django's cache API: a cache
may drop a key or fail silently, either of which would lift the throttle.

Redis down fails open: the request is allowed, counted in
``modelhub_throttle_fail_open_total``, and the outage logged once. The worker
then leaves Redis alone for ``RETRY_SECONDS``: a dead Redis costs a request
one short timeout a second per worker, and nothing otherwise.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import threading
import time
from urllib.parse import urlsplit

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

from monitoring import metrics

from ..rates import parse_rate

logger = logging.getLogger(__name__)

RETRY_SECONDS = 1.0  # how long a worker lets requests through after a failure

# KEYS[1]: the caller's counter (its theoretical arrival time, in seconds);
# ARGV: the interval between requests and the period, in seconds. Returns
# nil when the request is allowed (and counted), else the seconds to wait.
# '%.17g' keeps every bit of a double; Lua's tostring() would round the time
# to a tenth of a millisecond.
_TAKE = """
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat + interval - now - period
if wait > 0 then return string.format('%.17g', wait) end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.17g', tat),
           'PX', math.ceil((tat - now) * 1000))
return false
"""


def default_prefix() -> str:
    """One namespace per install: every host of an install has its secret key
    (which the keys' names never reveal), while each may reach the shared
    database by a name of its own."""
    return _prefix_for(settings.SECRET_KEY)


@functools.lru_cache(maxsize=4)
def _prefix_for(secret_key: str) -> str:
    digest = hmac.new(secret_key.encode(), b"redis-prefix", hashlib.sha256)
    return f"modelhub:{digest.hexdigest()[:12]}:"


def where(url: str) -> str:
    """The server a URL names, for log lines: never its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname}:{parts.port or 6379}"


class ClusterQuota:
    def __init__(self, url: str, *, prefix: str, timeout: float) -> None:
        self.url, self.prefix, self.timeout = url, prefix, timeout
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            # One immediate retry on a fresh connection, for a pooled one that
            # a Redis restart closed; none after a timeout, which would only
            # double the wait on a Redis that hangs.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._take = client.register_script(_TAKE)
        self._lock = threading.Lock()
        self._retry_at = 0.0  # while time.monotonic() is before it, Redis rests
        self._down = False
        self._passed = 0  # requests let through during this outage

    def take(self, ident: str, rate: str) -> float | None:
        """None when allowed (the request is counted); else seconds to wait."""
        allowed, period = parse_rate(rate)
        if self._retry_at and time.monotonic() < self._retry_at:
            return self._fail_open(None)
        try:
            wait = self._take(
                keys=[f"{self.prefix}quota:{ident}"],
                args=[repr(period / allowed), repr(period)],
            )
        except RedisError as exc:
            # Whatever stops Redis counting (down, hung, out of memory, a
            # read-only replica) must not stop predictions.
            return self._fail_open(exc)
        if self._down:
            self._recovered()
        return None if wait is None else float(wait)

    def _fail_open(self, error: RedisError | None) -> None:
        metrics.THROTTLE_FAIL_OPEN.inc()
        with self._lock:
            self._passed += 1
            if error is None:
                return None
            self._retry_at = time.monotonic() + RETRY_SECONDS
            if self._down:
                return None
            self._down = True
        logger.warning(
            "Redis at %s could not count requests (%s): they are not throttled "
            "until it can (asked again every %g s)",
            where(self.url),
            error,
            RETRY_SECONDS,
        )
        return None

    def _recovered(self) -> None:
        with self._lock:
            if not self._down:
                return
            self._down, self._retry_at = False, 0.0
            passed, self._passed = self._passed, 0
        logger.info(
            "Redis at %s answers again: requests are throttled; %d went "
            "through unthrottled meanwhile",
            where(self.url),
            passed,
        )


_quota: ClusterQuota | None = None


def cluster_quota() -> ClusterQuota:
    """The process's quota for REDIS_URL (made again when the settings change)."""
    global _quota
    url = settings.REDIS_URL
    prefix = settings.MODELHUB_REDIS_PREFIX or default_prefix()
    timeout = settings.MODELHUB_REDIS_TIMEOUT_MS / 1000
    quota = _quota
    if quota is None or (quota.url, quota.prefix, quota.timeout) != (
        url,
        prefix,
        timeout,
    ):
        quota = _quota = ClusterQuota(url, prefix=prefix, timeout=timeout)
    return quota
