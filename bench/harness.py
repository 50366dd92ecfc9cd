"""Shared pieces of the benchmark scenarios (not a scenario itself).

- ``Server``: a throw-away ModelHub under real gunicorn on 127.0.0.1 — its own
  SQLite file or scratch PostgreSQL database, media and static directories,
  the demo models — stopped and cleaned up on exit.
- ``run_wrk``: drives a URL with wrk and parses requests, req/s, p50 and p99.
- ``process_tree_cpu``: user+system CPU of a process and its children, from
  /proc, so a scenario can report server CPU per request.
- ``machine``: CPU, kernel and library versions for every report.
- ``spread`` and ``paired``: mean (min–max) of a figure over runs, and of a
  ratio or difference of two servers' figures paired by run.
- ``scratch_postgres``: creates and drops a scratch PostgreSQL database;
  ``postgres_unreachable`` says why it cannot be reached, if it cannot.
- ``registered_site``: a throw-away site whose models are registered by a
  checkout's own ``manage.py loadmodel``.
- ``bulk_load``: rows into a table with one executemany (SQLite) or COPY
  (PostgreSQL); ``timed`` and ``queries_of``: first, best and median
  milliseconds of repeated in-process calls, and the SQL queries of one.

Every subprocess has a timeout and all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
IRIS_BODY = {
    "data": {
        "sepal length (cm)": 5.1,
        "sepal width (cm)": 3.5,
        "petal length (cm)": 1.4,
        "petal width (cm)": 0.2,
    }
}
TICKS = os.sysconf("SC_CLK_TCK")
PG_ADMIN_URL = os.environ.get(
    "MODELHUB_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _pids_where(field: int, value: int) -> list[int]:
    """Live pids whose /proc/<pid>/stat field (after the command) == value:
    1 = parent pid, 3 = session id."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields and int(fields[field]) == value:
                pids.append(int(entry.name))
    return pids


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def child_pids(pid: int) -> list[int]:
    """Live children of ``pid`` (e.g. the workers of a gunicorn master)."""
    return _pids_where(1, pid)


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def process_tree_cpu(root_pid: int) -> float:
    """utime+stime (seconds) of a process and its live children."""
    return _cpu_seconds([root_pid, *child_pids(root_pid)])


def session_cpu(session_id: int) -> float:
    """utime+stime (seconds) of every live process of a session: a server
    started with start_new_session=True and all its descendants, however
    deep (uvicorn or multiprocessing workers under a launcher)."""
    return _cpu_seconds(_pids_where(3, session_id))


def rss_kb(pid: int) -> dict[str, int]:
    """VmRSS and RssAnon (kB) of a process, from /proc/<pid>/status."""
    out = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            out[key] = int(value.split()[0])
    return out


def processes_cpu(name: str) -> float:
    """utime+stime (seconds) of every live process whose comm is ``name``
    (e.g. the local PostgreSQL server's backends)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm == name:
            fields = _stat_fields(entry.name)
            if fields:
                total += int(fields[11]) + int(fields[12])
    return total / TICKS


def system_busy_cpu() -> float:
    """Busy CPU seconds of the whole machine (all cores) since boot."""
    fields = [
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


def children_cpu() -> float:
    """CPU seconds of this process's finished children (e.g. wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_quiet(max_wait: float = 60, busy_below: float = 0.25) -> float:
    """Wait (bounded) until other work on the machine is light.

    Returns the busy fraction of the last sample (1 second, or ``max_wait``
    if shorter): 0.0 = idle, 1.0 = every core busy. Other sessions sharing
    the machine make server CPU per request noisy; reports record this figure.
    """
    deadline = time.monotonic() + max_wait
    cores = os.cpu_count() or 1
    sample = min(1.0, max(max_wait, 0.1))
    while True:
        before = system_busy_cpu()
        time.sleep(sample)
        busy = (system_busy_cpu() - before) / (cores * sample)
        if busy < busy_below or time.monotonic() > deadline:
            return round(busy, 3)


def wait_ready(
    url: str, deadline: float, alive: subprocess.Popen | None = None
) -> None:
    """Poll ``url`` until it answers 200; give up at ``deadline`` or as soon
    as the process ``alive`` has exited."""
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:
            raise SystemExit(f"server exited ({alive.returncode}) before ready: {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server did not become ready: {url}")


