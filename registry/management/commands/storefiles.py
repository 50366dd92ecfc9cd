"""manage.py storefiles: the model files of every version, copied out of the
store into a directory or back in, by their stored names; ``verify`` checks
each against its recorded sha256. ops/backup.sh and ops/restore.sh use it, so
a backup holds the files themselves whichever store (MODELHUB_STORAGE) they
live in, and restores into either.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry import store
from registry.models import ModelVersion


class Command(BaseCommand):
    help = (
        "export DIR: copy every version's file out of the model store; "
        "import DIR: copy the files under DIR into it by name (refused over "
        "files already there unless --force); verify: every version's file "
        "matches its sha256 (exit 1 otherwise)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["export", "import", "verify"])
        parser.add_argument("directory", nargs="?", type=Path)
        parser.add_argument(
            "--force", action="store_true", help="import over files already stored"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        action, directory = options["action"], options["directory"]
        if action != "verify" and directory is None:
            raise CommandError(f"{action} needs a directory")
        if action == "export":
            self._export(directory)
        elif action == "import":
            self._import(directory, force=options["force"])
        else:
            self._verify()

    def _export(self, directory: Path) -> None:
        names = ModelVersion.objects.order_by("pk").values_list("file", flat=True)
        missing, copied = [], 0
        for name in names:
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with store.opened(name) as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
            except store.Missing:
                target.unlink(missing_ok=True)
                missing.append(name)
                continue
            except store.Unreachable as exc:
                raise CommandError(f"the model store cannot be read: {exc}") from None
            copied += 1
        for name in missing:
            self.stderr.write(f"storefiles: {name} is missing from the store")
        self.stdout.write(
            f"storefiles: exported {copied} files from {store.describe()}"
        )

    def _import(self, directory: Path, *, force: bool) -> None:
        files = sorted(p for p in directory.rglob("*") if p.is_file())
        names = [p.relative_to(directory).as_posix() for p in files]
        there = [name for name in names if default_storage.exists(name)]
        if there and not force:
            raise CommandError(
                f"{len(there)} of these files are already in {store.describe()} "
                f"(first: {there[0]}); pass --force to replace them"
            )
        for path, name in zip(files, names, strict=True):
            if name in there:
                default_storage.delete(name)
            with path.open("rb") as handle:
                stored = default_storage.save(name, File(handle))
            if stored != name:
                raise CommandError(f"{name} was stored as {stored}")
        self.stdout.write(
            f"storefiles: imported {len(names)} files into {store.describe()}"
        )

    def _verify(self) -> None:
        versions = ModelVersion.objects.order_by("model__slug", "number").values_list(
            "model__slug", "number", "file", "sha256"
        )
        problems = []
        for slug, number, name, expected in versions:
            try:
                with store.opened(name) as handle:
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
            except store.Missing:
                problems.append(f"{slug} v{number}: {_where(name)} is missing")
                continue
            except store.Unreachable as exc:
                raise CommandError(f"the model store cannot be read: {exc}") from None
            if digest != expected:
                problems.append(
                    f"{slug} v{number}: {_where(name)} does not match its sha256"
                )
        for problem in problems:
            self.stderr.write(f"restore: {problem}")
        if problems:
            raise CommandError(
                f"verification FAILED: {len(problems)} of {len(versions)} model "
                "files missing or altered (a version deleted while the backup ran "
                "leaves its row without its file)"
            )
        self.stdout.write(
            f"restore: verified: all {len(versions)} model files match their sha256"
        )


def _where(name: str) -> str:
    if store.remote():
        return f"{store.describe()}: {name}"
    return default_storage.path(name)
