"""Every MODELHUB_* and DJANGO_* variable the code reads is in the README's
configuration table.

The code is read with ``ast``, never imported: a read is a call of one of
modelhub/env.py's readers, ``os.environ.get``/``os.getenv``, a subscript of
``os.environ`` or an ``in os.environ`` test, with the name written out.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = ("modelhub", "registry", "monitoring", "api", "manage.py")
NAME = re.compile(r"^(MODELHUB|DJANGO)_[A-Z0-9_]+$")
READERS = {"env_str", "env_bool", "env_int", "env_float", "env_list", "env_choice"}


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _reads(tree: ast.AST) -> Iterator[tuple[int, ast.AST]]:
    """(line, the node naming the variable) of every read of the environment."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if (
                (isinstance(func, ast.Name) and func.id in READERS)
                or (isinstance(func, ast.Attribute) and func.attr == "getenv")
                or (
                    isinstance(func, ast.Attribute)
                    and func.attr == "get"
                    and _is_environ(func.value)
                )
            ):
                yield node.lineno, node.args[0]
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and _is_environ(node.value)
        ):
            yield node.lineno, node.slice
        elif isinstance(node, ast.Compare) and any(
            _is_environ(c) for c in node.comparators
        ):
            yield node.lineno, node.left


def variables_read(source: str) -> set[str]:
    return {
        named.value
        for _, named in _reads(ast.parse(source))
        if isinstance(named, ast.Constant)
        and isinstance(named.value, str)
        and NAME.match(named.value)
    }


def code_reads() -> dict[str, str]:
    """Variable -> the first file that reads it."""
    found: dict[str, str] = {}
    for entry in CODE:
        path = ROOT / entry
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            for name in variables_read(file.read_text(encoding="utf-8")):
                found.setdefault(name, str(file.relative_to(ROOT)))
    return found


def readme_table(text: str) -> set[str]:
    """Names in backticks in the first column of the Configuration table."""
    section = ("\n" + text).split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("|"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def test_every_variable_the_code_reads_is_in_the_readme_table():
    listed = readme_table((ROOT / "README.md").read_text(encoding="utf-8"))
    read = sorted(code_reads().items())
    missing = {name: where for name, where in read if name not in listed}
    assert missing == {}, "read by the code, not in README's configuration table"


def test_the_readme_table_lists_only_variables_the_code_reads():
    listed = readme_table((ROOT / "README.md").read_text(encoding="utf-8"))
    read = code_reads()
    stale = sorted(name for name in listed if NAME.match(name) and name not in read)
    assert stale == [], "in README's table, read by no code"


def test_the_scan_sees_every_way_the_environment_is_read():
    source = (
        "import os\n"
        "a = env_int('MODELHUB_A', 1)\n"
        "b = os.environ.get('DJANGO_B')\n"
        "c = os.getenv('MODELHUB_C', '')\n"
        "d = os.environ['MODELHUB_D']\n"
        "if 'MODELHUB_E' not in os.environ:\n"
        "    os.environ['MODELHUB_WRITTEN'] = 'x'\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'x')\n"
        "f = env_str('PATH')\n"
    )
    assert variables_read(source) == {
        "MODELHUB_A",
        "DJANGO_B",
        "MODELHUB_C",
        "MODELHUB_D",
        "MODELHUB_E",
    }


def test_the_table_reader_takes_names_from_the_first_column_only():
    text = (
        "## Configuration\n\n| variable | default | meaning |\n|---|---|---|\n"
        "| `MODELHUB_X`, `MODELHUB_Y` | `1` | like `MODELHUB_Z` |\n\n## Layout\n"
        "| `MODELHUB_W` | | |\n"
    )
    assert readme_table(text) == {"MODELHUB_X", "MODELHUB_Y"}
