"""ApiView: the DRF base view of every JSON endpoint, answering JSON whatever
the Accept header says."""

from __future__ import annotations

from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from .access import AUTHENTICATION
from .renderers import ORJSONRenderer


class ApiView(APIView):
    # A token or an API key (api.access), then the admin's session.
    authentication_classes = [*AUTHENTICATION, SessionAuthentication]
    permission_classes = [AllowAny]
    renderer_classes = [ORJSONRenderer]

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[ORJSONRenderer, str]:
        """JSON whatever the Accept header says: with one renderer, DRF's
        negotiation would only parse Accept to agree (bench/README.md)."""
        renderer = ORJSONRenderer()
        return renderer, renderer.media_type
