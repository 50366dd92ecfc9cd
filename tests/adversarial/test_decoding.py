"""Hostile decoding at real gunicorn (issue #18): wide, deep, huge-shaped,
lax, compressed and chunked bodies, each a coded 4xx within the harness's
time, logged, with both workers serving after."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from tests.adversarial.conftest import Hostile, Sent
from tests.servers import IRIS_ROW

IRIS_HEADER = ",".join(f'"{name}"' for name in IRIS_ROW)
# The defaults of MODELHUB_MAX_BODY_BYTES and MODELHUB_MAX_FEATURES.
BODY_LIMIT = 10 * 1024 * 1024
WIDE = 100_000


def deep(levels: int, inner: str = "1") -> bytes:
    return ("[" * levels + inner + "]" * levels).encode()


def v2_infer(data: bytes) -> bytes:
    return (
        b'{"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", '
        b'"data": ' + data + b"}]}"
    )


def assert_logged_code(hostile: Hostile, sent: Sent, code: str) -> None:
    """V2 answers {"error"} as its protocol says: the code is in the log."""
    rows = hostile.install.query(
        "SELECT error_code FROM api_requestlog WHERE request_id = %s",
        (sent.request_id,),
    )
    assert rows == [(code,)]


def test_csv_with_100000_columns_answers_400_too_many_features(
    hostile: Hostile,
) -> None:
    header = ",".join(f"c{i}" for i in range(WIDE))
    row = ",".join("1" for _ in range(WIDE))
    sent = hostile.send(
        "POST",
        "/api/predict/iris/",
        f"{header}\n{row}\n".encode(),
        {"Content-Type": "text/csv"},
    )
    hostile.assert_refused(sent, 400, "too_many_features")


def test_ids_nested_250_deep_answer_400_too_deep(hostile: Hostile) -> None:
    record = json.dumps(IRIS_ROW)[:-1].encode() + b', "id": ' + deep(250) + b"}"
    sent = hostile.send("POST", "/api/predict/iris/", b'{"data": [' + record + b"]}")
    hostile.assert_refused(sent, 400, "too_deep")


def test_v2_data_nested_1000_deep_answers_400_too_deep(hostile: Hostile) -> None:
    sent = hostile.send("POST", "/v2/models/iris/infer", v2_infer(deep(1_000)))
    hostile.assert_refused(sent, 400, None)
    assert_logged_code(hostile, sent, "too_deep")


def test_management_body_5000_deep_answers_400_too_deep(hostile: Hostile) -> None:
    """The request log holds predictions only, so this refusal has no row
    (logged=False); nothing is stored either."""
    token = hostile.install.shell(
        "from django.contrib.auth import get_user_model\n"
        "from rest_framework.authtoken.models import Token\n"
        "user = get_user_model().objects.create_superuser('hostile-staff')\n"
        "print(Token.objects.create(user=user).key)"
    ).split()[-1]
    body = b'{"slug": "deep", "description": ' + deep(5_000) + b"}"
    sent = hostile.send(
        "POST", "/api/models/", body, {"Authorization": f"Token {token}"}
    )
    hostile.assert_refused(sent, 400, "too_deep", logged=False)
    assert (
        hostile.install.query("SELECT slug FROM registry_mlmodel WHERE slug = 'deep'")
        == []
    )


@pytest.mark.parametrize("shape", [[0, 2**62], [2**62, 0]], ids=["0x2^62", "2^62x0"])
def test_v2_huge_shape_answers_400_invalid_tensor(
    hostile: Hostile, shape: list[int]
) -> None:
    body = json.dumps(
        {"inputs": [{"name": "x", "shape": shape, "datatype": "FP64", "data": []}]}
    ).encode()
    sent = hostile.send("POST", "/v2/models/iris/infer", body)
    hostile.assert_refused(sent, 400, None)
    assert_logged_code(hostile, sent, "invalid_tensor")


def test_csv_number_with_an_underscore_answers_400_invalid_value(
    hostile: Hostile,
) -> None:
    body = f"{IRIS_HEADER}\n5_1,3.5,1.4,0.2\n".encode()
    sent = hostile.send(
        "POST", "/api/predict/iris/", body, {"Content-Type": "text/csv"}
    )
    hostile.assert_refused(sent, 400, "invalid_value")


def test_gzip_bomb_answers_413_on_its_decompressed_size(hostile: Hostile) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"\0" * 1_000_000
    bomb = b"".join(packer.compress(zeros) for _ in range(200)) + packer.flush()
    assert len(bomb) < BODY_LIMIT // 20
    sent = hostile.send(
        "POST", "/api/predict/iris/", bomb, {"Content-Encoding": "gzip"}
    )
    hostile.assert_refused(sent, 413, "payload_too_large")
    served = hostile.server.post(
        "/api/predict/iris/",
        gzip.compress(json.dumps({"data": IRIS_ROW}).encode()),
        headers={"Content-Encoding": "gzip"},
    )
    assert served.status == 200, served.text[:500]


def chunked(body: bytes, size: int = 65_536) -> bytes:
    """``body`` in HTTP/1.1 chunks, as sent with Transfer-Encoding: chunked."""
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def test_chunked_body_is_read_and_over_the_limit_answers_413(
    hostile: Hostile,
) -> None:
    headers = {"Transfer-Encoding": "chunked"}
    row = json.dumps({"data": IRIS_ROW}).encode()
    served = hostile.server.post("/api/predict/iris/", chunked(row), headers=headers)
    assert served.status == 200, served.text[:500]
    padded = json.dumps({"data": IRIS_ROW, "params": {"pad": "x" * BODY_LIMIT}})
    sent = hostile.send("POST", "/api/predict/iris/", chunked(padded.encode()), headers)
    hostile.assert_refused(sent, 413, "payload_too_large")
