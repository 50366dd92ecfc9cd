"""Reading a drift reference CSV in the web process: bounded in bytes and
rows, cells kept as text for the preflight child to type by the schema."""

from __future__ import annotations

import io

import pytest

from registry.exceptions import InvalidReference
from registry.reference_sample import MAX_ROWS, read_reference


def numbered(rows: int) -> bytes:
    return ("n\n" + "\n".join(str(i) for i in range(rows)) + "\n").encode()


def test_a_reference_past_max_rows_keeps_an_even_sample_in_file_order():
    sample = read_reference(io.BytesIO(numbered(3 * MAX_ROWS)))
    assert (sample.rows, sample.rows_in_file) == (MAX_ROWS, 3 * MAX_ROWS)
    kept = [int(n) for n in sample.columns["n"]]
    assert kept == sorted(set(kept)), "each row once, in the file's order"
    thirds = [sum(1 for n in kept if n // MAX_ROWS == i) for i in range(3)]
    assert all(abs(third - MAX_ROWS / 3) < 200 for third in thirds), thirds


def test_the_same_file_always_gives_the_same_sample():
    data = numbered(MAX_ROWS + 500)
    first = read_reference(io.BytesIO(data))
    assert read_reference(io.BytesIO(data)) == first


def test_a_reference_up_to_max_rows_is_kept_whole():
    sample = read_reference(io.BytesIO(numbered(MAX_ROWS)))
    assert sample.columns["n"] == [str(i) for i in range(MAX_ROWS)]


def test_cells_stay_text_and_empty_cells_are_missing():
    data = '\ufeffage,city,note\n42,007,"a, b"\n,paris,\n\n'.encode()
    sample = read_reference(io.BytesIO(data))
    assert sample.columns == {
        "age": ["42", None],
        "city": ["007", "paris"],
        "note": ["a, b", None],
    }
    assert sample.rows == 2


def test_a_reference_over_the_limit_is_refused_unread_past_it(settings):
    settings.MODELHUB_MAX_REFERENCE_BYTES = 1000
    source = io.BytesIO(numbered(5000))
    with pytest.raises(InvalidReference) as refused:
        read_reference(source)
    assert refused.value.reason == "reference_too_large"
    assert source.tell() == 1001


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "reference_empty"),
        (b"\n\n", "reference_empty"),
        (b"a,b\n", "reference_empty"),
        (b"a,a\n1,2\n", "reference_unreadable"),
        (b"a,b\n1,2\n3\n", "reference_unreadable"),
        (b"a,b\n1,\xff\n", "reference_unreadable"),
        (b"a,b\n1,\x002\n", "reference_unreadable"),
    ],
    ids=["empty", "blank", "header-only", "twice", "ragged", "not-utf8", "nul"],
)
def test_a_reference_that_is_not_a_csv_with_rows_is_refused(data, reason):
    with pytest.raises(InvalidReference) as refused:
        read_reference(io.BytesIO(data))
    assert refused.value.code == "invalid_reference"
    assert refused.value.reason == reason
    assert refused.value.technical
