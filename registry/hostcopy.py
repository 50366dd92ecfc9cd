"""The host's verified local copies of model files: for memory-mapped
loading, and as the host's read-through cache of an object store.

joblib maps the arrays of an uncompressed file instead of reading them, so
every worker on the host that loads the same copy shares its pages (the page
cache) instead of holding a private copy. Copies are keyed by the version's
sha256, written once (temporary file, then rename, under a lock: concurrent
workers never see half a file) and hashed again before each load, so a copy
damaged on disk is rebuilt from storage, never served. With an object store
(registry.store) every format is copied, and the directory is bounded
(MODELHUB_MODEL_COPY_MAX_MB, least recently used first).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import stat
import tempfile
import time
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


def suffix_for(fmt: str) -> str:
    """A copy's name ends as the format's files do (for people reading the
    directory; loading goes by the version's format, never by the name)."""
    return ".joblib" if fmt == "joblib" else f".{fmt}"


def verified(sha256: str, suffix: str = ".joblib") -> Path | None:
    """The copy of the file whose digest is ``sha256``, if it exists and
    still has that digest. Its time is set to now: copies unused the longest
    are the first removed when the directory is over its bound."""
    path = _directory() / f"{sha256}{suffix}"
    try:
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
            os.utime(handle.fileno())
    except FileNotFoundError:
        return None
    if digest == sha256:
        return path
    logger.error("local copy %s is damaged (sha256 %s); rebuilding it", path, digest)
    return None


def keep(sha256: str, source: BinaryIO, suffix: str = ".joblib") -> Path | None:
    """Copies ``source`` as the copy of ``sha256``; None (and no copy) when
    what was read does not have that digest. Older copies are then removed
    past MODELHUB_MODEL_COPY_MAX_MB."""
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
        path = directory / f"{sha256}{suffix}"
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    trim(settings.MODELHUB_MODEL_COPY_MAX_MB * 1024 * 1024, keep=path)
    return path


# A copy used this recently is never removed: a worker may have verified it
# and be about to open it.
_IN_USE_SECONDS = 60.0


def trim(max_bytes: int, *, keep: Path) -> list[Path]:
    """Removes the copies unused the longest until the directory holds at
    most ``max_bytes`` (``keep`` and recently used copies stay even past
    it). A removed copy that a worker has mapped stays readable to it (the
    kernel keeps an unlinked file's pages); the next load fetches it again."""
    copies = []
    for path in _directory().iterdir():
        if path.name.startswith(".") or path.suffix == ".lock":
            continue
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        copies.append((info.st_mtime, info.st_size, path))
    total = sum(size for _, size, _ in copies)
    removed = []
    now = time.time()
    for used, size, path in sorted(copies):
        if total <= max_bytes:
            break
        if path == keep or now - used < _IN_USE_SECONDS:
            continue
        path.unlink(missing_ok=True)
        total -= size
        removed.append(path)
    if removed:
        logger.info("removed %d local copies past the bound", len(removed))
    return removed


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
