"""registry.inflight: the note a worker keeps of the prediction it is inside."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from registry import inflight

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_the_note_is_read_back_while_inside_and_empty_after(tmp_path):
    with inflight.inside(
        str(tmp_path), request_id="r1", version_id=7, slug="iris", number=2, limit=0
    ):
        raw = (tmp_path / f"{os.getpid()}.json").read_bytes()
        assert inflight._parsed(raw)["request_id"] == "r1"
    assert inflight.take(str(tmp_path), os.getpid()) is None


def test_threads_of_one_worker_making_the_note_at_once_never_crash_it(tmp_path):
    """gthread workers: every thread's first prediction maps the same file;
    shortening it under another thread's mapping was a SIGBUS."""
    script = textwrap.dedent(
        f"""
        import threading
        from registry import inflight

        start = threading.Barrier(16)

        def predict(n):
            start.wait()
            for i in range(200):
                with inflight.inside({str(tmp_path)!r}, request_id=f"r{{n}}-{{i}}",
                                     version_id=1, slug="iris", number=1, limit=5):
                    pass

        threads = [threading.Thread(target=predict, args=(n,)) for n in range(16)]
        for t in threads: t.start()
        for t in threads: t.join()
        """
    )
    for _ in range(5):
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=PROJECT_ROOT, timeout=60
        )
        assert done.returncode == 0, done.returncode
