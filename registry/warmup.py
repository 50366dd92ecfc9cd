"""Loading every active version into this process's cache.

Called from gunicorn's post_worker_init hook (never at import time or in
AppConfig.ready()) and by the readiness check, which reports per model.
"""

from __future__ import annotations

import logging
from typing import TypedDict

from django.db import DatabaseError

from . import routing, serving
from .exceptions import RegistryError
from .models import MLModel

logger = logging.getLogger(__name__)


class ModelState(TypedDict, total=False):
    status: str
    version: int
    active_version: int
    code: str
    detail: str


def active_slugs() -> tuple[list[str], bool]:
    """Slugs with an active version, and whether the database answered."""
    try:
        slugs = list(
            MLModel.objects.filter(active_version__isnull=False)
            .order_by("slug")
            .values_list("slug", flat=True)
        )
        return slugs, True
    except DatabaseError:
        return sorted({ref.slug for ref in routing.last_resolved()}), False


def load_active() -> tuple[dict[str, ModelState], bool]:
    """Resolve and load each active version; a failure is reported, not raised."""
    slugs, database_ok = active_slugs()
    states: dict[str, ModelState] = {}
    for slug in slugs:
        try:
            ref = routing.resolve(slug)
            served = serving.serve(ref).ref
        except RegistryError as exc:
            states[slug] = {
                "status": "unavailable",
                "code": exc.code,
                "detail": exc.message,
            }
        else:
            states[slug] = {"status": "ok", "version": served.number}
            if served.number != ref.number:
                states[slug].update(
                    status="fallback",
                    active_version=ref.number,
                    detail=f"v{ref.number} cannot be loaded; v{served.number} "
                    "serves instead.",
                )
    return states, database_ok


def preload() -> None:
    states, _ = load_active()
    for slug, state in states.items():
        if state["status"] == "ok":
            logger.info("preloaded %s v%s", slug, state["version"])
        elif state["status"] == "fallback":
            logger.error("preloaded %s: %s", slug, state["detail"])
        else:
            logger.error("could not preload %s: %s", slug, state["detail"])