def to_ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, connections: int, duration: int, script: Path) -> dict:
    threads = min(2, connections)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        # wrk prints no percentiles when nothing completed
        "p50_ms": to_ms(latency["50"]) if "50" in latency else float("nan"),
        "p99_ms": to_ms(latency["99"]) if "99" in latency else float("nan"),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "none",
        "socket_errors_total": sum(
            int(n) for n in re.findall(r"\d+", socket_errors.group(1))
        )
        if socket_errors
        else 0,
    }


def spread(values: list[float], digits: int = 3) -> dict:
    """Mean, min, max, stdev and n of ``values`` (NaN left out)."""
    values = [v for v in values if not math.isnan(v)] or [math.nan]
    return {
        "mean": round(statistics.fmean(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "stdev": round(statistics.stdev(values), digits) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def paired(
    runs: list[dict],
    scenario: str,
    a: str,
    b: str,
    key: str,
    op: Callable[[float, float], float],
) -> dict | None:
    """op(a, b) per round (same scenario, same round), then mean and spread."""
    by = {(r["target"], r["round"]): r[key] for r in runs if r["scenario"] == scenario}
    values = [op(by[a, n], by[b, n]) for (t, n) in by if t == a and (b, n) in by]
    return spread(values) if values else None


def require_wrk() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")


def machine(extra: dict | None = None) -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    versions = {
        name: metadata.version(name)
        for name in (
            "django",
            "djangorestframework",
            "scikit-learn",
            "numpy",
            "pandas",
            "gunicorn",
            "orjson",
            "psycopg",
        )
    }
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {
        "commit": commit or "unknown",
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "sqlite": sqlite3.sqlite_version,
        **versions,
        **(extra or {}),
    }


def postgres_unreachable() -> str | None:
    """Why PostgreSQL at PG_ADMIN_URL cannot be used, or None when it can."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc})"
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"{PG_ADMIN_URL} unreachable: {str(exc).strip().splitlines()[0]}"
    return None


def postgres_backends_cpu(database: str) -> float:
    """utime+stime (seconds) of the PostgreSQL backends connected to
    ``database`` now (pids from pg_stat_activity; the server runs on this
    machine, so /proc has them). The query's own backend is on another
    database and is not counted."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
            )
        ]
    return _cpu_seconds(pids)


def postgres_version() -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


@contextlib.contextmanager
def scratch_postgres(name: str, template: str | None = None) -> Iterator[str]:
    """A fresh PostgreSQL database for the duration (a copy of ``template``
    if given); yields its DATABASE_URL."""
    import psycopg
    from psycopg import sql

    for db in (name, template or name):
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", db):
            raise ValueError(f"bad database name {db!r}")
    admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
        sql.Identifier(name)
    )
    try:
        admin.execute(drop)
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        admin.execute(create)
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.execute(drop)
        admin.close()


def bulk_load(
    model, columns: tuple[str, ...], rows: list[tuple], when: int | tuple[int, ...]
) -> None:  # noqa: ANN001, E501
    """One executemany (SQLite) or COPY (PostgreSQL) in one transaction;
    column ``when`` (or each of them) of every row is a datetime."""
    from django.db import connection, transaction

    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    names = ", ".join(quote(c) for c in columns)
    connection.ensure_connection()
    with transaction.atomic():
        if connection.vendor == "sqlite":
            adapt = connection.ops.adapt_datetimefield_value
            dates = (when,) if isinstance(when, int) else when
            adapted = (
                ((*r[:when], adapt(r[when]), *r[when + 1 :]) for r in rows)
                if isinstance(when, int)
                else (
                    tuple(adapt(v) if i in dates else v for i, v in enumerate(r))
                    for r in rows
                )
            )
            connection.connection.executemany(
                f"INSERT INTO {table} ({names}) "  # noqa: S608
                f"VALUES ({', '.join('?' * len(columns))})",
                adapted,
            )
        else:
            with connection.connection.cursor() as cursor:
                with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)


def timed(fn, repeat: int) -> dict:  # noqa: ANN001
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return {
        "first_ms": round(samples[0], 1),
        "best_ms": round(min(samples), 1),
        "median_ms": round(statistics.median(samples), 1),
        "samples_ms": [round(s, 1) for s in samples],
    }


