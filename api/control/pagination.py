"""Pages of the management API's lists: ?page=n&page_size=k, newest first.

DRF's PageNumberPagination, stricter: a page size it cannot read is a 400
rather than silently the default (automation would never notice), and a page
past the end keeps DRF's 404 with a code of its own, so a client can tell it
from an unknown model.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import InvalidPage
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from ..errors import InvalidField
from ..http import ascii_digits

PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# More digits than any page count; also keeps int() away from huge strings.
MAX_DIGITS = 9


class ManagementPagination(PageNumberPagination):
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    last_page_strings = ()
    template = None

    def paginate_queryset(
        self, queryset: Any, request: Request, view: Any = None
    ) -> list[Any]:
        self.request = request
        size = self.get_page_size(request)
        paginator = self.django_paginator_class(queryset, size)
        number = _positive(request, self.page_query_param, default=1)
        try:
            self.page = paginator.page(number)
        except InvalidPage:
            raise NotFound(
                f"Page {number} is past the last page ({paginator.num_pages}).",
                code="invalid_page",
            ) from None
        return list(self.page)

    def get_page_size(self, request: Request) -> int:
        size = _positive(request, self.page_size_query_param, default=self.page_size)
        if size > self.max_page_size:
            raise InvalidField(
                f"'page_size' is at most {self.max_page_size}.", field="page_size"
            )
        return size

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        paged = super().get_paginated_response_schema(schema)
        paged["required"] = ["count", "next", "previous", "results"]
        return paged

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.page_query_param,
                "in": "query",
                "required": False,
                "description": "The page, from 1 (newest first).",
                "schema": {"type": "integer", "minimum": 1, "maximum": 999_999_999},
            },
            {
                "name": self.page_size_query_param,
                "in": "query",
                "required": False,
                "description": f"Items per page (default {self.page_size}).",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                },
            },
        ]


def _positive(request: Request, name: str, *, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not ascii_digits(raw) or len(raw) > MAX_DIGITS or int(raw) < 1:
        raise InvalidField(f"'{name}' must be a positive integer.", field=name)
    return int(raw)
