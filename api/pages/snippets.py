"""Ready-to-paste code that calls a model: curl, Python requests, tritonclient.

Each is built from a real example row and the absolute URLs a visitor reached
the page by; the tests run every one of them against a live server.
"""

from __future__ import annotations

import json
import pprint
import shlex
import textwrap
from typing import Any
from urllib.parse import urlsplit

# What a private model's caller sends; the reader replaces the placeholder.
KEY_PLACEHOLDER = "<your key>"
AUTH_HEADER = f"Api-Key {KEY_PLACEHOLDER}"
TENSOR_INPUT = "input-0"  # api.v2.inputs: one [rows, features] tensor


def curl(url: str, body: dict[str, Any], *, private: bool) -> str:
    parts = [
        f"curl -sS -X POST {shlex.quote(url)}",
        "-H 'Content-Type: application/json'",
    ]
    if private:
        parts.append(f"-H {shlex.quote('Authorization: ' + AUTH_HEADER)}")
    parts.append(f"-d {shlex.quote(json.dumps(body))}")
    return " \\\n  ".join(parts)


def requests_code(url: str, body: dict[str, Any], *, private: bool) -> str:
    lines = [
        "import requests",
        "",
        "response = requests.post(",
        f"    {_literal(url)},",
        _literal(body, prefix="    json=") + ",",
    ]
    if private:
        auth = {"Authorization": AUTH_HEADER}
        lines.append(_literal(auth, prefix="    headers=") + ",")
    lines += [
        "    timeout=30,",
        ")",
        'print(response.status_code, response.headers.get("X-Model-Version"))',
        "print(response.json())",
    ]
    return "\n".join(lines) + "\n"


def tritonclient_code(
    base_url: str,
    slug: str,
    row: dict[str, Any] | list[Any],
    *,
    version: int | None,
    private: bool,
) -> str:
    """The V2 protocol through Triton's HTTP client: one [1, 1] input per
    named feature (strings as BYTES), or one [1, features] FP64 tensor."""
    address = urlsplit(base_url)
    tls = ", ssl=True" if address.scheme == "https" else ""
    lines = [
        "import numpy as np",
        "import tritonclient.http as httpclient",
        "",
        f"client = httpclient.InferenceServerClient({_literal(address.netloc)}{tls})",
        _literal(row, prefix="row = "),
    ]
    if isinstance(row, dict):
        lines += [
            "inputs = []",
            "for name, value in row.items():",
            "    if isinstance(value, str):",
            '        tensor = httpclient.InferInput(name, [1, 1], "BYTES")',
            "        tensor.set_data_from_numpy(np.array([[value]], dtype=object))",
            "    else:",
            '        tensor = httpclient.InferInput(name, [1, 1], "FP64")',
            "        tensor.set_data_from_numpy(np.array([[value]], dtype=np.float64))",
            "    inputs.append(tensor)",
        ]
    else:
        lines += [
            f'tensor = httpclient.InferInput("{TENSOR_INPUT}", [1, len(row)], "FP64")',
            "tensor.set_data_from_numpy(np.array([row], dtype=np.float64))",
            "inputs = [tensor]",
        ]
    arguments = [_literal(slug), "inputs"]
    if version is not None:
        arguments.append(_literal(str(version), prefix="model_version="))
    if private:
        arguments.append(_literal({"Authorization": AUTH_HEADER}, prefix="headers="))
    lines += [
        f"result = client.infer({', '.join(arguments)})",
        'print(result.as_numpy("predict"))',
    ]
    return "\n".join(lines) + "\n"


def _literal(value: Any, *, prefix: str = "") -> str:
    """A Python literal of JSON data after ``prefix``, its lines aligned with
    its opening bracket and wrapped at 88 columns like our code."""
    text = pprint.pformat(value, width=88 - len(prefix), sort_dicts=False)
    first, _, rest = text.partition("\n")
    aligned = "\n" + textwrap.indent(rest, " " * len(prefix)) if rest else ""
    return prefix + first + aligned
