"""The landing page and each model's public page: parse, call one function,
render."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from registry.exceptions import UnknownModel

from ..control import catalog
from . import landing
from .calling import how_to_call


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    context = {
        **admin.site.each_context(request),
        "title": "Models",
        "models": landing.entries(request),
    }
    return render(request, "pages/landing.html", context)


@require_safe
def model_page(request: HttpRequest, slug: str) -> HttpResponse:
    """A model this visitor may not see is the page of a model that does not
    exist: the same 404, whatever the reason."""
    context = {**admin.site.each_context(request), "slug": slug}
    try:
        model = catalog.get_visible_model(slug, request)
    except UnknownModel:
        return render(
            request,
            "pages/no_model.html",
            {**context, "title": "No such model"},
            status=404,
        )
    active = model.active_version
    context |= {
        "title": model.display_name,
        "model": model,
        "calling": how_to_call(active, request=request, pinned=False)
        if active
        else None,
        "try_it": request.user.is_staff,
    }
    return render(request, "pages/model.html", context)
