"""Entry point of the preflight child process: load one file and describe it.

Run as ``python -I preflight_child.py JOB VERDICT`` by ``registry.validation``
with a scrubbed environment. It imports no Django and sets its own resource
limits before touching the file, because unpickling runs the file's code.

The verdict file does not exist while the file's code runs: the child holds
no descriptor (but stdin, stdout and stderr, which the parent never reads a
verdict from) on which that code could write a forged "ok", and opening the
verdict's path is a write the guard refuses. The child creates it (O_EXCL)
only once loading, inspecting and the smoke prediction are over, and leaves
with os._exit right after, so threads the file started get no unguarded turn.

Once the libraries are imported, an audit hook (``sys.addaudithook``) stops
the child at the first attempt to write a file, change the filesystem, run a
command, open a network connection or load a new native library, and reports
that as the reason for refusing the upload. Audit hooks catch what a careless
or crude file does through Python; native code (ctypes calls into libraries
already loaded, C extensions) can do anything without raising an event, so
this is a tripwire, not a sandbox.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import platform
import resource
import sys
import warnings
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

_LIBRARIES = (
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "joblib",
    "skops",
    "xgboost",
    "xgboost-cpu",
    "lightgbm",
)
# Optional model libraries (requirements-extras.txt) that load a native library
# of their own when imported: the guard refuses any native library loaded
# after it goes up, so they are imported before, when the file may need them.
MODEL_LIBRARIES = ("xgboost", "lightgbm")
# The module names a compressed joblib file holds cannot be read without
# unpacking it: such a file (zlib, gzip, bz2, xz, lzma, lz4) may need them all.
_COMPRESSED_JOBLIB = (
    b"ZF",
    b"\x78",
    b"\x1f\x8b",
    b"BZ",
    b"\xfd7zXZ",
    b"\x5d\x00",
    b"\x04\x22\x4d\x18",
)

# Every flag that lets open() change a file: writing, creating, truncating,
# appending.
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_FILESYSTEM_EVENTS = frozenset(
    {
        "os.remove",
        "os.rename",
        "os.mkdir",
        "os.rmdir",
        "os.chmod",
        "os.chown",
        "os.chflags",
        "os.lchflags",
        "os.link",
        "os.symlink",
        "os.truncate",
        "os.utime",
        "os.mkfifo",
        "os.mknod",
        "os.setxattr",
        "os.removexattr",
        "shutil.rmtree",
        "shutil.move",
        "shutil.copyfile",
        "shutil.copymode",
        "shutil.copystat",
        "shutil.chown",
        "shutil.make_archive",
        "shutil.unpack_archive",
        "tempfile.mkstemp",
        "tempfile.mkdtemp",
        "sqlite3.connect",
    }
)
# Every way to a new process; _posixsubprocess.fork_exec (under subprocess and
# multiprocessing) raises no event of its own, so the child gives it one.
_COMMAND_EVENTS = frozenset(
    {
        "_posixsubprocess.fork_exec",
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.spawn",
        "os.posix_spawn",
        "os.fork",
        "os.forkpty",
        "os.startfile",
    }
)
_NETWORK_EVENTS = frozenset(
    {
        "socket.connect",
        "socket.bind",
        "socket.sendto",
        "socket.sendmsg",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
    }
)
_PROCESS_EVENTS = frozenset(
    {
        "os.kill",
        "os.killpg",
        "signal.pthread_kill",
        "resource.setrlimit",
        "resource.prlimit",
    }
)

# libc functions reached through ctypes instead of the audited os/socket calls.
# A tripwire for the obvious bypass only: native code has other ways.
_NATIVE_FUNCTIONS = frozenset(
    {
        "system",
        "popen",
        "fork",
        "vfork",
        "clone",
        "execl",
        "execle",
        "execlp",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "posix_spawn",
        "posix_spawnp",
        "syscall",
        "open",
        "open64",
        "openat",
        "openat64",
        "creat",
        "creat64",
        "fopen",
        "fopen64",
        "unlink",
        "unlinkat",
        "rename",
        "renameat",
        "mkdir",
        "rmdir",
        "chmod",
        "symlink",
        "link",
        "truncate",
        "socket",
        "connect",
        "bind",
        "getaddrinfo",
        "kill",
        "setrlimit",
        "prlimit",
        "prlimit64",
        "dlopen",
        "mprotect",
    }
)


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


def _short(value: Any, limit: int = 120) -> str:
    """A path, command or address as it reads in a one-line message."""
    if isinstance(value, (str, bytes, os.PathLike)):
        text = repr(os.fsdecode(value))
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _command(event: str, args: tuple[Any, ...]) -> str:
    if event == "os.system" and args:
        return _short(args[0])
    if event == "subprocess.Popen" and len(args) > 1:
        argv = args[1]
        if isinstance(argv, (list, tuple)):
            argv = " ".join(
                os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in argv
            )
        return _short(argv)
    if event in ("os.exec", "os.posix_spawn") and args:
        return _short(args[0])
    if event == "_posixsubprocess.fork_exec" and args:
        return f"{_short(args[0])} (_posixsubprocess.fork_exec)"
    if event == "os.spawn" and len(args) > 1:
        return _short(args[1])
    return f"({event})"


def _mapped_libraries() -> set[str]:
    """Shared libraries already in this process (Linux: /proc/self/maps)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return {
                line.split(maxsplit=5)[5].strip()
                for line in maps
                if line.count(" ") >= 5 and "/" in line
            }
    except OSError:
        return set()


