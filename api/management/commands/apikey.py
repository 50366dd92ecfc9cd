"""manage.py apikey create|list|revoke: API keys for machines, from a shell."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from registry.models import MLModel

from ...access import issuing
from ...models import ApiKey

_DURATION = re.compile(r"^(\d+)([dh])$")


def parse_expiry(text: str) -> datetime:
    """'30d', '12h' from now, or an ISO date/time (UTC unless it says)."""
    match = _DURATION.match(text.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        unit_name = "days" if unit == "d" else "hours"
        return timezone.now() + timedelta(**{unit_name: amount})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"--expires {text!r}: use e.g. 30d, 12h or 2027-01-31"
        ) from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    if moment <= timezone.now():
        raise CommandError(f"--expires {text!r} is in the past.")
    return moment


class Command(BaseCommand):
    help = "Create, list or revoke API keys (a new key is printed once)."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        create = commands.add_parser("create", help="make a key and print it once")
        create.add_argument("name", help="who or what uses the key")
        create.add_argument("--owner", required=True, help="username it acts for")
        create.add_argument(
            "--predict",
            choices=[c.value for c in ApiKey.Predict],
            default=ApiKey.Predict.PUBLIC,
            help="models it may call: public ones, the --model ones, or all",
        )
        create.add_argument(
            "--model",
            action="append",
            default=[],
            metavar="SLUG",
            help="a model it may call (repeat; implies --predict listed)",
        )
        create.add_argument(
            "--management",
            choices=[c.value for c in ApiKey.Management],
            default=ApiKey.Management.NONE,
            help="the management API: none, read, or write (owner's permissions)",
        )
        create.add_argument("--expires", help="30d, 12h or an ISO date")
        create.add_argument("--rate", default="", help="its own quota, e.g. 100/minute")
        commands.add_parser("list", help="every key, newest first (never the key)")
        revoke = commands.add_parser("revoke", help="revoke a key for good")
        revoke.add_argument("prefix", help="the prefix `apikey list` shows")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(options)

    def _create(self, options: dict[str, Any]) -> None:
        try:
            owner = get_user_model().objects.get_by_natural_key(options["owner"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user '{options['owner']}'.") from None
        slugs = options["model"]
        models = list(MLModel.objects.filter(slug__in=slugs))
        missing = sorted(set(slugs) - {m.slug for m in models})
        if missing:
            raise CommandError(f"No model with slug {', '.join(map(repr, missing))}.")
        predict = ApiKey.Predict.LISTED if slugs else options["predict"]
        if predict == ApiKey.Predict.LISTED and not slugs:
            raise CommandError("--predict listed needs at least one --model SLUG.")
        expires = parse_expiry(options["expires"]) if options["expires"] else None
        try:
            key, secret = issuing.create_key(
                name=options["name"],
                owner=owner,
                predict=predict,
                models=models,
                management=options["management"],
                expires=expires,
                throttle_rate=options["rate"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stderr.write(
            f"API key '{key.name}' (prefix {key.prefix}) for {owner}: shown once, "
            "store it now. Send it as 'Authorization: Api-Key <key>'."
        )
        self.stdout.write(secret)

    def _list(self, options: dict[str, Any]) -> None:
        rows = ApiKey.objects.select_related("owner").prefetch_related("allowed_models")
        for key in rows:
            scope = key.predict
            if key.predict == ApiKey.Predict.LISTED:
                scope = ",".join(m.slug for m in key.allowed_models.all()) or "(none)"
            state = "revoked" if key.revoked else "expired" if key.has_expired else ""
            self.stdout.write(
                "\t".join(
                    [
                        key.prefix,
                        key.name,
                        str(key.owner),
                        f"predict={scope}",
                        f"management={key.management}",
                        f"expires={key.expiry_date:%Y-%m-%d %H:%M}"
                        if key.expiry_date
                        else "expires=never",
                        f"last_used={key.last_used_at:%Y-%m-%d %H:%M}"
                        if key.last_used_at
                        else "last_used=never",
                        state,
                    ]
                ).rstrip()
            )

    def _revoke(self, options: dict[str, Any]) -> None:
        try:
            key = issuing.revoke(options["prefix"])
        except ApiKey.DoesNotExist:
            prefix = options["prefix"]
            raise CommandError(f"No API key with prefix '{prefix}'.") from None
        self.stdout.write(f"Revoked '{key.name}' ({key.prefix}).")
