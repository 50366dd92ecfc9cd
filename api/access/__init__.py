"""Who may call what, and how often: token and API-key auth, model scopes,
the throttle.

/api/predict/ and the V2 endpoints answer outside DRF's dispatch (it would
cost each prediction more than the prediction), so they call these in its
place; DRF views get the same through AUTHENTICATION and THROTTLE. Users
send DRF's ``Token``; machines an API key, as ``Api-Key`` or ``Bearer``.

A private model answers staff, users granted it and keys scoped to it; to
everyone else it is exactly an unknown slug (the same 404 body and headers).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication, TokenAuthentication
from rest_framework.exceptions import (
    APIException,
    AuthenticationFailed,
    NotAuthenticated,
    Throttled,
)
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from monitoring.record import of as record_of
from registry.exceptions import RegistryUnavailable, UnknownModel
from registry.loading import VersionRef
from registry.models import MLModel

from ..models import ApiKey
from . import grants, keys
from .keys import KeyGrant
from .quota import shared_quota

__all__ = [
    "AUTHENTICATION",
    "THROTTLE",
    "KeyGrant",
    "OutOfScope",
    "authenticate",
    "authenticate_header",
    "authorize",
    "authorize_feedback",
    "authorize_model",
    "is_authenticated",
    "key_of",
    "require_token",
    "sees_registry_detail",
    "throttle",
    "visible",
]


class OutOfScope(APIException):
    """A valid API key used beyond its scopes (a public model or endpoint)."""

    status_code = 403
    default_detail = "This API key may not do this."
    default_code = "forbidden"


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Api-Key <key>`` or ``Bearer <key>``: the key's owner
    as the user, its grant as ``request.auth``."""

    def authenticate(self, request: Any) -> tuple[Any, KeyGrant] | None:
        scheme, _, credential = request.META.get("HTTP_AUTHORIZATION", "").partition(
            " "
        )
        if scheme.lower() not in keys.SCHEMES:
            return None
        credential = credential.strip()
        if not credential:
            raise AuthenticationFailed("No API key after the scheme.")
        grant = keys.verify(credential)
        return grant.owner, grant

    def authenticate_header(self, request: Any) -> str:
        return "Api-Key"


# Token first: its WWW-Authenticate ("Token") is what a 401 has always sent.
AUTHENTICATION = [TokenAuthentication, ApiKeyAuthentication]
# Stateless, so one instance of each serves every request.
_KEYS = ApiKeyAuthentication()
_TOKENS = TokenAuthentication()


def authenticate(request: HttpRequest) -> None:
    """Set ``request.user`` (and ``request.auth``: a key's grant, or None).

    A wrong token or key raises AuthenticationFailed (401), even for a public
    model.
    """
    if "HTTP_AUTHORIZATION" not in request.META:
        # DRF would find no credential either, after building request.headers
        # from the whole environ: most predictions carry none.
        request.user = None
        request.auth = None
        return
    found = _TOKENS.authenticate(request) or _KEYS.authenticate(request)
    request.user, request.auth = found if found is not None else (None, None)
    if isinstance(request.auth, KeyGrant):
        record = record_of(request)
        if record is not None:
            record.key_name = request.auth.name


def authenticate_header(request: HttpRequest) -> str:
    """The ``WWW-Authenticate`` value a 401 carries, as DRF's views send it."""
    return _TOKENS.authenticate_header(request)


def key_of(request: HttpRequest | Request) -> KeyGrant | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, KeyGrant) else None


def is_authenticated(request: HttpRequest | Request) -> bool:
    return request.user is not None and request.user.is_authenticated


def require_token(request: HttpRequest | Request) -> None:
    """Under MODELHUB_REQUIRE_TOKEN every request needs a token or key."""
    if settings.MODELHUB_REQUIRE_TOKEN and not is_authenticated(request):
        raise NotAuthenticated(
            "An API key or token is required (Authorization: Api-Key …)."
        )


