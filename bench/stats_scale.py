"""Stats API and dashboard time with 1,000,000 request-log rows.

Run by hand (not a test; a few minutes per backend):

    .venv/bin/python bench/stats_scale.py [--rows 1000000] [--repeat 5]
        [--backends sqlite,postgres]

For each backend, a child process sets Django up against a fresh, migrated
database — a temporary SQLite file (the default settings: WAL, no ANALYZE)
or a scratch PostgreSQL database ``modelhub_bench_stats`` on 127.0.0.1,
dropped at the end — and seeds it:

- ``--rows`` RequestLog rows over the last 7 days, in time order, with a
  daily traffic cycle, 5 models of different popularity and speed, 3 versions
  each (v1, then v2, then v3 become active during the week; ~15% of traffic
  stays pinned to other versions), a few requests to an unknown slug, and a
  realistic status mix (~96% 200, 400s with their codes, 404, 422, 503, 504);
  latencies lognormal per model, errors faster than successes;
- the matching RequestStat rollup at every resolution the writer keeps
  (minute, hour, day: monitoring.rollup._periods), aggregated in Python while
  generating with the writer's own key (resolution, start, slug, version or
  0, error, monitoring.latency.bucket_of), so it is exactly what the writer would
  have produced; the script checks every resolution counts every request.

Log rows go in with one executemany (SQLite) or COPY (PostgreSQL); PostgreSQL
then gets VACUUM ANALYZE, as autovacuum would do after a bulk load. Then it
times, in-process (first call, best and median of --repeat):
monitoring.stats.summary, monitoring.stats.series and
monitoring.stats.recent_errors for the 24h and 7d windows; GET
/api/stats/?since=24h and ?since=7d through Django's test Client as a staff
user; and GET /dashboard/?since=... if that URL exists.
One extra call of each records the number of SQL queries and time spent in
them; cases slower than 100 ms are profiled with cProfile (in the JSON, and
the top own-time functions in the Markdown).

Quality and drift (issue 20) are seeded with them:

- ``--feedback`` (100,000) Feedback rows: labels for successful requests
  drawn at random over the week (85% right for the classifiers; regressors
  with a normal error), joined as monitoring.feedback joins them (log id,
  version, route, time of the prediction);
- a registry version per (model, version) with a drift reference of five
  numeric features and the predictions, and the DriftCount rows the workers
  would have added: per hour and day, each (minute, model, version)'s
  requests spread over each feature's bins by a multinomial draw from the
  reference's shares (v3 of fraud-score drifted on one feature). Kept
  predictions are stored for single-row requests (the stats never read them).

Writes bench/results/stats-<stamp>.md and .json. Target: under 300 ms.
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

TARGET_MS = 300
DAYS = 7
MODELS = {  # slug: (share of traffic, median latency ms)
    "iris": (0.34, 1.6),
    "churn": (0.26, 3.2),
    "fraud-score": (0.20, 5.5),
    "house-prices": (0.12, 2.4),
    "sentiment": (0.077, 14.0),
    "unknown-model": (0.003, 0.6),  # a client calling a slug that is not there
}
# (status, error code, share of requests to a known model)
OUTCOMES = [
    (200, "", 0.962),
    (400, "missing_features", 0.012),
    (400, "wrong_type", 0.007),
    (400, "malformed_json", 0.004),
    (400, "invalid_shape", 0.003),
    (413, "too_many_rows", 0.0005),
    (404, "unknown_version", 0.002),
    (422, "model_error", 0.005),
    (503, "model_unavailable", 0.003),
    (504, "prediction_timeout", 0.0015),
]


# --- child: seed and time ------------------------------------------------------


def generate(n: int, now):  # noqa: ANN001, ANN201
    """Log rows (tuples in column order, time-ascending) and the rollup dict."""
    import numpy as np

    from monitoring.latency import bucket_of
    from monitoring.rollup import periods  # the rollup's own periods

    rng = np.random.default_rng(20261122)
    span = DAYS * 86400.0
    # Daily cycle: rejection-sample offsets with intensity 1 + 0.6 sin(...)
    offsets = np.empty(0)
    while offsets.size < n:
        draw = rng.uniform(0, span, size=int(n * 1.8))
        hour = ((now.timestamp() - span + draw) % 86400) / 3600
        keep = rng.uniform(0, 1.6, size=draw.size) < 1 + 0.6 * np.sin(
            2 * np.pi * (hour - 8) / 24
        )
        offsets = np.concatenate([offsets, draw[keep]])
    offsets = np.sort(offsets[:n])
    slugs = list(MODELS)
    shares = np.array([MODELS[s][0] for s in slugs])
    slug_index = rng.choice(len(slugs), size=n, p=shares / shares.sum())
    medians = np.array([MODELS[s][1] for s in slugs])
    latency = rng.lognormal(np.log(medians[slug_index]), 0.45)
    # Slow tail: 1% of requests take 5-20x longer (GC, cold cache, big batches).
    tail = rng.uniform(0, 1, size=n) < 0.01
    latency[tail] *= rng.uniform(5, 20, size=int(tail.sum()))
    rows = np.where(rng.uniform(0, 1, size=n) < 0.9, 1, rng.integers(2, 500, size=n))
    outcome_p = np.array([o[2] for o in OUTCOMES])
    outcome = rng.choice(len(OUTCOMES), size=n, p=outcome_p / outcome_p.sum())
    # Versions: v1 active for the first 30% of the week, v2 until 70%, then v3;
    # 15% of requests pin another version.
    progress = offsets / span
    active = np.where(progress < 0.3, 1, np.where(progress < 0.7, 2, 3))
    pinned = rng.integers(1, 4, size=n)
    version = np.where(rng.uniform(0, 1, size=n) < 0.15, pinned, active)
    request_bits = rng.integers(0, 2**63 - 1, size=(n, 2), dtype=np.int64)

    from datetime import timedelta

    first = now - timedelta(days=DAYS)
    log_rows = []
    rollup: dict[tuple, list] = {}
    served: dict[tuple, int] = {}  # (minute, slug, version): successful requests
    unknown = slugs.index("unknown-model")
    for i in range(n):
        created = first + timedelta(seconds=float(offsets[i]))
        slug_i = int(slug_index[i])
        ms = float(latency[i])
        if slug_i == unknown:
            status, code, ver, model_ms, n_rows = 404, "unknown_model", None, None, 0
        else:
            status, code, _ = OUTCOMES[int(outcome[i])]
            ver = int(version[i])
            n_rows = int(rows[i])
            if status >= 400:
                ms *= 0.3  # failing fast: no prediction
                model_ms = ms * 0.5 if status in (422, 504) else None
                n_rows = n_rows if status in (422, 504) else 0
            else:
                model_ms = ms * 0.4
        slug = slugs[slug_i]
        route = "active" if ver is None or ver == int(active[i]) else "pinned"
        kept = None
        if status < 400 and ver is not None:
            minute = created.replace(second=0, microsecond=0)
            served[minute, slug, ver] = served.get((minute, slug, ver), 0) + n_rows
            if n_rows == 1:
                kept = f"[{PREDICTED[slug][i % len(PREDICTED[slug])]}]"
        log_rows.append(
            (
                created,
                slug,
                ver,
                status,
                code,
                n_rows,
                ms,
                model_ms,
                f"{request_bits[i, 0]:016x}{request_bits[i, 1]:016x}",
                "",
                None,
                "",
                None,
                route,
                None,
                None,
                None,
                kept,
                None,
                0,
            )
        )
        error, bucket = status >= 400, bucket_of(ms)
        for resolution, period in periods(created.replace(second=0, microsecond=0)):
            key = (resolution, period, slug, ver or 0, route, error, bucket)
            sums = rollup.get(key)
            if sums is None:
                rollup[key] = [1, n_rows, ms, 0, 0, 0.0, 0.0, 0.0, 0]
            else:
                sums[0] += 1
                sums[1] += n_rows
                sums[2] += ms
    return log_rows, rollup, served


# What each model answers: labels (JSON) for the classifiers, numbers for
# house-prices; a regressor's kept predictions and labels are numbers.
PREDICTED = {
    "iris": ['"setosa"', '"versicolor"', '"virginica"'],
    "churn": ['"stays"', '"leaves"'],
    "fraud-score": ["0", "1"],
    "house-prices": ["181000.5", "129500.0", "243000.25"],
    "sentiment": ['"positive"', '"negative"', '"neutral"'],
    "unknown-model": ["null"],
}
REGRESSORS = {"house-prices"}
FEATURES = 5
DRIFTED = ("fraud-score", 3)  # its v3 sees feature f2 shifted


def feedback_rows(log_rows: list[tuple], count: int, now) -> list[tuple]:  # noqa: ANN001
    """Labels for ``count`` successful single-row requests, as
    monitoring.feedback stores them (log ids are 1..n in load order)."""
    import numpy as np

    rng = np.random.default_rng(7)
    eligible = [i for i, r in enumerate(log_rows) if r[17] is not None]
    chosen = rng.choice(len(eligible), size=min(count, len(eligible)), replace=False)
    found = []
    for index in sorted(chosen.tolist()):
        i = eligible[index]
        created, slug, ver, route, request_id = (
            log_rows[i][0],
            log_rows[i][1],
            log_rows[i][2],
            log_rows[i][13],
            log_rows[i][8],
        )
        predicted = log_rows[i][17][1:-1].strip('"')
        if slug in REGRESSORS:
            truth = float(predicted) + float(rng.normal(0, 20000))
            label, error = str(truth), float(predicted) - truth
        else:
            choices = [p.strip('"') for p in PREDICTED[slug]]
            label = predicted if rng.uniform() < 0.85 else str(rng.choice(choices))
            error = None
        found.append(
            (
                i + 1,
                0,
                slug,
                ver,
                route,
                request_id,
                created,
                now,
                label,
                predicted,
                error,
            )
        )
    return found


def drift_seed(served: dict[tuple, int]) -> tuple[list[tuple], list[tuple]]:
    """Registry versions with a drift reference each, and the DriftCount rows
    the workers would have added for ``served``."""
    import numpy as np

    from monitoring.drift import Reference, prediction_type
    from monitoring.models import DriftReference
    from monitoring.rollup import periods
    from registry.models import MLModel, ModelVersion

    rng = np.random.default_rng(11)
    references = {}
    for model in MLModel.objects.all():
        kind = "regressor" if model.slug in REGRESSORS else "classifier"
        for number in (1, 2, 3):
            version = ModelVersion.objects.create(
                model=model,
                number=number,
                file=f"bench/{model.slug}-{number}.joblib",
                sha256="0" * 64,
                size=1,
                format="joblib",
                kind=kind,
                estimator="bench.Model",
                input_schema={
                    "features": [
                        {"name": f"f{j}", "type": "number"} for j in range(FEATURES)
                    ]
                },
            )
            sample = {f"f{j}": rng.normal(0, 1, 2000) for j in range(FEATURES)}
            answers = [p.strip('"') for p in PREDICTED[model.slug]]
            predictions = (
                rng.normal(180000, 50000, 2000)
                if kind == "regressor"
                else np.array(answers, dtype=object)[
                    rng.integers(0, len(answers), 2000)
                ]
            )
            reference = Reference.of(sample, {}, predictions, prediction_type(kind))
            DriftReference.objects.create(
                version=version, source="upload", rows=2000, bins=reference.as_dict()
            )
            references[model.slug, number] = reference
    keys = list(served)
    totals: dict[tuple, int] = {}
    for (slug, number), reference in references.items():
        index = [k for k, key in enumerate(keys) if key[1:] == (slug, number)]
        if not index:
            continue
        n = np.array([served[keys[k]] for k in index])
        for bins in (*reference.features, reference.predictions):
            shares = np.array(bins.expected, dtype=float)
            if (slug, number) == DRIFTED and bins.name == "f2":
                shares = np.roll(shares, 3)
            shares = shares / shares.sum()
            drawn = rng.multinomial(n, shares)
            for row, k in enumerate(index):
                hour = keys[k][0].replace(minute=0)
                for b in np.nonzero(drawn[row])[0].tolist():
                    for resolution, start in periods(hour)[1:]:
                        key = (resolution, start, slug, number, bins.name, b)
                        totals[key] = totals.get(key, 0) + int(drawn[row, b])
    return [(*key, count) for key, count in totals.items()], list(references)


def vacuum_analyze() -> None:
    """PostgreSQL only: what autovacuum does after a bulk load, done now."""
    from django.db import connection

    from monitoring.models import (
        DriftCount,
        Feedback,
        FeedbackStat,
        RequestLog,
        RequestStat,
    )

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (RequestLog, RequestStat, Feedback, FeedbackStat, DriftCount):
                cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")


def seed(n: int, feedback: int) -> dict:
    from django.utils import timezone

    from monitoring.models import (
        DriftCount,
        Feedback,
        FeedbackStat,
        RequestLog,
        RequestStat,
        RollupMark,
    )
    from monitoring.requestlog import LOG_COLUMNS
    from monitoring.rollup import STAT_KEY, STAT_SUMS
    from registry.models import MLModel

    for slug in MODELS:
        if slug != "unknown-model":
            MLModel.objects.create(slug=slug, name=slug.replace("-", " ").title())
    timings = {}
    t = time.perf_counter()
    now = timezone.now()
    log_rows, rollup, served = generate(n, now)
    timings["generate_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    bulk_load(RequestLog, LOG_COLUMNS, log_rows, when=0)
    timings["insert_log_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    bulk_load(  # the starts come adapted, from monitoring.rollup.periods
        RequestStat,
        STAT_KEY + STAT_SUMS,
        [(*k, *v) for k, v in rollup.items()],
        when=(),
    )
    timings["insert_rollup_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    from django.db.models import Max, Min

    bounds = RequestLog.objects.aggregate(first=Min("pk"), last=Max("pk"))
    assert bounds == {"first": 1, "last": n}, "feedback joins log ids 1..n"
    # The rollup seeded is current: a reader's catch-up must not fold the
    # log rows into it again.
    RollupMark.objects.update_or_create(pk=1, defaults={"last_id": n})
    labels = feedback_rows(log_rows, feedback, now)
    bulk_load(
        Feedback,
        (
            "log_id",
            "row",
            "slug",
            "version",
            "route",
            "request_id",
            "predicted_at",
            "received_at",
            "label",
            "predicted",
            "error",
        ),
        labels,
        when=(6, 7),
    )
    from django.db import transaction

    from monitoring import feedback_rollup

    with transaction.atomic():  # what the labels' write path adds with them
        feedback_rollup.add(Feedback.objects.iterator(chunk_size=5000))
    timings["insert_feedback_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    counts_rows, _ = drift_seed(served)
    bulk_load(
        DriftCount,
        ("resolution", "start", "slug", "version", "feature", "bin", "count"),
        counts_rows,
        when=(),  # the starts come adapted, from monitoring.rollup.periods
    )
    timings["insert_drift_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    vacuum_analyze()
    timings["vacuum_analyze_s"] = round(time.perf_counter() - t, 1)
    per_resolution: dict[str, dict[str, int]] = {}
    for key, sums in rollup.items():
        tier = per_resolution.setdefault(key[0], {"rows": 0, "requests": 0})
        tier["rows"] += 1
        tier["requests"] += sums[0]
    counts = {
        "log_rows": RequestLog.objects.count(),
        "rollup_rows": RequestStat.objects.count(),
        "feedback_rows": Feedback.objects.count(),
        "feedback_rollup_rows": FeedbackStat.objects.count(),
        "drift_count_rows": DriftCount.objects.count(),
        "rollup_by_resolution": per_resolution,
        "error_rows": sum(1 for r in log_rows if r[3] >= 400),
    }
    assert counts["log_rows"] == n, counts
    assert all(t["requests"] == n for t in per_resolution.values()), counts
    return {"timings": timings, "counts": counts, "now": now.isoformat()}


def profile_of(fn) -> dict[str, list[str]]:  # noqa: ANN001
    """cProfile of one call: project and database functions by cumulative
    time, and the top functions by own time."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    out = {}
    for key, order, restrictions in (
        (
            "cumulative",
            "cumulative",
            (r"/work/main/(api|registry)/|psycopg|sqlite3|template", 30),
        ),
        ("own_time", "tottime", (15,)),
    ):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(*restrictions)
        out[key] = [line for line in text.getvalue().splitlines() if line.strip()]
    return out


