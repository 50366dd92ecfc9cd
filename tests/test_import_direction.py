"""Imports point one way: api -> monitoring -> registry, and api -> registry.

Every module of the three apps is read with ``ast`` (never imported), so an
import inside a function or a relative import counts as much as one at the
top of a file.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("registry", "monitoring", "api")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(
    source: str, module: str, *, is_package: bool = False
) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            yield node.lineno, name


def imports_of(app: str) -> Iterator[tuple[str, int, str]]:
    """(file, line, imported module) for every .py file under ``app``."""
    for path in sorted((ROOT / app).rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        module = module_name(path)
        is_package = path.name == "__init__.py"
        for line, name in imported_modules(source, module, is_package=is_package):
            yield str(path.relative_to(ROOT)), line, name


def offending(app: str, forbidden: set[str]) -> list[str]:
    return [
        f"{path}:{line} imports {name}"
        for path, line, name in imports_of(app)
        if name.split(".")[0] in forbidden
    ]


def test_registry_never_imports_api_or_monitoring():
    assert offending("registry", {"api", "monitoring"}) == []


def test_monitoring_never_imports_api():
    assert offending("monitoring", {"api"}) == []


def test_import_walk_sees_relative_and_function_level_imports():
    source = (
        "from .. import api\n"
        "from ..api.errors import ApiError\n"
        "def later():\n"
        "    import api.views\n"
        "    from . import stats\n"
    )
    found = [name for _, name in imported_modules(source, "monitoring.commands.x")]
    assert found == [
        "monitoring",
        "monitoring.api.errors",
        "api.views",
        "monitoring.commands",
    ]
    top = [name for _, name in imported_modules("from ..api import x\n", "pkg.sub.m")]
    assert top == ["pkg.api"]


def test_import_check_reads_the_modules_of_every_app():
    for app in APPS:
        assert any(True for _ in imports_of(app)), app
