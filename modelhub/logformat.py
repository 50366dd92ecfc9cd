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
    def __init__(self) -> None:
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


# gunicorn's access-log atoms worth a field of their own (response headers are
# keyed in lower case).
_ACCESS_FIELDS = {
    "request_id": "{x-request-id}o",
    "method": "m",
    "path": "U",
    "status": "s",
    "duration_ms": "M",
}


class AccessJsonFormatter(JsonFormatter):
    """An access-log line, with the request id ModelHub answered with, the
    method, path, status and duration as fields of their own."""

    def add_fields(
        self,
        log_data: dict[str, Any],
        record: logging.LogRecord,
        message_dict: dict[str, Any],
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        atoms = record.args
        if isinstance(atoms, dict):
            for field, atom in _ACCESS_FIELDS.items():
                value = dict.get(atoms, atom)
                if value in (None, "-"):
                    continue
                log_data[field] = int(value) if field == "status" else value


class GunicornJsonLogger(Logger):
    """gunicorn's own lines (its error log, and the access log where there is
    one) as JSON, wherever gunicorn sends them; which lines are written is
    unchanged."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # Python's warnings go to stderr as bare text; as records of the
        # "py.warnings" logger they are JSON lines like the rest (in every
        # worker too: the setting is inherited through the fork).
        logging.captureWarnings(True)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
        for handler in self.access_log.handlers:
            handler.setFormatter(AccessJsonFormatter())