PROFILE_ABOVE_MS = 100


def measure(client, has_dashboard: bool, repeat: int) -> list[dict]:  # noqa: ANN001
    """Time every case for the 24h and 7d windows."""
    from django.utils import timezone

    from monitoring import stats

    def get(url: str):  # noqa: ANN202
        def call() -> None:
            response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"GET {url}: {response.status_code}")
            response.content  # noqa: B018  (render fully)

        return call

    measurements = []
    for window in ("24h", "7d"):
        until = timezone.now()
        since = stats.parse_since(window, until)
        cases = {
            "stats.summary": lambda s=since, u=until: stats.summary(s, u),
            "stats.series": lambda s=since, u=until: stats.series(s, u),
            "stats.recent_errors": lambda s=since: stats.recent_errors(s),
        }
        cases[f"GET /api/stats/?since={window}"] = get(f"/api/stats/?since={window}")
        if has_dashboard:
            cases[f"GET /dashboard/?since={window}"] = get(
                f"/dashboard/?since={window}"
            )
        # Sanity: the rollup's answer against a count of the log itself (the
        # rollup starts at the minute ``since`` falls in: a few more rows).
        from monitoring.models import RequestLog

        measurements.append(
            {
                "window": window,
                "check": True,
                "summary_requests": stats.summary(since, until)["totals"]["requests"],
                "log_rows_since": RequestLog.objects.filter(
                    created_at__gte=since
                ).count(),
            }
        )
        for name, fn in cases.items():
            entry = {"window": window, "case": name, **timed(fn, repeat)}
            entry["one_call"] = queries_of(fn)
            if entry["median_ms"] > PROFILE_ABOVE_MS:
                entry["profile"] = profile_of(fn)
            measurements.append(entry)
            print(
                f"  {window:4} {name:38} best {entry['best_ms']:8.1f} ms  "
                f"median {entry['median_ms']:8.1f} ms  "
                f"({entry['one_call']['queries']} queries, "
                f"{entry['one_call']['sql_ms']} ms SQL)",
                file=sys.stderr,
                flush=True,
            )
    return measurements


