"""API errors, the one table that turns every domain error into HTTP, and the
handlers that answer every failure on an API path as JSON.

Django answers some failures before DRF sees the request (unknown URL,
oversized or undecodable bodies, CSRF, crashes): on API paths those become
the same {"detail", "code"} body as every other API error, and on the Open
Inference Protocol's paths that protocol's {"error": ...}. The error's code
is noted on the prediction's record for the request log (monitoring.record).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from monitoring import exceptions as monitoring
from monitoring.record import note_error
from registry import exceptions as registry

from .middleware import API_PREFIXES

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error of the API itself, carrying its own status and code."""

    code = "api_error"
    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class PayloadError(ApiError):
    """The request (its body, query or headers) cannot become model input."""

    code = "invalid_payload"


class MalformedJSON(PayloadError):
    """The body is not valid JSON (or not UTF-8)."""

    code = "malformed_json"


class TooDeep(PayloadError):
    """JSON nested deeper than MODELHUB_MAX_JSON_DEPTH."""

    code = "too_deep"


class MalformedCSV(PayloadError):
    """The CSV body cannot be read."""

    code = "malformed_csv"


class InvalidShape(PayloadError):
    """The JSON is valid but not one of the accepted payload shapes."""

    code = "invalid_shape"


class AmbiguousFormat(PayloadError):
    """More than one format key (MLflow's exactly-one-key rule)."""

    code = "ambiguous_format"


class EmptyInput(PayloadError):
    """The payload holds zero rows."""

    code = "empty_input"


class MissingFeatures(PayloadError):
    """Rows lack features the model needs."""

    code = "missing_features"


class UnknownFeatures(PayloadError):
    """Rows carry features the model does not know."""

    code = "unknown_features"


class DuplicateFeatures(PayloadError):
    """A feature appears twice in a header."""

    code = "duplicate_features"


class TooManyFeatures(PayloadError):
    """More columns, features or inputs than MODELHUB_MAX_FEATURES."""

    code = "too_many_features"


class WrongType(PayloadError):
    """A value has the wrong type for its column."""

    code = "wrong_type"


class InvalidValue(PayloadError):
    """Text that Python would read as a number but JSON and pandas would not."""

    code = "invalid_value"


class NullValue(PayloadError):
    """A null where the model cannot take a missing value."""

    code = "null_value"


class NonFiniteNumber(PayloadError):
    """NaN, infinity or a number too large for a double."""

    code = "non_finite_number"


class InvalidString(PayloadError):
    """A string with U+0000 or a lone surrogate."""

    code = "invalid_string"


class InvalidParams(PayloadError):
    """The params object or a query parameter is invalid."""

    code = "invalid_params"


class PayloadTooLarge(PayloadError):
    """The body is over MODELHUB_MAX_BODY_BYTES."""

    code = "payload_too_large"
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class TooManyRows(PayloadError):
    """More rows than MODELHUB_MAX_ROWS."""

    code = "too_many_rows"
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(PayloadError):
    """Neither JSON nor CSV."""

    code = "unsupported_media_type"
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE


class UnsupportedEncoding(PayloadError):
    """A Content-Encoding other than gzip or identity."""

    code = "unsupported_encoding"
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE


class UnreadableBody(PayloadError):
    """The body ends or breaks off where its framing says it continues (a
    broken chunk, a connection closed early), or is framed twice."""

    code = "unreadable_body"


class InvalidEncoding(PayloadError):
    """A gzip body that does not decompress."""

    code = "invalid_encoding"


class ModelRejectedInput(ApiError):
    """Well-formed input that the model itself raised on."""

    code = "model_error"
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY


class MissingFile(ApiError):
    """An upload without its multipart 'file' field."""

    code = "missing_file"


class InvalidField(ApiError):
    """A field of a management request has the wrong type or value."""

    code = "invalid_field"


class PredictionTimeout(ApiError):
    """The model ran past MODELHUB_PREDICT_TIMEOUT."""

    code = "prediction_timeout"
    status_code = status.HTTP_504_GATEWAY_TIMEOUT


