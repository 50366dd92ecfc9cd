"""manage.py alias SLUG [NAME [VERSION | --delete]]: set, move, delete or list
a model's aliases (served at /api/predict/<slug>@<name>/)."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry import actions, rollouts
from registry.exceptions import RegistryError, UnknownAlias
from registry.models import Activation, Alias, MLModel


class Command(BaseCommand):
    help = (
        "Point alias NAME of model SLUG at version VERSION (a number, '2' or "
        "'v2'), delete it with --delete, or list the model's aliases when only "
        "SLUG is given. Every change is recorded in the model's history "
        "(channel 'cli') and served by every worker from its next request."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the model's slug")
        parser.add_argument(
            "name",
            nargs="?",
            help="the alias, e.g. 'champion' (letters, digits, '-', '_'; not "
            "'latest' nor 'v<digits>', which read as versions)",
        )
        parser.add_argument(
            "version",
            nargs="?",
            type=version_number,
            help="the version number to point at ('2' or 'v2'); without it, "
            "print where NAME points",
        )
        parser.add_argument(
            "--delete",
            action="store_true",
            help="delete alias NAME (requests to it then answer 404)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name, number = options["name"], options["version"]
        if options["delete"] and (name is None or number is not None):
            raise CommandError("--delete takes an alias NAME and no VERSION.")
        try:
            model = actions.get_model(options["slug"])
            if name is None:
                self._list(model)
            elif options["delete"]:
                move = rollouts.delete_alias(
                    model, name, channel=Activation.Channel.CLI
                )
                self.stdout.write(
                    f"{model.slug}@{name}: v{move.from_number} -> deleted"
                )
            elif number is None:
                self.stdout.write(f"{model.slug}@{name}: v{_target(model, name)}")
            else:
                self._set(model, name, number)
        except RegistryError as exc:
            raise refused(exc) from None

    def _set(self, model: MLModel, name: str, number: int) -> None:
        version = actions.get_version(model, number)
        move = rollouts.set_alias(model, name, version, channel=Activation.Channel.CLI)
        if move is None:
            self.stdout.write(f"{model.slug}@{name} already points to v{number}")
            return
        origin = f"v{move.from_number}" if move.from_number else "none"
        self.stdout.write(f"{model.slug}@{name}: {origin} -> v{move.to_number}")

    def _list(self, model: MLModel) -> None:
        aliases = Alias.objects.filter(model=model).select_related("version")
        lines = [f"{a.name} -> v{a.version.number}" for a in aliases.order_by("name")]
        self.stdout.write("\n".join(lines) or f"Model '{model.slug}' has no aliases.")


def version_number(text: str) -> int:
    """A version as people write it: '2' or 'v2' (the URL's spelling)."""
    digits = text[1:] if text[:1] in ("v", "V") else text
    if not (digits.isascii() and digits.isdigit()) or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number")
    return int(digits)


def refused(exc: RegistryError) -> CommandError:
    """The registry's sentence and its stable code, as a failed command."""
    return CommandError(f"{exc.message} ({exc.code})")


def _target(model: MLModel, name: str) -> int:
    number = (
        Alias.objects.filter(model=model, name=name)
        .values_list("version__number", flat=True)
        .first()
    )
    if number is None:
        raise UnknownAlias(f"Model '{model.slug}' has no alias '{name[:60]}'.")
    return number