def child(database_url: str, args: argparse.Namespace) -> None:
    work = django_child(database_url, "modelhub-stats-")
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import Resolver404, resolve

    call_command("migrate", verbosity=0)
    result = {"vendor": connection.vendor}
    t = time.perf_counter()
    result["seed"] = seed(args.rows, args.feedback)
    result["seed"]["timings"]["total_s"] = round(time.perf_counter() - t, 1)
    print(f"  seeded in {result['seed']['timings']}", file=sys.stderr, flush=True)
    staff = get_user_model().objects.create_user(
        "bench", password="bench-password-1", is_staff=True, is_superuser=True
    )
    client = Client()
    client.force_login(staff)
    try:
        resolve("/dashboard/")
        has_dashboard = True
        call_command("collectstatic", interactive=False, verbosity=0)
    except Resolver404:
        has_dashboard = False

    wait_quiet(30)
    result["measurements"] = measure(client, has_dashboard, args.repeat)
    result["has_dashboard"] = has_dashboard
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
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            database_url,
            "--rows",
            str(args.rows),
            "--repeat",
            str(args.repeat),
            "--feedback",
            str(args.feedback),
        ],
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
        "scenario": "stats-scale",
        "rows": args.rows,
        "repeat": args.repeat,
        "target_ms": TARGET_MS,
        "machine": info,
        "backends": results,
    }
    (RESULTS / f"stats-{when}.json").write_text(json.dumps(payload, indent=2))
    lines = [
        f"# Stats API and dashboard with {args.rows:,} log rows ({when} UTC)",
        "",
        f"Rows spread over the last {DAYS} days, 5 models × 3 versions plus an "
        "unknown slug, ~4% errors, with the matching rollup (minute, hour and "
        "day rows). "
        f"In-process timings, first call, best and median of {args.repeat}; "
        f"queries and SQL time from one more call. Target: < {TARGET_MS} ms.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
    ]
    for backend, r in results.items():
        seed_info = r["seed"]
        lines += [
            f"## {backend}",
            "",
            f"Seeded {seed_info['counts']['log_rows']:,} log rows, "
            f"{seed_info['counts']['feedback_rows']:,} feedback rows, "
            f"{seed_info['counts']['drift_count_rows']:,} drift count rows and "
            f"{seed_info['counts']['rollup_rows']:,} rollup rows ("
            + ", ".join(
                f"{res}: {t['rows']:,}"
                for res, t in seed_info["counts"]["rollup_by_resolution"].items()
            )
            + ") in "
            f"{seed_info['timings']['total_s']} s ({seed_info['timings']}); "
            f"database {r['db_size_mb']} MB.",
            "",
            "| window | what | first ms | best ms | median ms | queries | SQL ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for m in r["measurements"]:
            if m.get("check"):
                continue
            verdict = "✅" if m["median_ms"] < TARGET_MS else "❌"
            lines.append(
                f"| {m['window']} | {m['case']} | {m['first_ms']:.1f} | "
                f"{m['best_ms']:.1f} | {m['median_ms']:.1f} {verdict} | "
                f"{m['one_call']['queries']} | {m['one_call']['sql_ms']:.1f} |"
            )
        if not r["has_dashboard"]:
            lines += ["", "/dashboard/ does not exist in this checkout: not timed."]
        profiled = [m for m in r["measurements"] if "profile" in m]
        for m in profiled:
            lines += [
                "",
                f"cProfile, {m['window']} {m['case']} (one call), top functions "
                "by own time:",
                "",
                "```",
                *m["profile"]["own_time"][3:],
                "```",
            ]
        checks = [m for m in r["measurements"] if m.get("check")]
        lines += [
            "",
            "Sanity: "
            + "; ".join(
                f"{c['window']}: summary counts {c['summary_requests']:,} requests, "
                f"the log holds {c['log_rows_since']:,} rows since `since`"
                for c in checks
            )
            + ".",
        ]
        slow = [
            m
            for m in r["measurements"]
            if not m.get("check") and m["median_ms"] >= TARGET_MS
        ]
        if slow:
            lines += ["", "Slowest SQL of the cases over target:", ""]
            for m in slow:
                top = m["one_call"]["slowest_sql"][0]
                lines.append(
                    f"- {m['window']} {m['case']}: {top['ms']} ms in "
                    f"`{top['sql'][:160]}…`"
                )
        lines.append("")
    text = "\n".join(lines) + "\n"
    (RESULTS / f"stats-{when}.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--feedback", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--timeout", type=int, default=1200, help="seconds per backend, at most"
    )
    parser.add_argument("--child", metavar="DATABASE_URL")
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return

    backends = args.backends.split(",")
    extra = {"postgresql": postgres_version()} if "postgres" in backends else {}
    info = machine(extra)
    results = {}
    for backend in backends:
        print(f"{backend}:", file=sys.stderr, flush=True)
        if backend == "postgres":
            with scratch_postgres("modelhub_bench_stats") as url:
                results[backend] = run_child(url, args)
        else:
            with tempfile.TemporaryDirectory(prefix="modelhub-stats-db-") as work:
                results[backend] = run_child(f"sqlite:///{work}/db.sqlite3", args)
    print(report(results, args, info))


if __name__ == "__main__":
    main()
