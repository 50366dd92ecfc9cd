"""ApiView: the DRF base view of every JSON endpoint, answering JSON whatever
the Accept header says and reading JSON with its nesting bounded."""

from __future__ import annotations

from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from .access import AUTHENTICATION
from .parsers import JSONParser
from .renderers import ORJSONRenderer


class ApiView(APIView):
    # A token or an API key (api.access), then the admin's session.
    authentication_classes = [*AUTHENTICATION, SessionAuthentication]
    permission_classes = [AllowAny]
    renderer_classes = [ORJSONRenderer]
    # Not DEFAULT_PARSER_CLASSES: DRF imports those with rest_framework.views,
    # which api.errors itself imports.
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[ORJSONRenderer, str]:
        """JSON whatever the Accept header says: with one renderer, DRF's
        negotiation would only parse Accept to agree (bench/README.md)."""
        renderer = ORJSONRenderer()
        return renderer, renderer.media_type
