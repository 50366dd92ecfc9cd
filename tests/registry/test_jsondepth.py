"""registry.jsondepth: nesting is bounded exactly, whatever path measures it."""

from __future__ import annotations

import json

import pytest

from registry import jsondepth


def nested(depth: int, strings: int = 0) -> bytes:
    filler = [f"s{i}" for i in range(strings)]
    return json.dumps({"inputs": filler + [json.loads("[" * depth + "]" * depth)]})


@pytest.mark.parametrize("strings", [0, 200], ids=["few-strings", "many-strings"])
def test_a_body_one_level_past_the_limit_is_too_deep(strings):
    body = nested(64, strings).encode()  # dict + list + 64 lists = 66 levels
    with pytest.raises(jsondepth.TooDeep):
        jsondepth.loads(body, limit=65)
    assert jsondepth.loads(body, limit=66)


@pytest.mark.parametrize("strings", [0, 200], ids=["few-strings", "many-strings"])
def test_brackets_inside_strings_do_not_count(strings):
    text = json.dumps(
        {"a": "[" * 500, "b": '"]]]\\', "c": [[1.0] * 4] * 100, "d": ["{"] * strings}
    ).encode()
    assert jsondepth.loads(text, limit=3)["b"] == '"]]]\\'


def test_closing_brackets_in_strings_cannot_hide_depth():
    text = ('{"x": "' + "]" * 100 + '", "y": ' + "[" * 80 + "]" * 80 + "}").encode()
    with pytest.raises(jsondepth.TooDeep):
        jsondepth.loads(text, limit=64)
