"""Time windows: what 'since' and 'until' name, and the steps a chart cuts a
window into.

The rollup keeps minutes, hours and days in UTC, so every edge computed here
is in UTC whatever offset a time was given with.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .exceptions import InvalidSince

_RELATIVE = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DEFAULT_WINDOW = "24h"
# The longest window: far beyond any retention, and far enough from
# datetime's year 1 that no rounding or time-zone shift of 'since' overflows.
MAX_WINDOW = timedelta(days=36525)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def parse_since(
    raw: str | None,
    now: datetime,
    *,
    name: str = "'since'",
    zone: tzinfo = UTC,
) -> datetime:
    """The start of the window ``raw`` names, between MAX_WINDOW before ``now``
    and ``now``: anything else is an InvalidSince (a 400), never an overflow.
    ``name`` is what the messages call the value (a command's option); a time
    without an offset is read in ``zone`` (a form's datetime-local input is
    the page's wall clock)."""
    value = (raw or DEFAULT_WINDOW).strip()
    match = _RELATIVE.match(value)
    if match:
        amount, unit = match.groups()
        window = timedelta(**{_UNITS[unit]: int(amount)})
        if window > MAX_WINDOW:
            raise InvalidSince(
                f"{name} window {value!r} is too long: at most {MAX_WINDOW.days}d."
            )
        return now - window
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise InvalidSince(
            f"{name} must be ISO-8601 (2026-11-22T10:00:00Z) or a window such as "
            f"15m, 24h or 7d; got {value[:40]!r}."
        )
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=zone)
    # Compared before any conversion: converting year 1 or 9999 with an
    # offset is itself what overflows.
    if parsed > now:
        raise InvalidSince(f"{name} {value[:40]!r} is in the future.")
    if now - parsed > MAX_WINDOW:
        raise InvalidSince(
            f"{name} {value[:40]!r} is too long ago: at most {MAX_WINDOW.days}d."
        )
    return parsed


def is_window(raw: str) -> bool:
    """Whether ``raw`` is a length of time back from now (15m, 24h), not a
    moment."""
    return bool(_RELATIVE.match(raw.strip()))


def parse_range(
    since: str | None, until: str | None, now: datetime, *, zone: tzinfo = UTC
) -> tuple[datetime, datetime]:
    """[since, until] by parse_since's rules for both ends (a window such as
    1h is measured back from ``now``); ``until`` defaults to ``now`` and must
    come after ``since``."""
    start = parse_since(since, now, zone=zone)
    end = parse_since(until, now, name="'until'", zone=zone) if until else now
    if end <= start:
        raise InvalidSince(
            f"'until' ({end:%Y-%m-%d %H:%M}) must be after 'since' "
            f"({start:%Y-%m-%d %H:%M})."
        )
    return start, end


def minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def floor(moment: datetime, unit: timedelta) -> datetime:
    """``moment`` (UTC) down to the minute, hour or day it falls in."""
    moment = minute(moment)
    if unit >= HOUR:
        moment = moment.replace(minute=0)
    if unit >= DAY:
        moment = moment.replace(hour=0)
    return moment


def ceil(moment: datetime, unit: timedelta) -> datetime:
    down = floor(moment, unit)
    return down if down == moment else down + unit


@dataclass(frozen=True)
class Steps:
    """A window cut into equal steps from ``origin``, for a chart: the last
    step holds ``until`` even when the span is not whole steps."""

    step: timedelta
    origin: datetime
    count: int

    def starts(self) -> list[datetime]:
        return [self.origin + self.step * i for i in range(self.count)]

    def start_of(self, moment: datetime) -> datetime:
        """The start of the step ``moment`` falls in."""
        return self.origin + self.step * ((moment - self.origin) // self.step)


def steps(since: datetime, until: datetime) -> Steps:
    """Minutes up to an hour, then 5 minutes, hours, and past three days at
    most ~500 steps of whole hours. Steps under an hour start at a minute,
    longer ones at an hour, so each holds whole rows of the rollup."""
    span = until - since
    if span <= HOUR:
        step = MINUTE
    elif span <= timedelta(hours=6):
        step = timedelta(minutes=5)
    elif span <= timedelta(days=3):
        step = HOUR
    else:
        step = timedelta(hours=max(6, math.ceil(span / HOUR / 500)))
    origin = floor(since.astimezone(UTC), MINUTE if step < HOUR else HOUR)
    return Steps(step=step, origin=origin, count=(until - origin) // step + 1)
