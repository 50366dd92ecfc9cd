"""Reading what the HTTP request carries: the raw body and query flags."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request

from .errors import InvalidParams, PayloadTooLarge

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def ascii_digits(raw: str) -> bool:
    """str.isdigit() alone also accepts '²', which int() refuses."""
    return raw.isascii() and raw.isdigit()


def read_body(request: HttpRequest | Request) -> bytes:
    """The body, bounded by MODELHUB_MAX_BODY_BYTES (a JSON 413, not Django's 400)."""
    request = getattr(request, "_request", request)  # DRF's Request wraps it
    limit = settings.MODELHUB_MAX_BODY_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if ascii_digits(declared) and int(declared) > limit:
        raise PayloadTooLarge(
            f"The body is {int(declared):,} bytes; the limit is {limit:,}."
        )
    body = request.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"The body is larger than the {limit:,} byte limit.")
    return body


def query_flag(request: HttpRequest | Request, name: str) -> bool | None:
    raw = _query_value(request, name)
    return None if raw is None else _flag(raw, f"Query parameter '{name}'")


def _query_value(request: HttpRequest | Request, name: str) -> str | None:
    """Predictions rarely carry a query string: don't build a QueryDict for none."""
    if not request.META.get("QUERY_STRING"):
        return None
    return request.GET.get(name)


def form_flag(request: Request, name: str, *, default: bool) -> bool:
    """A multipart/form field read as a flag, with the query flags' spellings."""
    raw = request.POST.get(name)
    return default if raw is None else _flag(raw, f"Form field '{name}'")


def _flag(raw: str, what: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidParams(f"{what} must be 1/0 or true/false.")


def query_version(request: HttpRequest | Request) -> int | None:
    raw = _query_value(request, "version")
    if raw is None:
        return None
    if not ascii_digits(raw) or int(raw) < 1 or len(raw) > 9:
        raise InvalidParams("Query parameter 'version' must be a positive integer.")
    return int(raw)
