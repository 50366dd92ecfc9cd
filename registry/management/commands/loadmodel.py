"""manage.py loadmodel PATH --slug SLUG: register a file as the next version.

PATH may also be an MLflow model directory (or a zip of one) with the
sklearn flavor; ``--reference data.csv`` gives the version its drift
reference (a sample of the training data).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry import actions, batching, jsondepth, mlflow_models
from registry.exceptions import InvalidReference, RegistryError
from registry.models import Activation, MLModel
from registry.upload_errors import technical_line


class Command(BaseCommand):
    help = (
        "Register a model file, or an MLflow model directory or zip (sklearn "
        "flavor), as the next version of SLUG (created if new)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path",
            help="model file (.skops, .joblib, .pkl), or an MLflow model "
            "directory or .zip (its MLmodel must have the sklearn flavor)",
        )
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--description", default="")
        parser.add_argument("--metadata", metavar="JSON_FILE")
        parser.add_argument("--no-activate", action="store_true")
        parser.add_argument(
            "--reference",
            metavar="CSV_FILE",
            help="drift reference: a CSV sample of the training data with a "
            "header row (at most 10,000 rows are kept), checked against the "
            "model and predicted in the preflight",
        )
        parser.add_argument(
            "--batch-max-rows",
            type=int,
            metavar="N",
            help="adaptive batching: predict up to N rows of concurrent requests "
            "in one call (2 to 1024; 0 turns it off; at most one request per "
            "gunicorn worker and thread in a batch)",
        )
        parser.add_argument(
            "--batch-max-wait-ms",
            type=float,
            metavar="MS",
            help="how long a batch waits for more requests (above 0, at most 100)",
        )
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        metadata = _read_metadata(options["metadata"])
        if not path.is_file() and not path.is_dir():
            raise CommandError(f"{path}: no such file or directory")
        try:
            batch = _batching(options)
            with ExitStack() as files:
                reference = _open_reference(options["reference"], files)
                source = files.enter_context(_open_source(path))
                version = actions.register_version(
                    slug=options["slug"],
                    source=source,
                    filename=f"{path.name}.zip" if path.is_dir() else path.name,
                    metadata=metadata,
                    channel=Activation.Channel.CLI,
                    activate=not options["no_activate"],
                    name=options["name"],
                    description=options["description"],
                    reference=reference,
                )
            if batch:
                actions.update_model(
                    version.model,
                    name=version.model.name,
                    description=version.model.description,
                    private=version.model.private,
                    **batch,
                )
        except RegistryError as exc:
            # The sentence on its own line, the technical detail (if any) below.
            detail = technical_line(exc)
            about = options["reference"] if isinstance(exc, InvalidReference) else path
            raise CommandError(
                f"{about}: {exc.message}" + (f"\n{detail}" if detail else "")
            ) from None
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "slug": version.model.slug,
                        "version": version.number,
                        "status": version.status,
                        "sha256": version.sha256,
                        "batch_max_rows": version.model.batch_max_rows,
                        "batch_max_wait_ms": version.model.batch_max_wait_ms,
                    }
                )
            )
        else:
            self.stdout.write(f"{version.model.slug} v{version.number}")


def _batching(options: dict[str, Any]) -> dict[str, Any]:
    """The batching flags given, checked before any file is registered."""
    given = {
        key: options[key]
        for key in ("batch_max_rows", "batch_max_wait_ms")
        if options[key] is not None
    }
    if given:
        model = MLModel.objects.filter(slug=options["slug"]).first() or MLModel()
        batching.check(
            rows=given.get("batch_max_rows", model.batch_max_rows),
            wait_ms=given.get("batch_max_wait_ms", model.batch_max_wait_ms),
        )
    return given


def _open_source(path: Path) -> IO[bytes]:
    """A file as it is; an MLflow model directory zipped in memory."""
    if path.is_dir():
        return mlflow_models.pack_directory(path)
    return path.open("rb")


def _open_reference(name: str | None, files: ExitStack) -> IO[bytes] | None:
    if name is None:
        return None
    try:
        return files.enter_context(Path(name).open("rb"))
    except OSError as exc:
        raise CommandError(f"{name}: {exc.strerror}") from None


def _read_metadata(name: str | None) -> dict[str, Any] | None:
    if name is None:
        return None
    try:
        text = Path(name).read_text()
        jsondepth.check_text(text)
        value = json.loads(text)
    except jsondepth.TooDeep as exc:
        raise CommandError(f"{name}: {exc}") from None
    except OSError as exc:
        raise CommandError(f"{name}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CommandError(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise CommandError(f"{name}: metadata must be a JSON object")
    return value
