"""Shared fixtures: tiny real estimators in real files, an isolated media root."""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from tests.objectstore import object_store, s3_server  # noqa: F401
from tests.redis_server import redis_prefix, redis_url  # noqa: F401
from tests.servers import gunicorn_servers, install, iris_install  # noqa: F401

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def plain_static_files(settings: Any) -> None:
    """Tests render pages without running collectstatic first."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        },
    }


@pytest.fixture(autouse=True)
def commit_per_request(settings: Any) -> None:
    """In-process tests read a request's row as soon as it is answered, inside
    their own transaction: a row is committed per request, in the request's
    thread. The group commit has its own tests (tests/monitoring/
    test_group_commit.py) and is the default under gunicorn."""
    settings.MODELHUB_LOG_COMMIT_MS = 0


@pytest.fixture(autouse=True)
def no_route_listener(settings: Any) -> None:
    """In-process tests change the registry in transactions that are rolled
    back, never sending a notice: on PostgreSQL this process listens for
    registry changes only in the tests that ask for it (``route_listener``,
    tests/registry/conftest.py). Workers under gunicorn listen as deployed."""
    settings.MODELHUB_ROUTE_LISTEN = False


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any) -> Any:
    """pytest-django's, with this process's listener for registry notices
    stopped before the test database is dropped: a module's fixture that
    commits through the actions before ``no_route_listener`` applies starts
    it, as any process does."""
    from registry import notices

    yield django_db_setup
    notices.stop()


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    # The host's uncompressed copies of joblib files (registry/hostcopy.py):
    # each test its own, as each has its own media.
    settings.MODELHUB_MODEL_COPY_DIR = tmp_path / "model-copies"
    return root


@pytest.fixture
def stored_files(media_root: Path):
    """Lists every file under the media root, to prove nothing was orphaned."""

    def list_files() -> list[Path]:
        return sorted(p for p in media_root.rglob("*") if p.is_file())

    return list_files


def dump(obj: Any, path: Path) -> Path:
    joblib.dump(obj, path)
    return path


@pytest.fixture(scope="session")
def iris_frame() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    labels = data.target.map(dict(enumerate(data.target_names)))
    return data.data, labels


@pytest.fixture(scope="session")
def iris_classifier(iris_frame):
    """A classifier fitted on a DataFrame, with string classes."""
    from sklearn.linear_model import LogisticRegression

    x, y = iris_frame
    return LogisticRegression(max_iter=500).fit(x, y)


@pytest.fixture(scope="session")
def numpy_regressor():
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True)
    return Ridge().fit(x, y)


@pytest.fixture(scope="session")
def mixed_frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, 120).astype(float),
            "income": rng.normal(50_000, 10_000, 120),
            "city": rng.choice(["paris", "lyon", "nice"], 120),
            "plan": rng.choice(["free", "pro"], 120),
        }
    )
    target = (frame["income"] > 50_000).astype(int).to_numpy()
    return frame, target


@pytest.fixture(scope="session")
def pipeline_classifier(mixed_frame):
    """A Pipeline whose ColumnTransformer one-hot encodes string columns by name."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, target = mixed_frame
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(frame, target)


@pytest.fixture(scope="session")
def clusterer():
    from sklearn.cluster import KMeans

    x = np.random.default_rng(1).normal(size=(60, 3))
    return KMeans(n_clusters=3, n_init=2, random_state=0).fit(x)


@pytest.fixture
def iris_path(tmp_path: Path, iris_classifier) -> Path:
    return dump(iris_classifier, tmp_path / "iris.joblib")


@pytest.fixture
def regressor_path(tmp_path: Path, numpy_regressor) -> Path:
    return dump(numpy_regressor, tmp_path / "diabetes.joblib")


@pytest.fixture
def skops_path(tmp_path: Path, iris_classifier) -> Path:
    import skops.io as sio

    path = tmp_path / "iris.skops"
    sio.dump(iris_classifier, path)
    return path


class RaisesOnLoad:
    """Unpickling this runs code that raises, as a broken custom class would."""

    def __reduce__(self):
        return (exec, ("raise RuntimeError('boom while loading')",))


class SleepsOnLoad:
    def __reduce__(self):
        return (time.sleep, (600,))


class AllocatesOnLoad:
    def __reduce__(self):
        return (bytearray, (64 * 1024**3,))


