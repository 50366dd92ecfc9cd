"""JSON rendering with orjson: fast, and NaN/infinity become null, not invalid JSON."""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework.renderers import BaseRenderer

from registry.jsonvalues import to_json_value

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    """What orjson cannot write itself (numpy scalars of other kinds, objects)."""
    return to_json_value(value)


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, default=_default, option=_OPTIONS)


class ORJSONRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: dict[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        return dumps(data)
