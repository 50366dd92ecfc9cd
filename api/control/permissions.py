"""Who may change the registry over HTTP: staff, with the admin's permissions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from ..access import OutOfScope, key_of

if TYPE_CHECKING:
    from rest_framework.views import APIView


class StaffWithPermission(BasePermission):
    """A staff user holding the Django permission the admin asks for the same
    change, so a token can do no more than its owner could in the admin; an
    API key, no more than its management scope allows either."""

    def __init__(self, required: str | None = None) -> None:
        self.required = required
        self.message = "Staff only."
        if required:
            self.message = f"Staff only, with the '{required}' permission."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if user is None or not user.is_authenticated or not user.is_staff:
            return False
        grant = key_of(request)
        if grant is not None and not grant.may_manage(
            write=request.method not in SAFE_METHODS
        ):
            raise OutOfScope(
                "This API key may not "
                + ("change" if request.method not in SAFE_METHODS else "read")
                + " the registry through the management API."
            )
        return self.required is None or user.has_perm(self.required)
