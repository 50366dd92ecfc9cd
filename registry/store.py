"""The model file store: Django's default storage, which is the local disk
(MEDIA_ROOT) or an S3-compatible object store through django-storages
(MODELHUB_STORAGE=s3).

Its failures are told apart because they cost different things: a file that
is not there costs that version (503 ``model_unavailable``), a store that
cannot be reached costs every version this host does not hold a copy of
(503 ``store_unavailable``) until it answers again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

logger = logging.getLogger(__name__)


class Missing(Exception):
    """The store answered: there is no such file."""


class Unreachable(Exception):
    """The store did not answer, refused our credentials or lost its bucket."""


def remote() -> bool:
    """Whether files live in an object store shared by several hosts (each
    then keeps a verified local copy of what it serves, registry.hostcopy)."""
    return settings.MODELHUB_STORAGE == "s3"


def describe() -> str:
    if remote():
        location = f"s3://{settings.MODELHUB_S3_BUCKET}/{settings.MODELHUB_S3_PREFIX}"
        endpoint = settings.MODELHUB_S3_ENDPOINT_URL
        return f"{location} at {endpoint}" if endpoint else location
    return str(settings.MEDIA_ROOT)


@contextmanager
def opened(name: str) -> Iterator[IO[bytes]]:
    """The stored file ``name``, read from its start; raises Missing or
    Unreachable. An object store's file is fetched whole on opening (spooled
    to disk past a few MB), so what the caller reads cannot fail halfway."""
    try:
        handle = default_storage.open(name, "rb")
        stream = handle.file  # an S3 file downloads here
    except Exception as exc:  # noqa: BLE001 - classified, or raised again
        raise _classified(exc, name) from exc
    try:
        stream.seek(0)
        yield stream
    finally:
        handle.close()


def save(name: str, content: IO[bytes]) -> str:
    """Store ``content`` under ``name`` (or a free name near it): the name
    stored. Raises Unreachable when an object store refuses or cannot be
    reached; a local disk's errors are raised as they are."""
    try:
        return default_storage.save(name, File(content))
    except Exception as exc:  # noqa: BLE001
        if _client_error_code(exc) is None and not _is_botocore_error(exc):
            raise
        raise Unreachable(_reason(exc)) from exc


def delete(name: str) -> None:
    """Remove a stored file; never raises, the registry row it belonged to is
    already gone: a file left behind is logged, not an error."""
    try:
        default_storage.delete(name)
    except Exception as exc:  # noqa: BLE001
        logger.error("stored file %s not deleted from %s: %s", name, describe(), exc)


def problem() -> str:
    """What is wrong with the store, or '' when it can be read and written."""
    if not remote():
        return ""
    try:
        client = default_storage.connection.meta.client
        client.head_bucket(Bucket=settings.MODELHUB_S3_BUCKET)
    except Exception as exc:  # noqa: BLE001
        return _reason(exc)
    return ""


def _classified(exc: BaseException, name: str) -> Exception:
    code = _client_error_code(exc)
    if isinstance(exc, FileNotFoundError) or code in {"NoSuchKey", "404", "NotFound"}:
        # An object store answers 404 for a missing bucket too: ask which.
        reason = problem()
        return Unreachable(reason) if reason else Missing(name)
    if code is not None or _is_botocore_error(exc):
        return Unreachable(_reason(exc))
    if isinstance(exc, OSError):
        return Missing(f"{name}: {exc}")
    raise exc


def _reason(exc: BaseException) -> str:
    code = _client_error_code(exc)
    if code in {"404", "NoSuchBucket", "NotFound"}:
        return f"bucket {settings.MODELHUB_S3_BUCKET!r} does not exist"
    if code in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
        return f"access denied to bucket {settings.MODELHUB_S3_BUCKET!r} ({code})"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}"


def _client_error_code(exc: BaseException) -> str | None:
    response: Any = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    return str(response.get("Error", {}).get("Code", "")) or None


def _is_botocore_error(exc: BaseException) -> bool:
    module = type(exc).__module__
    return module.startswith(("botocore", "boto3", "s3transfer", "urllib3"))


def _forget_connections() -> None:
    """A forked worker opens its own connections: the master's pool sockets
    (it loaded the active versions before forking) must not be shared."""
    wrapped = getattr(default_storage, "_wrapped", None)
    if wrapped is not None and hasattr(wrapped, "_connections"):
        import threading

        wrapped._connections = threading.local()
        wrapped._bucket = None


os.register_at_fork(after_in_child=_forget_connections)