REGISTRY_STATUS: dict[type[registry.RegistryError], int] = {
    registry.UnknownModel: status.HTTP_404_NOT_FOUND,
    registry.UnknownVersion: status.HTTP_404_NOT_FOUND,
    registry.NoActiveVersion: status.HTTP_404_NOT_FOUND,
    registry.UnknownAlias: status.HTTP_404_NOT_FOUND,
    registry.NoCandidate: status.HTTP_409_CONFLICT,
    registry.ModelUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    registry.RegistryUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    registry.VersionActive: status.HTTP_409_CONFLICT,
    registry.VersionNotReady: status.HTTP_409_CONFLICT,
    registry.ModelExists: status.HTTP_409_CONFLICT,
    registry.PicklePermissionRequired: status.HTTP_403_FORBIDDEN,
    registry.ModelTooLarge: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    registry.InvalidReference: status.HTTP_400_BAD_REQUEST,
}

MONITORING_STATUS: dict[type[monitoring.MonitoringError], int] = {
    monitoring.InvalidSince: status.HTTP_400_BAD_REQUEST,
    monitoring.InvalidFeedback: status.HTTP_400_BAD_REQUEST,
    monitoring.TooManyLabels: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
}
_DOMAIN_STATUS: dict[type[Exception], int] = {**REGISTRY_STATUS, **MONITORING_STATUS}
DOMAIN_ERRORS = (ApiError, registry.RegistryError, monitoring.MonitoringError)


def status_for(exc: BaseException) -> int:
    if isinstance(exc, ApiError):
        return exc.status_code
    if isinstance(exc, DOMAIN_ERRORS):
        for cls in type(exc).__mro__:
            if cls in _DOMAIN_STATUS:
                return _DOMAIN_STATUS[cls]
        return status.HTTP_400_BAD_REQUEST
    raise TypeError(f"not a domain error: {exc!r}")


def error_body(detail: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"detail": detail, "code": code, **extra}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: domain errors by table, DRF's own with a code."""
    if isinstance(exc, DOMAIN_ERRORS):
        extra = getattr(exc, "extra", {})
        response = Response(
            error_body(exc.message, exc.code, **extra), status=status_for(exc)
        )
        note_error(context["request"], exc.code)
        return response
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, APIException):
        codes = exc.get_codes()
        code = codes.get("detail", "invalid") if isinstance(codes, dict) else codes
    else:
        code = {404: "not_found", 403: "permission_denied"}.get(
            response.status_code, "error"
        )
    if isinstance(data, dict) and "detail" in data:
        response.data = error_body(str(data["detail"]), str(code))
    else:
        code = "invalid"
        response.data = error_body("Invalid request.", code, errors=data)
    note_error(context["request"], str(code))
    return response


# --- Django's own failures on API paths ------------------------------------------


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES) or request.path in (
        "/healthz",
        "/readyz",
        "/metrics",
    )


def _json(request: HttpRequest, detail: str, code: str, status: int) -> JsonResponse:
    v2 = request.path == "/v2" or request.path.startswith("/v2/")
    body = {"error": detail} if v2 else error_body(detail, code)
    note_error(request, code)
    return JsonResponse(body, status=status)


def not_found(request: HttpRequest, exception: Any = None) -> HttpResponse:
    if _is_api(request):
        hint = "" if request.path.endswith("/") else " (API paths end with '/')"
        return _json(
            request, f"No such endpoint: {request.path}{hint}", "not_found", 404
        )
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Any = None) -> HttpResponse:
    if isinstance(exception, DisallowedHost):
        # Whatever the path: the site, not the page, is what the client missed.
        return _json(request, "Host not allowed.", "bad_host", 400)
    if _is_api(request):
        return _json(request, "Bad request.", "bad_request", 400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Any = None) -> HttpResponse:
    if _is_api(request):
        return _json(request, "Permission denied.", "permission_denied", 403)
    return defaults.permission_denied(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return _json(request, "Internal server error.", "server_error", 500)
    return defaults.server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if _is_api(request):
        return _json(request, f"CSRF check failed: {reason}", "csrf_failed", 403)
    return django_csrf_failure(request, reason)


@csrf_exempt  # a POST to an unknown path is a 404, not a CSRF refusal
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Catch-all under /api/ so CommonMiddleware never redirects a POST."""
    return not_found(request)
