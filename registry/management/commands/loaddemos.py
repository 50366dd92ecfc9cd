"""manage.py loaddemos: train and register the demo models that are missing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from registry.demo import install_demos


class Command(BaseCommand):
    help = "Train demo models from scikit-learn's bundled datasets and register them."

    def handle(self, *args: Any, **options: Any) -> None:
        created = install_demos()
        for version in created:
            self.stdout.write(
                f"registered demo model {version.model.slug} v{version.number}"
            )
        if not created:
            self.stdout.write("demo models already registered")
