"""Reading what the HTTP request carries: the raw body and query flags."""

from __future__ import annotations

from django.conf import settings
from rest_framework.request import Request

from .exceptions import InvalidParams, PayloadTooLarge

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def read_body(request: Request) -> bytes:
    """The body, bounded by MODELHUB_MAX_BODY_BYTES (a JSON 413, not Django's 400)."""
    limit = settings.MODELHUB_MAX_BODY_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"The body is {int(declared):,} bytes; the limit is {limit:,}."
        )
    body = request._request.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"The body is larger than the {limit:,} byte limit.")
    request._request.log_body = body
    return body


def query_flag(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidParams(f"Query parameter '{name}' must be 1/0 or true/false.")


def query_version(request: Request) -> int | None:
    raw = request.query_params.get("version")
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1 or len(raw) > 9:
        raise InvalidParams("Query parameter 'version' must be a positive integer.")
    return int(raw)
