"""What the registry may store, whichever channel it comes from (admin, CLI,
REST): slugs, metadata, display names."""

from __future__ import annotations

import json
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug

from .exceptions import InvalidMetadata, InvalidSlug, MetadataTooLarge
from .inspection import SchemaError
from .inspection import check_metadata as check_schema_and_example
from .models import MLModel

MAX_METADATA_DEPTH = 64


def display_name(filename: str) -> str:
    """The uploader's file name, for display only: its last path component
    (either separator), without control characters (PostgreSQL text cannot
    hold NUL), at most 255 characters. Stored files never use it."""
    last = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in last if c.isprintable())[:255]


def check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """Metadata every database can store, whose input schema and example are
    usable; raise InvalidMetadata."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidMetadata("Metadata must be a JSON object.")
    if not storable(metadata):
        raise InvalidMetadata(
            f"Metadata may not nest deeper than {MAX_METADATA_DEPTH} levels nor "
            "hold NaN, infinities, U+0000 or lone surrogates."
        )
    limit = settings.MODELHUB_MAX_METADATA_BYTES
    for key, value in metadata.items():
        if encoded_size(value, stop_after=limit) > limit:
            raise MetadataTooLarge(
                f"Metadata field {str(key)[:100]!r} is larger than the {limit:,} "
                "byte limit (MODELHUB_MAX_METADATA_BYTES)."
            )
    try:
        check_schema_and_example(metadata)
    except SchemaError as exc:
        raise InvalidMetadata(f"Metadata: {exc}.") from None
    return metadata


def storable(value: Any) -> bool:
    """What every channel (admin, CLI, REST) may store: PostgreSQL's jsonb
    holds neither U+0000, lone surrogates nor NaN, and the API's JSON renderer
    stops at 255 levels when it echoes metadata back."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if "\x00" in item or not _utf8(item):
                return False
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif depth >= MAX_METADATA_DEPTH:
            return False
        elif isinstance(item, dict):
            pending.extend((k, depth + 1) for k in item)
            pending.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            pending.extend((v, depth + 1) for v in item)
    return True


def encoded_size(value: Any, *, stop_after: int) -> int:
    """The JSON size of ``value``, counted piece by piece and given up past
    ``stop_after``: a value whose parts are shared (YAML aliases, a caller's
    own references) can be far larger once encoded than it is in memory."""
    size = 0
    for chunk in json.JSONEncoder(ensure_ascii=False).iterencode(value):
        size += len(chunk.encode("utf-8", "surrogatepass"))
        if size > stop_after:
            break
    return size


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_slug(slug: str) -> None:
    try:
        validate_slug(slug)
    except ValidationError:
        raise InvalidSlug(
            f"'{slug}' is not a valid slug: use letters, digits, '-' and '_'."
        ) from None
    if len(slug) > MLModel._meta.get_field("slug").max_length:
        raise InvalidSlug("Slugs are at most 100 characters long.")