def refusal(event: str, args: tuple[Any, ...]) -> str | None:
    """What the audited action would do to the machine, or None if harmless.

    Reading stays allowed: unpickling imports modules and sklearn, joblib and
    threadpoolctl read files under /proc and /sys.
    """
    if event == "open":
        path, mode, flags = (*args, None, None, None)[:3]
        writes = isinstance(mode, str) and any(c in mode for c in "wax+")
        if writes or (isinstance(flags, int) and flags & _WRITE_FLAGS):
            target = f"file descriptor {path}" if isinstance(path, int) else None
            return f"write {target or _short(path)}"
        return None
    if event in _FILESYSTEM_EVENTS:
        paths = [_short(a) for a in args if isinstance(a, (str, bytes, os.PathLike))]
        return f"change the filesystem ({' '.join([event, *paths[:2]])})"
    if event in _COMMAND_EVENTS:
        return f"run a command {_command(event, args)}"
    if event == "import" and args and args[0] == "_posixsubprocess":
        # A fresh copy of the module would bring back the unaudited fork_exec.
        return "run a command (a fresh import of _posixsubprocess)"
    if event in _NETWORK_EVENTS:
        if event == "socket.getaddrinfo":
            where = _short(tuple(args[:2]))
        elif event.startswith("socket.get"):
            where = _short(args[0]) if args else ""
        else:
            where = _short(args[1]) if len(args) > 1 else ""
        return f"open a network connection ({event} {where})"
    if event in _PROCESS_EVENTS:
        return f"act on a process or its limits ({event})"
    if event == "ctypes.dlopen":
        # threadpoolctl (KMeans.predict, among others) re-opens the BLAS and
        # OpenMP libraries that numpy/scipy/sklearn have already loaded:
        # harmless, as it adds no code. A library not yet loaded would.
        name = args[0] if args else None
        if isinstance(name, str) and os.path.realpath(name) in _mapped_libraries():
            return None
        return f"load the native library {_short(name)}"
    if event.startswith("ctypes.dlsym") and args[1:2] and args[1] in _NATIVE_FUNCTIONS:
        return f"call the native function {args[1]!r} through ctypes"
    return None


REFUSED_EXIT = 3


class Guard:
    """The audit hook: the first refused action ends the child at once.

    Exiting (rather than raising) means code that catches the error cannot
    try again, and the refused write, command or connection never happens.
    """

    def __init__(self, report: Callable[[str], None]) -> None:
        self.phase = "loading"
        self.standing_down = False
        self._report = report

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.standing_down:
            return
        reason = refusal(event, args)
        if reason is None:
            return
        self.standing_down = True  # writing the refusal is the child's own act
        try:
            self._report(f"the file tried to {reason} while {self.phase}")
        finally:
            os._exit(REFUSED_EXIT)


def _audited_fork_exec(original: Callable[..., Any]) -> Callable[..., Any]:
    def fork_exec(*args: Any) -> Any:
        sys.audit("_posixsubprocess.fork_exec", *args[:1])
        return original(*args)

    return fork_exec


def _audit_process_creation() -> None:
    """Give _posixsubprocess.fork_exec the audit event CPython does not."""
    import _posixsubprocess
    import subprocess

    audited = _audited_fork_exec(_posixsubprocess.fork_exec)
    _posixsubprocess.fork_exec = audited
    subprocess._fork_exec = audited  # type: ignore[attr-defined]


def _import_libraries(fmt: str) -> None:
    """Import what loading and inspecting need before the guard goes up."""
    import joblib  # noqa: F401
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import sklearn.base  # noqa: F401
    import sklearn.compose  # noqa: F401
    import sklearn.pipeline  # noqa: F401
    import sklearn.utils  # noqa: F401

    import registry.inspection  # noqa: F401
    import registry.reference_check  # noqa: F401
    import registry.serialization  # noqa: F401

    if fmt == "skops":
        import skops.io  # noqa: F401


def _import_model_libraries(job: dict) -> None:
    """Import the installed optional model libraries the file may name.

    A skops file can hold their types only if an administrator trusted them.
    """
    data = b"" if job["format"] == "skops" else Path(job["path"]).read_bytes()
    for name in MODEL_LIBRARIES:
        if job["format"] == "skops":
            named = any(t.startswith(f"{name}.") for t in job["trusted_types"])
        else:
            named = name.encode() in data or data.startswith(_COMPRESSED_JOBLIB)
        if named and importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
            if name == "lightgbm":
                # LightGBM asks joblib for the physical core count when it
                # predicts, and joblib runs `lscpu` for it the first time: a
                # command the guard would refuse. The count is cached, so it
                # is taken now, before the guard goes up.
                import joblib

                joblib.cpu_count(only_physical_cores=True)


