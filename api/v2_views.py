"""Open Inference Protocol (KServe V2) endpoints: parse, call one function, render.

Plain Django views, not DRF's: the protocol has its own error body
(``{"error": "..."}``), and DRF's dispatch would cost every infer request
more than decoding it. Token auth, the throttle and the body limit are the
same as on /api/predict/.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import APIException, Throttled

from registry.exceptions import RegistryError
from registry.loading import LoadedModel

from . import access, openinference, services
from .exceptions import ApiError, UnsupportedMediaType, status_for
from .health import readiness
from .http import read_body

View = Callable[..., HttpResponse]


def error_response(message: str, status: int, code: str) -> JsonResponse:
    """The protocol's error body; the code is kept for the request log."""
    response = JsonResponse({"error": message}, status=status)
    response.error_code = code
    return response


def v2_endpoint(*methods: str) -> Callable[[View], View]:
    """Allowed methods, and every domain error as ``{"error": ...}``."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = error_response(
                    f"Method {request.method} not allowed.", 405, "method_not_allowed"
                )
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except (ApiError, RegistryError) as exc:
                return error_response(exc.message, status_for(exc), exc.code)
            except APIException as exc:  # DRF's auth and throttle refusals
                response = error_response(
                    str(exc.detail), exc.status_code, str(exc.get_codes())
                )
                if isinstance(exc, Throttled) and exc.wait is not None:
                    response["Retry-After"] = str(math.ceil(exc.wait))
                if exc.status_code == 401:
                    response["WWW-Authenticate"] = access.authenticate_header(request)
                return response

        return wrapped

    return decorate


def _served_model(request: HttpRequest, slug: str, version: int | None) -> LoadedModel:
    access.authenticate(request)
    ref = services.resolve(slug, version)
    access.require_token(request, private=ref.private)
    return services.load(ref, pinned=version is not None)


def _body(request: HttpRequest) -> bytes:
    # META, not request.headers: that would be built from the whole environ.
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType(
            f"Content-Encoding '{encoding[:40]}' is not supported: send the body "
            "uncompressed."
        )
    return read_body(request)


@v2_endpoint("GET")
def server_metadata(request: HttpRequest) -> JsonResponse:
    return JsonResponse(openinference.server_metadata())


@v2_endpoint("GET")
def server_live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"live": True})


@v2_endpoint("GET")
def server_ready(request: HttpRequest) -> JsonResponse:
    """/readyz's answer: 503 while this instance can serve no model."""
    ready, detail = readiness()
    return JsonResponse({"ready": ready, **detail}, status=200 if ready else 503)


@v2_endpoint("GET")
def model_metadata(
    request: HttpRequest, slug: str, version: int | None = None
) -> JsonResponse:
    loaded = _served_model(request, slug, version)
    versions = openinference.ready_versions(slug)
    return JsonResponse(openinference.model_metadata(loaded, versions=versions))


@v2_endpoint("GET")
def model_ready(
    request: HttpRequest, slug: str, version: int | None = None
) -> JsonResponse:
    """Ready when infer would be served: a pinned version must load; the
    active one may be stood in for by the last good version, as on infer."""
    loaded = _served_model(request, slug, version)
    return JsonResponse({"name": loaded.ref.slug, "ready": True})


@v2_endpoint("POST")
def infer(request: HttpRequest, slug: str, version: int | None = None) -> HttpResponse:
    access.authenticate(request)
    access.throttle(request)
    ref = services.resolve(slug, version)
    request.log_version = ref.number
    access.require_token(request, private=ref.private)
    started = time.perf_counter()
    loaded = services.load(ref, pinned=version is not None)
    request.log_version = loaded.ref.number  # the last good one on a fallback
    result = openinference.infer(
        loaded=loaded,
        body=_body(request),
        header_length=request.META.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH"),
        request_id=getattr(request, "request_id", ""),
        load_ms=(time.perf_counter() - started) * 1000,
    )
    request.log_rows = result.rows
    request.log_model_ms = result.timings["predict"]
    binary = result.header_length is not None
    response = HttpResponse(
        result.body,
        content_type="application/octet-stream" if binary else "application/json",
    )
    if binary:
        response["Inference-Header-Content-Length"] = str(result.header_length)
    response["X-Model-Version"] = str(loaded.ref.number)
    response["Server-Timing"] = ", ".join(
        f"{k};dur={v:.3f}" for k, v in result.timings.items()
    )
    return response


@v2_endpoint("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any other /v2 path, in the protocol's error shape."""
    return error_response(f"No such endpoint: {request.path[:200]}", 404, "not_found")
