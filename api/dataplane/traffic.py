"""Which version answers an unpinned request: the active one, or the
policy's candidate for ``weight`` of the traffic (registry.rollouts).

Without a sticky key the split is a fresh draw per request. With one (a
request header's value, or an input feature's), a hash of the key decides:
the same caller gets the same version for as long as the weight stays, and
raising the weight only moves callers towards the candidate. The hash is
salted with the candidate's id, so a new candidate draws its own callers.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from registry.loading import VersionRef
from registry.routing import Policy, Route

ACTIVE = "active"
CANDIDATE = "candidate"
PINNED = "pinned"
SHADOW = "shadow"
_SCALE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class Choice:
    ref: VersionRef
    route: str  # what X-Model-Route says: active, candidate, pinned, alias:<name>

    @property
    def label(self) -> str:
        """The route as the log, stats and metrics group it (no alias names)."""
        return "alias" if self.route.startswith("alias:") else self.route


def choose(route: Route, meta: Mapping[str, Any]) -> Choice | None:
    """The version for this request; None when the policy sticks by a
    feature and the body must be read first (``choose_by_value``)."""
    if route.kind != ACTIVE:
        name = f"alias:{route.alias}" if route.kind == "alias" else PINNED
        return Choice(route.ref, name)
    policy = route.policy
    if policy is None or policy.candidate is None or policy.weight <= 0.0:
        return Choice(route.ref, ACTIVE)
    if policy.sticky_feature:
        return None
    if policy.sticky_header:
        value = meta.get(header_key(policy.sticky_header))
        if value is not None:
            return choose_by_value(route, value)
    return _pick(route, policy, random.random())


def choose_by_value(route: Route, value: Any) -> Choice:
    """The version a sticky key's value sends this request to."""
    policy = route.policy
    assert policy is not None and policy.candidate is not None
    salt = str(policy.candidate.id).encode()
    digest = hashlib.blake2b(
        str(value).encode("utf-8", "surrogatepass"), digest_size=8, salt=salt[:16]
    ).digest()
    return _pick(route, policy, int.from_bytes(digest, "big") / _SCALE)


def _pick(route: Route, policy: Policy, draw: float) -> Choice:
    if policy.candidate is not None and draw < policy.weight:
        return Choice(policy.candidate, CANDIDATE)
    return Choice(route.ref, ACTIVE)


@functools.cache
def header_key(name: str) -> str:
    """A header's key in the WSGI environ."""
    return "HTTP_" + name.upper().replace("-", "_")
