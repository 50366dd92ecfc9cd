"""Open Inference Protocol tensors <-> numpy: datatypes, JSON ``data`` and
the binary tensor data extension (little-endian, row-major; BYTES elements
as a 4-byte length then the bytes)."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from ..errors import InvalidString, PayloadError, WrongType

# Little-endian whatever the host: the extension says so.
NUMERIC_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
BYTES = "BYTES"
DATATYPES = (*NUMERIC_DTYPES, BYTES)
_MAX_DIMS = 8
_LENGTH = struct.Struct("<I")


class InvalidTensor(PayloadError):
    """A tensor's name, shape, datatype or data is not usable."""

    code = "invalid_tensor"


class InvalidBinaryData(PayloadError):
    """Binary tensor data that does not add up to what the JSON header says."""

    code = "invalid_binary_data"


@dataclass(frozen=True)
class Tensor:
    """One decoded input: its values as numpy, shaped as the client said."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray


def read_tensor(spec: Any, raw: memoryview | None, position: int) -> Tensor:
    """``raw`` is this tensor's binary data when its parameters declare some."""
    if not isinstance(spec, dict):
        raise InvalidTensor(f"Input {position} must be an object.")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidTensor(f"Input {position} needs a 'name' (a string).")
    datatype = spec.get("datatype")
    if datatype not in DATATYPES:
        raise InvalidTensor(
            f"Input '{_short(name)}': datatype must be one of {', '.join(DATATYPES)}; "
            f"got {_short(datatype)!r}."
        )
    shape = _shape(spec.get("shape"), name)
    count = math.prod(shape)  # exact: Python integers, checked in _shape
    if raw is not None:
        array = _from_binary(raw, datatype, count, name)
    elif "data" in spec:
        array = _from_json(spec["data"], datatype, count, name)
    else:
        raise InvalidTensor(
            f"Input '{_short(name)}' has neither 'data' nor binary data."
        )
    return Tensor(name, datatype, shape, array.reshape(shape))


def binary_size(spec: Any, position: int) -> int | None:
    """The ``binary_data_size`` an input declares, if any."""
    parameters = spec.get("parameters") if isinstance(spec, dict) else None
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise InvalidTensor(f"Input {position}: 'parameters' must be an object.")
    if "shared_memory_region" in parameters:
        raise InvalidTensor("The shared-memory extension is not supported.")
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise InvalidBinaryData(
            f"Input {position}: 'binary_data_size' must be a non-negative integer."
        )
    return size


