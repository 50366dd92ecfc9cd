"""{% dashboard_href model=slug %}: a link to the dashboard that keeps the
rest of the page's query (window, range, focus, auto-refresh)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def dashboard_href(context: template.Context, **changes: Any) -> str:
    return context["query"].href(**changes)