class RunsCodeOnLoad:
    """Writes the environment it sees to a file, then yields something model-less."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        code = (
            "import os, json; "
            f"open({str(self.target)!r}, 'w').write(json.dumps(dict(os.environ)))"
        )
        return (exec, (code,))


FORGED_VERDICT = {
    "ok": True,
    "kind": "classifier",
    "estimator": "forged.Model",
    "classes": None,
    "input_schema": {"features": [], "source": "forged"},
    "smoke_test": "passed",
    "warnings": [],
    "library_versions": {},
}


class ForgesTheVerdict:
    """Writes the preflight's success verdict on every descriptor it may have
    inherited, then leaves before the preflight can write its own."""

    def __reduce__(self):
        code = (
            "import json, os\n"
            f"line = json.dumps({FORGED_VERDICT!r}).encode()\n"
            "for fd in range(3, 1024):\n"
            "    try:\n        os.write(fd, line)\n"
            "    except OSError:\n        pass\n"
            "os._exit(0)"
        )
        return (exec, (code,))


class ForksOnLoad:
    """Runs ``touch marker`` through ``_posixsubprocess.fork_exec``, the call
    under subprocess.Popen, which raises no audit event of its own."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        touch = [b"/usr/bin/touch", b"/bin/touch"]
        code = (
            "import _posixsubprocess, os\n"
            "r, w = os.pipe()\n"
            f"_posixsubprocess.fork_exec([b'touch', {str(self.marker).encode()!r}], "
            f"{touch!r}, True, (w,), None, None, -1, -1, -1, -1, -1, -1, r, w, "
            "True, False, -1, None, None, None, -1, None, False)\n"
            "os.close(w)\n"
            "os.read(r, 1)"
        )
        return (exec, (code,))


@pytest.fixture
def hostile_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "garbage": tmp_path / "garbage.joblib",
        "not_a_model": tmp_path / "not_a_model.joblib",
        "raises": tmp_path / "raises.pkl",
        "sleeps": tmp_path / "sleeps.pkl",
        "empty": tmp_path / "empty.joblib",
        "forges_verdict": tmp_path / "forges-verdict.pkl",
        "forks": tmp_path / "forks.pkl",
    }
    files["garbage"].write_bytes(np.random.default_rng(2).bytes(4096))
    joblib.dump({"weights": [1, 2, 3]}, files["not_a_model"])
    files["raises"].write_bytes(pickle.dumps(RaisesOnLoad()))
    files["sleeps"].write_bytes(pickle.dumps(SleepsOnLoad()))
    files["empty"].write_bytes(b"")
    files["forges_verdict"].write_bytes(pickle.dumps(ForgesTheVerdict()))
    marker = forked_marker(files["forks"])
    files["forks"].write_bytes(pickle.dumps(ForksOnLoad(marker)))
    return files


def forked_marker(forks: Path) -> Path:
    """What the ``forks`` hostile file's command would create."""
    return forks.with_name("created-by-a-forked-command")


@pytest.fixture
def staff_user(db):
    """A staff user with every registry permission, the pickle upload included."""
    user = get_user_model().objects.create_user(
        "staff", password="staff-pass-123", is_staff=True
    )
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="registry")
    )
    return user


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture(autouse=True)
def own_quota_file(settings, tmp_path):
    """Quota counters live in a file shared by a host's workers: one per test
    (and not in a Redis of the environment: tests that use one say so)."""
    settings.MODELHUB_QUOTA_FILE = str(tmp_path / "quota.sqlite3")
    settings.REDIS_URL = ""


@pytest.fixture(autouse=True)
def fresh_serving_state():
    """Every test starts with an empty model cache and no remembered routes."""
    from api.access import keys
    from monitoring.requestlog import writer
    from registry import routing, serving
    from registry.cache import model_cache

    model_cache.clear()
    routing.forget()
    serving.forget()
    writer.reset()
    keys.forget()
    yield
    model_cache.clear()
    routing.forget()
    serving.forget()
    writer.reset()


@pytest.fixture
def fast_preflight(monkeypatch, settings):
    """The preflight's own checks, run in-process.

    API tests publish many models; the subprocess isolation itself is covered
    by the registry tests. Whatever the file raises is refused as the child
    reports it (preflight_child.main), not let through as a crash. The rest
    of the job (a recheck's sha256 and schema, an upload's drift reference)
    goes to the child as given.
    """
    from registry import actions, preflight_child, validation

    def run(path: Path, fmt: str, metadata: dict, **job: Any) -> dict:
        try:
            result = preflight_child._run(
                {
                    "path": str(path),
                    "format": fmt,
                    "metadata": metadata,
                    "trusted_types": list(settings.MODELHUB_SKOPS_TRUSTED_TYPES),
                    **job,
                }
            )
        except Exception as exc:
            detail = str(exc).splitlines()[0][:300] if str(exc) else ""
            error = f"{type(exc).__name__}: {detail}".rstrip(": ")
            result = {"ok": False, "error": error}
        if not result.pop("ok"):
            raise validation.verdict_error(result, Path(path))
        return result

    def rerun(*, path: Path, fmt: str, sha256: str, metadata: dict, input_schema):
        return run(path, fmt, metadata, sha256=sha256, input_schema=input_schema)

    monkeypatch.setattr(actions, "preflight", run)
    monkeypatch.setattr(actions, "recheck", rerun)


