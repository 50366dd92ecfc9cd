"""Readiness: can this instance serve at least one active model?"""

from __future__ import annotations

from typing import Any

from registry.warmup import load_active


def readiness() -> tuple[bool, dict[str, Any]]:
    """503 only when no active model can be served; a DB outage alone is fine."""
    states, database_ok = load_active()
    ready = any(state["status"] == "ok" for state in states.values())
    return ready, {
        "status": "ready" if ready else "not ready",
        "database": "ok" if database_ok else "unavailable",
        "models": states,
    }
