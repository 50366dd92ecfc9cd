"""gunicorn settings for ModelHub, each overridable from the environment.

Memory: every worker keeps its own cache of loaded models, so resident memory
is roughly workers x cached models x model size. Bound it with
MODELHUB_WORKERS and the model cache size settings.
"""

import os

bind = os.environ.get("MODELHUB_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("MODELHUB_WORKERS", "2"))
threads = int(os.environ.get("MODELHUB_THREADS", "1"))
# Worker recycling caps slow leaks in user model code; jitter avoids all
# workers restarting at once.
max_requests = int(os.environ.get("MODELHUB_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("MODELHUB_MAX_REQUESTS_JITTER", "0"))
timeout = int(os.environ.get("MODELHUB_WORKER_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("MODELHUB_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("MODELHUB_KEEPALIVE", "5"))
accesslog = os.environ.get("MODELHUB_ACCESS_LOG") or None
errorlog = "-"
wsgi_app = "modelhub.wsgi:application"
