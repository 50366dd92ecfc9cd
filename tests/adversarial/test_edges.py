"""Edges of the HTTP layer at real gunicorn: the Host header, and requests
gunicorn itself refuses before Django sees them."""

from __future__ import annotations

import http.client
import socket
import time
import uuid
from pathlib import Path

import pytest

from tests.adversarial.conftest import Hostile, Sent
from tests.servers import (
    IRIS_ROW,
    Install,
    Response,
    copy_install,
    start_gunicorn,
)

V2_BODY = {
    "inputs": [
        {
            "name": "input-0",
            "shape": [1, 4],
            "datatype": "FP64",
            "data": list(IRIS_ROW.values()),
        }
    ]
}


@pytest.mark.parametrize(
    "host", ["evil.example", "localhost.evil.example", "127.0.0.1@evil.example"]
)
def test_predict_for_a_host_not_allowed_answers_400_bad_host(
    hostile: Hostile, host: str
) -> None:
    sent = hostile.send(
        "POST", "/api/predict/iris/", {"data": IRIS_ROW}, {"Host": host}
    )
    hostile.assert_refused(sent, 400, "bad_host")


def test_v2_infer_for_a_host_not_allowed_answers_400_in_the_protocols_json(
    hostile: Hostile,
) -> None:
    sent = hostile.send(
        "POST", "/v2/models/iris/infer", V2_BODY, {"Host": "evil.example"}
    )
    hostile.assert_refused(sent, 400, None)
    assert sent.response.json() == {"error": "Host not allowed."}


# --- Requests gunicorn refuses before Django sees them ----------------------


def raw_exchange(hostile: Hostile, data: bytes, request_id: str = "") -> Sent:
    """``data`` written as is on a new connection, gunicorn's answer read."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", hostile.server.port), 5) as sock:
        sock.sendall(data)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        response = Response(answer.status, answer.headers, answer.read())
    # Without one, an id no request carries (gunicorn's refusals have none).
    request_id = request_id or f"unsent-{uuid.uuid4().hex}"
    return Sent(response, request_id, time.monotonic() - started)


def chunked_post(chunks: bytes, request_id: str = "", path: bytes = b"") -> bytes:
    return (
        b"POST " + (path or b"/api/predict/iris/") + b" HTTP/1.1\r\n"
        b"Host: localhost\r\nX-Request-ID: " + request_id.encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    )


GET = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
GUNICORN_REFUSALS = {
    "request line not HTTP": (b"GARBAGE\r\n\r\n", 400),
    "invalid method": (b"G(T /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
    "unknown HTTP version": (b"GET /healthz HTTP/7.1\r\nHost: localhost\r\n\r\n", 400),
    "request line too long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
    "header too large": (GET + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    "too many headers": (GET + b"X-A: 1\r\n" * 200 + b"\r\n", 431),
    "invalid header name": (GET + b"Bad Header: 1\r\n\r\n", 400),
    "length and chunked both": (
        chunked_post(b"")[:-2] + b"Content-Length: 3\r\n\r\n0\r\n\r\n",
        400,
    ),
    "invalid content length": (GET + b"Content-Length: 1x\r\n\r\n", 400),
}


@pytest.mark.parametrize(
    ("data", "status"), GUNICORN_REFUSALS.values(), ids=GUNICORN_REFUSALS.keys()
)
def test_requests_gunicorn_refuses_answer_json_with_their_status(
    hostile: Hostile, data: bytes, status: int
) -> None:
    """gunicorn answers these before Django runs: no request-log row exists
    for them (nothing reached the request log's middleware), hence
    logged=False; the answer is still JSON with a code, and both workers
    serve on."""
    sent = raw_exchange(hostile, data)
    hostile.assert_refused(sent, status, "bad_request", logged=False)
    assert sent.response.headers["Connection"] == "close"
    assert sent.response.json()["detail"]


def test_a_v2_request_gunicorn_refuses_answers_the_protocols_json(hostile: Hostile):
    """No request-log row: gunicorn refused it before Django ran. (Only where
    gunicorn read the path: a request line it cannot parse has none.)"""
    data = chunked_post(b"0\r\n\r\n", path=b"/v2/models/iris/infer")
    data = data[:-2] + b"Content-Length: 5\r\n\r\n"
    sent = raw_exchange(hostile, data)
    hostile.assert_refused(sent, 400, None, logged=False)
    assert list(sent.response.json()) == ["error"]


@pytest.mark.parametrize(
    "chunks",
    [b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n", b"2;\x00\r\n{}\r\n0\r\n\r\n"],
    ids=["invalid chunk size", "chunk without terminator", "invalid extension"],
)
def test_a_broken_chunked_body_answers_json_400(hostile: Hostile, chunks: bytes):
    """gunicorn parses a chunked body only as the app reads it, so these
    reach Django and are logged; which code they get is the body reader's
    (api/http.py), not gunicorn's."""
    request_id = f"chunked-{uuid.uuid4().hex[:12]}"
    sent = raw_exchange(hostile, chunked_post(chunks, request_id), request_id)
    hostile.assert_refused(sent, 400, None)


def test_threaded_workers_answer_gunicorn_refusals_as_json(
    iris_install: Install, tmp_path: Path
) -> None:
    """MODELHUB_THREADS > 1 runs the threaded worker: its refusals too."""
    with copy_install(iris_install, tmp_path / "install") as install:
        server = start_gunicorn(
            {**install.env, "MODELHUB_THREADS": "2"}, tmp_path, workers=1
        )
        try:
            answer = raw_exchange(Hostile(server, install), b"GARBAGE\r\n\r\n")
            ready = server.get("/healthz")
        finally:
            server.stop()
    assert answer.response.status == 400
    assert answer.response.json()["code"] == "bad_request"
    assert ready.status == 200
    assert "JsonErrorsThreadWorker" in server.log_text()
