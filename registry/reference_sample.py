"""A drift reference given at upload: a CSV sample of the training data, read
in the web process, bounded, before the preflight child predicts it.

The file is refused past MODELHUB_MAX_REFERENCE_BYTES, unread beyond it. Its
first row names the columns. Past MAX_ROWS rows, an even sample of MAX_ROWS
is kept (reservoir sampling with a fixed seed: the same file always gives the
same reference), in the file's order. Cells stay text here and empty ones
are missing: which columns hold numbers is the model's schema's to say, and
that is known only in the preflight child (registry.reference_check), which
converts them; so a string feature's "007" stays "007".
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from django.conf import settings

from .exceptions import RegistryError
from .upload_errors import readable_size, refusal

MAX_ROWS = 10_000
_SEED = 0


@dataclass(frozen=True)
class ReferenceSample:
    """The rows kept of a reference CSV, column by column (None: empty cell)."""

    columns: dict[str, list[str | None]]
    rows: int
    rows_in_file: int


def read_reference(source: IO[bytes]) -> ReferenceSample:
    """The CSV in ``source``, or the refusal that says why it cannot be used."""
    limit = settings.MODELHUB_MAX_REFERENCE_BYTES
    if hasattr(source, "seek"):
        source.seek(0)
    data = source.read(limit + 1)
    if len(data) > limit:
        raise refusal(
            "reference_too_large",
            technical=f"MODELHUB_MAX_REFERENCE_BYTES is {limit:,} bytes.",
            limit=readable_size(limit),
        )
    if b"\x00" in data:
        raise _unreadable("it holds NUL bytes, as binary files do")
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        header = next(_lines(reader), None)
        if header is None:
            raise refusal("reference_empty", technical="The file has no header row.")
        _check_header(header)
        kept, seen = _sample(_lines(reader), width=len(header))
    except UnicodeDecodeError as exc:
        raise _unreadable(f"it is not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise _unreadable(f"line {reader.line_num}: {exc}") from None
    if not kept:
        raise refusal("reference_empty", technical="The file has a header row only.")
    columns = {
        name: [cell if cell != "" else None for cell in values]
        for name, values in zip(header, zip(*kept, strict=True), strict=True)
    }
    return ReferenceSample(columns=columns, rows=len(kept), rows_in_file=seen)


def _lines(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    """The reader's rows without blank lines (a trailing newline or two)."""
    return (row for row in reader if row)


def _check_header(header: list[str]) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise csv.Error(f"the header names the column {name[:100]!r} twice")
        seen.add(name)


def _sample(rows: Iterator[list[str]], *, width: int) -> tuple[list[list[str]], int]:
    """At most MAX_ROWS of ``rows``, each as likely as any other, in order;
    and how many rows there were."""
    rng = random.Random(_SEED)
    kept: list[tuple[int, list[str]]] = []
    seen = 0
    for row in rows:
        if len(row) != width:
            raise csv.Error(f"the header has {width} fields, this row {len(row)}")
        if seen < MAX_ROWS:
            kept.append((seen, row))
        elif (slot := rng.randrange(seen + 1)) < MAX_ROWS:
            kept[slot] = (seen, row)
        seen += 1
    kept.sort(key=lambda item: item[0])
    return [row for _, row in kept], seen


def _unreadable(problem: str) -> RegistryError:
    return refusal(
        "reference_unreadable", technical=f"The file cannot be read as CSV: {problem}."
    )
