"""ModelHub settings: the only place the environment is read.

Two profiles, chosen by ``MODELHUB_ENV``: ``local`` (default) runs over plain
http on 127.0.0.1 with no configuration; ``production`` refuses to start
without an explicit secret key and allowed hosts.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from modelhub.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
)
from modelhub.model_storage import model_storage

BASE_DIR = Path(__file__).resolve().parent.parent

MODELHUB_ENV = env_str("MODELHUB_ENV", "local").strip().lower()
if MODELHUB_ENV not in {"local", "production"}:
    raise ImproperlyConfigured(
        f"MODELHUB_ENV={MODELHUB_ENV!r}: expected 'local' or 'production'"
    )
PRODUCTION = MODELHUB_ENV == "production"


def _local_secret_key(path: Path) -> str:
    """Generate the key once so sessions survive restarts of a local install.

    Several gunicorn workers may start at once: the key is written to a
    private temporary file and published with link(), which fails if another
    process won, so nobody ever reads a half-written key.
    """
    if not path.exists():
        staging = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
        try:
            os.link(staging, path)
        except FileExistsError:
            pass
        finally:
            staging.unlink()
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: delete it to generate a new key")
    return key


SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when MODELHUB_ENV=production"
        )
    SECRET_KEY = _local_secret_key(
        Path(env_str("MODELHUB_SECRET_KEY_FILE", str(BASE_DIR / ".secret_key")))
    )

DEBUG = env_bool("DJANGO_DEBUG", False)

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"]
)
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS must be set when MODELHUB_ENV=production"
    )
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django_prometheus",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "registry",
    "monitoring",
    "api",
]

# The api.middleware names are Django's and django-prometheus's own
# middleware, bypassed on /api/predict/ (api.middleware.web_only says why).
# CSRF and frame options stay plain: check --deploy looks for them by name,
# and they cost next to nothing on a csrf-exempt JSON view.
MIDDLEWARE = [
    "api.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "api.middleware.RequestIDMiddleware",
    "monitoring.middleware.RequestLogMiddleware",
    "api.hosts.AllowedHostsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "api.middleware.SessionMiddleware",
    "api.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "api.middleware.AuthenticationMiddleware",
    "api.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "api.middleware.PrometheusAfterMiddleware",
]

# Admin messages live in the session: the default cookie storage derives a
# signing key on every request, API requests included (~0.1 ms each).
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

ROOT_URLCONF = "modelhub.urls"
WSGI_APPLICATION = "modelhub.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite in WAL mode by default. IMMEDIATE transactions take the
# write lock up front, so concurrent writers wait on busy_timeout instead of
# failing with "database is locked" when a read transaction upgrades.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("MODELHUB_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A warm worker keeps serving during an outage: fail fast, do not hang.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int(
        "MODELHUB_DB_CONNECT_TIMEOUT", 3, minimum=1
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "timeout": env_int("MODELHUB_SQLITE_TIMEOUT", 20, minimum=1),
        "transaction_mode": "IMMEDIATE",
        "init_command": (
            "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA foreign_keys=ON;"
        ),
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_VALIDATORS = "django.contrib.auth.password_validation."
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": _VALIDATORS + name}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("MODELHUB_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MODELHUB_MEDIA_ROOT", str(BASE_DIR / "media")))
# Model files: the local disk (MEDIA_ROOT) by default, or any S3-compatible
# object store shared by several hosts (registry/store.py). Credentials are
# read the way boto3 reads them (AWS_ACCESS_KEY_ID..., a profile, a role).
MODELHUB_STORAGE = env_choice("MODELHUB_STORAGE", "local", ("local", "s3"))
MODELHUB_S3_BUCKET = env_str("MODELHUB_S3_BUCKET").strip()
MODELHUB_S3_PREFIX = env_str("MODELHUB_S3_PREFIX", "modelhub").strip().strip("/")
MODELHUB_S3_ENDPOINT_URL = env_str("MODELHUB_S3_ENDPOINT_URL").strip() or None
if MODELHUB_STORAGE == "s3" and not MODELHUB_S3_BUCKET:
    raise ImproperlyConfigured("MODELHUB_STORAGE=s3 needs MODELHUB_S3_BUCKET")
STORAGES = {
    "default": model_storage(
        MODELHUB_STORAGE,
        bucket=MODELHUB_S3_BUCKET,
        prefix=MODELHUB_S3_PREFIX,
        endpoint_url=MODELHUB_S3_ENDPOINT_URL,
    ),
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Uploaded model files stream to a temporary file above this size.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# Multipart bodies are bounded by the model size limit, not Django's default.
MODELHUB_MAX_BODY_BYTES = env_int("MODELHUB_MAX_BODY_BYTES", 10 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MODELHUB_MAX_BODY_BYTES

LOGIN_URL = "admin:login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "api.access.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_RENDERER_CLASSES": ["api.renderers.ORJSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ModelHub API",
    "DESCRIPTION": "Versioned scikit-learn models behind REST endpoints.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The description, the health endpoints and an operation per model the
    # caller may call, with bodies built from its features (api.openapi).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.openapi.postprocess_schema",
    ],
}
CSRF_FAILURE_VIEW = "api.errors.csrf_failure"

# Log lines on stderr: "text", or "json", one object per line with the request
# id, model and version of the request that wrote it (modelhub/logformat.py).
MODELHUB_LOG_FORMAT = env_choice("MODELHUB_LOG_FORMAT", "text", ("text", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "modelhub.logformat.JsonFormatter"},
    },
    "filters": {"request": {"()": "monitoring.logcontext.RequestContextFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if MODELHUB_LOG_FORMAT == "json" else "plain",
            "filters": ["request"] if MODELHUB_LOG_FORMAT == "json" else [],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("MODELHUB_LOG_LEVEL", "INFO")},
}

# --- ModelHub -----------------------------------------------------------------
# Largest model file accepted by the admin, loadmodel and the REST API.
MODELHUB_MAX_MODEL_BYTES = env_int(
    "MODELHUB_MAX_MODEL_BYTES", 200 * 1024 * 1024, minimum=1
)
# Largest drift reference (a CSV sample of training data) given with an upload.
MODELHUB_MAX_REFERENCE_BYTES = env_int(
    "MODELHUB_MAX_REFERENCE_BYTES", 50 * 1024 * 1024, minimum=1
)
# The preflight loads every new file in a child process with these limits.
MODELHUB_PREFLIGHT_TIMEOUT = env_int("MODELHUB_PREFLIGHT_TIMEOUT", 60, minimum=1)
MODELHUB_PREFLIGHT_MEMORY_MB = env_int("MODELHUB_PREFLIGHT_MEMORY_MB", 4096, minimum=64)
# Largest JSON size of one metadata field (metrics, an MLflow field, an input
# example), whichever channel stores it: metadata is echoed by the API.
MODELHUB_MAX_METADATA_BYTES = env_int(
    "MODELHUB_MAX_METADATA_BYTES", 64 * 1024, minimum=1024
)
# Types a skops file may contain beyond the default list (registry/skops_trust.py);
# never read from the uploaded file itself.
MODELHUB_SKOPS_TRUSTED_TYPES = env_list("MODELHUB_SKOPS_TRUSTED_TYPES", [])
# Extra import paths (custom estimator code) for the preflight and workers.
MODELHUB_PLUGIN_DIRS = env_list("MODELHUB_PLUGIN_DIRS", [])

if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("MODELHUB_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("MODELHUB_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("MODELHUB_HSTS_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("MODELHUB_HSTS_PRELOAD", True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    # Probes and scrapers often speak plain http inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    if env_bool("MODELHUB_BEHIND_PROXY", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# While this file exists, /readyz answers 503 "draining" and requests are
# still served: how a host leaves its balancer before a restart.
MODELHUB_DRAIN_FILE = env_str("MODELHUB_DRAIN_FILE").strip()

# Loaded models kept per worker process (LRU by version).
MODELHUB_MODEL_CACHE_SIZE = env_int("MODELHUB_MODEL_CACHE_SIZE", 16, minimum=1)
# Joblib files load memory-mapped from a verified uncompressed copy in
# MODELHUB_MODEL_COPY_DIR, so the workers of a host share their arrays
# (registry/hostcopy.py). The directory must be this user's alone.
MODELHUB_MODEL_MMAP = env_bool("MODELHUB_MODEL_MMAP", True)
MODELHUB_MODEL_COPY_DIR = Path(
    env_str(
        "MODELHUB_MODEL_COPY_DIR",
        str(Path(tempfile.gettempdir()) / f"modelhub-model-copies-{os.getuid()}"),
    )
)
# The copies above are also the host's read-through cache of an object
# store (MODELHUB_STORAGE=s3): files beyond this many MB, least recently
# loaded first, are removed (a loaded model keeps its pages until evicted).
MODELHUB_MODEL_COPY_MAX_MB = env_int("MODELHUB_MODEL_COPY_MAX_MB", 10240, minimum=1)
# The gunicorn master loads the active versions before it forks, so workers
# share the pages of models mapping cannot share (forests; registry/forkshare.py).
MODELHUB_SHARE_MODELS = env_bool("MODELHUB_SHARE_MODELS", True)
# A file that failed to load is retried after this many seconds.
MODELHUB_LOAD_RETRY_SECONDS = env_int("MODELHUB_LOAD_RETRY_SECONDS", 5)
# Request limits on the prediction endpoints.
MODELHUB_MAX_ROWS = env_int("MODELHUB_MAX_ROWS", 10_000, minimum=1)
# Columns, features or V2 inputs a prediction request may send (never fewer
# than the model's own features): every check over them is linear, but a
# 100,000-column CSV is still work for nothing.
MODELHUB_MAX_FEATURES = env_int("MODELHUB_MAX_FEATURES", 10_000, minimum=1)
# Nesting of any JSON a request or an admin form sends (registry.jsondepth).
MODELHUB_MAX_JSON_DEPTH = env_int("MODELHUB_MAX_JSON_DEPTH", 64, minimum=2)
# Longest a model may take on one request before a 504 (0 disables).
MODELHUB_PREDICT_TIMEOUT = env_float("MODELHUB_PREDICT_TIMEOUT", 30.0)
# A traffic policy's shadow version predicts every unpinned request after the
# client's response is sent; shadows may take at most this share of one core in the
# host's shadow process (over a second or so; of a worker's time, over ten
# seconds, where there is none): the rest are skipped and counted.
MODELHUB_SHADOW_MAX_SHARE = env_float("MODELHUB_SHADOW_MAX_SHARE", 0.2)
if MODELHUB_SHADOW_MAX_SHARE > 1:
    raise ImproperlyConfigured(
        f"MODELHUB_SHADOW_MAX_SHARE={MODELHUB_SHADOW_MAX_SHARE}: a share, 0 to 1"
    )
# A version whose model ends or hangs its worker this many times while
# predicting is marked invalid until an operator acts (registry.inflight).
MODELHUB_MAX_MODEL_CRASHES = env_int("MODELHUB_MAX_MODEL_CRASHES", 3, minimum=1)
# Where each gunicorn worker notes the prediction it is inside (set by
# gunicorn.conf.py; empty outside gunicorn: no watchdog).
MODELHUB_INFLIGHT_DIR = env_str("MODELHUB_INFLIGHT_DIR", "")
# Every model requires an API token, not only those flagged private.
MODELHUB_REQUIRE_TOKEN = env_bool("MODELHUB_REQUIRE_TOKEN", False)
# Requests per API key, user or client address, e.g. "100/second"; empty
# disables throttling (a key's own rate in the admin still applies). Counted
# once for the whole cluster in REDIS_URL's Redis when it is set; else once
# for every worker of a host, in MODELHUB_QUOTA_FILE (default: a file in the
# temporary directory named for this install's database).
MODELHUB_THROTTLE_RATE = env_str("MODELHUB_THROTTLE_RATE", "")
MODELHUB_QUOTA_FILE = env_str("MODELHUB_QUOTA_FILE", "")
# The Redis every host shares, for the counters that must hold for the whole
# cluster (api.access.cluster_quota); empty: counters are per host.
REDIS_URL = env_str("REDIS_URL", "").strip()
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(
        "REDIS_URL must start with redis://, rediss:// or unix:// "
        "(e.g. redis://redis.internal:6379/0)"
    )
# This install's namespace in that Redis; empty: derived from the secret key,
# which every host of one install shares.
MODELHUB_REDIS_PREFIX = env_str("MODELHUB_REDIS_PREFIX", "")
# How long a worker waits to connect to Redis or hear its answer before it lets
# the request through unthrottled (and leaves Redis alone for a second).
MODELHUB_REDIS_TIMEOUT_MS = env_int("MODELHUB_REDIS_TIMEOUT_MS", 100, minimum=1)
# A verified API key is trusted by a worker for this long before it is read
# again (a revocation elsewhere takes effect within it; at once in the
# process that made it).
MODELHUB_KEY_RECHECK_MS = env_int("MODELHUB_KEY_RECHECK_MS", 2000)
# When set, /metrics answers only "Authorization: Bearer <this>"; when not,
# private models' series are labelled by an opaque id instead of their slug.
MODELHUB_METRICS_TOKEN = env_str("MODELHUB_METRICS_TOKEN", "")

# gunicorn's workers and the requests each runs at once (gunicorn.conf.py
# reads the same variables): a batch holds at most workers x threads requests.
MODELHUB_WORKERS = env_int("MODELHUB_WORKERS", 2, minimum=1)
MODELHUB_THREADS = env_int("MODELHUB_THREADS", 1, minimum=1)
# The Unix socket of the host's batch process (api/dataplane/batch_host.py;
# set by gunicorn.conf.py; empty outside gunicorn: a process batches its own
# concurrent requests, if it runs several).
MODELHUB_BATCH_SOCKET = env_str("MODELHUB_BATCH_SOCKET", "")

# Request log: "after_response" queues each row once the response is sent
# (committed by the group commit below), "sync" commits it before the
# response is sent, whatever the window; "off" exists only to measure the
# cost in benchmarks.
MODELHUB_LOG_MODE = env_str("MODELHUB_LOG_MODE", "after_response")
if MODELHUB_LOG_MODE not in {"after_response", "sync", "off"}:
    raise ImproperlyConfigured(
        f"MODELHUB_LOG_MODE={MODELHUB_LOG_MODE!r}: use after_response, sync or off"
    )
# Group commit: a row is committed at most this many ms after its response
# was sent (0 = a commit per request, before the worker takes its next one),
# or as soon as MODELHUB_LOG_COMMIT_ROWS rows wait. A worker killed with
# SIGKILL loses the rows not yet committed; every graceful exit commits them.
MODELHUB_LOG_COMMIT_MS = env_int("MODELHUB_LOG_COMMIT_MS", 10)
MODELHUB_LOG_COMMIT_ROWS = env_int("MODELHUB_LOG_COMMIT_ROWS", 256, minimum=1)
# Rows a worker keeps while the database is down; beyond this they are counted.
MODELHUB_LOG_BUFFER_SIZE = env_int("MODELHUB_LOG_BUFFER_SIZE", 10_000, minimum=1)
MODELHUB_LOG_CLIENT = env_bool("MODELHUB_LOG_CLIENT", False)
# Payload capture is opt-in and capped.
MODELHUB_LOG_PAYLOADS = env_bool("MODELHUB_LOG_PAYLOADS", False)
MODELHUB_LOG_PAYLOAD_BYTES = env_int("MODELHUB_LOG_PAYLOAD_BYTES", 4096, minimum=1)
# What each request was answered, kept for feedback (MLModel.keep_predictions):
# the rows past this many bytes of JSON are counted as unjoinable.
MODELHUB_LOG_PREDICTIONS_BYTES = env_int(
    "MODELHUB_LOG_PREDICTIONS_BYTES", 16_384, minimum=16
)
# The Prometheus quality gauges (modelhub_quality_*) cover the rows predicted
# in this many last minutes.
MODELHUB_QUALITY_WINDOW_MINUTES = env_int(
    "MODELHUB_QUALITY_WINDOW_MINUTES", 1440, minimum=1
)
# Drift (monitoring.drift): a version uploaded without a reference sample
# takes its first this many predicted rows as its baseline; a PSI at or over
# WARN is flagged warn, at or over ALERT alert.
MODELHUB_DRIFT_BASELINE_ROWS = env_int("MODELHUB_DRIFT_BASELINE_ROWS", 1000, minimum=10)
MODELHUB_DRIFT_WARN = env_float("MODELHUB_DRIFT_WARN", 0.1)
MODELHUB_DRIFT_ALERT = env_float("MODELHUB_DRIFT_ALERT", 0.25)
if MODELHUB_DRIFT_ALERT < MODELHUB_DRIFT_WARN:
    raise ImproperlyConfigured(
        f"MODELHUB_DRIFT_ALERT={MODELHUB_DRIFT_ALERT} is below "
        f"MODELHUB_DRIFT_WARN={MODELHUB_DRIFT_WARN}."
    )
MODELHUB_LOG_RETENTION_DAYS = env_int("MODELHUB_LOG_RETENTION_DAYS", 30, minimum=1)
# How often a worker folds new log rows into the dashboard's rollup
# (monitoring.rollup); the dashboard, the stats API and prunelogs catch up
# themselves before reading.
MODELHUB_LOG_ROLLUP_MS = env_int("MODELHUB_LOG_ROLLUP_MS", 1000)
# How often a worker, after writing log rows, checks the rollout guards of
# the traffic policies (monitoring.guards): a candidate that broke one is
# rolled back within this long of its rows being written.
MODELHUB_GUARD_CHECK_MS = env_int("MODELHUB_GUARD_CHECK_MS", 1000)
# A route resolved while the registry's generation stands (registry.generation:
# a file beside a SQLite database, notices on PostgreSQL) is served without a
# query for at most this long; 0 = a query per request.
MODELHUB_ROUTE_RECHECK_MS = env_int("MODELHUB_ROUTE_RECHECK_MS", 2000)
# On PostgreSQL, each process keeps a connection that LISTENs for registry
# changes (registry.notices); off, routing asks the database on every request
# (a transaction-pooling PgBouncer, for one, cannot carry LISTEN).
MODELHUB_ROUTE_LISTEN = env_bool("MODELHUB_ROUTE_LISTEN", True)
