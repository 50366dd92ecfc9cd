"""manage.py ensureadmin: make sure a superuser exists, never with a known password."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Create the 'admin' superuser with a random password if no superuser exists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--url", default="http://127.0.0.1:8000/admin/")

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            self.stdout.write(
                f"Admin: {options['url']} (existing superuser; reset a password "
                "with: python manage.py changepassword USERNAME)"
            )
            return
        password = os.environ.get("MODELHUB_ADMIN_PASSWORD") or secrets.token_urlsafe(
            12
        )
        users.objects.create_superuser(options["username"], "", password)
        self.stdout.write(
            f"Admin: {options['url']} user '{options['username']}' "
            f"password '{password}' (shown once; change it with "
            f"python manage.py changepassword {options['username']})"
        )
