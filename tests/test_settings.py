"""The settings contract, checked by running manage.py in a controlled environment."""

from __future__ import annotations

import json
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.servers import clean_env

POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test"


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def shell(env: dict[str, str], code: str) -> dict:
    """Runs ``code`` in ``manage.py shell`` and decodes the JSON it prints last."""
    result = manage(env, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_refuses_to_start(result: subprocess.CompletedProcess[str], name: str):
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured:")
    assert name in last_line


def production_env(tmp: Path, **overrides: str) -> dict[str, str]:
    base = {
        "MODELHUB_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "modelhub.example.com",
    }
    return clean_env(tmp, **{**base, **overrides})


def test_production_profile_refuses_to_start_without_secret_key(tmp_path):
    env = production_env(tmp_path)
    del env["DJANGO_SECRET_KEY"]
    result = manage(env, "check")
    assert_refuses_to_start(result, "DJANGO_SECRET_KEY")
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize("hosts", [None, " , "], ids=["unset", "blank"])
def test_production_profile_refuses_to_start_without_allowed_hosts(tmp_path, hosts):
    env = production_env(tmp_path)
    if hosts is None:
        del env["DJANGO_ALLOWED_HOSTS"]
    else:
        env["DJANGO_ALLOWED_HOSTS"] = hosts
    result = manage(env, "check")
    assert_refuses_to_start(result, "DJANGO_ALLOWED_HOSTS")


def test_production_profile_passes_deploy_checks_without_warnings(tmp_path):
    result = manage(
        production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING"
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stderr
    assert not (tmp_path / "secret_key").exists()


PRINT_LOCAL_SETTINGS = (
    "import json; from django.conf import settings; "
    "print(json.dumps({'secret_key': settings.SECRET_KEY, 'debug': settings.DEBUG, "
    "'allowed_hosts': settings.ALLOWED_HOSTS}))"
)


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    """Two runs of the local profile with no configuration, sharing one key file."""
    tmp = tmp_path_factory.mktemp("local")
    env = clean_env(tmp)
    key_file = tmp / "secret_key"
    first = shell(env, PRINT_LOCAL_SETTINGS)
    created = key_file.stat()
    second = shell(env, PRINT_LOCAL_SETTINGS)
    return {"first": first, "second": second, "key_file": key_file, "created": created}


def test_local_profile_generates_private_secret_key_file(local_runs):
    key_file = local_runs["key_file"]
    assert stat.S_IMODE(local_runs["created"].st_mode) == 0o600
    assert key_file.read_text().strip() == local_runs["first"]["secret_key"]
    assert len(local_runs["first"]["secret_key"]) >= 50


def test_local_profile_reuses_secret_key_across_restarts(local_runs):
    assert local_runs["second"]["secret_key"] == local_runs["first"]["secret_key"]
    after = local_runs["key_file"].stat()
    assert after.st_ino == local_runs["created"].st_ino
    assert after.st_mtime_ns == local_runs["created"].st_mtime_ns


def test_local_profile_defaults_debug_off(local_runs):
    assert local_runs["first"]["debug"] is False


def test_local_profile_allows_loopback_hosts(local_runs):
    assert {"localhost", "127.0.0.1"} <= set(local_runs["first"]["allowed_hosts"])


def test_invalid_boolean_setting_fails_loudly_naming_variable(tmp_path):
    result = manage(clean_env(tmp_path, DJANGO_DEBUG="maybe"), "check")
    assert_refuses_to_start(result, "DJANGO_DEBUG")
    assert "maybe" in result.stderr.strip().splitlines()[-1]


def test_unknown_environment_profile_fails_loudly(tmp_path):
    result = manage(clean_env(tmp_path, MODELHUB_ENV="staging"), "check")
    assert_refuses_to_start(result, "MODELHUB_ENV")
    assert "staging" in result.stderr.strip().splitlines()[-1]


def test_a_redis_url_that_is_not_one_fails_loudly_without_echoing_it(tmp_path):
    """A mistyped URL may still hold the password: it is not printed."""
    url = "127.0.0.1:6379?password=s3cret"
    result = manage(clean_env(tmp_path, REDIS_URL=url), "check")
    assert_refuses_to_start(result, "REDIS_URL")
    assert "s3cret" not in result.stderr


# A second connection that asks for the write lock without waiting proves the
# first one took it when its transaction began, not at its first write.
PRINT_SQLITE_BEHAVIOUR = """
import json, sqlite3
from django.db import connection, transaction
with connection.cursor() as cursor:
    pragmas = {}
    for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys"):
        cursor.execute(f"PRAGMA {name}")
        pragmas[name] = cursor.fetchone()[0]
with transaction.atomic():
    other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        locked = False
    except sqlite3.OperationalError as exc:
        locked = "locked" in str(exc)
    finally:
        other.close()
print(json.dumps({
    "pragmas": pragmas,
    "options": connection.settings_dict["OPTIONS"],
    "locked_by_open_transaction": locked,
}))
"""


def test_default_sqlite_database_uses_wal_busy_timeout_and_immediate_transactions(
    tmp_path,
):
    result = shell(clean_env(tmp_path), PRINT_SQLITE_BEHAVIOUR)
    assert result["pragmas"]["journal_mode"] == "wal"
    assert result["pragmas"]["busy_timeout"] == 20_000
    assert result["pragmas"]["synchronous"] == 1  # NORMAL
    assert result["pragmas"]["foreign_keys"] == 1
    assert result["options"]["transaction_mode"] == "IMMEDIATE"
    assert result["options"]["timeout"] == 20
    assert result["locked_by_open_transaction"] is True


def test_postgres_database_url_selects_postgresql_with_persistent_connections(
    tmp_path,
):
    code = (
        "import json; from django.conf import settings; "
        "print(json.dumps(settings.DATABASES['default']))"
    )
    database = shell(clean_env(tmp_path, DATABASE_URL=POSTGRES_URL), code)
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["NAME"] == "test"
    assert database["HOST"] == "127.0.0.1"
    assert database["PORT"] == 5432
    assert database["CONN_MAX_AGE"] > 0
    assert database["CONN_HEALTH_CHECKS"] is True
    assert "transaction_mode" not in database.get("OPTIONS", {})


def test_local_secret_key_is_shared_by_workers_starting_at_once(tmp_path):
    env = clean_env(tmp_path)
    code = (
        "from django.conf import settings; import json; "
        "print(json.dumps({'key': settings.SECRET_KEY}))"
    )
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [process.communicate(timeout=60) for process in starts]
    assert [process.returncode for process in starts] == [0] * 6, outputs
    keys = {json.loads(out.strip().splitlines()[-1])["key"] for out, _ in outputs}
    assert len(keys) == 1
    assert keys.pop() == (tmp_path / "secret_key").read_text().strip()
    assert not list(tmp_path.glob("secret_key.*"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODELHUB_PRELOAD_APP", "yes please"),
        ("MODELHUB_WORKERS", "two"),
        ("MODELHUB_WORKERS", "0"),
        ("MODELHUB_WORKER_TIMEOUT", "1m"),
        ("MODELHUB_LIMIT_REQUEST_LINE", "0"),
        ("MODELHUB_LIMIT_REQUEST_FIELD_SIZE", "8k"),
    ],
)
def test_gunicorn_refuses_to_start_on_a_bad_setting_naming_it(tmp_path, name, value):
    """gunicorn.conf.py reads the environment with the settings' own readers."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    result = subprocess.run(
        [str(gunicorn), "--config", "modelhub/gunicorn.conf.py", "--check-config"],
        cwd=PROJECT_ROOT,
        env=clean_env(tmp_path, **{name: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {name}=" in result.stderr
    assert value in result.stderr


def test_gunicorn_settings_come_from_the_environment(tmp_path):
    gunicorn = Path(sys.executable).with_name("gunicorn")
    env = clean_env(
        tmp_path, MODELHUB_WORKERS="3", MODELHUB_PRELOAD_APP="off", MODELHUB_THREADS=""
    )
    result = subprocess.run(
        [str(gunicorn), "--config", "modelhub/gunicorn.conf.py", "--print-config"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    printed = {
        name.strip(): value.strip()
        for name, _, value in (
            line.partition("=") for line in result.stdout.splitlines()
        )
    }
    assert printed["workers"] == "3"
    assert printed["preload_app"] == "False"
    assert printed["threads"] == "1"
    assert printed["worker_class"] == "modelhub.workers.JsonErrorsSyncWorker"
    assert printed["limit_request_line"] == "4094"
    assert printed["limit_request_fields"] == "100"
    assert printed["limit_request_field_size"] == "8190"
