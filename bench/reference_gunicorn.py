"""gunicorn settings for bench/reference_wsgi.py: ModelHub's own
(modelhub/gunicorn.conf.py, read with the same environment: bind, workers,
threads, timeouts, keep-alive, preload) without its hooks, which set up
Django, preload registered models and flush the request log.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from gunicorn.config import KNOWN_SETTINGS

_MODELHUB = runpy.run_path(
    str(Path(__file__).resolve().parent.parent / "modelhub" / "gunicorn.conf.py")
)
_NAMES = {setting.name for setting in KNOWN_SETTINGS}
globals().update(
    {
        name: value
        for name, value in _MODELHUB.items()
        if name in _NAMES and not callable(value)
    }
)
wsgi_app = "bench.reference_wsgi:application"
