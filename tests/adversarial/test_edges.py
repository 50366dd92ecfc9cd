"""Edges of the HTTP layer at real gunicorn: the Host header, and requests
gunicorn itself refuses before Django sees them."""

from __future__ import annotations

import pytest

from tests.adversarial.conftest import Hostile
from tests.servers import IRIS_ROW

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
