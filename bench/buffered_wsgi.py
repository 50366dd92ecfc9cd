"""Bench-only WSGI entry point: ModelHub with the buffered bulk request-log
writer of bench/buffered_writer.py instead of the lean per-request one.

    gunicorn --config modelhub/gunicorn.conf.py bench.buffered_wsgi:application

with MODELHUB_LOG_MODE=after_response (rows are handed over after the
response is sent). Used by bench/logging_cost.py's "buffered" mode.
"""

from __future__ import annotations

from modelhub.wsgi import application  # sets Django up before api is imported


def _install() -> None:
    from bench.buffered_writer import install

    install()


_install()
__all__ = ["application"]
