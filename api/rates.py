"""Request rates as DRF writes them ('100/second', '5000/hour')."""

from __future__ import annotations

from django.core.exceptions import ValidationError

_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class InvalidRate(ValueError):
    pass


def parse_rate(rate: str) -> tuple[int, float]:
    """'100/minute' (DRF's notation: s, m, h or d is enough) -> (100, 60.0)."""
    count, _, period = rate.strip().partition("/")
    try:
        allowed = int(count)
        seconds = _PERIODS[period.strip()[:1].lower()]
    except (ValueError, KeyError):
        raise InvalidRate(
            f"{rate!r} is not a rate: use e.g. '100/second' or '5000/hour'."
        ) from None
    if allowed <= 0:
        raise InvalidRate(f"{rate!r} allows no request.")
    return allowed, seconds


def validate_rate(value: str) -> None:
    """Model-field validator: a blank rate means the default."""
    if value.strip():
        try:
            parse_rate(value)
        except InvalidRate as exc:
            raise ValidationError(str(exc)) from None