def queries_of(fn) -> dict:  # noqa: ANN001
    """Number of SQL queries of one call and the time spent in them."""
    from django.db import connection

    spent = []

    def wrapper(execute, sql, params, many, context):  # noqa: ANN001, ANN202
        t = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent.append(((time.perf_counter() - t) * 1000, sql))

    t = time.perf_counter()
    with connection.execute_wrapper(wrapper):
        fn()
    total = (time.perf_counter() - t) * 1000
    slowest = sorted(spent, reverse=True)[:3]
    return {
        "total_ms": round(total, 1),
        "queries": len(spent),
        "sql_ms": round(sum(s for s, _ in spent), 1),
        "slowest_sql": [{"ms": round(s, 1), "sql": q[:300]} for s, q in slowest],
    }


def manage(root: Path, env: dict[str, str], *command: str) -> str:
    """``manage.py <command>`` of the checkout ``root`` (its own code, in its
    own directory, with this virtualenv); returns stdout. A failure raises
    SystemExit with the command's stderr."""
    try:
        return subprocess.run(
            [sys.executable, str(root / "manage.py"), *command],
            env=env,
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise SystemExit(
            f"manage.py {' '.join(command)} failed in {root}:\n{exc.stderr[-3000:]}"
        ) from None


def registered_site(
    root: Path,
    directory: Path,
    models: dict[str, Path],
    *,
    database_url: str | None = None,
    options: tuple[str, ...] = (),
) -> None:
    """A fresh site in ``directory`` (media/ and, by default, db.sqlite3)
    with each ``slug: file`` of ``models`` (and its ``<file>.meta.json``)
    registered and activated by the checkout ``root``'s own ``manage.py
    migrate`` and ``loadmodel`` (plus ``options``), so the site has the
    schema and registration of that checkout's code."""
    directory.mkdir(parents=True)
    env = site_env(directory, database_url)
    manage(root, env, "migrate", "-v0")
    for slug, path in models.items():
        manage(
            root,
            env,
            "loadmodel",
            str(path),
            "--slug",
            slug,
            "--metadata",
            str(path.with_suffix(".meta.json")),
            *options,
        )


def prepare_site(env: dict[str, str], root: Path = ROOT) -> None:
    """migrate + loaddemos against env's DATABASE_URL and MODELHUB_MEDIA_ROOT."""
    for command in (["migrate", "-v0"], ["loaddemos"]):
        manage(root, env, *command)


def site_env(directory: Path, database_url: str | None = None) -> dict[str, str]:
    """The environment of a site kept in ``directory`` (media/, static/ and,
    by default, db.sqlite3): what ``Server(prepared=...)`` copies."""
    return {
        **os.environ,
        "DATABASE_URL": database_url or f"sqlite:///{directory / 'db.sqlite3'}",
        "MODELHUB_MEDIA_ROOT": str(directory / "media"),
        "MODELHUB_STATIC_ROOT": str(directory / "static"),
        "MODELHUB_SECRET_KEY_FILE": str(directory / "secret"),
        "MODELHUB_LOG_LEVEL": "WARNING",
    }


def prepared_template(directory: Path, database_url: str | None = None) -> Path:
    """A migrated site with the demo models in ``directory`` (media/ and, by
    default, db.sqlite3), for ``Server(prepared=...)``."""
    directory.mkdir(parents=True, exist_ok=True)
    prepare_site(site_env(directory, database_url))
    return directory


def post_script(
    path: Path, body: object, content_type: str = "application/json"
) -> Path:
    """Write a wrk Lua script that POSTs ``body`` (JSON-encoded unless bytes
    or str) to ``path``; returns ``path``."""
    text = body if isinstance(body, str) else json.dumps(body)
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
        f"wrk.body = {json.dumps(text)}\n"
    )
    return path


