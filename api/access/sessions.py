"""The admin's session on /api/predict/: what lets the pages' Try it form
call a private model as the staff member signed in.

Session and auth middleware are bypassed on the data plane
(api.middleware.web_only), so this reads the session itself, only for a
request that carries no Authorization header and does carry the session
cookie: every other prediction pays nothing for it. A session-authenticated
POST must carry the CSRF token (X-CSRFToken), as DRF's SessionAuthentication
requires, or any page a staff member visits could predict as them.
"""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.contrib import auth
from django.db import DatabaseError
from django.http import HttpRequest
from rest_framework.authentication import SessionAuthentication

_SESSIONS = SessionAuthentication()


def authenticate_session(request: HttpRequest) -> None:
    """Set ``request.user`` from the session cookie when no credential did.

    A CSRF failure raises PermissionDenied (403). A session that cannot be
    read (expired, or the database down) leaves the caller anonymous.
    """
    if request.user is not None or "HTTP_COOKIE" not in request.META:
        return
    key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not key:
        return
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(key)
    try:
        user = auth.get_user(request)
    except DatabaseError:
        return
    if not user.is_authenticated:
        return
    _SESSIONS.enforce_csrf(request)
    request.user = user
