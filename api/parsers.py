"""The JSON parser of every DRF view: orjson, with the body and its nesting
bounded (DRF's own parser reads any size and recurses into any depth)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

import orjson
from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from registry import jsondepth

from .errors import PayloadTooLarge, TooDeep


class JSONParser(parsers.JSONParser):
    """DRF's JSONParser, refusing NaN and infinities as its strict mode does."""

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = settings.MODELHUB_MAX_BODY_BYTES
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"The body is larger than the {limit:,} byte limit.")
        try:
            return jsondepth.loads(data)
        except jsondepth.TooDeep as exc:
            raise TooDeep(str(exc)) from None
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
