"""Redis for the tests of what the cluster shares: the one CI runs at
127.0.0.1:6379, a private redis-server a test may stop, and a server that
never answers.

Tests never touch another test's keys: each takes its own prefix.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import redis

SHARED_URL = "redis://127.0.0.1:6379/0"
SKIP_HINT = "apt-get install redis-server (.ci/run installs and starts one)"


@pytest.fixture
def redis_url() -> str:
    """The shared Redis at 127.0.0.1:6379; skips the test when none answers."""
    client = redis.Redis.from_url(SHARED_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis answers at 127.0.0.1:6379 ({exc}): {SKIP_HINT}")
    finally:
        client.close()
    return SHARED_URL


def unique_prefix() -> str:
    return f"modelhub-test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A namespace of this test's own; its keys are deleted afterwards."""
    prefix = unique_prefix()
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
    finally:
        client.close()


@contextmanager
def own_redis_server(port: int) -> Iterator[subprocess.Popen]:
    """A redis-server of the test's own on ``port`` (no persistence), stopped
    by its pid when the block ends."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(f"redis-server is not installed: {SKIP_HINT}")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        + ["--appendonly", "no", "--daemonize", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start on port {port}")
                time.sleep(0.02)
        client.close()
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class SilentServer:
    """Accepts connections and never answers: a Redis that hangs."""

    port: int
    accepted: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@contextmanager
def silent_server() -> Iterator[SilentServer]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    server = SilentServer(listener.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                server.accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for conn in server.accepted:
            conn.close()