def missing_module(exc: BaseException) -> str | None:
    """The top-level package a failed import needs, if it is not installed.

    A module missing from an installed package (a file saved under another
    version of it) is a different problem and is reported as it is.
    """
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.partition(".")[0]
    try:
        installed = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        installed = False
    return None if installed else top


def _read_checked(path: str, expected: str) -> bytes | str:
    """The file's bytes if they still match the sha256 recorded at upload."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        return (
            f"the file does not match its sha256 (recorded {expected[:12]}…, "
            f"now {digest[:12]}…): it was altered after upload"
        )
    return data


def _failed(failure: str, exc: BaseException | str, **details: str) -> dict:
    """A refusal the parent words with registry.upload_errors' ``failure``."""
    error = exc if isinstance(exc, str) else _exception_text(exc)
    return {"ok": False, "failure": failure, "error": error, **details}


def _exception_text(exc: BaseException) -> str:
    detail = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{type(exc).__name__}: {detail}".rstrip(": ")


def _run(job: dict, guard: Guard | None = None) -> dict:
    """Load, describe and smoke-test; ``job`` may pin a sha256 and a schema,
    or bring a drift reference's columns to predict (registry.reference_check).

    The verdict names the sha256 of the bytes loaded, for the parent to match
    against its own, and a failure's kind (``failure``) for the parent to put
    in words."""
    from registry.inspection import describe, smoke_test
    from registry.reference_check import ReferenceMismatch, predict_reference
    from registry.serialization import UntrustedTypesError, read_estimator

    source: bytes = Path(job["path"]).read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    if job.get("sha256"):
        checked = _read_checked(job["path"], job["sha256"])
        if isinstance(checked, str):
            return _failed("altered", checked)
        source, digest = checked, job["sha256"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator = read_estimator(source, job["format"], job["trusted_types"])
        except UntrustedTypesError as exc:
            return _failed("untrusted_types", exc, types=", ".join(exc.types))
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the bytes made it raise
            if package := missing_module(exc):
                return _failed("unreadable", exc, missing_library=package)
            return _failed("unreadable", exc)
    if not callable(getattr(estimator, "predict", None)):
        held = type(estimator).__name__
        return _failed(
            "no_predict",
            f"the file holds a {held}, which has no predict() method",
            held=held[:100],
        )
    messages: list[str] = []
    trained_with = None
    for warning in caught:
        if warning.category.__name__ == "InconsistentVersionWarning":
            trained_with = getattr(warning.message, "original_sklearn_version", None)
        messages.append(f"{warning.category.__name__}: {warning.message}"[:500])
    if guard is not None:
        guard.phase = "being inspected"
    description = describe(estimator, job["metadata"])
    if guard is not None:
        guard.phase = "predicting"
    # A recheck predicts on the schema recorded (and perhaps edited) at upload.
    schema = {**description["input_schema"], **(job.get("input_schema") or {})}
    try:
        smoke = smoke_test(estimator, schema, job["metadata"])
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model's own failure to predict
        return _failed("smoke_test_failed", exc)
    predicted: dict[str, Any] = {}
    if job.get("reference") is not None:
        try:
            predicted["reference"] = predict_reference(
                estimator, schema, job["reference"]
            )
        except ReferenceMismatch as exc:
            return _failed(exc.failure, exc.error, **exc.details)
    versions = _library_versions()
    if trained_with:
        versions["scikit-learn (trained)"] = str(trained_with)
    return {
        "ok": True,
        **description,
        "smoke_test": smoke,
        "warnings": messages[:20],
        "library_versions": versions,
        "sha256": digest,
        **predicted,
    }


def _writer(path: str) -> Callable[[dict], None]:
    """Writes the verdict once, to a file created by that write: if anything
    created it before, the child writes nothing and the parent refuses."""

    def write(result: dict) -> None:
        data = json.dumps(result, default=str).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            os._exit(5)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    return write


def main() -> int:
    job_path, verdict_path = sys.argv[1], sys.argv[2]
    job = json.loads(Path(job_path).read_text())
    memory = job["memory_mb"] * 1024 * 1024
    _limit(resource.RLIMIT_AS, memory)
    _limit(resource.RLIMIT_CPU, job["cpu_seconds"])
    _limit(resource.RLIMIT_FSIZE, 64 * 1024 * 1024)
    # Importing a plugin module must not leave a __pycache__ behind (a write).
    sys.dont_write_bytecode = True
    sys.path[:0] = [job["project_root"], *job["plugin_dirs"]]
    write = _writer(verdict_path)
    guard = Guard(lambda reason: write({"ok": False, "refused": True, "error": reason}))
    try:
        _import_libraries(job["format"])
        _import_model_libraries(job)
        _audit_process_creation()
        sys.addaudithook(guard)
        result = _run(job, guard)
    except MemoryError:
        result = _failed(
            "memory_limit", f"ran out of memory (limit {job['memory_mb']} MB)"
        )
    except BaseException as exc:  # noqa: BLE001 - report whatever the file raised
        result = _failed("load_error", exc)
        if package := missing_module(exc):
            result["missing_library"] = package
    guard.standing_down = True  # the file's code has had its turns
    write(result)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
