"""Every write to the registry's tables goes through registry.actions (and
registry.rollouts, its part for aliases and traffic policies), which
announces it to the other processes; nothing else in the project writes them.

Read with ``ast``: a write is a call of a QuerySet or Manager write method
(``create``, ``update``, ``delete``...) on a chain that starts at a registry
model, or ``save()``/``delete()`` on anything, outside registry/actions.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.contrib import admin

from registry.models import MLModel, ModelVersion

ROOT = Path(__file__).resolve().parents[2]
APPS = ("registry", "monitoring", "api", "modelhub")
REGISTRY_MODELS = {
    "MLModel",
    "ModelVersion",
    "Activation",
    "VersionEdit",
    "Alias",
    "AliasMove",
    "TrafficPolicy",
    "PolicyChange",
}
QUERY_WRITES = {
    "create",
    "update",
    "delete",
    "get_or_create",
    "update_or_create",
    "bulk_create",
    "bulk_update",
}
INSTANCE_WRITES = {"save", "delete"}
ALLOWED = {
    ROOT / "registry" / "actions.py",
    ROOT / "registry" / "rollouts.py",
    # API keys are the api app's own table; it saves them here and only here.
    ROOT / "api" / "access" / "issuing.py",
}


def chain_root(node: ast.AST) -> str | None:
    """The name a call chain starts at: ``MLModel`` for MLModel.objects.filter()."""
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None


def plain_chain(node: ast.AST) -> bool:
    """``version`` or ``obj.model``: an object, not a QuerySet built by calls."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name)


def writes_in(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        method = node.func.attr
        root = chain_root(node.func.value)
        on_model_query = method in QUERY_WRITES and root in REGISTRY_MODELS
        on_instance = (
            method in INSTANCE_WRITES
            and plain_chain(node.func.value)
            and root not in {"default_storage", "self", "publishing"}
        )
        if on_model_query or on_instance:
            found.append((node.lineno, ast.unparse(node)[:80]))
    return found


def project_modules() -> list[Path]:
    return [
        path
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        if "migrations" not in path.parts and path not in ALLOWED
    ]


def test_only_the_actions_module_writes_registry_tables():
    offending = [
        f"{path.relative_to(ROOT)}:{line}: {call}"
        for path in project_modules()
        for line, call in writes_in(path.read_text())
    ]
    assert offending == []


def test_the_write_check_sees_queryset_and_instance_writes():
    source = (
        "ModelVersion.objects.filter(pk=1).update(status='invalid')\n"
        "MLModel.objects.create(slug='x')\n"
        "version.save()\n"
        "RequestLog.objects.create(slug='x')\n"
        "default_storage.delete(name)\n"
    )
    assert [line for line, _ in writes_in(source)] == [1, 2, 3]


@pytest.mark.parametrize("model", [MLModel, ModelVersion])
def test_the_admin_saves_and_deletes_through_the_actions(model):
    model_admin = admin.site._registry[model]
    for hook in ("save_model", "delete_model", "delete_queryset"):
        assert hook in type(model_admin).__dict__, f"{model.__name__} admin: {hook}"
