"""gunicorn workers whose own refusals are JSON, like every other error.

gunicorn answers a request it cannot parse (a bad request line, oversized or
too many headers, a bad Content-Length) itself, before Django runs, with an
HTML page written by ``gunicorn.util.write_error`` from
``Worker.handle_error``. These workers let gunicorn decide everything as
before (which errors are the client's, the status, its log lines and access
log) and only change what is written: ``{"detail", "code"}``, or the Open
Inference Protocol's ``{"error"}`` on /v2 paths.

Chosen in modelhub/gunicorn.conf.py: the sync worker, or the threaded one
when MODELHUB_THREADS > 1 (a custom class is not swapped for gthread by
gunicorn itself).
"""

from __future__ import annotations

import json
import socket
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

DETAIL_CHARS = 200


class _ErrorPage:
    """Stands in for the client's socket while gunicorn writes its HTML page,
    to keep the status line it chose (write_error -> write_nonblock asks the
    timeout, then calls sendall)."""

    def __init__(self) -> None:
        self.written = b""

    def gettimeout(self) -> float:
        return 0.0

    def sendall(self, data: bytes) -> None:
        self.written += data

    def status(self) -> tuple[int, str]:
        line = self.written.split(b"\r\n", 1)[0].decode("latin-1")
        _, code, reason = line.split(" ", 2)
        return int(code), reason


def json_error(status: int, reason: str, exc: BaseException, path: str) -> bytes:
    """The whole HTTP response for a refusal gunicorn decided on."""
    if status >= 500 and status != 501:
        detail, code = "Internal server error.", "server_error"
    else:
        detail, code = f"{reason}: {exc}"[:DETAIL_CHARS], "bad_request"
    v2 = path == "/v2" or path.startswith("/v2/")
    body = json.dumps({"error": detail} if v2 else {"detail": detail, "code": code})
    return (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
        f"{body}"
    ).encode("ascii")


class JsonErrorsMixin:
    def handle_error(
        self, req: Any, client: socket.socket, addr: Any, exc: BaseException
    ) -> None:
        page = _ErrorPage()
        super().handle_error(req, page, addr, exc)  # type: ignore[misc]
        # Nothing captured would mean gunicorn changed how it writes: still
        # answer, as the client's fault it most often is.
        status, reason = page.status() if page.written else (400, "Bad Request")
        request = req or getattr(exc, "req", None)
        path = getattr(request, "path", "") or ""
        try:
            util.write_nonblock(client, json_error(status, reason, exc, path))
        except OSError:
            self.log.debug("Failed to send error message.")  # type: ignore[attr-defined]


class JsonErrorsSyncWorker(JsonErrorsMixin, SyncWorker):
    """gunicorn's sync worker, its own refusals answered as JSON."""


class JsonErrorsThreadWorker(JsonErrorsMixin, ThreadWorker):
    """gunicorn's threaded worker, its own refusals answered as JSON."""
