"""gunicorn settings for ModelHub, each overridable from the environment.

Memory: every worker keeps its own cache of loaded models, so resident memory
is roughly workers x cached models x model size. Bound it with
MODELHUB_WORKERS and the model cache size settings.
"""

import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not an integer") from None


bind = os.environ.get("MODELHUB_BIND", "127.0.0.1:8000")
workers = _int("MODELHUB_WORKERS", 2)
threads = _int("MODELHUB_THREADS", 1)
# Worker recycling caps slow leaks in user model code; jitter avoids all
# workers restarting at once.
max_requests = _int("MODELHUB_MAX_REQUESTS", 0)
max_requests_jitter = _int("MODELHUB_MAX_REQUESTS_JITTER", 0)
timeout = _int("MODELHUB_WORKER_TIMEOUT", 60)
graceful_timeout = _int("MODELHUB_GRACEFUL_TIMEOUT", 30)
keepalive = _int("MODELHUB_KEEPALIVE", 5)
accesslog = os.environ.get("MODELHUB_ACCESS_LOG") or None
errorlog = "-"
wsgi_app = "modelhub.wsgi:application"


def post_worker_init(worker) -> None:  # noqa: ANN001 - gunicorn's hook signature
    """Load every active model before the worker takes its first request."""
    from registry.warmup import preload

    preload()