@pytest.fixture
def publish(db, fast_preflight, tmp_path):
    """Register an estimator as the next version of ``slug`` through the real path."""
    from registry import actions

    counter = iter(range(1_000_000))

    def publish_model(
        estimator: Any,
        slug: str,
        *,
        metadata: dict | None = None,
        activate: bool = True,
        private: bool = False,
    ):
        path = tmp_path / f"{slug}-{next(counter)}.joblib"
        joblib.dump(estimator, path)
        with path.open("rb") as source:
            version = actions.register_version(
                slug=slug,
                source=source,
                filename=path.name,
                metadata=metadata,
                activate=activate,
            )
        if private:
            model = version.model
            actions.update_model(
                model, name=model.name, description=model.description, private=True
            )
            version.refresh_from_db()
        return version

    return publish_model


@pytest.fixture
def iris(publish, iris_classifier):
    """The iris classifier served as 'iris' (v1, active)."""
    return publish(iris_classifier, "iris")


@pytest.fixture
def diabetes(publish, numpy_regressor):
    """The regressor on ten unnamed features served as 'diabetes' (v1, active)."""
    return publish(numpy_regressor, "diabetes")


@pytest.fixture
def churn(publish, pipeline_classifier):
    """The pipeline on named string and number columns served as 'churn'."""
    return publish(pipeline_classifier, "churn")


@pytest.fixture
def iris_versions(iris, publish, iris_frame):
    """iris v1 active; v2, a one-split tree that answers differently,
    registered beside it; v3 the same tree, marked invalid."""
    from sklearn.tree import DecisionTreeClassifier

    from registry import actions

    x, y = iris_frame
    tree = DecisionTreeClassifier(max_depth=1, random_state=0).fit(x, y)
    two = publish(tree, "iris", activate=False)
    three = publish(tree, "iris", activate=False)
    actions.mark_invalid(three, message="broken on purpose")
    return iris, two, three


@pytest.fixture
def iris_sample(iris_frame) -> pd.DataFrame:
    """Four iris rows, all three classes among them."""
    x, _ = iris_frame
    return x.iloc[[0, 60, 120, 149]].reset_index(drop=True)


@pytest.fixture
def diabetes_rows() -> np.ndarray:
    from sklearn.datasets import load_diabetes

    return load_diabetes().data[:5]


@pytest.fixture
def mixed_sample(mixed_frame) -> pd.DataFrame:
    frame, _ = mixed_frame
    return frame.iloc[:6].reset_index(drop=True)


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file that CLI tests copy, so each migrates only once."""
    import subprocess
    import sys

    directory = tmp_path_factory.mktemp("migrated")
    db = directory / "template.sqlite3"
    env = _cli_environment(db, directory / "media", directory)
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), "migrate", "-v0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr
    return db


def _cli_environment(db: Path, media: Path, workdir: Path) -> dict[str, str]:
    import os

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "MODELHUB_")) and key != "DATABASE_URL"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="modelhub.settings",
        DATABASE_URL=f"sqlite:///{db}",
        MODELHUB_MEDIA_ROOT=str(media),
        MODELHUB_STATIC_ROOT=str(workdir / "static"),
        MODELHUB_SECRET_KEY_FILE=str(workdir / "secret_key"),
        MODELHUB_LOG_LEVEL="WARNING",
    )
    return env


class ManageCli:
    """``python manage.py ...`` in a subprocess, on its own database and media."""

    def __init__(self, template: Path, workdir: Path) -> None:
        import shutil

        self.db = workdir / "cli.sqlite3"
        self.media = workdir / "cli-media"
        self.media.mkdir()
        shutil.copy(template, self.db)
        self.env = _cli_environment(self.db, self.media, workdir)

    def __call__(self, *args: str, **env: str):
        import subprocess
        import sys

        return subprocess.run(
            [sys.executable, str(PROJECT_ROOT / "manage.py"), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=180,
            cwd=PROJECT_ROOT,
        )


@pytest.fixture
def manage_cli(migrated_sqlite_template: Path, tmp_path: Path) -> ManageCli:
    return ManageCli(migrated_sqlite_template, tmp_path)
