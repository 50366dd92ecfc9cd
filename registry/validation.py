"""The preflight: load a new file in a separate, limited process before use.

Unpickling runs the file's code, so the child gets a time limit, a memory
limit, an environment without the secret key or database credentials, and an
audit hook that stops it at the first attempt to write a file, run a command
(any way of creating a process) or open a network connection
(registry/preflight_child.py).

The verdict is a file the child creates only after the file's code has run;
it is read once the child has exited, a success only with exit status 0,
the expected fields and the sha256 the parent computed itself. Code that can
read and patch the child's memory can still lie (it could find the guard and
stand it down): the verdict channel stops a file that writes its own "ok" on
a descriptor, not one written against this preflight. This stops
accidents and crude attacks, not a determined uploader: a pickle is code.
skops files with a trusted-types list are the safe path.

check_stored_version() runs a stored version through the same child again
(manage.py checkmodels and ``check --deploy``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from django.conf import settings
from django.core.files.storage import default_storage

from . import store
from .exceptions import InvalidModel, RegistryError
from .inspection import InputSchema
from .preflight_child import MODEL_LIBRARIES, REFUSED_EXIT
from .reference_check import FAILURES as REFERENCE_FAILURES
from .reference_check import PredictedReference
from .upload_errors import refusal, unreadable

if TYPE_CHECKING:
    from .models import ModelVersion

CHILD = Path(__file__).resolve().parent / "preflight_child.py"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Passed through because numerical libraries misbehave without them on some CPUs.
_PASSTHROUGH = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH")


class PreflightReport(TypedDict):
    kind: str
    estimator: str
    classes: list[Any] | None
    input_schema: InputSchema
    smoke_test: str
    warnings: list[str]
    library_versions: dict[str, str]
    reference: NotRequired[PredictedReference]


def scrubbed_environment(workdir: str) -> dict[str, str]:
    env = {
        "PATH": os.defpath,
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    env.update({k: os.environ[k] for k in _PASSTHROUGH if k in os.environ})
    return env


def preflight(
    path: Path,
    fmt: str,
    metadata: dict[str, Any],
    *,
    reference: Mapping[str, list[str | None]] | None = None,
) -> PreflightReport:
    """Load and smoke-test ``path`` in a child process; raise InvalidModel.

    A drift reference's columns (registry.reference_sample) are checked
    against the model's schema and predicted there too, since predicting
    runs the file's code: the report's ``reference``, or InvalidReference.
    """
    report = _in_child(
        {
            "path": str(Path(path).resolve()),
            "format": fmt,
            "metadata": metadata,
            "reference": reference,
        },
        sha256=_sha256(Path(path)),
        path=Path(path),
    )
    if reference is not None:
        rows = len(next(iter(reference.values()), []))
        report["reference"] = _checked_reference(report.get("reference"), rows)
    return report


def recheck(
    *,
    path: Path,
    fmt: str,
    sha256: str,
    metadata: dict[str, Any],
    input_schema: InputSchema | None = None,
) -> PreflightReport:
    """Reload a stored file under the installed libraries; raise InvalidModel.

    The same child and limits as the upload's preflight, plus a sha256 check
    made in the child on the very bytes it loads, and the smoke prediction on
    the version's recorded schema and input example.
    """
    return _in_child(
        {
            "path": str(Path(path).resolve()),
            "format": fmt,
            "metadata": metadata,
            "sha256": sha256,
            "input_schema": input_schema or None,
        },
        sha256=sha256,
        path=Path(path),
    )


@dataclass(frozen=True)
class VersionCheck:
    """How one stored version fared when reloaded under today's libraries."""

    slug: str
    number: int
    problem: str
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problem


