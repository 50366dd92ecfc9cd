"""The model page's rollouts in the admin: aliases and the traffic policy,
changed only through registry.rollouts (the admin stores nothing itself), and
their lines in the page's history. registry.admin wires these in."""

from __future__ import annotations

from .history import alias_history, policy_history
from .views import RolloutViews, panel

__all__ = ["RolloutViews", "alias_history", "panel", "policy_history"]
