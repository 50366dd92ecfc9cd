"""CPU per request of one checkout's whole Django stack, in one process.

A child of bench/rollouts.py's ``inprocess`` part, run with the checkout as
its working directory and the site's environment:

    python bench/wsgi_cpu.py ROOT BLOCKS REQUESTS_PER_BLOCK

POSTs the iris row to /api/predict/iris/ through Django's WSGI handler (the
middleware, the view, the log writer's thread; no socket, no gunicorn) and
prints one JSON list: CPU µs per request (``time.process_time``, every
thread of the process) for each block. Without the server's sockets and
scheduling the figures vary far less than under wrk, so a difference of a
few µs between two checkouts can be resolved.
"""

from __future__ import annotations

import json
import os
import sys
import time

WARM_SECONDS = 3.0


def main() -> None:
    root, blocks, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sys.path.insert(0, root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelhub.settings")
    import django

    django.setup()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from harness import wsgi_request

    call = wsgi_request()

    # Warm for a few seconds: the model loaded, caches filled, and the
    # once-a-second work (guards, rollup) past its first, costlier, round.
    warm_until = time.monotonic() + WARM_SECONDS
    while time.monotonic() < warm_until:
        call()
    figures = []
    for _ in range(blocks):
        started = time.process_time()
        for _ in range(size):
            call()
        figures.append((time.process_time() - started) / size * 1e6)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