def authorize(request: HttpRequest | Request, ref: VersionRef) -> None:
    """May this caller be answered by ``ref``'s model? Raise if not."""
    authorize_model(request, ref.slug, private=ref.private)


def authorize_model(
    request: HttpRequest | Request, slug: str, *, private: bool
) -> None:
    """May this caller predict on model ``slug`` (and so send its feedback)?"""
    grant = key_of(request)
    if grant is not None:
        if grant.may_predict(slug, private=private):
            return
        if private:
            raise unknown_model(slug)
        raise OutOfScope(f"This API key may not call model '{slug}'.")
    user = request.user
    if private:
        if user is not None and user.is_authenticated:
            if user.is_staff or grants.granted(user, slug):
                return
        raise unknown_model(slug)
    require_token(request)


def authorize_feedback(request: HttpRequest | Request, slug: str) -> None:
    """The caller that may predict on ``slug`` may send its feedback; a model
    it may not see is an unknown slug, as on the prediction path."""
    private = MLModel.objects.filter(slug=slug).values_list("private", flat=True)
    found = list(private[:1])
    if not found:
        raise unknown_model(slug)
    authorize_model(request, slug, private=found[0])


def unknown_model(slug: str) -> UnknownModel:
    """What registry.routing raises for a slug it does not know, word for word."""
    return UnknownModel(f"No model with slug '{slug}'.")


def visible(request: HttpRequest | Request, models: QuerySet[MLModel]) -> QuerySet:
    """The models this caller may know exist: those it may call (a key that
    may read the management API for a staff owner: all of them)."""
    grant = key_of(request)
    if grant is None:
        return grants.visible_to_user(models, request.user)
    if grant.predict == ApiKey.Predict.ALL or (
        grant.may_manage(write=False) and grant.owner.is_staff
    ):
        return models
    if grant.predict == ApiKey.Predict.LISTED:
        # Public models exist for everyone; a listed key is refused (403) there.
        return models.filter(Q(private=False) | Q(slug__in=grant.slugs))
    return models.filter(private=False)


def sees_registry_detail(request: HttpRequest) -> bool:
    """Staff, or a key that may read the management API, see which models a
    health answer is about; anyone else sees counts. A bad credential is
    anonymous here: health checks answer, they do not refuse."""
    if "HTTP_AUTHORIZATION" in request.META:
        try:
            authenticate(request)
        except (APIException, DatabaseError, RegistryUnavailable):
            return False
        grant = key_of(request)
        if grant is not None and not grant.may_manage(write=False):
            return False
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_staff)


class QuotaThrottle(BaseThrottle):
    """MODELHUB_THROTTLE_RATE (or a key's own rate) per key, user or client
    address, counted once for every worker of the host, or of the cluster
    with REDIS_URL (api.access.quota)."""

    def allow_request(self, request: Any, view: Any) -> bool:
        self.wait_seconds: float | None = None
        grant = key_of(request)
        rate = (grant.throttle_rate if grant else "") or settings.MODELHUB_THROTTLE_RATE
        if not rate:
            return True
        user = request.user
        if grant is not None:
            ident = f"key:{grant.id}"
        elif user is not None and user.is_authenticated:
            ident = f"user:{user.pk}"
        else:
            ident = f"addr:{self.get_ident(request)}"
        self.wait_seconds = shared_quota().take(ident, rate)
        return self.wait_seconds is None

    def wait(self) -> float | None:
        return self.wait_seconds


THROTTLE = QuotaThrottle


def throttle(request: HttpRequest) -> None:
    """Raise Throttled (429, with the wait) when the caller's quota is spent."""
    if not settings.MODELHUB_THROTTLE_RATE and key_of(request) is None:
        return
    limiter = QuotaThrottle()
    if not limiter.allow_request(request, None):
        raise Throttled(limiter.wait())