class Service:
    """A server process on 127.0.0.1 in its own session, stopped (the whole
    process group) on exit; use as a context manager.

    ``command`` runs in ``cwd`` with ``env``; the service is ready when GET
    ``ready_path`` answers 200. CPU is counted over the whole session, so a
    launcher's workers (however deep) are included. Subclasses may prepare
    ``self.work`` (a fresh temporary directory, removed on exit) in
    ``prepare()`` before the command starts.
    """

    name = "service"

    def __init__(
        self,
        command: list[str],
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        ready_path: str = "/",
        ready_timeout: float = 90,
        log: Path | None = None,
    ) -> None:
        self.work = Path(tempfile.mkdtemp(prefix=f"modelhub-bench-{self.name}-"))
        self.port = port or free_port()
        self.command = command
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.ready_path = ready_path
        self.ready_timeout = ready_timeout
        self.log = log
        self.process: subprocess.Popen | None = None
        self.base = f"http://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        """Hook: set up files in self.work before the command starts."""

    def post_script(self, body: object = IRIS_BODY, name: str = "post") -> Path:
        """A wrk Lua script (in the work directory) that POSTs ``body``."""
        return post_script(self.work / f"{name}.lua", body)

    def __enter__(self) -> Service:
        try:
            self.prepare()
            output = self.log.open("ab") if self.log else subprocess.DEVNULL
            try:
                self.process = subprocess.Popen(
                    self.command,
                    env=self.env,
                    cwd=self.cwd,
                    stdout=output,
                    stderr=subprocess.STDOUT if self.log else subprocess.DEVNULL,
                    start_new_session=True,
                )
            finally:
                if self.log:
                    output.close()
            wait_ready(
                f"{self.base}{self.ready_path}",
                time.monotonic() + self.ready_timeout,
                alive=self.process,
            )
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def cpu(self) -> float:
        return session_cpu(self.process.pid)

    def database_cpu(self) -> float:
        """CPU seconds of a database server's processes working for this
        service (0 when its database lives inside it, as SQLite does)."""
        return 0.0

    def worker_pids(self) -> list[int]:
        """The master's children, less its helpers: the watchdog
        (registry/inflight.py) and the batch process's keeper
        (api/dataplane/batch_host.py)."""
        helpers = (b"registry.inflight", b"api.dataplane.batch_host")
        return [
            pid
            for pid in child_pids(self.process.pid)
            if not any(helper in _cmdline(pid) for helper in helpers)
        ]

    def stop(self) -> None:
        """Graceful stop (TERM to the process group), then KILL if needed."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.process:
            # workers left behind by a launcher that exited first
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def measure(
        self, path: str, connections: int, duration: int, script: Path | None = None
    ) -> dict:
        """One wrk run against ``path``, with server CPU ms per request."""
        script = script or self.post_script()
        database_before = self.database_cpu()
        before = self.cpu()
        machine_before = system_busy_cpu()
        wrk_before = children_cpu()
        result = run_wrk(self.base + path, connections, duration, script)
        database = self.database_cpu() - database_before
        cpu = self.cpu() - before + database
        wrk_cpu = children_cpu() - wrk_before
        other = system_busy_cpu() - machine_before - cpu - wrk_cpu
        result["connections"] = connections
        # the server's CPU includes its database server's (database_cpu())
        result["server_cpu_ms_per_request"] = round(
            cpu * 1000 / max(result["requests"], 1), 3
        )
        result["database_cpu_ms_per_request"] = round(
            database * 1000 / max(result["requests"], 1), 3
        )
        # CPU used by everything but the server and wrk (other processes on a
        # shared machine), as a share of all cores over the run.
        result["background_cpu_share"] = round(
            max(other, 0.0) / (duration * (os.cpu_count() or 1)), 3
        )
        return result

    def warm(self, path: str, script: Path | None = None, duration: int = 2) -> dict:
        """Warm every worker's connection and caches (2 s of traffic)."""
        return run_wrk(self.base + path, 2, duration, script or self.post_script())


