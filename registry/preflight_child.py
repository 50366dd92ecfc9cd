"""Entry point of the preflight child process: load one file and describe it.

Run as ``python -I preflight_child.py JOB RESULT`` by ``registry.validation``
with a scrubbed environment. It imports no Django and sets its own resource
limits before touching the file, because unpickling runs the file's code.
"""

from __future__ import annotations

import json
import platform
import resource
import sys
import warnings
from importlib import metadata as importlib_metadata
from pathlib import Path

_LIBRARIES = ("scikit-learn", "numpy", "scipy", "pandas", "joblib", "skops")


def _limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, hard))


def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def _run(job: dict) -> dict:
    from registry.inspection import describe, smoke_test
    from registry.serialization import read_estimator

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator = read_estimator(job["path"], job["format"], job["trusted_types"])
    if not callable(getattr(estimator, "predict", None)):
        return {
            "ok": False,
            "error": f"the file holds a {type(estimator).__name__}, "
            "which has no predict() method",
        }
    messages: list[str] = []
    trained_with = None
    for warning in caught:
        if warning.category.__name__ == "InconsistentVersionWarning":
            trained_with = getattr(warning.message, "original_sklearn_version", None)
        messages.append(f"{warning.category.__name__}: {warning.message}"[:500])
    description = describe(estimator, job["metadata"])
    smoke = smoke_test(estimator, description["input_schema"], job["metadata"])
    versions = _library_versions()
    if trained_with:
        versions["scikit-learn (trained)"] = str(trained_with)
    return {
        "ok": True,
        **description,
        "smoke_test": smoke,
        "warnings": messages[:20],
        "library_versions": versions,
    }


def main() -> int:
    job_path, result_path = sys.argv[1], sys.argv[2]
    job = json.loads(Path(job_path).read_text())
    memory = job["memory_mb"] * 1024 * 1024
    _limit(resource.RLIMIT_AS, memory)
    _limit(resource.RLIMIT_CPU, job["cpu_seconds"])
    _limit(resource.RLIMIT_FSIZE, 64 * 1024 * 1024)
    sys.path[:0] = [job["project_root"], *job["plugin_dirs"]]
    try:
        result = _run(job)
    except MemoryError:
        result = {
            "ok": False,
            "error": f"ran out of memory (limit {job['memory_mb']} MB)",
        }
    except BaseException as exc:  # noqa: BLE001 - report whatever the file raised
        detail = str(exc).splitlines()[0][:300] if str(exc) else ""
        result = {"ok": False, "error": f"{type(exc).__name__}: {detail}".rstrip(": ")}
    Path(result_path).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
