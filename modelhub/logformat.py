"""JSON log lines, Django's and gunicorn's, one object per line: chosen with
MODELHUB_LOG_FORMAT=json (settings.LOGGING, gunicorn.conf.py).

JSON lines carry ``time``, ``level``, ``logger`` and ``message``, and, when
written during an API request, ``request_id`` and for a prediction ``model``
and ``version`` (monitoring.logcontext adds them); an exception comes as
``exc_info``, its traceback in one string.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from gunicorn.glogging import Logger
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter


class JsonFormatter(_JsonFormatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(
            ["asctime", "levelname", "name", "message"],
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            # django.request passes the HttpRequest itself: its repr says
            # nothing the other fields do not.
            reserved_attrs=[*RESERVED_ATTRS, "request"],
        )

    def formatTime(  # noqa: N802 - logging.Formatter's name
        self, record: logging.LogRecord, datefmt: str | None = None
    ) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds"
        )


class GunicornJsonLogger(Logger):
    """gunicorn's own lines (its error log, and the access log where there is
    one) as JSON, wherever gunicorn sends them; which lines are written is
    unchanged."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())