class Server(Service):
    """ModelHub under gunicorn with its own database; use as a context manager.

    ``database_url`` None = a fresh SQLite file in the work directory.
    ``env`` overrides settings (e.g. MODELHUB_LOG_MODE); ``app`` replaces the
    WSGI application (a bench-only wrapper such as bench.buffered_wsgi).
    ``prepared`` = a directory made by ``prepared_template``: its media (and
    SQLite file, when database_url is None) are copied instead of running
    migrate and loaddemos again, so a fresh server starts in seconds; with
    PostgreSQL pass a database created from the prepared one as template.
    ``root`` = the checkout whose code and gunicorn settings run (another
    revision's worktree for a before/after comparison), with this virtualenv.
    With PostgreSQL, the CPU of the backends connected to its database counts
    as the server's (SQLite's work is inside the workers already).
    """

    name = "modelhub"

    def __init__(
        self,
        *,
        workers: int = 2,
        env: dict[str, str] | None = None,
        database_url: str | None = None,
        app: str | None = None,
        prepared: Path | None = None,
        ready_timeout: float = 90,
        root: Path = ROOT,
    ) -> None:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        command = [str(gunicorn), "--config", "modelhub/gunicorn.conf.py"]
        if app:
            command.append(app)
        super().__init__(
            command, cwd=root, ready_path="/readyz", ready_timeout=ready_timeout
        )
        self.root = root
        self.database_url = database_url or f"sqlite:///{self.work / 'db.sqlite3'}"
        self.env.update(
            {
                **site_env(self.work, self.database_url),
                "MODELHUB_BIND": f"127.0.0.1:{self.port}",
                "MODELHUB_WORKERS": str(workers),
                "PYTHONPATH": str(root),
                **(env or {}),
            }
        )
        self.prepared = prepared
        self.postgres_database = (
            self.database_url.rsplit("/", 1)[1].split("?", 1)[0]
            if self.database_url.startswith(("postgres://", "postgresql://"))
            else None
        )

    def database_cpu(self) -> float:
        if self.postgres_database is None:
            return 0.0
        return postgres_backends_cpu(self.postgres_database)

    def prepare(self) -> None:
        if self.prepared:
            shutil.copytree(self.prepared / "media", self.work / "media")
            if self.database_url.endswith(str(self.work / "db.sqlite3")):
                shutil.copy2(self.prepared / "db.sqlite3", self.work / "db.sqlite3")
        else:
            prepare_site(self.env, self.root)


def wsgi_request(authorization: str | None = None) -> Callable[[], None]:
    """One POST of IRIS_BODY to /api/predict/iris/ through Django's WSGI
    handler in this process (Django set up), closed as a server would;
    raises unless it answers 200."""
    from django.core.handlers.wsgi import WSGIHandler

    app = WSGIHandler()
    body = json.dumps(IRIS_BODY).encode()
    base = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/predict/iris/",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }
    if authorization is not None:
        base["HTTP_AUTHORIZATION"] = authorization

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        if not status.startswith("200"):
            raise RuntimeError(status)

    def request() -> None:
        response = app({**base, "wsgi.input": io.BytesIO(body)}, start_response)
        for _ in response:
            pass
        response.close()  # request_finished, as gunicorn sends it

    return request


def inprocess_rounds(
    runs: list[dict],
    trees: dict[str, tuple[Path, Path]],
    rounds: int,
    blocks: int = 5,
    size: int = 1000,
) -> None:
    """Each checkout's Django stack in a process of its own (bench/wsgi_cpu.py),
    alternated: CPU µs per request, the median of ``blocks`` per round."""
    for number in range(rounds):
        order = list(trees)
        if number % 2:
            order.reverse()
        for name in order:
            root, site = trees[name]
            wait_quiet(max_wait=20)
            done = subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "bench" / "wsgi_cpu.py"),
                    str(root),
                    str(blocks),
                    str(size),
                ],
                cwd=root,
                env=site_env(site),
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            runs.append(
                {
                    "scenario": "in-process",
                    "target": name,
                    "round": number,
                    "cpu_us_per_request": statistics.median(figures),
                    "blocks_us": figures,
                }
            )
            print(
                f"in-process {name:>12} r{number}: "
                + " ".join(f"{f:.1f}" for f in figures)
                + " µs/request",
                flush=True,
            )


def django_child(database_url: str, prefix: str) -> Path:
    """Set Django up in a benchmark's child process against ``database_url``,
    with media, static files and a secret key in a fresh scratch directory
    (returned, for the caller to remove)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="modelhub.settings",
        DJANGO_ALLOWED_HOSTS="testserver,localhost,127.0.0.1",
        MODELHUB_MEDIA_ROOT=str(work / "media"),
        MODELHUB_STATIC_ROOT=str(work / "static"),
        MODELHUB_SECRET_KEY_FILE=str(work / "secret"),
        MODELHUB_LOG_LEVEL="WARNING",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    return work
