"""`make run` on a clone that is already set up skips what has not changed.

The real Makefile runs in a fresh copy of the project, with the test's own
virtualenv (``make VENV=…``, whose install stamps are newer than the copy's
requirements: nothing is installed) and a free port. What is checked is what
each start did, from the lines it printed and the files it left, never how
long it took (bench/README.md has the timings).
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import PROJECT_ROOT, free_port, suite_uses_postgres

pytestmark = pytest.mark.slow

VENV = Path(sys.prefix)
COLLECTING = "== collecting static files"
INSTALLING = "== installing"
# The first start trains the demo models and compresses every static file.
START_TIMEOUT = 600.0
STOP_TIMEOUT = 30.0


def project_copy(target: Path) -> Path:
    """The project's files as a fresh clone has them (git's view, no ignored
    files: no database, static files, key or virtualenv)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = PROJECT_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    stamp = (VENV / ".runtime").stat().st_mtime
    for requirements in target.glob("requirements*.txt"):
        os.utime(requirements, (stamp - 60, stamp - 60))
    return target


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def make_run(project: Path, run: int) -> str:
    """``make run`` until /healthz answers 200; then its whole process group
    is stopped. Returns what it printed."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "MODELHUB_", "MAKE", "MFLAGS"))
        and key not in {"DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"}
    }
    env.update(
        MODELHUB_BIND=f"127.0.0.1:{port}",
        MODELHUB_WORKERS="1",
        MODELHUB_ADMIN_PASSWORD="second-start-test",
    )
    log = project / f"make-run-{run}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "run", f"VENV={VENV}"],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"make run exited ({proc.returncode}):\n{log.read_text()}")
            try:
                if get(port, "/healthz") == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        else:
            pytest.fail(f"no 200 on /healthz:\n{log.read_text()}")
        assert get(port, "/static/admin/css/base.css") == 200
        assert get(port, "/static/monitoring/dashboard.js") == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    return log.read_text()


def test_second_make_run_skips_static_files_and_touching_one_collects_again(
    tmp_path,
):
    if suite_uses_postgres():
        pytest.skip("make run uses its own SQLite file: the SQLite run covers it")
    if not (VENV / ".runtime").exists():
        pytest.skip(f"{VENV} was not installed by make (no .runtime stamp)")
    project = project_copy(tmp_path / "clone")
    manifest = project / "staticfiles" / "staticfiles.json"

    first = make_run(project, 1)
    collected_at = manifest.stat().st_mtime
    second = make_run(project, 2)
    later = time.time() + 2
    os.utime(project / "monitoring/static/monitoring/dashboard.js", (later, later))
    third = make_run(project, 3)

    assert [run.count(COLLECTING) for run in (first, second, third)] == [1, 0, 1]
    assert INSTALLING not in first + second + third
    assert manifest.stat().st_mtime > collected_at
    assert "demo models already registered" in second
