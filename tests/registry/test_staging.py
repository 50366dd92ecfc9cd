"""stage(): one pass copies a model file, limits it and fingerprints it."""

from __future__ import annotations

import hashlib
import io

import pytest

from registry.exceptions import InvalidModel, ModelTooLarge
from registry.staging import stage

MESSAGES = {"too_large": "too big here", "empty": "nothing here"}


def test_stage_copies_and_fingerprints_the_bytes_it_writes(tmp_path):
    data = b"PK\x03\x04" + bytes(range(256)) * 9000  # over one read chunk
    target = tmp_path / "model"
    found = stage(io.BytesIO(data), target, max_bytes=len(data), **MESSAGES)
    assert target.read_bytes() == data
    assert found == (hashlib.sha256(data).hexdigest(), len(data), data[:8])


def test_stage_refuses_a_file_over_the_limit_with_the_callers_message(tmp_path):
    with pytest.raises(ModelTooLarge, match="too big here"):
        stage(io.BytesIO(b"x" * 101), tmp_path / "model", max_bytes=100, **MESSAGES)


def test_stage_refuses_an_empty_file_with_the_callers_message(tmp_path):
    with pytest.raises(InvalidModel, match="nothing here"):
        stage(io.BytesIO(b""), tmp_path / "model", max_bytes=100, **MESSAGES)
