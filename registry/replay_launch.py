"""Starting a replay (``manage.py replay``) from the admin, in a process of
its own: the admin's worker answers at once, and the replay loads its own
copies of the models, away from the workers serving traffic."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from django.conf import settings

# The server's per-process plumbing, which a replay must not join: its
# metrics, in-flight notes and batch process belong to the workers.
_SERVER_ONLY = (
    "PROMETHEUS_MULTIPROC_DIR",
    "MODELHUB_INFLIGHT_DIR",
    "MODELHUB_BATCH_SOCKET",
)


def replay_command(
    slug: str, number: int, *, since: str = "24h", limit: int = 10_000, by: str = ""
) -> list[str]:
    return [
        sys.executable,
        str(settings.BASE_DIR / "manage.py"),
        "replay",
        slug,
        "--version",
        str(number),
        "--since",
        since,
        "--limit",
        str(limit),
        "--requested-by",
        by,
    ]


def start_replay(
    slug: str, number: int, *, since: str = "24h", limit: int = 10_000, by: str = ""
) -> subprocess.Popen:
    """The replay's process, started; a thread reaps it when it ends."""
    env = {k: v for k, v in os.environ.items() if k not in _SERVER_ONLY}
    process = subprocess.Popen(  # noqa: S603 - our own command, no shell
        replay_command(slug, number, since=since, limit=limit, by=by),
        cwd=settings.BASE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    threading.Thread(target=process.wait, daemon=True).start()
    return process
