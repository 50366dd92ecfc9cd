"""A model's adaptive-batching settings: their limits and the one check that
the admin, the CLI and the management API all run.

Batching predicts the single- and few-row requests that reach one version
within ``batch_max_wait_ms`` in one call; ``batch_max_rows`` 0 turns it off.
The batcher itself is the data plane's (api.dataplane.batching): it reads the
two numbers from the route (registry.loading.VersionRef).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError

from .exceptions import RegistryError

OFF = 0
MIN_ROWS = 2
MAX_ROWS = 1024
DEFAULT_WAIT_MS = 2.0
MAX_WAIT_MS = 100.0


class InvalidBatching(RegistryError):
    """A model's batching settings are of the wrong type or out of range."""

    code = "invalid_batching"


def rows_problem(value: Any) -> str:
    """Why ``value`` cannot be a model's batch_max_rows; empty if it can."""
    if type(value) is int and (value == OFF or MIN_ROWS <= value <= MAX_ROWS):
        return ""
    return (
        f"Use {OFF} (batching off) or a whole number of rows from {MIN_ROWS} to "
        f"{MAX_ROWS}; got {_shown(value)}."
    )


def wait_problem(value: Any) -> str:
    """Why ``value`` cannot be a model's batch_max_wait_ms; empty if it can."""
    # NaN and infinities fail the comparison; a huge int compares exactly.
    if type(value) in (int, float) and 0 < value <= MAX_WAIT_MS:
        return ""
    return (
        f"Use a number of milliseconds above 0 and at most {MAX_WAIT_MS:g}; "
        f"got {_shown(value)}."
    )


FIELDS = ("batch_max_rows", "batch_max_wait_ms")


def check(*, rows: Any, wait_ms: Any) -> None:
    """Raise InvalidBatching naming the first setting that is out of range."""
    check_given({"batch_max_rows": rows, "batch_max_wait_ms": wait_ms})


def check_given(fields: Mapping[str, Any]) -> None:
    """Check the settings among ``fields`` (named as the model's fields), as a
    partial change sends them."""
    problems = {"batch_max_rows": rows_problem, "batch_max_wait_ms": wait_problem}
    for name in FIELDS:
        if name in fields and (problem := problems[name](fields[name])):
            raise InvalidBatching(f"'{name}': {problem}")


def validate_rows(value: Any) -> None:
    """Model field validator (the admin's form runs it)."""
    if problem := rows_problem(value):
        raise ValidationError(problem, code=InvalidBatching.code)


def validate_wait_ms(value: Any) -> None:
    """Model field validator (the admin's form runs it)."""
    if problem := wait_problem(value):
        raise ValidationError(problem, code=InvalidBatching.code)


def _shown(value: Any) -> str:
    return repr(value)[:40]