def _shape(shape: Any, name: str) -> tuple[int, ...]:
    if (
        not isinstance(shape, list)
        or not 0 < len(shape) <= _MAX_DIMS
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise InvalidTensor(
            f"Input '{_short(name)}': 'shape' must be a list of 1 to {_MAX_DIMS} "
            "non-negative integers."
        )
    # Every dimension counts, a zero one too: numpy cannot even describe
    # [0, 2**62], and nothing is allocated before this check.
    limit = settings.MODELHUB_MAX_ROWS * settings.MODELHUB_MAX_FEATURES
    if math.prod(max(d, 1) for d in shape) > limit:
        raise InvalidTensor(
            f"Input '{_short(name)}': 'shape' spans more than the {limit:,} values "
            "a request may hold (MODELHUB_MAX_ROWS × MODELHUB_MAX_FEATURES)."
        )
    return tuple(shape)


def _from_binary(raw: memoryview, datatype: str, count: int, name: str) -> np.ndarray:
    if datatype == BYTES:
        return _bytes_elements(raw, count, name)
    dtype = NUMERIC_DTYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise InvalidBinaryData(
            f"Input '{_short(name)}': {count} {datatype} values take "
            f"{count * dtype.itemsize} bytes; 'binary_data_size' says {len(raw)}."
        )
    if datatype == "BOOL":
        as_bytes = np.frombuffer(raw, dtype=np.uint8)
        if (as_bytes > 1).any():
            raise InvalidBinaryData(
                f"Input '{_short(name)}': BOOL bytes must be 0 or 1."
            )
    return np.frombuffer(raw, dtype=dtype)


def _bytes_elements(raw: memoryview, count: int, name: str) -> np.ndarray:
    values: list[str] = []
    offset, end = 0, len(raw)
    while offset < end:
        if end - offset < 4:
            break
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if length > end - offset:
            break
        values.append(_text(bytes(raw[offset : offset + length]), name))
        offset += length
    else:
        if len(values) == count:
            return np.array(values, dtype=object)
    raise InvalidBinaryData(
        f"Input '{_short(name)}': the BYTES data does not hold {count} "
        "length-prefixed elements."
    )


def _text(value: bytes, name: str) -> str:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidString(
            f"Input '{_short(name)}': BYTES elements must be UTF-8 text.", column=name
        ) from None
    if "\x00" in text:
        raise InvalidString(
            f"Input '{_short(name)}': strings may not contain U+0000.", column=name
        )
    return text


def _from_json(data: Any, datatype: str, count: int, name: str) -> np.ndarray:
    flat = _flatten(data) if isinstance(data, list) else [data]
    if len(flat) != count:
        raise InvalidTensor(
            f"Input '{_short(name)}': the shape holds {count} values; 'data' has "
            f"{len(flat)}."
        )
    kinds = set(map(type, flat))
    if datatype == BYTES:
        if not kinds <= {str}:
            raise WrongType(
                f"Input '{_short(name)}': BYTES data must be strings.", column=name
            )
        for value in flat:
            if "\x00" in value:
                raise InvalidString(
                    f"Input '{_short(name)}': strings may not contain U+0000.",
                    column=name,
                )
        return np.array(flat, dtype=object)
    allowed = {bool} if datatype == "BOOL" else {int, float}
    if not kinds <= allowed:
        expected = "true/false" if datatype == "BOOL" else "numbers"
        raise WrongType(
            f"Input '{_short(name)}': {datatype} data must be {expected}.", column=name
        )
    if datatype.startswith(("INT", "UINT")) and float in kinds:
        raise WrongType(
            f"Input '{_short(name)}': {datatype} data must be integers.", column=name
        )
    try:
        return np.array(flat, dtype=NUMERIC_DTYPES[datatype])
    except OverflowError:
        raise InvalidTensor(
            f"Input '{_short(name)}': a value does not fit in {datatype}."
        ) from None


def _flatten(data: list[Any]) -> list[Any]:
    """Nested ``data`` made flat; flat data (the usual) is not scanned here: a
    list further in fails the type check that follows."""
    if not data or not isinstance(data[0], list):
        return data
    flat: list[Any] = []
    for value in data:
        if isinstance(value, list):
            flat.extend(_flatten(value))
        else:
            flat.append(value)
    return flat


# --- outputs -----------------------------------------------------------------------


def output_array(values: Any) -> tuple[str, np.ndarray]:
    """A model's result as a protocol datatype and an array of that type.

    Integers widen to INT64 and floats to FP64 so a version's outputs keep one
    datatype whatever numpy chose; anything else is sent as text.
    """
    array = np.asarray(values)
    kind = array.dtype.kind
    if kind == "b":
        return "BOOL", array.astype(NUMERIC_DTYPES["BOOL"], copy=False)
    if kind in "iu":
        return "INT64", array.astype(NUMERIC_DTYPES["INT64"], copy=False)
    if kind == "f":
        return "FP64", array.astype(NUMERIC_DTYPES["FP64"], copy=False)
    if kind == "U" or (kind == "O" and all(type(v) is str for v in array.flat)):
        return BYTES, array.astype(object, copy=False)  # class labels, usually
    texts = np.array([_plain_text(v) for v in array.ravel()], dtype=object)
    return BYTES, texts.reshape(array.shape)


def _plain_text(value: Any) -> str:
    """One label as text: numpy's str_ (the usual object-array label) as it is."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value.item() if isinstance(value, np.generic) else value)


def encode_json(datatype: str, array: np.ndarray) -> list[Any]:
    """Flat row-major ``data``; NaN becomes null when rendered by orjson."""
    if datatype == BYTES:
        return list(array.ravel())
    return array.ravel().tolist()


def encode_binary(datatype: str, array: np.ndarray) -> bytes:
    if datatype == BYTES:
        encoded = [value.encode("utf-8") for value in array.flat]
        return b"".join(
            part for item in encoded for part in (_LENGTH.pack(len(item)), item)
        )
    return np.ascontiguousarray(array).tobytes()


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 100 else text[:100] + "…"
