"""Hostile input fired at real gunicorn with 2 workers.

Each test sends one hostile request and hands the response to
``Hostile.assert_refused``: the status and code, an answer within
ANSWER_WITHIN seconds, a request-log row under its request id, and both
workers (the one that refused included) serving a normal prediction right
after, with no worker booted anew.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers import (
    Install,
    Response,
    Server,
    copy_install,
    send_all,
    start_gunicorn,
)

ANSWER_WITHIN = 2.0
# Enough single requests that both workers take some (connections are
# accepted by whichever worker is free; a handful may all go to one).
SERVE_ATTEMPTS = 40
SERVE_ROUNDS = 5


@dataclass
class Sent:
    response: Response
    request_id: str
    seconds: float


@dataclass
class Hostile:
    server: Server
    install: Install

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Sent:
        """One request with its own X-Request-ID, timed from send to answer."""
        request_id = f"hostile-{uuid.uuid4().hex[:12]}"
        started = time.monotonic()
        response = self.server.request(
            method, path, body, headers={"X-Request-ID": request_id, **(headers or {})}
        )
        return Sent(response, request_id, time.monotonic() - started)

    def assert_refused(
        self, sent: Sent, status: int, code: str | None, *, logged: bool = True
    ) -> None:
        """The answer, its time, its log row, and both workers still serving."""
        response = sent.response
        assert response.status == status, response.text[:2000]
        assert response.headers.get("Content-Type", "").startswith(
            "application/json"
        ), response.text[:500]
        if code is not None:
            assert response.json().get("code") == code, response.text[:2000]
        assert sent.seconds <= ANSWER_WITHIN, f"answered in {sent.seconds:.2f}s"
        if logged:
            assert self.logged_statuses(sent.request_id) == [status]
        self.assert_still_serving(refused_by=self._pid_of(sent.request_id))

    def assert_still_serving(self, refused_by: str | None = None) -> None:
        """Normal predictions from 8 clients at once, so that both workers
        take some (one after another, one worker may take them all)."""
        booted = len(self.server.booted_workers())
        served: set[str] = set()
        for _ in range(SERVE_ROUNDS):
            prefix = f"normal-{uuid.uuid4().hex[:8]}"
            outcomes = send_all(self.server, prefix, SERVE_ATTEMPTS)
            assert [o.status for o in outcomes] == [200] * SERVE_ATTEMPTS, [
                (o.status, o.error) for o in outcomes if o.status != 200
            ]
            served |= self.server.pids_that_served(prefix)
            if len(served) >= 2 and (refused_by is None or refused_by in served):
                break
        else:
            pytest.fail(f"only workers {served} served the normal requests")
        assert len(self.server.booted_workers()) == booted, "a worker was replaced"
        assert self.server.workers == 2

    def logged_statuses(self, request_id: str, timeout: float = 15.0) -> list[int]:
        """The statuses logged under ``request_id`` (rows land just after the
        response: give them a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.install.query(
                "SELECT status FROM api_requestlog WHERE request_id = %s",
                (request_id,),
            )
            if rows or time.monotonic() > deadline:
                return [status for (status,) in rows]
            time.sleep(0.1)

    def _pid_of(self, request_id: str) -> str | None:
        pids = self.server.pids_that_served(request_id)
        return next(iter(pids), None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.adversarial)


@pytest.fixture(scope="module")
def hostile_server(
    iris_install: Install,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Hostile]:
    """One gunicorn with 2 workers on a copy of the iris registry per module."""
    run_dir: Path = tmp_path_factory.mktemp("hostile")
    with copy_install(iris_install, run_dir / "install") as install:
        server = start_gunicorn(install.env, run_dir, workers=2)
        try:
            yield Hostile(server, install)
        finally:
            server.stop()


@pytest.fixture
def hostile(hostile_server: Hostile) -> Hostile:
    return hostile_server
