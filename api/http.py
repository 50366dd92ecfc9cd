"""Reading what the HTTP request carries: the raw body and query flags."""

from __future__ import annotations

import zlib
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request

from .errors import (
    InvalidEncoding,
    InvalidParams,
    PayloadTooLarge,
    UnreadableBody,
    UnsupportedEncoding,
)

_TRUE = {"1", "true", "yes", "on"}
_BODY = "modelhub_body"
_FALSE = {"0", "false", "no", "off"}


def ascii_digits(raw: str) -> bool:
    """str.isdigit() alone also accepts '²', which int() refuses."""
    return raw.isascii() and raw.isdigit()


def read_body(request: HttpRequest | Request) -> bytes:
    """The body, bounded by MODELHUB_MAX_BODY_BYTES (a JSON 413, not Django's
    400) as sent and, when gzipped, as decompressed: a gzip bomb is a 413."""
    request = getattr(request, "_request", request)  # DRF's Request wraps it
    body = getattr(request, _BODY, None)
    if body is not None:  # read already: a second decoder (traffic policy)
        return body
    limit = settings.MODELHUB_MAX_BODY_BYTES
    gzipped = _gzipped(request)  # a 415 before reading anything
    body = _raw_body(request, limit)
    body = _gunzip(body, limit) if gzipped else body
    setattr(request, _BODY, body)
    return body


def _raw_body(request: HttpRequest, limit: int) -> bytes:
    meta = request.META
    declared = meta.get("CONTENT_LENGTH") or ""
    if ascii_digits(declared) and int(declared) > limit:
        raise PayloadTooLarge(
            f"The body is {int(declared):,} bytes; the limit is {limit:,}."
        )
    chunked = _chunked(meta)
    if chunked and declared:
        # Two framings: which one a proxy in front believed is unknowable
        # (request smuggling); refuse rather than pick.
        raise UnreadableBody(
            "The body is framed both by Content-Length and as chunked."
        )
    try:
        if chunked:
            # Django reads no further than Content-Length, so a chunked body
            # would read as empty; gunicorn hands over the chunks decoded, up
            # to the end.
            body = meta["wsgi.input"].read(limit + 1)
        else:
            body = request.read(limit + 1)
    except Exception as exc:  # noqa: BLE001 - the server's parse errors vary
        raise UnreadableBody(
            f"The body could not be read: {type(exc).__name__}."
        ) from None
    if len(body) > limit:
        raise PayloadTooLarge(f"The body is larger than the {limit:,} byte limit.")
    return body


def _chunked(meta: dict[str, Any]) -> bool:
    """A chunked body that the server ends for us (wsgi.input_terminated:
    gunicorn says so; runserver's socket would block instead)."""
    return bool(meta.get("wsgi.input_terminated")) and "chunked" in (
        meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    )


def _gzipped(request: HttpRequest) -> bool:
    # META, not request.headers: that would be built from the whole environ.
    raw = request.META.get("HTTP_CONTENT_ENCODING", "")
    encoding = raw.strip().lower()
    if encoding in ("", "identity"):
        return False
    if encoding in ("gzip", "x-gzip"):
        return True
    raise UnsupportedEncoding(
        f"Content-Encoding '{raw[:40]}' is not supported: send the body gzipped "
        "or uncompressed."
    )


def _gunzip(body: bytes, limit: int) -> bytes:
    """Every gzip member, stopped one byte past ``limit`` decompressed."""
    out = bytearray()
    rest = body
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise InvalidEncoding(f"The body is not valid gzip: {exc}.") from None
        if len(out) > limit:
            raise PayloadTooLarge(
                f"The body decompressed is larger than the {limit:,} byte limit."
            )
        if not inflater.eof:
            raise InvalidEncoding("The gzip body is truncated.")
        rest = inflater.unused_data
    return bytes(out)


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


def query_alias(request: HttpRequest | Request) -> str:
    """``?alias=<name>``: the version an alias points to ('' when absent)."""
    raw = _query_value(request, "alias")
    if raw is None:
        return ""
    if not raw or len(raw) > 50:
        raise InvalidParams("Query parameter 'alias' must be an alias name.")
    return raw
