"""Who may call the data plane, and how often: token auth and the throttle.

/api/predict/ and the V2 endpoints answer outside DRF's dispatch (it would
cost each prediction more than the prediction), so they call these in its
place: the same token, the same refusals, the same rate. PredictView declares
AUTHENTICATION and THROTTLE, the classes used here, for DRF's other methods
and the OpenAPI schema.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import NotAuthenticated, Throttled
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle


class PredictRateThrottle(SimpleRateThrottle):
    """MODELHUB_THROTTLE_RATE per token user, or per client address.

    Counters live in the default cache: per process unless REDIS_URL is set.
    """

    scope = "predict"

    def get_rate(self) -> str | None:
        return settings.MODELHUB_THROTTLE_RATE or None

    def get_cache_key(self, request, view) -> str:  # type: ignore[no-untyped-def]
        user = getattr(request, "user", None)
        ident = user.pk if user is not None and user.is_authenticated else None
        return self.cache_format % {
            "scope": self.scope,
            "ident": ident if ident is not None else self.get_ident(request),
        }


AUTHENTICATION = TokenAuthentication
THROTTLE = PredictRateThrottle
# Stateless, so one instance serves every request.
_TOKENS = AUTHENTICATION()


def authenticate(request: HttpRequest) -> None:
    """Set ``request.user`` to the token's user, or None without a token.

    A wrong token raises AuthenticationFailed (401), even for a public model.
    """
    if "HTTP_AUTHORIZATION" not in request.META:
        # DRF would find no token either, after building request.headers
        # from the whole environ: most predictions carry no token.
        request.user = None
        return
    found = _TOKENS.authenticate(request)
    request.user = found[0] if found is not None else None


def authenticate_header(request: HttpRequest) -> str:
    """The ``WWW-Authenticate`` value a 401 carries, as DRF's views send it."""
    return _TOKENS.authenticate_header(request)


def is_authenticated(request: HttpRequest | Request) -> bool:
    return request.user is not None and request.user.is_authenticated


def require_token(request: HttpRequest | Request, *, private: bool = False) -> None:
    """Private models, or every request under MODELHUB_REQUIRE_TOKEN, need a token."""
    if (private or settings.MODELHUB_REQUIRE_TOKEN) and not is_authenticated(request):
        raise NotAuthenticated("An API token is required (Authorization: Token …).")


def throttle(request: HttpRequest) -> None:
    """MODELHUB_THROTTLE_RATE per ``request.user``, else per client; raise Throttled.

    Without a rate nothing is built: DRF's throttle would allow the request
    anyway.
    """
    if not settings.MODELHUB_THROTTLE_RATE:
        return
    limiter = THROTTLE()
    if not limiter.allow_request(request, None):
        raise Throttled(limiter.wait())
