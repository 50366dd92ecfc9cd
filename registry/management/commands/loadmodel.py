"""manage.py loadmodel PATH --slug SLUG: register a file as the next version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry import artifacts
from registry.exceptions import RegistryError
from registry.models import Activation


class Command(BaseCommand):
    help = "Register a model file as the next version of SLUG (created if new)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="model file (.skops, .joblib, .pkl)")
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--description", default="")
        parser.add_argument("--metadata", metavar="JSON_FILE")
        parser.add_argument("--no-activate", action="store_true")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        metadata = _read_metadata(options["metadata"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            with path.open("rb") as source:
                version = artifacts.register_version(
                    slug=options["slug"],
                    source=source,
                    filename=path.name,
                    metadata=metadata,
                    channel=Activation.Channel.CLI,
                    activate=not options["no_activate"],
                    name=options["name"],
                    description=options["description"],
                )
        except RegistryError as exc:
            raise CommandError(f"{path}: {exc.message}") from None
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "slug": version.model.slug,
                        "version": version.number,
                        "status": version.status,
                        "sha256": version.sha256,
                    }
                )
            )
        else:
            self.stdout.write(f"{version.model.slug} v{version.number}")


def _read_metadata(name: str | None) -> dict[str, Any] | None:
    if name is None:
        return None
    try:
        value = json.loads(Path(name).read_text())
    except OSError as exc:
        raise CommandError(f"{name}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CommandError(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise CommandError(f"{name}: metadata must be a JSON object")
    return value
