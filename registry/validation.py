"""The preflight: load a new file in a separate, limited process before use.

Unpickling runs the file's code, so the child gets a time limit, a memory
limit and an environment without the secret key or database credentials.
This stops accidents and crude attacks, not a determined uploader: a pickle
is code. skops files with a trusted-types list are the safe path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, TypedDict

from django.conf import settings

from .exceptions import InvalidModel
from .inspection import InputSchema

CHILD = Path(__file__).resolve().parent / "preflight_child.py"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Passed through because numerical libraries misbehave without them on some CPUs.
_PASSTHROUGH = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH")


class PreflightReport(TypedDict):
    kind: str
    estimator: str
    classes: list[Any] | None
    input_schema: InputSchema
    has_predict_proba: bool
    smoke_test: str
    warnings: list[str]
    library_versions: dict[str, str]


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


def preflight(path: Path, fmt: str, metadata: dict[str, Any]) -> PreflightReport:
    """Load and smoke-test ``path`` in a child process; raise InvalidModel."""
    timeout = settings.MODELHUB_PREFLIGHT_TIMEOUT
    with tempfile.TemporaryDirectory(prefix="modelhub-preflight-") as workdir:
        job_path = Path(workdir) / "job.json"
        result_path = Path(workdir) / "result.json"
        job_path.write_text(
            json.dumps(
                {
                    "path": str(Path(path).resolve()),
                    "format": fmt,
                    "metadata": metadata,
                    "trusted_types": list(settings.MODELHUB_SKOPS_TRUSTED_TYPES),
                    "plugin_dirs": list(settings.MODELHUB_PLUGIN_DIRS),
                    "project_root": str(PROJECT_ROOT),
                    "memory_mb": settings.MODELHUB_PREFLIGHT_MEMORY_MB,
                    "cpu_seconds": timeout + 1,
                }
            )
        )
        process = subprocess.Popen(
            [sys.executable, "-I", str(CHILD), str(job_path), str(result_path)],
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
            raise InvalidModel(
                f"Loading the file took longer than the {timeout} s limit."
            ) from None
        finally:
            _kill_group(process)
        if not result_path.exists():
            raise InvalidModel(_crash_message(process.returncode, stderr))
        result = json.loads(result_path.read_text())
    if not result.get("ok"):
        raise InvalidModel(f"The file is not a usable model: {result['error']}")
    result.pop("ok")
    return result  # type: ignore[return-value]


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill anything the file's code may have spawned, too."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if process.returncode is None:
        process.communicate()


def _crash_message(returncode: int | None, stderr: bytes) -> str:
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        reason = {
            "SIGXCPU": "it used more CPU time than the limit",
            "SIGKILL": "it was killed (memory limit?)",
            "SIGSEGV": "it crashed the interpreter",
        }.get(name, f"it was stopped by {name}")
        return f"The file could not be loaded: {reason}."
    tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    return f"The file could not be loaded (exit status {returncode}). {tail[0][:200]}"
