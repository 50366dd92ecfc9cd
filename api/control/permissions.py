"""Who may change the registry over HTTP: staff, with the admin's permissions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

if TYPE_CHECKING:
    from rest_framework.views import APIView


class StaffWithPermission(BasePermission):
    """A staff user holding the Django permission the admin asks for the same
    change, so a token can do no more than its owner could in the admin."""

    def __init__(self, required: str | None = None) -> None:
        self.required = required
        self.message = "Staff only."
        if required:
            self.message = f"Staff only, with the '{required}' permission."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if user is None or not user.is_authenticated or not user.is_staff:
            return False
        return self.required is None or user.has_perm(self.required)
