"""The request log's admin list with 1,000,000 log rows (issue 20).

Run by hand (not a test; a few minutes per backend, CPU-bound):

    .venv/bin/python bench/admin_log_scale.py [--rows 1000000] [--repeat 3]
        [--database sqlite|postgres|sqlite,postgres] [--keep-db FILE]

For each backend, a child process sets Django up against a fresh, migrated
database (a temporary SQLite file with the default settings: WAL, no
ANALYZE; or a scratch PostgreSQL database ``modelhub_bench_adminlog`` on
127.0.0.1, dropped at the end) and seeds ``--rows`` RequestLog rows over the
last 7 days in time order: stats_scale's traffic mix (5 models of different
popularity, 3 versions each, an unknown slug, ~4% errors with their codes),
plus routes (candidate 5%, shadow 3%, alias 1%, pinned as stats_scale pins),
kept predictions on successes, row ids on 5% and captured bodies on 2% of
the rows. One executemany (SQLite) or COPY (PostgreSQL, then VACUUM ANALYZE
as autovacuum would). The registry gets the models and nothing else.
``--keep-db FILE`` (SQLite) seeds FILE once and reuses it on later runs;
``--only WORD`` times only the pages whose name has WORD.

Then it times the changelist at /admin/monitoring/requestlog/ through
Django's test Client as a superuser: the first page, each filter, the time
ranges, search by request id, deep pages, and a row's own page. First call
and median of ``--repeat``; one more call gives the queries, their time, any
COUNT among them (there should be none) and the plan of the page query
(EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL).

Writes bench/results/admin-log-<stamp>.md and .json. Target: every page
well under 1 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    RESULTS,
    ROOT,
    bulk_load,
    django_child,
    machine,
    postgres_version,
    queries_of,
    scratch_postgres,
    stamp,
    timed,
    wait_quiet,
)
from stats_scale import DAYS, MODELS, OUTCOMES, vacuum_analyze  # noqa: E402

TARGET_MS = 1000
URL = "/admin/monitoring/requestlog/"
KEPT_PREDICTIONS = 20  # values kept per request; the rest are "unjoinable"
LABELS = ("setosa", "versicolor", "virginica")
# (share of requests to a known model, route) beside stats_scale's pinning.
ROUTES = (("candidate", 0.05), ("shadow", 0.03), ("alias", 0.01))
SEARCHED = "searched-request-id"


# --- child: seed and time ------------------------------------------------------


def generate(n: int, now):  # noqa: ANN001, ANN201
    """Log rows as tuples in LOG_COLUMNS order, time-ascending."""
    from datetime import timedelta

    import numpy as np

    rng = np.random.default_rng(20261205)
    span = DAYS * 86400.0
    offsets = np.sort(rng.uniform(0, span, size=n))
    slugs = list(MODELS)
    shares = np.array([MODELS[s][0] for s in slugs])
    slug_index = rng.choice(len(slugs), size=n, p=shares / shares.sum())
    medians = np.array([MODELS[s][1] for s in slugs])
    latency = rng.lognormal(np.log(medians[slug_index]), 0.45)
    batch = np.where(rng.uniform(0, 1, size=n) < 0.9, 1, rng.integers(2, 60, size=n))
    outcome_p = np.array([o[2] for o in OUTCOMES])
    outcome = rng.choice(len(OUTCOMES), size=n, p=outcome_p / outcome_p.sum())
    progress = offsets / span
    active = np.where(progress < 0.3, 1, np.where(progress < 0.7, 2, 3))
    pinned = rng.integers(1, 4, size=n)
    version = np.where(rng.uniform(0, 1, size=n) < 0.15, pinned, active)
    route_draw = rng.uniform(0, 1, size=n)
    extras = rng.uniform(0, 1, size=(n, 2))
    labels = rng.integers(0, len(LABELS), size=(n, 4))
    request_bits = rng.integers(0, 2**63 - 1, size=(n, 2), dtype=np.int64)

    first = now - timedelta(days=DAYS)
    unknown = slugs.index("unknown-model")
    rows = []
    for i in range(n):
        ms = float(latency[i])
        n_rows = int(batch[i])
        if int(slug_index[i]) == unknown:
            status, code, ver, model_ms, n_rows = 404, "unknown_model", None, None, 0
        else:
            status, code, _ = OUTCOMES[int(outcome[i])]
            ver = int(version[i])
            model_ms = ms * 0.4 if status < 400 else None
            if status >= 400:
                ms *= 0.3
                n_rows = 0
        route = "active" if ver is None or ver == int(active[i]) else "pinned"
        if ver is not None:
            edge = 0.0
            for name, share in ROUTES:
                if edge <= route_draw[i] < edge + share:
                    route = name
                edge += share
        predictions, row_ids, unjoinable = None, None, 0
        if status < 400 and n_rows:
            kept = min(n_rows, KEPT_PREDICTIONS)
            values = [LABELS[int(labels[i, j % 4])] for j in range(kept)]
            predictions = json.dumps(values)
            unjoinable = n_rows - kept
            if extras[i, 0] < 0.05:
                row_ids = json.dumps([f"row-{i}-{j}" for j in range(n_rows)])
        payload = None
        if extras[i, 1] < 0.02:
            payload = json.dumps({"data": [{"x": j, "y": j * 0.5} for j in range(3)]})
        rows.append(
            (
                first + timedelta(seconds=float(offsets[i])),
                slugs[int(slug_index[i])],
                ver,
                status,
                code,
                n_rows,
                ms,
                model_ms,
                f"{request_bits[i, 0]:016x}{request_bits[i, 1]:016x}",
                "",
                payload,
                "",
                None,
                route,
                None,
                None,
                None,
                predictions,
                row_ids,
                unjoinable,
            )
        )
    # One row the search looks for, in the middle of the week.
    middle = list(rows[n // 2])
    middle[8] = SEARCHED
    rows[n // 2] = tuple(middle)
    return rows


def seed(n: int) -> dict:
    from django.utils import timezone

    from monitoring.models import RequestLog
    from monitoring.requestlog import LOG_COLUMNS

    timings = {}
    t = time.perf_counter()
    rows = generate(n, timezone.now())
    timings["generate_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    bulk_load(RequestLog, LOG_COLUMNS, rows, when=0)
    timings["insert_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    vacuum_analyze()
    timings["vacuum_analyze_s"] = round(time.perf_counter() - t, 1)
    return {"timings": timings}


def cases(now) -> list[tuple[str, str]]:  # noqa: ANN001
    """(what, URL) for every timed page."""
    from datetime import timedelta
    from urllib.parse import urlencode

    from monitoring.models import RequestLog

    since = (now - timedelta(days=3)).replace(microsecond=0)
    until = since + timedelta(hours=1)
    window = {"since": since.isoformat(), "until": until.isoformat()}
    row = RequestLog.objects.get(request_id=SEARCHED)
    pages: list[tuple[str, dict[str, str]]] = [
        ("first page", {}),
        ("page 2", {"p": "2"}),
        ("page 500 (offset 49,900)", {"p": "500"}),
        ("model iris (34% of rows)", {"model": "iris"}),
        ("model sentiment (8%)", {"model": "sentiment"}),
        ("model unknown-model (0.3%)", {"model": "unknown-model"}),
        ("model churn, version 2", {"model": "churn", "version": "2"}),
        ("model sentiment, page 50", {"model": "sentiment", "p": "50"}),
        ("status ok", {"status": "ok"}),
        ("status errors (~4%)", {"status": "errors"}),
        ("status 4xx", {"status": "4xx"}),
        ("status 5xx (~0.5%)", {"status": "5xx"}),
        ("error code model_error (0.5%)", {"error_code": "model_error"}),
        ("error code too_many_rows (0.05%)", {"error_code": "too_many_rows"}),
        ("route shadow (3%)", {"route": "shadow"}),
        ("route alias (1%)", {"route": "alias"}),
        ("last 15 minutes", {"since": "15m"}),
        ("last hour", {"since": "1h"}),
        ("last 24 hours", {"since": "24h"}),
        ("last 7 days", {"since": "7d"}),
        ("since/until: one hour 3 days ago", window),
        ("model iris, last 24 hours", {"model": "iris", "since": "24h"}),
        (
            "model churn, version 2, one hour 3 days ago",
            {"model": "churn", "version": "2", **window},
        ),
        ("errors, last 24 hours", {"status": "errors", "since": "24h"}),
        ("route alias, one hour 3 days ago", {"route": "alias", **window}),
        ("search: a request id", {"q": SEARCHED}),
        ("search: no such request id", {"q": "no-such-request-id"}),
    ]
    urls = [
        (what, f"{URL}?{urlencode(params)}" if params else URL)
        for what, params in pages
    ]
    urls.append(("a row's page", f"{URL}{row.pk}/change/"))
    return urls


def plan_of(sql: str) -> str:
    from django.db import connection

    explain = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
    with connection.cursor() as cursor:
        cursor.execute(explain + sql)
        return " | ".join(str(row[-1]).strip() for row in cursor.fetchall())


def measure(client, repeat: int, only: list[str]) -> list[dict]:  # noqa: ANN001
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    measurements = []
    for what, url in cases(timezone.now()):
        if only and not any(word in what for word in only):
            continue

        def get(url: str = url) -> None:
            response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"GET {url}: {response.status_code}")
            response.content  # noqa: B018  (render fully)

        entry = {"case": what, "url": url, **timed(get, repeat)}
        entry["one_call"] = queries_of(get)
        with CaptureQueriesContext(connection) as captured:
            get()
        entry["counts"] = sum("COUNT(" in q["sql"].upper() for q in captured)
        page = [q["sql"] for q in captured if "LIMIT 101" in q["sql"]]
        entry["plan"] = plan_of(page[0]) if page else ""
        measurements.append(entry)
        print(
            f"  {what:46} first {entry['first_ms']:7.1f} ms  median "
            f"{entry['median_ms']:7.1f} ms  ({entry['one_call']['queries']} queries, "
            f"{entry['one_call']['sql_ms']} ms SQL, {entry['counts']} COUNT)",
            file=sys.stderr,
            flush=True,
        )
    return measurements


def child(database_url: str, args: argparse.Namespace) -> None:
    work = django_child(database_url, "modelhub-adminlog-")
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from monitoring.models import RequestLog
    from registry.models import MLModel

    call_command("migrate", verbosity=0)
    result = {"vendor": connection.vendor}
    if RequestLog.objects.exists():
        result["seed"] = {"timings": {"reused": True}}
    else:
        t = time.perf_counter()
        result["seed"] = seed(args.rows)
        result["seed"]["timings"]["total_s"] = round(time.perf_counter() - t, 1)
    print(f"  seeded: {result['seed']['timings']}", file=sys.stderr, flush=True)
    for slug in MODELS:
        if slug != "unknown-model":
            MLModel.objects.get_or_create(
                slug=slug, defaults={"name": slug.replace("-", " ").title()}
            )
    staff, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    call_command("collectstatic", interactive=False, verbosity=0)
    client = Client()
    client.force_login(staff)
    result["last_id"] = RequestLog.objects.order_by("-pk").values_list("pk", flat=True)[
        0
    ]
    result["busy_before"] = wait_quiet(30)
    result["measurements"] = measure(client, args.repeat, args.only)
    if connection.vendor == "sqlite":
        result["db_size_mb"] = round(
            Path(connection.settings_dict["NAME"]).stat().st_size / 2**20, 1
        )
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            result["db_size_mb"] = round(cursor.fetchone()[0] / 2**20, 1)
    connection.close()
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, default=str))


# --- parent: one child per backend, then the report -----------------------------


def run_child(database_url: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", database_url]
    command += ["--rows", str(args.rows), "--repeat", str(args.repeat)]
    command += [arg for word in args.only for arg in ("--only", word)]
    out = subprocess.run(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        timeout=args.timeout,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(results: dict, args: argparse.Namespace, info: dict) -> str:
    when = stamp()
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "scenario": "admin-log-scale",
        "rows": args.rows,
        "repeat": args.repeat,
        "target_ms": TARGET_MS,
        "machine": info,
        "backends": results,
    }
    (RESULTS / f"admin-log-{when}.json").write_text(json.dumps(payload, indent=2))
    lines = [
        f"# The request log's admin list with {args.rows:,} log rows ({when} UTC)",
        "",
        f"Rows over the last {DAYS} days (bench/admin_log_scale.py). GET through "
        f"Django's test Client as a superuser, whole page rendered: first call "
        f"and median of {args.repeat}; queries, SQL time and COUNTs from one more "
        f"call. Target: < {TARGET_MS} ms. The first call of the first page also "
        "loads the templates. SQL ms is the time in execute(): on SQLite most "
        "of a query's rows are stepped through later, as they are fetched, so "
        "there the page's own time is the figure to read.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
    ]
    for backend, r in results.items():
        lines += [
            f"## {backend}",
            "",
            f"Seed: {r['seed']['timings']}; last id {r['last_id']:,}; "
            f"database {r['db_size_mb']} MB; "
            f"machine busy before timing: {r['busy_before']:.0%}.",
            "",
            "| page | first ms | median ms | queries | SQL ms | COUNTs |",
            "|---|---|---|---|---|---|",
        ]
        for m in r["measurements"]:
            verdict = "✅" if m["median_ms"] < TARGET_MS else "❌"
            lines.append(
                f"| {m['case']} | {m['first_ms']:.1f} | {m['median_ms']:.1f} "
                f"{verdict} | {m['one_call']['queries']} | "
                f"{m['one_call']['sql_ms']:.1f} | {m['counts']} |"
            )
        lines += ["", "Plans of the page queries:", ""]
        for m in r["measurements"]:
            if m["plan"]:
                lines.append(f"- {m['case']}: `{m['plan'][:300]}`")
        lines.append("")
    text = "\n".join(lines) + "\n"
    (RESULTS / f"admin-log-{when}.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database", default="sqlite")
    parser.add_argument(
        "--keep-db", type=Path, help="SQLite: seed this file once, reuse it after"
    )
    parser.add_argument(
        "--timeout", type=int, default=1200, help="seconds per backend, at most"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="time only the pages whose name has this word (repeatable)",
    )
    parser.add_argument("--child", metavar="DATABASE_URL")
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return

    backends = args.database.split(",")
    extra = {"postgresql": postgres_version()} if "postgres" in backends else {}
    info = machine(extra)
    results = {}
    for backend in backends:
        print(f"{backend}:", file=sys.stderr, flush=True)
        if backend == "postgres":
            with scratch_postgres("modelhub_bench_adminlog") as url:
                results[backend] = run_child(url, args)
        elif args.keep_db:
            results[backend] = run_child(f"sqlite:///{args.keep_db.resolve()}", args)
        else:
            with tempfile.TemporaryDirectory(prefix="modelhub-adminlog-db-") as work:
                results[backend] = run_child(f"sqlite:///{work}/db.sqlite3", args)
    print(report(results, args, info))


if __name__ == "__main__":
    main()
