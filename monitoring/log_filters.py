"""The request log admin's filters, each served by an index or the primary key.

The list is read newest first by id (monitoring.log_paging), so a filter
either narrows an index (model and version: (slug, version, created_at);
time: an id range, monitoring.log_window) or is tested on rows as the id
order meets them, which stops once a page is full: status, error code and
route, whose common values fill a page within a few thousand rows. A value
that matches nothing reads every row the other filters leave (SQLite: ~0.1 s
per million); a time range bounds that. No filter offers its choices from a
scan of the log: models and versions come from the registry, error codes
from the newest errors on the errors index, routes and time ranges are fixed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG, PAGE_VAR, ChangeList
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from registry.models import MLModel, ModelVersion

from .exceptions import InvalidSince
from .log_window import within
from .models import RequestLog
from .rollouts_view import ROUTE_ORDER
from .stats import parse_since

# The errors index's own condition (RequestLog.Meta): a query must say it in
# these words for SQLite to use that partial index.
ERRORS = Q(status__gte=400)
STATUS_CLASSES = {
    "ok": ("ok (below 400)", Q(status__lt=400)),
    "errors": ("errors (400 and above)", ERRORS),
    "4xx": ("4xx", ERRORS & Q(status__lt=500)),
    "5xx": ("5xx", ERRORS & Q(status__gte=500)),
}
# Error codes offered: those of the newest errors, read newest first on the
# errors index. Any other code still filters, from ?error_code= in a link.
RECENT_ERRORS = 2000
NO_VERSION = "none"
RANGES = (
    ("15m", "Last 15 minutes"),
    ("1h", "Last hour"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
)


class _ChoiceFilter(admin.SimpleListFilter):
    """A filter that narrows the log by one condition per value."""

    def condition(self, value: str) -> Q:
        raise NotImplementedError

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(self.condition(value))


class ModelFilter(_ChoiceFilter):
    title = "model"
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        slugs = list(MLModel.objects.order_by("slug").values_list("slug", flat=True))
        chosen = self.value()
        if chosen and chosen not in slugs:  # a deleted model, an unknown slug
            slugs.append(chosen)
        return [(slug, slug) for slug in slugs]

    def condition(self, value: str) -> Q:
        return Q(slug=value)


class VersionFilter(_ChoiceFilter):
    """The chosen model's versions (with the model, the slug index serves it),
    and requests no version answered (unknown slug or version, refusals)."""

    title = "version"
    parameter_name = "version"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        slug = request.GET.get(ModelFilter.parameter_name)
        if not slug:
            return []
        numbers = ModelVersion.objects.filter(model__slug=slug).order_by("-number")
        choices = [(str(n), f"v{n}") for n in numbers.values_list("number", flat=True)]
        return [*choices, (NO_VERSION, "none resolved")]

    def has_output(self) -> bool:
        return bool(self.lookup_choices) or self.value() is not None

    def condition(self, value: str) -> Q:
        if value == NO_VERSION:
            return Q(version__isnull=True)
        if not value.isascii() or not value.isdigit():
            raise IncorrectLookupParameters(f"version {value!r} is not a number")
        return Q(version=int(value))


class StatusFilter(_ChoiceFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _) in STATUS_CLASSES.items()]

    def condition(self, value: str) -> Q:
        try:
            return STATUS_CLASSES[value][1]
        except KeyError:
            raise IncorrectLookupParameters(f"status {value!r}") from None


class ErrorCodeFilter(_ChoiceFilter):
    """A code is logged only with an error status (monitoring.middleware): the
    filter says so too, so a planner may read a rare code's rows from the
    errors index (PostgreSQL does; SQLite walks the ids)."""

    title = "error code"
    parameter_name = "error_code"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        newest = (
            RequestLog.objects.filter(ERRORS)
            .order_by("-created_at")
            .values_list("error_code", flat=True)[:RECENT_ERRORS]
        )
        codes = set(newest) - {""}
        if self.value():
            codes.add(self.value())
        return [(code, code) for code in sorted(codes)]

    def condition(self, value: str) -> Q:
        return ERRORS & Q(error_code=value)


class RouteFilter(_ChoiceFilter):
    title = "route"
    parameter_name = "route"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(route, route) for route in ROUTE_ORDER]

    def condition(self, value: str) -> Q:
        if value not in ROUTE_ORDER:
            raise IncorrectLookupParameters(f"route {value!r}")
        return Q(route=value)


class TimeFilter(admin.ListFilter):
    """``?since=`` and ``?until=``: a window such as 24h (that long ago) or
    an ISO-8601 time, served by the id range it spans (monitoring.log_window)."""

    title = "time"
    template = "admin/monitoring/requestlog/time_filter.html"
    names = ("since", "until")

    def __init__(
        self,
        request: HttpRequest,
        params: dict[str, list[str]],
        model: type[RequestLog],
        model_admin: Any,
    ) -> None:
        super().__init__(request, params, model, model_admin)
        for name in self.names:
            if name in params:
                self.used_parameters[name] = params.pop(name)[-1].strip()

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str]:
        return list(self.names)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        bounds = {}
        for name in self.names:
            raw = self.used_parameters.get(name)
            if not raw:
                continue
            try:
                bounds[name] = parse_since(raw, now, name=f"'{name}'")
            except InvalidSince as exc:
                messages.error(request, exc.message)
                raise IncorrectLookupParameters(exc.message) from None
        if not bounds:
            return queryset
        return within(queryset, **bounds)

    def choices(self, changelist: ChangeList) -> Iterator[dict[str, Any]]:
        since = self.used_parameters.get("since")
        until = self.used_parameters.get("until")
        yield {
            "selected": not since and not until,
            "query_string": changelist.get_query_string(remove=list(self.names)),
            "display": "Any time",
        }
        for value, label in RANGES:
            yield {
                "selected": since == value and not until,
                "query_string": changelist.get_query_string(
                    {"since": value}, remove=["until"]
                ),
                "display": label,
            }

    def kept_parameters(self) -> list[tuple[str, str]]:
        """The list's other parameters, for the custom range's form."""
        return [
            (name, value)
            for name, values in self.request.GET.lists()
            if name not in (*self.names, PAGE_VAR, ERROR_FLAG)
            for value in values
        ]
