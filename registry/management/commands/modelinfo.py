"""manage.py modelinfo SLUG [--version N]: a version's metadata and schema, and
its model's batching, as JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry import actions
from registry.exceptions import NoActiveVersion, RegistryError


class Command(BaseCommand):
    help = "Print the metadata and input schema of a model version as JSON."

    def create_parser(
        self, prog_name: str, subcommand: str, **kwargs: Any
    ) -> CommandParser:
        # Our --version (a model version) replaces Django's own --version flag.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--version", type=int, help="default: the active one")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            model = actions.get_model(options["slug"])
            if options["version"] is not None:
                version = actions.get_version(model, options["version"])
            elif model.active_version is not None:
                version = model.active_version
            else:
                raise NoActiveVersion(
                    f"Model '{model.slug}' has no active version; pass --version."
                )
        except RegistryError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            json.dumps(
                {
                    "slug": model.slug,
                    "version": version.number,
                    "metadata": version.metadata,
                    "input_schema": version.input_schema,
                    "batch_max_rows": model.batch_max_rows,
                    "batch_max_wait_ms": model.batch_max_wait_ms,
                },
                indent=2,
            )
        )
