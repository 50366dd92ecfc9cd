"""Pages of the request log's admin list, without counting the log.

Django's admin counts the rows behind a list to number its pages
(``paginator.count``): on a log of millions of rows that COUNT(*) is the
slowest query of every page, filtered or not. A page here fetches one row
more than it shows, and that row says whether an older page follows; the
list offers newer and older pages instead of page numbers. It is in id
order, the order rows are written, which needs no index but the primary key.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.paginator import InvalidPage, Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

ORDERING = ["-pk"]


def requested_page(request: HttpRequest) -> int:
    """The page number ``?p=`` asks for, read as the admin's ChangeList reads it."""
    try:
        return int(request.GET.get(PAGE_VAR, 1))
    except ValueError:
        return 1


class UncountedPaginator(Paginator):
    """Serves one page, ``number``, from per_page + 1 rows fetched at its offset
    (a row deleted meanwhile, by prunelogs, is left out).

    ``count`` is the rows up to the end of that page, plus one when an older
    page follows: exact on the last page, a lower bound before it, and never
    a query of its own.
    """

    def __init__(self, object_list: QuerySet, per_page: int, *, number: int) -> None:
        super().__init__(object_list, per_page)
        self.number = number

    @cached_property
    def _offset(self) -> int:
        return (max(self.number, 1) - 1) * self.per_page

    @cached_property
    def _window(self) -> list[Any]:
        # Ids first, then their rows by primary key: a filter on an index's
        # columns sorts only the ids the index holds, not whole rows (SQLite:
        # 38 ms instead of 207 ms for a third of a million rows). The rows
        # are read without the filters, which would lead the planner back to
        # that index.
        ids = list(
            self.object_list.values_list("pk", flat=True)[
                self._offset : self._offset + self.per_page + 1
            ]
        )
        rows = self.object_list.model._default_manager.in_bulk(ids)
        return [rows[pk] for pk in ids if pk in rows]

    @cached_property
    def count(self) -> int:
        return self._offset + len(self._window)

    @property
    def has_next(self) -> bool:
        return len(self._window) > self.per_page

    def page(self, number: int | str) -> Page:
        number = self.validate_number(number)
        if number != self.number:
            return super().page(number)
        return self._get_page(self._window[: self.per_page], number, self)


class UncountedChangeList(ChangeList):
    """The admin's list of log rows, paged by an UncountedPaginator, newest
    first by id whatever ``?o=`` asks (any other order sorts the whole log)."""

    paginator: UncountedPaginator

    def get_ordering(self, request: HttpRequest, queryset: QuerySet) -> list[str]:
        return ORDERING

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # A list that fits one page Django reads again from the whole
        # queryset: the paginator already holds its rows.
        try:
            self.result_list = self.paginator.page(self.page_num).object_list
        except InvalidPage:
            raise IncorrectLookupParameters from None
        self.newer_url = (
            self.get_query_string({PAGE_VAR: self.page_num - 1})
            if self.page_num > 1
            else None
        )
        self.older_url = (
            self.get_query_string({PAGE_VAR: self.page_num + 1})
            if self.paginator.has_next
            else None
        )
