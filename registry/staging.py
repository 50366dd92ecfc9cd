"""Staging a model file: one pass copies, limits and fingerprints it.

An upload, and the model file taken out of an MLflow zip, are each read
once: the sha256 and size that register_version() records come from the very
bytes written to the private copy it preflights and stores.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO, NamedTuple

from .exceptions import InvalidModel, ModelTooLarge

_CHUNK = 1024 * 1024
_HEAD = 8  # enough for every format's magic bytes


class Fingerprint(NamedTuple):
    """What the copy learned of the file: sha256, size and first bytes."""

    digest: str
    size: int
    head: bytes


def stage(
    source: IO[bytes], target: Path, *, max_bytes: int, too_large: str, empty: str
) -> Fingerprint:
    """Copy ``source`` to ``target``, counting real bytes: declared sizes can lie.

    Raises ModelTooLarge(``too_large``) past ``max_bytes``, before the rest
    is read, and InvalidModel(``empty``) for no bytes at all; the messages
    are the caller's, which knows what the file is to the uploader.
    """
    digest = hashlib.sha256()
    size = 0
    head = b""
    with open(target, "wb") as out:
        while chunk := source.read(_CHUNK):
            if not head:
                head = chunk[:_HEAD]
            size += len(chunk)
            if size > max_bytes:
                raise ModelTooLarge(too_large)
            digest.update(chunk)
            out.write(chunk)
    if size == 0:
        raise InvalidModel(empty)
    return Fingerprint(digest.hexdigest(), size, head)
