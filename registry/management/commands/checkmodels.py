"""manage.py checkmodels: do the stored versions still load and predict here?

Meant to run before a deploy, from the NEW environment (new scikit-learn,
numpy, Python...) while the old one still serves. It only reports unless
asked to ``--mark-invalid``: marking by default would take models away from
the service that is still running fine on the old libraries.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry import actions
from registry.exceptions import RegistryError
from registry.models import ModelVersion
from registry.validation import VersionCheck, check_stored_version


class Command(BaseCommand):
    help = (
        "Reload every ready model version in an isolated preflight process "
        "(sha256, load, smoke prediction) and report what no longer works. "
        "Exit status 1 if any version fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", metavar="SLUG", help="only this model")
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.add_argument(
            "--mark-invalid",
            action="store_true",
            help="set failing versions to 'invalid' so they are no longer served",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        versions = ModelVersion.objects.filter(status=ModelVersion.Status.READY)
        if options["model"]:
            try:
                model = actions.get_model(options["model"])
            except RegistryError as exc:
                raise CommandError(exc.message) from None
            versions = versions.filter(model=model)
        results: list[dict[str, Any]] = []
        for version in versions.select_related("model").order_by(
            "model__slug", "number"
        ):
            check = check_stored_version(version)
            marked = options["mark_invalid"] and not check.ok and _mark(version, check)
            results.append(_as_json(check, marked=marked))
            if not options["json"]:
                self.stdout.write(_as_line(check, marked=marked))
        if options["json"]:
            self.stdout.write(json.dumps(results, indent=2))
        elif not results:
            self.stdout.write("No ready versions to check.")
        failed = sum(not r["ok"] for r in results)
        if failed:
            raise CommandError(
                f"{failed} of {len(results)} version(s) no longer load or predict."
            )


def _mark(version: ModelVersion, check: VersionCheck) -> bool:
    """Take a failing version out of service; False if it changed meanwhile."""
    return actions.mark_invalid(version, message=f"checkmodels: {check.problem}")


def _as_line(check: VersionCheck, *, marked: bool) -> str:
    name = f"{check.slug} v{check.number}"
    if check.ok:
        if check.warnings:
            return f"{name}: ok, with a warning: {check.warnings[0][:200]}"
        return f"{name}: ok"
    suffix = " (marked invalid)" if marked else ""
    return f"{name}: FAILED: {check.problem}{suffix}"


def _as_json(check: VersionCheck, *, marked: bool) -> dict[str, Any]:
    return {
        "slug": check.slug,
        "version": check.number,
        "ok": check.ok,
        "problem": check.problem or None,
        "warnings": check.warnings,
        "seconds": round(check.seconds, 2),
        "marked_invalid": marked,
    }
