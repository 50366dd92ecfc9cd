"""Monitoring errors, each with a stable machine code for the API and the CLI."""

from __future__ import annotations


class MonitoringError(Exception):
    """Base class for everything monitoring refuses."""

    code = "monitoring_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidSince(MonitoringError):
    """'since' is neither ISO-8601 nor a window like 15m, 24h, 7d, or lies
    outside the longest window (in the future, or over a century ago)."""

    code = "invalid_since"


class InvalidFeedback(MonitoringError):
    """A feedback body that is wrong as a whole: not one of the three shapes,
    a field of the wrong type, labels and ids of different lengths."""

    code = "invalid_feedback"


class TooManyLabels(MonitoringError):
    """More labels in one feedback body than MODELHUB_MAX_ROWS."""

    code = "too_many_rows"


class InvalidFilter(MonitoringError):
    """The dashboard's model or version filter is malformed, or names a
    version without its model."""

    code = "invalid_filter"
