"""Loading the active versions in gunicorn's master, before it forks workers.

A forest's trees live in buffers scikit-learn allocates itself (its Tree
copies the nodes out of the pickle), which no memory map can share. What
the master holds when it forks, every worker shares copy-on-write, and
predicting only reads those pages. The master must outlive any model, so
each version is first loaded in a forked probe child, bounded by
MODELHUB_PREFLIGHT_TIMEOUT and first in line for the OOM killer; the master
loads only what the probe loaded.
"""

from __future__ import annotations

import gc
import logging
import os
import select
import signal
from pathlib import Path

from django.conf import settings
from django.db import connections

from . import loading, notices, routing, warmup
from .cache import model_cache
from .exceptions import RegistryError
from .loading import VersionRef

logger = logging.getLogger(__name__)

_OK = b"ok"


def preload_before_fork() -> list[str]:
    """Loads each active version into the master's cache (again after a
    HUP, dropping what is no longer active); returns the slugs loaded.

    Workers forked afterwards find those models in their cache.
    """
    if not settings.MODELHUB_SHARE_MODELS:
        return []
    gc.unfreeze()
    model_cache.clear()
    gc.collect()
    slugs, _ = warmup.active_slugs()
    shared = []
    for slug in slugs:
        try:
            ref = routing.resolve(slug)
        except RegistryError as exc:
            logger.error("not preloading %s in the master: %s", slug, exc.message)
            continue
        if not loads_in_child(ref, timeout=settings.MODELHUB_PREFLIGHT_TIMEOUT):
            logger.error(
                "%s v%s did not load in a probe; each worker loads it alone",
                slug,
                ref.number,
            )
            continue
        try:
            model_cache.adopt(loading.load(ref))
        except RegistryError:
            continue
        shared.append(slug)
    logger.info("master holds %d model(s) for its workers to share", len(shared))
    connections.close_all()
    # Resolving started this process's listener: each worker runs its own.
    notices.stop()
    # Objects the master made stay out of the workers' garbage collections,
    # which would otherwise write to (and so copy) every page holding one.
    gc.freeze()
    return shared


def loads_in_child(ref: VersionRef, *, timeout: float) -> bool:
    """Whether ``ref`` loads in a forked child within ``timeout`` seconds.

    The verdict comes on a pipe, not the exit status: gunicorn's master reaps
    every child it is told of, its workers' or not.
    """
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:  # the probe: it never returns into the master's code
        os.close(readable)
        try:
            _prefer_for_oom_kill()
            loading.load(ref)
            os.write(writable, _OK)
        finally:
            os._exit(0)
    os.close(writable)
    try:
        ready, _, _ = select.select([readable], [], [], timeout)
        verdict = os.read(readable, len(_OK)) if ready else b""
    finally:
        os.close(readable)
    if not ready:
        logger.error("%s v%s took over %ss to load", ref.slug, ref.number, timeout)
        os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # reaped by gunicorn already
        pass
    return verdict == _OK


def _prefer_for_oom_kill() -> None:
    try:
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass
