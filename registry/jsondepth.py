"""JSON read with a bound on its nesting (MODELHUB_MAX_JSON_DEPTH).

Deep nesting costs a client a few bytes per level and costs us a
RecursionError wherever the value is later walked, rendered or stored
(orjson's own limit is 1024 levels when parsing and 255 when rendering).
The check is cheap on the hot path: a document cannot be nested deeper than
it has '[' and '{' bytes, so a body with fewer of them than the limit (one
record, one tensor) is only counted, at C speed; only bodies with more
brackets (batches) have their containers walked, level by level, which
costs about what parsing them did.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from django.conf import settings

# How orjson says it stopped at its own limit of 1024 levels.
_ORJSON_DEPTH = "depth limit exceeded"


class TooDeep(ValueError):
    """JSON nested deeper than MODELHUB_MAX_JSON_DEPTH."""

    code = "too_deep"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The JSON is nested deeper than {limit} levels.")
        self.limit = limit


def max_depth() -> int:
    return settings.MODELHUB_MAX_JSON_DEPTH


def loads(data: bytes | str, *, limit: int | None = None) -> Any:
    """orjson.loads, refusing nesting past ``limit`` (default: the setting)
    with TooDeep; other malformed JSON raises orjson.JSONDecodeError."""
    limit = max_depth() if limit is None else limit
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith(_ORJSON_DEPTH):
            raise TooDeep(limit) from None
        raise
    check_depth(data, value, limit=limit)
    return value


def check_text(text: bytes | str, *, limit: int | None = None) -> None:
    """Raises TooDeep for JSON text nested past ``limit``, before a parser that
    recurses (the standard library's) reads it; malformed text passes, for
    that parser to report."""
    limit = max_depth() if limit is None else limit
    if _brackets(text) <= limit:
        return
    try:
        loads(text, limit=limit)
    except orjson.JSONDecodeError:
        return


def check_depth(text: bytes | str, value: Any, *, limit: int) -> None:
    """``value`` parsed from ``text``: TooDeep if nested past ``limit``.

    Read off the text at numpy speed (a batch of 1,000 records: ~0.1 ms,
    about a third of walking its containers), and only for text with more
    brackets than the limit."""
    if _brackets(text) <= limit:
        return
    raw = text.encode() if isinstance(text, str) else text
    if _text_depth(raw) > limit:
        raise TooDeep(limit)


def _text_depth(text: bytes) -> int:
    """The nesting of valid JSON text: its brackets outside strings, summed.

    Escapes go first (every backslash pair, then every escaped quote), so
    each quote left opens or closes a string; a bracket is structural where
    the quotes before it are even in number."""
    bare = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    codes = np.frombuffer(bare, dtype=np.uint8)
    outside = (np.cumsum(codes == ord('"'), dtype=np.int64) & 1) == 0
    steps = (codes == ord("[")).astype(np.int32)
    steps += codes == ord("{")
    steps -= codes == ord("]")
    steps -= codes == ord("}")
    steps *= outside
    return int(np.cumsum(steps).max(initial=0))


def _brackets(text: bytes | str) -> int:
    """An upper bound of the nesting (brackets inside strings count too)."""
    if isinstance(text, str):
        return text.count("[") + text.count("{")
    return text.count(b"[") + text.count(b"{")


def deeper_than(value: Any, limit: int) -> bool:
    """Level by level, containers only: no recursion, whatever the depth (a
    value the standard library parsed may be nested past orjson's limit)."""
    level = [value] if type(value) in (list, dict) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        deeper = []
        for container in level:
            items = container.values() if type(container) is dict else container
            for item in items:
                kind = type(item)
                if kind is list or kind is dict:
                    deeper.append(item)
        level = deeper
    return False
