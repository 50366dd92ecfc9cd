"""ops/backup.sh and ops/restore.sh as an operator runs them.

Real files, real gunicorn, real subprocesses, on the suite's backend: a
SQLite file by default, a fresh PostgreSQL database per location when the
suite runs with DATABASE_URL=postgres://...
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.servers import (
    IRIS_ROW,
    PROJECT_ROOT,
    Install,
    Server,
    clean_env,
    make_install,
    manage,
    postgres_database,
    query,
    send_all,
    start_gunicorn,
    suite_uses_postgres,
    wait_for_rows,
)

REGISTRY_SQL = {
    "models": (
        "SELECT m.slug, v.number FROM registry_mlmodel m "
        "LEFT JOIN registry_modelversion v ON v.id = m.active_version_id "
        "ORDER BY m.slug"
    ),
    "versions": (
        "SELECT m.slug, v.number, v.file, v.sha256, v.size, v.status "
        "FROM registry_modelversion v JOIN registry_mlmodel m ON m.id = v.model_id "
        "ORDER BY m.slug, v.number"
    ),
    "activations": (
        "SELECT m.slug, a.from_number, a.to_number, a.rollback, a.channel, "
        "a.username, a.created_at FROM registry_activation a "
        "JOIN registry_mlmodel m ON m.id = a.model_id ORDER BY a.id"
    ),
    "users": "SELECT username, password, is_superuser FROM auth_user ORDER BY id",
}


def registry_state(env: dict[str, str]) -> dict[str, list[tuple]]:
    return {name: query(env["DATABASE_URL"], sql) for name, sql in REGISTRY_SQL.items()}


def run_script(
    name: str, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PROJECT_ROOT / "ops" / name), *args],
        cwd=PROJECT_ROOT,
        env={**env, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )


def take_backup(env: dict[str, str], target: Path) -> Path:
    """Runs ops/backup.sh; returns the backup directory it printed."""
    result = run_script("backup.sh", env, str(target))
    assert result.returncode == 0, f"backup failed:\n{result.stderr}"
    return Path(result.stdout.strip().splitlines()[-1])


@contextmanager
def empty_location(directory: Path) -> Iterator[dict[str, str]]:
    """The environment of a new install: no database yet, no media directory."""
    (directory / "static").mkdir(parents=True)
    env = clean_env(directory, MODELHUB_LOG_LEVEL="WARNING")
    if not suite_uses_postgres():
        yield env
        return
    with postgres_database() as url:
        yield {**env, "DATABASE_URL": url}


def file_digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def predict(server: Server) -> dict:
    response = server.post("/api/predict/iris/?proba=1", {"data": IRIS_ROW})
    assert response.status == 200, response.text
    body = response.json()
    del body["request_id"]
    return body


class SteadyTraffic:
    """Predictions sent back to back from a thread until ``stop()``."""

    def __init__(self, server: Server, prefix: str) -> None:
        self.statuses: list[int | None] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(server, prefix))
        self._thread.start()

    def _run(self, server: Server, prefix: str) -> None:
        while not self._stopping.is_set():
            request_id = f"{prefix}-{len(self.statuses)}"
            try:
                response = server.post(
                    "/api/predict/iris/",
                    {"data": IRIS_ROW},
                    headers={"X-Request-ID": request_id},
                )
                self.statuses.append(response.status)
            except (OSError, http.client.HTTPException):
                self.statuses.append(None)

    def stop(self) -> list[int | None]:
        self._stopping.set()
        self._thread.join(timeout=30)
        return self.statuses


def log_count(env: dict[str, str], prefix: str) -> int:
    sql = "SELECT count(*) FROM api_requestlog WHERE request_id LIKE %s"
    return query(env["DATABASE_URL"], sql, (prefix + "-%",))[0][0]


def test_backup_taken_under_load_restores_to_a_serving_instance(
    install: Install, tmp_path: Path, gunicorn_servers: list[Server]
) -> None:
    # A user too: accounts are part of what a restore brings back.
    manage(
        install.env, *"createsuperuser --noinput --username ops --email o@x.org".split()
    )
    (tmp_path / "original").mkdir()
    original = start_gunicorn(install.env, tmp_path / "original", workers=1)
    gunicorn_servers.append(original)
    assert {o.status for o in send_all(original, "before", 5)} == {200}
    assert sum(map(len, wait_for_rows(install, "before", 5).values())) == 5
    expected = predict(original)
    assert expected["version"] == 1
    assert expected["predictions"] == [install.predictions[1]]

    # The backup runs while requests are served and their log rows written.
    traffic = SteadyTraffic(original, "during")
    deadline = time.monotonic() + 15
    while log_count(install.env, "during") < 3:
        assert time.monotonic() < deadline, "the traffic logs no rows"
        time.sleep(0.05)
    logged_before = log_count(install.env, "during")
    served_before = len(traffic.statuses)
    taken = take_backup(install.env, tmp_path / "backups")
    served_during = len(traffic.statuses) - served_before
    statuses = traffic.stop()
    assert served_during > 0, "no request completed while the backup ran"
    assert set(statuses) == {200}

    manifest = json.loads((taken / "manifest.json").read_text())
    assert manifest["database"] == ("postgresql" if suite_uses_postgres() else "sqlite")
    assert manifest["media_files"] == 2
    assert "registry" in manifest["migrations"]

    with empty_location(tmp_path / "restored") as env:
        restored = run_script("restore.sh", env, str(taken))
        assert restored.returncode == 0, restored.stderr
        assert "verified: all 2 model files match their sha256" in restored.stdout

        assert registry_state(env) == registry_state(install.env)
        assert file_digests(Path(env["MODELHUB_MEDIA_ROOT"])) == file_digests(
            install.media
        )
        # Every row logged before the backup, maybe a few logged during it.
        assert log_count(env, "before") == 5
        assert logged_before <= log_count(env, "during")
        assert log_count(env, "during") <= log_count(install.env, "during")

        server = start_gunicorn(env, tmp_path / "restored", workers=1)
        gunicorn_servers.append(server)
        assert predict(server) == expected
        server.stop()  # before its PostgreSQL database is dropped


def test_restore_refuses_a_non_empty_target_unless_forced(
    install: Install, tmp_path: Path
) -> None:
    taken = take_backup(install.env, tmp_path / "backups")
    # The install moves on after the backup: v2 is now served.
    install.shell("actions.activate(model.versions.get(number=2))")
    state = registry_state(install.env)
    files = file_digests(install.run_dir)  # database file and media included
    assert state["models"] == [("iris", 2)]

    refused = run_script("restore.sh", install.env, str(taken))
    assert refused.returncode == 1
    assert "target not empty" in refused.stderr
    assert f"media directory {install.media} is not empty" in refused.stderr
    assert "pass --force" in refused.stderr
    assert registry_state(install.env) == state
    assert file_digests(install.run_dir) == files

    forced = run_script("restore.sh", install.env, "--force", str(taken))
    assert forced.returncode == 0, forced.stderr
    assert registry_state(install.env)["models"] == [("iris", 1)]
    kept = list(install.run_dir.glob("media.before-restore-*"))
    assert len(kept) == 1 and file_digests(kept[0]) == file_digests(install.media)


def test_restore_fails_loudly_when_a_referenced_model_file_is_missing(
    install: Install, tmp_path: Path
) -> None:
    taken = take_backup(install.env, tmp_path / "backups")
    (v2_file,) = query(
        install.env["DATABASE_URL"],
        "SELECT file FROM registry_modelversion WHERE number = 2",
    )[0]
    # What a backup looks like when v2 was deleted between its database and
    # media steps: the archive lacks the file, the manifest agrees with it.
    archive = taken / "media.tar.gz"
    rewritten = io.BytesIO()
    with (
        tarfile.open(archive) as source,
        tarfile.open(fileobj=rewritten, mode="w:gz") as target,
    ):
        assert f"./{v2_file}" in source.getnames()
        for member in source.getmembers():
            if member.name != f"./{v2_file}":
                target.addfile(member, source.extractfile(member))
    archive.write_bytes(rewritten.getvalue())
    manifest = json.loads((taken / "manifest.json").read_text())
    manifest["sha256"]["media.tar.gz"] = hashlib.sha256(
        archive.read_bytes()
    ).hexdigest()
    (taken / "manifest.json").write_text(json.dumps(manifest))

    with empty_location(tmp_path / "restored") as env:
        result = run_script("restore.sh", env, str(taken))
    assert result.returncode != 0
    assert "verification FAILED: 1 of 2 model files missing or altered" in result.stderr
    assert f"iris v2: {Path(env['MODELHUB_MEDIA_ROOT']) / v2_file} is missing" in (
        result.stderr
    )


def test_restore_refuses_a_damaged_backup_before_touching_the_target(
    install: Install, tmp_path: Path
) -> None:
    taken = take_backup(install.env, tmp_path / "backups")
    with (taken / "media.tar.gz").open("ab") as archive:
        archive.write(b"bit rot")

    with empty_location(tmp_path / "restored") as env:
        result = run_script("restore.sh", env, str(taken))
        assert result.returncode != 0
        assert "media.tar.gz is damaged" in result.stderr
        assert not Path(env["MODELHUB_MEDIA_ROOT"]).exists()
        if suite_uses_postgres():
            tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            assert query(env["DATABASE_URL"], tables) == [(0,)]
        else:
            assert not (tmp_path / "restored" / "db.sqlite3").exists()


def test_a_backup_of_an_object_store_holds_its_files_and_restores_into_a_new_bucket(
    object_store, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        url = (
            stack.enter_context(postgres_database()) if suite_uses_postgres() else None
        )
        source = make_install(tmp_path / "source", url, **object_store.env())
        taken = take_backup(source.env, tmp_path / "backups")
    manifest = json.loads((taken / "manifest.json").read_text())
    assert (manifest["model_store"], manifest["media_files"]) == ("s3", 2)
    with tarfile.open(taken / "media.tar.gz") as archive:
        archived = sorted(m.name.removeprefix("./") for m in archive if m.isfile())
    prefix = f"{object_store.prefix}/"
    assert archived == [key.removeprefix(prefix) for key in object_store.keys()]

    target = {
        **object_store.env(),
        "MODELHUB_S3_BUCKET": object_store.server.new_bucket(),
    }
    with empty_location(tmp_path / "restored") as env:
        env = {**env, **target}
        restored = run_script("restore.sh", env, str(taken))
        assert restored.returncode == 0, restored.stderr
        assert "verified: all 2 model files match their sha256" in restored.stdout
        assert object_store.server.keys(target["MODELHUB_S3_BUCKET"]) == sorted(
            prefix + name for name in archived
        )
        again = run_script("restore.sh", env, str(taken))
        assert again.returncode != 0
        assert "holds model files" in again.stderr
        forced = run_script("restore.sh", env, "--force", str(taken))
        assert forced.returncode == 0, forced.stderr
