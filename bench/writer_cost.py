"""CPU and wall time per request-log row of the app's writer, in one process.

Run by hand (not a test):

    .venv/bin/python bench/writer_cost.py [--rows 1000] [--pg postgres://postgres@127.0.0.1:5432/test]

Writes rows through monitoring.requestlog.writer exactly as a worker does after each
response (autocommit, one row at a time: the log row plus its minute, hour and
day rollup rows), on a throw-away SQLite file and on a scratch PostgreSQL
database. Steadier than load tests on a shared machine; the figure includes
building the LogEntry. Prints a Markdown table and writes
bench/results/writer-<stamp>.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(url: str, rows: int) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="modelhub.settings",
        MODELHUB_LOG_LEVEL="ERROR",
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from monitoring.models import RequestLog
    from monitoring.requestlog import LogEntry, writer

    call_command("migrate", verbosity=0)

    def run(n: int) -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(n):
            writer.submit(
                LogEntry(
                    created_at=timezone.now(),
                    slug="iris",
                    version=1,
                    status=200,
                    error_code="",
                    rows=1,
                    latency_ms=1.0 + (i % 50) / 10,
                    model_ms=0.2,
                    request_id=f"r{i}",
                )
            )
        return (
            (time.process_time() - cpu) / n * 1000,
            (time.perf_counter() - wall) / n * 1000,
        )

    run(200)
    samples = [run(rows) for _ in range(5)]
    assert RequestLog.objects.count() == 200 + 5 * rows
    cpu = sorted(s[0] for s in samples)
    wall = sorted(s[1] for s in samples)
    print(f"{cpu[0]:.4f} {cpu[2]:.4f} {wall[0]:.4f} {wall[2]:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/test")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    results = {}
    with tempfile.TemporaryDirectory() as work:
        targets = {"sqlite": f"sqlite:///{work}/db.sqlite3"}
        scratch = "modelhub_bench_writer"
        admin = args.pg.replace("postgres://", "postgresql://", 1)
        try:
            import psycopg

            with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {scratch}")
                conn.execute(f"CREATE DATABASE {scratch}")
            targets["postgres"] = args.pg.rsplit("/", 1)[0] + f"/{scratch}"
        except Exception as exc:
            print(f"PostgreSQL skipped: {exc}")
        for name, url in targets.items():
            out = subprocess.run(
                [sys.executable, __file__, "--child", url, str(args.rows)],
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            ).stdout.split()
            results[name] = [float(v) for v in out[-4:]]
        if "postgres" in targets:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {scratch}")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    lines = [
        f"# Request-log writer cost per row, in-process ({stamp} UTC)",
        "",
        f"{args.rows} rows × 5 samples after 200 warm-up rows; best and median.",
        "Target: < 0.15 ms of server CPU per request.",
        "",
        "| backend | CPU ms/row best | CPU median | wall ms/row best | wall median |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {v[0]:.3f} | {v[1]:.3f} | {v[2]:.3f} | {v[3]:.3f} |"
        for name, v in results.items()
    ]
    text = "\n".join(lines) + "\n"
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"writer-{stamp}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
