"""What the request log costs: server CPU per request and req/s, log on vs off.

Run by hand (not a test; about 5 minutes per backend with the defaults):

    .venv/bin/python bench/logging_cost.py [--duration 10] [--rounds 3]
        [--backends sqlite,postgres] [--modes off,sync,after_response,buffered]
        [--in-process-rounds 20] [--no-in-process]

Same harness as bench/predict_load.py (bench/harness.py): gunicorn with 2 sync
workers on 127.0.0.1, wrk with 8 connections POSTing one iris row to
/api/predict/iris/, server CPU read from /proc. Each mode runs on a fresh
server and a fresh database; rounds are interleaved (off, sync, ... then
again, in a rotated order) so drift and neighbours on a shared machine spread
over all modes. Modes:

- off             MODELHUB_LOG_MODE=off: no row written (the baseline)
- sync            the app's writer (one INSERT; the rollup is folded from the
                  rows once a second, monitoring.rollup) before the response is sent
- after_response  the same write once the response has been sent (default)
- buffered        bench-only prototype (bench/buffered_wsgi.py): rows kept in
                  memory and written 64 at a time by the app's own
                  multi-row write

After every run (and a graceful stop, which flushes buffered rows) the script
checks that the log table holds one row per request wrk completed, warm-up
included (up to one per connection more: requests in flight when wrk stopped
are served and logged but not counted by wrk), and that the rollup counts
the same number at each of its resolutions (minute, hour, day). With
PostgreSQL the server's own CPU (postgres processes) is reported separately:
it is not in the gunicorn figure.

Then, unless --no-in-process, the same comparison in one process, where
noise is far lower: POST /api/predict/iris/ through Django's WSGI handler
(every middleware, the view, the model; the response closed as gunicorn does)
in blocks of 200 requests per mode, interleaved over --in-process-rounds
rounds; plus the cost per row of each write design without HTTP (the ORM's
create(), a raw INSERT, the app's writer one row at a time, the same writer
with batches of 64) and a cProfile of the app's writer.

The report goes to bench/results/logging-<stamp>.md and .json. PostgreSQL
runs use scratch databases (modelhub_bench_*) on 127.0.0.1 that are dropped
at the end; set MODELHUB_BENCH_PG to another admin URL if needed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import operator
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    RESULTS,
    ROOT,
    Server,
    django_child,
    machine,
    postgres_version,
    prepared_template,
    processes_cpu,
    require_wrk,
    scratch_postgres,
    stamp,
    wait_quiet,
    wsgi_request,
)

PATH = "/api/predict/iris/"
MODES = {
    "off": {"env": {"MODELHUB_LOG_MODE": "off"}},
    "sync": {"env": {"MODELHUB_LOG_MODE": "sync"}},
    "after_response": {"env": {"MODELHUB_LOG_MODE": "after_response"}},
    "buffered": {
        "env": {"MODELHUB_LOG_MODE": "after_response"},
        "app": "bench.buffered_wsgi:application",
    },
}
TARGET_MS = 0.15
LOG_TABLE = "api_requestlog"
STAT_TABLE = "api_requeststat"


# --- counting rows ------------------------------------------------------------


def count_rows(database_url: str) -> tuple[int, dict[str, int]]:
    """(rows in the request log, {rollup resolution: requests it counts})."""
    query_log = f"SELECT COUNT(*) FROM {LOG_TABLE}"  # noqa: S608
    query_stat = (
        f"SELECT resolution, SUM(count) FROM {STAT_TABLE} "  # noqa: S608
        "GROUP BY resolution"
    )
    if database_url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(database_url[len("sqlite:///") :], timeout=30)
        try:
            return (
                conn.execute(query_log).fetchone()[0],
                dict(conn.execute(query_stat).fetchall()),
            )
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(database_url, connect_timeout=5) as conn:
        return (
            conn.execute(query_log).fetchone()[0],
            {r: int(n) for r, n in conn.execute(query_stat).fetchall()},
        )


# --- one measured run -----------------------------------------------------------


def run_mode(
    mode: str,
    backend: str,
    args: argparse.Namespace,
    database_url: str | None,
    prepared: Path,
) -> dict:
    spec = MODES[mode]
    with Server(
        workers=args.workers,
        env=spec["env"],
        app=spec.get("app"),
        database_url=database_url,
        prepared=prepared,
    ) as server:
        warm = server.warm(PATH)
        url = server.database_url
        busy_before = wait_quiet(args.quiet_wait)
        pg_before = processes_cpu("postgres") if backend == "postgres" else 0.0
        result = server.measure(PATH, args.connections, args.duration)
        if backend == "postgres":
            pg_cpu = processes_cpu("postgres") - pg_before
            result["postgres_cpu_ms_per_request"] = round(
                pg_cpu * 1000 / max(result["requests"], 1), 3
            )
            # PostgreSQL is part of the system under test, not background.
            cores = os.cpu_count() or 1
            result["background_cpu_share"] = round(
                max(
                    result["background_cpu_share"] - pg_cpu / (args.duration * cores),
                    0.0,
                ),
                3,
            )
        time.sleep(0.5)
        rows_live, _ = count_rows(url)
        server.stop()  # graceful: workers flush whatever they buffered
        rows, rollup = count_rows(url)
    # Every request wrk completed (warm-up included) must have its row; up to
    # one per connection more were in flight when wrk stopped.
    completed = warm["requests"] + result["requests"]
    result.update(
        mode=mode,
        backend=backend,
        machine_busy_before=busy_before,
        log_rows=rows,
        requests_incl_warmup=completed,
        rollup_requests=rollup,
        rows_minus_requests=rows - completed,
        rows_written_only_at_exit=rows - rows_live,
    )
    if mode == "off":
        result["rows_ok"] = rows == 0
    else:
        result["rows_ok"] = (
            0 <= rows - completed <= args.connections + 2
            and set(rollup) == {"m", "h", "d"}
            and all(n == rows for n in rollup.values())
        )
    return result


def run_backend(backend: str, args: argparse.Namespace) -> list[dict]:
    """All rounds for one backend; every run gets a copy of one prepared site
    (migrated, demo models loaded) so a fresh server starts in seconds."""
    modes = args.modes.split(",")
    runs = []
    with tempfile.TemporaryDirectory(prefix="modelhub-bench-tpl-") as tpl:
        with contextlib.ExitStack() as stack:
            template_url = None
            if backend == "postgres":
                template_url = stack.enter_context(
                    scratch_postgres("modelhub_bench_tpl")
                )
            prepared = prepared_template(Path(tpl), template_url)
            for round_number in range(args.rounds):
                shift = round_number % len(modes)
                for mode in modes[shift:] + modes[:shift]:
                    if backend == "postgres":
                        with scratch_postgres(
                            "modelhub_bench_log", template="modelhub_bench_tpl"
                        ) as url:
                            result = run_mode(mode, backend, args, url, prepared)
                    else:
                        result = run_mode(mode, backend, args, None, prepared)
                    result["round"] = round_number + 1
                    runs.append(result)
                    print(
                        f"  {backend:8} round {round_number + 1} {mode:15} "
                        f"{result['rps']:7.0f} req/s  "
                        f"cpu {result['server_cpu_ms_per_request']:.3f} ms/req  "
                        f"rows {result['log_rows']} / "
                        f"{result['requests_incl_warmup']} "
                        f"{'ok' if result['rows_ok'] else 'MISMATCH'}  "
                        f"background {result['background_cpu_share']:.0%}",
                        flush=True,
                    )
    return runs


# --- summaries ------------------------------------------------------------------


def spread(values: list[float]) -> dict:
    return {
        "mean": round(statistics.fmean(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "stdev": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0,
    }


def summarize(runs: list[dict]) -> dict:
    """Per backend and mode: mean/min/max of each figure and the CPU delta vs
    off, both from the means and paired round by round."""
    out: dict[str, dict] = {}
    for backend in dict.fromkeys(r["backend"] for r in runs):
        mine = [r for r in runs if r["backend"] == backend]
        off = {r["round"]: r for r in mine if r["mode"] == "off"}
        per_mode = {}
        for mode in dict.fromkeys(r["mode"] for r in mine):
            rows = [r for r in mine if r["mode"] == mode]
            figures = {
                key: spread([r[key] for r in rows])
                for key in ("rps", "p50_ms", "p99_ms", "server_cpu_ms_per_request")
            }
            if backend == "postgres":
                figures["postgres_cpu_ms_per_request"] = spread(
                    [r["postgres_cpu_ms_per_request"] for r in rows]
                )
            paired = [
                r["server_cpu_ms_per_request"]
                - off[r["round"]]["server_cpu_ms_per_request"]
                for r in rows
                if r["round"] in off
            ]
            figures["cpu_delta_vs_off_paired"] = spread(paired) if paired else None
            figures["rows_ok"] = all(r["rows_ok"] for r in rows)
            figures["background_cpu_share"] = spread(
                [r["background_cpu_share"] for r in rows]
            )
            per_mode[mode] = figures
        out[backend] = per_mode
    return out


# --- in-process measurements -------------------------------------------------
#
# Under wrk, server CPU per request moves by ±20% between identical runs on a
# shared 2-core VM (sync workers, wrk and the database share the cores), which
# swamps a 0.15 ms effect. In one process, with the modes interleaved in short
# blocks, the same comparison resolves a few hundredths of a millisecond.

MICRO_ROWS = 2000
MICRO_BATCH = 64
STACK_BLOCK = 200  # requests per block of the full-stack comparison


def _micro_entries(n: int, rng):  # noqa: ANN001, ANN202
    import uuid

    from django.utils import timezone

    from monitoring.requestlog import LogEntry

    return [
        LogEntry(
            created_at=timezone.now(),
            slug="iris",
            version=1,
            status=200,
            error_code="",
            rows=1,
            latency_ms=rng.lognormvariate(0.7, 0.4),
            model_ms=0.3,
            request_id=uuid.uuid4().hex,
        )
        for _ in range(n)
    ]


def write_designs(postgres: bool) -> dict:
    """CPU per row of each way to write a log row, without HTTP."""
    import random

    from django.db import connection

    from monitoring.models import RequestLog
    from monitoring.requestlog import RequestLogWriter

    rng = random.Random(7)
    quote = connection.ops.quote_name
    columns = [f.column for f in RequestLog._meta.concrete_fields if not f.primary_key]
    insert_log = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
        quote(RequestLog._meta.db_table),
        ", ".join(quote(c) for c in columns),
        ", ".join(["%s"] * len(columns)),
    )
    adapt = connection.ops.adapt_datetimefield_value
    getter = operator.attrgetter(*columns)
    when = columns.index("created_at")

    def orm_create(batch: list) -> None:
        for e in batch:
            RequestLog.objects.create(
                created_at=e.created_at,
                slug=e.slug,
                version=e.version,
                status=e.status,
                error_code=e.error_code,
                rows=e.rows,
                latency_ms=e.latency_ms,
                model_ms=e.model_ms,
                request_id=e.request_id,
                client=e.client,
                payload=e.payload,
            )

    def raw_insert(batch: list) -> None:
        for e in batch:
            with connection.cursor() as cursor:
                params = list(getter(e))
                params[when] = adapt(params[when])
                cursor.execute(insert_log, params)

    def lean_sync(batch: list) -> None:
        writer = RequestLogWriter()
        for e in batch:
            writer.submit(e)  # what the middleware calls (one INSERT; folds each s)

    def bulk(batch: list) -> None:
        writer = RequestLogWriter()
        for start in range(0, len(batch), MICRO_BATCH):
            writer._write(batch[start : start + MICRO_BATCH], 0)

    designs = {
        "ORM create() per row (no rollup)": orm_create,
        "raw INSERT per row (no rollup)": raw_insert,
        "the app's writer, one row per write (+ rollup each second)": lean_sync,
        f"bulk: the app's writer, {MICRO_BATCH} rows per write (+ rollup)": bulk,
    }
    results = {}
    for name, design in designs.items():
        design(_micro_entries(200, rng))  # warm statement caches
        samples = []
        for _ in range(3):
            batch = _micro_entries(MICRO_ROWS, rng)
            pg_before = processes_cpu("postgres") if postgres else 0.0
            cpu, wall = time.process_time(), time.perf_counter()
            design(batch)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            pg = processes_cpu("postgres") - pg_before if postgres else 0.0
            samples.append((cpu, wall, pg))
        cpu, wall, pg = sorted(samples)[1]  # median by CPU
        results[name] = {
            "cpu_ms_per_row": round(cpu * 1000 / MICRO_ROWS, 4),
            "wall_ms_per_row": round(wall * 1000 / MICRO_ROWS, 4),
            **(
                {"postgres_cpu_ms_per_row": round(pg * 1000 / MICRO_ROWS, 4)}
                if postgres
                else {}
            ),
        }
    return results


def writer_profile() -> list[str]:
    """cProfile of the app's writer, 2000 rows: where a row's time goes."""
    import cProfile
    import io
    import pstats
    import random

    from monitoring.requestlog import RequestLogWriter

    batch = _micro_entries(MICRO_ROWS, random.Random(8))
    writer = RequestLogWriter()
    profiler = cProfile.Profile()
    profiler.enable()
    for e in batch:
        writer.submit(e)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(14)
    return [line for line in out.getvalue().splitlines() if line.strip()]


def full_stack(postgres: bool, rounds: int) -> dict:
    """CPU per request of POST /api/predict/iris/ through Django's WSGI handler
    (every middleware, the view, the model, the response closed as a server
    would), each log mode in blocks of STACK_BLOCK requests, interleaved."""
    from django.conf import settings

    import monitoring.middleware
    from bench.buffered_writer import BufferedWriter
    from monitoring.requestlog import RequestLogWriter

    request = wsgi_request()

    modes = {  # mode: (MODELHUB_LOG_MODE, writer class)
        "off": ("off", RequestLogWriter),
        "sync": ("sync", RequestLogWriter),
        "after_response": ("after_response", RequestLogWriter),
        "buffered": ("after_response", BufferedWriter),
    }

    def timed(writer_class: type) -> RequestLogWriter:
        """The writer, also adding up the CPU spent inside it."""

        class Timed(writer_class):
            spent = 0.0
            depth = 0  # submit() calls flush(): count the outermost call only

            def _timed(self, call, *args):  # noqa: ANN001, ANN202
                self.depth += 1
                started = time.process_time()
                try:
                    return call(*args)
                finally:
                    self.depth -= 1
                    if not self.depth:
                        self.spent += time.process_time() - started

            def submit(self, entry) -> None:  # noqa: ANN001
                self._timed(super().submit, entry)

            def flush(self) -> int:
                return self._timed(super().flush)

        return Timed()

    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    inside: dict[str, list[float]] = {mode: [] for mode in modes}
    pg_samples: dict[str, list[float]] = {mode: [] for mode in modes}
    names = list(modes)
    for round_number in range(rounds + 1):  # round 0 warms up
        shift = round_number % len(names)
        for mode in names[shift:] + names[:shift]:
            settings.MODELHUB_LOG_MODE, writer_class = modes[mode]
            monitoring.middleware.writer = writer = timed(writer_class)
            pg_before = processes_cpu("postgres") if postgres else 0.0
            cpu = time.process_time()
            for _ in range(STACK_BLOCK):
                request()
            writer.flush()  # a buffered block pays for all its rows
            cpu = time.process_time() - cpu
            if round_number:
                samples[mode].append(cpu * 1000 / STACK_BLOCK)
                inside[mode].append(writer.spent * 1000 / STACK_BLOCK)
                if postgres:
                    pg = processes_cpu("postgres") - pg_before
                    pg_samples[mode].append(pg * 1000 / STACK_BLOCK)
    out = {}
    for mode in names:
        deltas = [a - b for a, b in zip(samples[mode], samples["off"], strict=True)]
        out[mode] = {
            "cpu_ms_per_request": spread(samples[mode]),
            "median_ms": round(statistics.median(samples[mode]), 4),
            "delta_vs_off_paired": spread(deltas) if mode != "off" else None,
            "delta_vs_off_median": round(statistics.median(deltas), 4),
            # CPU spent inside the writer (submit + flush), per request.
            "writer_cpu_ms_per_request": spread(inside[mode]),
            **(
                {"postgres_cpu_ms_per_request": spread(pg_samples[mode])}
                if postgres
                else {}
            ),
        }
    return out


def in_process_child(database_url: str, rounds: int) -> None:
    """Runs in a child process with Django set up against database_url."""
    work = django_child(database_url, "modelhub-inproc-")
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    call_command("loaddemos", stdout=open(os.devnull, "w"))  # noqa: SIM115
    postgres = connection.vendor == "postgresql"
    result = {
        "write_designs": write_designs(postgres),
        "writer_profile": writer_profile(),
        "full_stack": full_stack(postgres, rounds),
    }
    connection.close()
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


def run_in_process(backend: str, rounds: int) -> dict:
    def child(url: str) -> dict:
        try:
            out = subprocess.run(
                [sys.executable, __file__, "--in-process-child", url, str(rounds)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=900,
                check=True,
            ).stdout
        except subprocess.CalledProcessError as exc:
            print(exc.stderr, file=sys.stderr)
            return {"error": exc.stderr[-2000:]}
        return json.loads(out.strip().splitlines()[-1])

    if backend == "postgres":
        with scratch_postgres("modelhub_bench_inproc") as url:
            return child(url)
    with tempfile.TemporaryDirectory(prefix="modelhub-inproc-db-") as work:
        return child(f"sqlite:///{work}/db.sqlite3")


# --- report ---------------------------------------------------------------------


def fmt(s: dict, digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def report(runs: list[dict], summary: dict, micro: dict, args, info: dict) -> str:
    when = stamp()
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "scenario": "logging-cost",
        "workers": args.workers,
        "connections": args.connections,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "target_cpu_delta_ms": TARGET_MS,
        "machine": info,
        "summary": summary,
        "micro": micro,
        "runs": runs,
    }
    (RESULTS / f"logging-{when}.json").write_text(json.dumps(payload, indent=2))
    lines = [
        f"# Request-log cost: single-row iris predictions ({when} UTC)",
        "",
        f"gunicorn {args.workers} sync workers, wrk {args.connections} connections "
        f"on the same machine, {args.duration} s per run, {args.rounds} rounds "
        "interleaved, a fresh server and database per run. Figures: mean "
        "(min–max) over the rounds. CPU delta = this mode minus `off` of the "
        f"same round (paired). Target: logging adds < {TARGET_MS} ms of server "
        "CPU per request.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
    ]
    for backend, modes in summary.items():
        lines += [
            f"## {backend}",
            "",
            "| mode | req/s | p50 ms | p99 ms | server CPU ms/req | "
            "Δ CPU vs off ms/req | rows = requests | background CPU |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for mode, f in modes.items():
            delta = f["cpu_delta_vs_off_paired"]
            verdict = ""
            if mode != "off" and delta:
                verdict = " ✅" if delta["mean"] < TARGET_MS else " ❌"
            lines.append(
                f"| {mode} | {fmt(f['rps'], 0)} | {fmt(f['p50_ms'], 2)} | "
                f"{fmt(f['p99_ms'], 1)} | {fmt(f['server_cpu_ms_per_request'])} | "
                + (f"{fmt(delta)}{verdict}" if mode != "off" and delta else "—")
                + f" | {'yes' if f['rows_ok'] else 'NO'} | "
                f"{f['background_cpu_share']['max']:.0%} max |"
            )
        if backend == "postgres":
            lines += [
                "",
                "PostgreSQL server CPU (postgres processes, not in the column "
                "above) ms/req: "
                + ", ".join(
                    f"{mode} {fmt(f['postgres_cpu_ms_per_request'])}"
                    for mode, f in modes.items()
                ),
            ]
        lines.append("")
    for backend, m in list(micro.items()):
        if "error" in m:
            lines += [f"In-process measurements failed on {backend}:", ""]
            lines += ["```", m["error"], "```", ""]
            del micro[backend]
    if micro:
        lines += [
            "## In process, full stack: CPU per request by log mode",
            "",
            f"POST /api/predict/iris/ through Django's WSGI handler in one "
            f"process (all middleware, view, model; the response closed as "
            f"gunicorn does), blocks of {STACK_BLOCK} requests per mode, "
            f"{args.in_process_rounds} interleaved rounds after a warm-up round. "
            "No sockets, no scheduler: this resolves what the wrk runs cannot. "
            "Δ = paired with the `off` block of the same round. CPU inside the "
            "writer = time in its submit() and flush() only: the logging's own "
            "cost, immune to the rest of the request's noise.",
            "",
            "| backend | mode | CPU ms/req mean (min–max) | Δ vs off mean (min–max) "
            "| Δ median | CPU inside the writer ms/req | postgres CPU ms/req |",
            "|---|---|---|---|---|---|---|",
        ]
        for backend, m in micro.items():
            for mode, f in m["full_stack"].items():
                delta = f["delta_vs_off_paired"]
                verdict = ""
                if delta:
                    verdict = " ✅" if delta["mean"] < TARGET_MS else " ❌"
                pg = f.get("postgres_cpu_ms_per_request")
                inner = f["writer_cpu_ms_per_request"]
                inner_verdict = ""
                if delta:
                    inner_verdict = " ✅" if inner["mean"] < TARGET_MS else " ❌"
                lines.append(
                    f"| {backend} | {mode} | {fmt(f['cpu_ms_per_request'])} | "
                    + (f"{fmt(delta)}{verdict}" if delta else "—")
                    + f" | {f['delta_vs_off_median'] if delta else '—'} | "
                    + f"{fmt(inner)}{inner_verdict} | "
                    + (fmt(pg) if pg else "—")
                    + " |"
                )
        lines += [
            "",
            "## In process: cost per row of each write design",
            "",
            f"{MICRO_ROWS} rows per sample, median of 3, no HTTP: Django's "
            "connection in autocommit, as in a worker. CPU = this process; "
            "PostgreSQL's own CPU shown separately.",
            "",
            "| backend | design | CPU ms/row | wall ms/row | postgres CPU ms/row |",
            "|---|---|---|---|---|",
        ]
        for backend, m in micro.items():
            for name, d in m["write_designs"].items():
                lines.append(
                    f"| {backend} | {name} | {d['cpu_ms_per_row']:.4f} | "
                    f"{d['wall_ms_per_row']:.4f} | "
                    f"{d.get('postgres_cpu_ms_per_row', '—')} |"
                )
        for backend, m in micro.items():
            lines += [
                "",
                f"cProfile of the app's writer ({MICRO_ROWS} rows, {backend}), "
                "top functions by own time:",
                "",
                "```",
                *m["writer_profile"],
                "```",
            ]
        lines.append("")
    lines += [
        "Background CPU = share of all cores used by processes other than the "
        "server and wrk during the run (other sessions on a shared machine); "
        "high values make req/s and CPU per request noisier.",
    ]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"logging-{when}.md").write_text(text)
    return text


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--in-process-child":
        in_process_child(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--modes", default="off,sync,after_response,buffered")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30,
        help="seconds to wait at most for other work on the machine to calm "
        "down before each run",
    )
    parser.add_argument(
        "--in-process-rounds",
        type=int,
        default=20,
        help=f"rounds of {STACK_BLOCK} requests per mode in the in-process "
        "full-stack comparison",
    )
    parser.add_argument("--no-in-process", action="store_true")
    args = parser.parse_args()
    require_wrk()
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown or "off" not in args.modes.split(","):
        raise SystemExit(f"modes must include off and be among {sorted(MODES)}")

    backends = args.backends.split(",")
    extra = {}
    if "postgres" in backends:
        extra["postgresql"] = postgres_version()
    info = machine(extra)
    runs = []
    micro = {}
    for backend in backends:
        print(f"{backend}:", flush=True)
        runs += run_backend(backend, args)
        if not args.no_in_process:
            print(f"  {backend}: in-process measurements", flush=True)
            micro[backend] = run_in_process(backend, args.in_process_rounds)
    print(report(runs, summarize(runs), micro, args, info))


if __name__ == "__main__":
    main()
