"""The Host header checked against ALLOWED_HOSTS on every path, predictions
included, for the price of a dict lookup.

Django checks the Host only where something calls ``request.get_host()``
(CommonMiddleware, CSRF, redirects): the prediction paths skip those
(api.middleware.web_only), so they answered any Host. This middleware calls
``get_host()`` once per distinct Host value and keeps the verdict, instead of
once per request; a refusal is Django's own DisallowedHost, which
api.errors.bad_request answers as a JSON 400 ``bad_host``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import DisallowedHost
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

# Distinct Host values remembered; past that the memory starts over, so a
# client inventing Host values costs each of them Django's own check, no more.
MAX_REMEMBERED = 64

# What get_host() reads (Host, X-Forwarded-Host, or the server's name and
# port when there is no Host) -> None when allowed, else DisallowedHost's
# message.
_verdicts: dict[tuple[str | None, ...], str | None] = {}


def check_host(request: HttpRequest) -> None:
    """Raise DisallowedHost unless ``request``'s Host is in ALLOWED_HOSTS."""
    meta = request.META
    key = (
        meta.get("HTTP_HOST"),
        meta.get("HTTP_X_FORWARDED_HOST"),
        meta.get("SERVER_NAME"),
        meta.get("SERVER_PORT"),
    )
    try:
        refusal = _verdicts[key]
    except KeyError:
        refusal = _verdict(request)
        if len(_verdicts) >= MAX_REMEMBERED:
            _verdicts.clear()
        _verdicts[key] = refusal
    if refusal is not None:
        raise DisallowedHost(refusal)


def _verdict(request: HttpRequest) -> str | None:
    try:
        request.get_host()
    except DisallowedHost as exc:
        return str(exc)
    return None


class AllowedHostsMiddleware:
    """Refuses a request whose Host is not allowed, whatever its path."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        check_host(request)
        return self.get_response(request)


@receiver(setting_changed)
def _forget_verdicts(*, setting: str, **kwargs: object) -> None:
    """Tests change ALLOWED_HOSTS and friends; a server never does."""
    if setting in {"ALLOWED_HOSTS", "DEBUG", "USE_X_FORWARDED_HOST"}:
        _verdicts.clear()