def check_stored_version(version: ModelVersion) -> VersionCheck:
    """Reload ``version``'s stored file in the preflight child and smoke-test it."""
    started = time.perf_counter()
    warnings: list[str] = []
    try:
        with local_file(version.file.name) as path:
            report = recheck(
                path=path,
                fmt=version.format,
                sha256=version.sha256,
                metadata=version.metadata or {},
                input_schema=version.input_schema or None,
            )
    except FileNotFoundError:
        problem = "The file is missing from storage."
    except InvalidModel as exc:
        problem = f"{exc.message} ({exc.technical})" if exc.technical else exc.message
    else:
        problem = ""
        warnings = report["warnings"]
    return VersionCheck(
        slug=version.model.slug,
        number=version.number,
        problem=problem,
        seconds=time.perf_counter() - started,
        warnings=warnings,
    )


@contextmanager
def local_file(name: str) -> Iterator[Path]:
    """A local path to a stored file: its own, or a private copy for remote storage."""
    if not store.remote():
        path = Path(default_storage.path(name))
        if not path.is_file():
            raise FileNotFoundError(name)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="modelhub-check-") as workdir:
        copy = Path(workdir) / "model"
        try:
            with store.opened(name) as source, copy.open("wb") as out:
                shutil.copyfileobj(source, out)
        except (store.Missing, store.Unreachable) as exc:
            raise FileNotFoundError(f"{name}: {exc}") from exc
        yield copy


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _in_child(task: dict[str, Any], *, sha256: str, path: Path) -> PreflightReport:
    timeout = settings.MODELHUB_PREFLIGHT_TIMEOUT
    with tempfile.TemporaryDirectory(prefix="modelhub-preflight-") as workdir:
        job_path = Path(workdir) / "job.json"
        verdict_path = Path(workdir) / "verdict.json"
        job_path.write_text(
            json.dumps(
                {
                    **task,
                    "trusted_types": list(settings.MODELHUB_SKOPS_TRUSTED_TYPES),
                    "plugin_dirs": list(settings.MODELHUB_PLUGIN_DIRS),
                    "project_root": str(PROJECT_ROOT),
                    "memory_mb": settings.MODELHUB_PREFLIGHT_MEMORY_MB,
                    "cpu_seconds": timeout + 1,
                }
            )
        )
        process = subprocess.Popen(
            [sys.executable, "-I", str(CHILD), str(job_path), str(verdict_path)],
            cwd=workdir,
            env=scrubbed_environment(workdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise refusal(
                "timeout",
                technical=f"The preflight child was killed after {timeout} s.",
                timeout=timeout,
            ) from None
        finally:
            _kill_group(process)
        result = _read_verdict(verdict_path)
    return _checked_verdict(result, process.returncode, stderr, sha256, path)


def _checked_verdict(
    result: dict[str, Any] | None,
    returncode: int | None,
    stderr: bytes,
    sha256: str,
    path: Path,
) -> PreflightReport:
    """The report, if the child finished as only the preflight's own code can."""
    if returncode == REFUSED_EXIT and result is not None and result.get("refused"):
        raise refusal(
            "refused_action", technical=f"Refused: {str(result['error'])[:500]}."
        )
    if returncode != 0 or result is None or result.get("refused"):
        raise _crashed(returncode, stderr)
    if not result.get("ok"):
        raise verdict_error(result, path)
    if result.get("sha256") != sha256 or not _well_formed(result):
        raise refusal(
            "unverified",
            technical="The file could not be loaded: the preflight's answer does "
            "not describe this file.",
        )
    for key in ("ok", "sha256"):
        result.pop(key)
    return result  # type: ignore[return-value]


def missing_library(package: str, technical: str = "") -> RegistryError:
    """What to install; the optional model libraries come with ModelHub's extras."""
    if package in MODEL_LIBRARIES:
        how = "install it with pip install -r requirements-extras.txt"
    else:
        how = (
            "install the package that provides it, or put its module in a "
            "directory listed in MODELHUB_PLUGIN_DIRS"
        )
    return refusal("missing_library", technical=technical, package=package, how=how)


_REPORT_TYPES: dict[str, type | tuple[type, ...]] = {
    "kind": str,
    "estimator": str,
    "classes": (list, type(None)),
    "input_schema": dict,
    "smoke_test": str,
    "warnings": list,
    "library_versions": dict,
}


def _well_formed(result: dict[str, Any]) -> bool:
    return all(isinstance(result.get(k), t) for k, t in _REPORT_TYPES.items())


_SCALARS = (str, int, float, bool, type(None))


def _checked_reference(found: Any, rows: int) -> PredictedReference:
    """The verdict's reference, if it holds a value per row in every column
    and a prediction per row. Predictions that are not one value per row (a
    multi-output model's) are left out: drift bins one value per row."""
    columns = found.get("columns") if isinstance(found, dict) else None
    predictions = found.get("predictions") if isinstance(found, dict) else None
    if not (
        isinstance(columns, dict)
        and columns
        and all(_values(column, rows) for column in columns.values())
        and isinstance(predictions, list)
        and len(predictions) == rows
    ):
        raise refusal(
            "unverified",
            technical="The preflight's answer does not hold the reference's "
            f"{rows} rows and their predictions.",
        )
    return {
        "columns": columns,
        "predictions": predictions if _values(predictions, rows) else None,
    }


def _values(found: Any, rows: int) -> bool:
    """``rows`` plain JSON values, no lists or objects."""
    return (
        isinstance(found, list)
        and len(found) == rows
        and all(isinstance(value, _SCALARS) for value in found)
    )


def _read_verdict(path: Path) -> dict[str, Any] | None:
    """The child's answer; None if it died before writing a whole one."""
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and "ok" in result else None


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill anything the file's code may have spawned, too."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if process.returncode is None:
        process.communicate()


def verdict_error(result: dict[str, Any], path: Path) -> RegistryError:
    """The refusal for a child's "not ok", in registry.upload_errors' words.

    The verdict's ``failure`` only chooses the sentence: a file that lies
    about it changes what its uploader reads, nothing else.
    """
    error = str(result.get("error", ""))[:500]
    failure = result.get("failure")
    if isinstance(package := result.get("missing_library"), str):
        return missing_library(package[:100], error)
    if failure == "unreadable":
        return unreadable(path, error)
    if failure == "no_predict":
        held = str(result.get("held") or "object")[:100]
        return refusal("no_predict", technical=error, held=held)
    if failure == "memory_limit":
        memory_mb = settings.MODELHUB_PREFLIGHT_MEMORY_MB
        return refusal("memory_limit", technical=error, memory_mb=memory_mb)
    if failure == "untrusted_types":
        types = str(result.get("types") or "unnamed")[:1000]
        return refusal("untrusted_types", technical=error, types=types)
    if failure in ("smoke_test_failed", "altered"):
        return refusal(str(failure), technical=error)
    if failure in REFERENCE_FAILURES:
        details = ("missing", "given", "expected", "columns")
        shown = {key: str(result.get(key) or "")[:500] for key in details}
        return refusal(str(failure), technical=error, **shown)
    return refusal("load_error", technical=error)


def _crashed(returncode: int | None, stderr: bytes) -> RegistryError:
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        if name == "SIGKILL":
            memory_mb = settings.MODELHUB_PREFLIGHT_MEMORY_MB
            return refusal(
                "memory_limit",
                technical="The file could not be loaded: it was killed (SIGKILL, "
                "the memory limit?).",
                memory_mb=memory_mb,
            )
        if name == "SIGXCPU":
            timeout = settings.MODELHUB_PREFLIGHT_TIMEOUT
            return refusal(
                "timeout",
                technical="The file could not be loaded: it used more CPU time "
                "than the limit (SIGXCPU).",
                timeout=timeout,
            )
        reason = {"SIGSEGV": "it crashed the interpreter"}.get(
            name, f"it was stopped by {name}"
        )
        return refusal(
            "crashed", technical=f"The file could not be loaded: {reason} ({name})."
        )
    tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    return refusal(
        "crashed",
        technical=f"The file could not be loaded (exit status {returncode}). "
        f"{tail[0][:200]}".strip(),
    )
