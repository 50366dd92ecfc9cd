"""The host's verified local copies of joblib files, for memory-mapped loading.

joblib maps the arrays of an uncompressed file instead of reading them, so
every worker on the host that loads the same copy shares its pages (the page
cache) instead of holding a private copy. Copies are keyed by the version's
sha256, written once (temporary file, then rename, under a lock: concurrent
workers never see half a file) and hashed again before each load, so a copy
damaged on disk is rebuilt from storage, never served.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

logger = logging.getLogger(__name__)

# Protocol 2+ pickles start with PROTO; joblib's compressed files start with
# their compressor's magic instead, and joblib cannot map those.
_PICKLE_PROTO = b"\x80"
_CHUNK = 1 << 20


def enabled() -> bool:
    return settings.MODELHUB_MODEL_MMAP


def mappable(path: Path) -> bool:
    """Whether joblib can map this file's arrays (it is not compressed)."""
    with path.open("rb") as handle:
        return handle.read(1) == _PICKLE_PROTO


def verified(sha256: str) -> Path | None:
    """The copy of the file whose digest is ``sha256``, if it exists and
    still has that digest."""
    path = _directory() / f"{sha256}.joblib"
    try:
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        return None
    if digest == sha256:
        return path
    logger.error("local copy %s is damaged (sha256 %s); rebuilding it", path, digest)
    return None


def keep(sha256: str, source: BinaryIO) -> Path | None:
    """Copies ``source`` as the copy of ``sha256``; None (and no copy) when
    what was read does not have that digest."""
    directory = _directory()
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            Path(temporary).unlink()
            return None
        path = directory / f"{sha256}.joblib"
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def building(sha256: str) -> Iterator[None]:
    """One process per host writes a given copy; the others wait, then use it."""
    with (_directory() / f"{sha256}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _directory() -> Path:
    """The copy directory, ours alone: a copy is hashed, then opened again by
    joblib, so another user able to write there could swap a file between
    the two (and a pickle runs code)."""
    directory = Path(settings.MODELHUB_MODEL_COPY_DIR)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(
            f"{directory} must belong to this user and be writable by no one "
            "else (MODELHUB_MODEL_COPY_DIR)"
        )
    return directory
