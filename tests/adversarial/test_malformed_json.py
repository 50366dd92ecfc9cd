"""The baseline every hostile class is held to: a malformed body."""

from tests.adversarial.conftest import Hostile


def test_malformed_json_answers_400_and_both_workers_keep_serving(
    hostile: Hostile,
) -> None:
    sent = hostile.send("POST", "/api/predict/iris/", b'{"data": [')
    hostile.assert_refused(sent, 400, "malformed_json")
