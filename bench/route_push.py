"""Pushing registry changes to workers: PostgreSQL NOTIFY against Redis pub/sub.

Run by hand (not a test):

    .venv/bin/python bench/route_push.py [--commits 200] [--listeners 4]
        [--storm 1000] [--redis 127.0.0.1:6379]

On a scratch PostgreSQL database (created and dropped here) and the Redis at
--redis, with --listeners listening processes (as many workers), each on a
connection of its own:

1. latency: --commits small transactions of each kind, alternating, one at
   a time 5 ms apart, each an UPDATE and, for NOTIFY, ``pg_notify()`` in the
   transaction; for Redis a PUBLISH after the commit returned (Redis cannot
   be in the transaction). For NOTIFY the writer then waits for its own
   listening session to have it, as ModelHub's do, and the report says how
   far behind that the last of the other listeners was.
   For each, the time from the commit's return to the last listener's
   receipt (can be negative: a NOTIFY may arrive before COMMIT's answer).
   Also what the notice adds to the writer: its commit, its PUBLISH;
2. a storm: --storm such transactions back to back, how long the writer
   took and when the last listener had the last message (did they keep up);
3. per request, in a Django child on the same database: ModelHub's check of
   its generation (registry.notices: a lock, one poll(2) of the listening
   socket, an int), the same check on a Redis subscriber's socket, and the
   route query it replaces (registry.routing, warm).

Writes Markdown + JSON to bench/results/route-push-<stamp>.*. Traffic stays
on 127.0.0.1; every run is bounded and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    RESULTS,
    django_child,
    machine,
    postgres_version,
    scratch_postgres,
    stamp,
)

CHANNEL = "modelhub_bench_push"
LISTEN_TIMEOUT = 120.0


# --- Redis, the few commands needed (RESP over a socket) ------------------------


def resp(*args: str | bytes) -> bytes:
    parts = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(
        b"$%d\r\n%s\r\n" % (len(p), p) for p in parts
    )


def read_reply(reader) -> object:  # noqa: ANN001 - a socket's binary file
    line = reader.readline()
    kind, rest = line[:1], line[1:-2]
    if kind in (b"+", b"-"):
        return rest.decode()
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else reader.read(size + 2)[:-2]
    if kind == b"*":
        return [read_reply(reader) for _ in range(int(rest))]
    raise ConnectionError(f"unexpected reply {line!r}")


def redis_connect(address: str) -> tuple[socket.socket, object]:
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, sock.makefile("rb")


def redis_version(address: str) -> str:
    sock, reader = redis_connect(address)
    with sock:
        sock.sendall(resp("INFO", "server"))
        info = read_reply(reader).decode()
    return next(
        line.split(":", 1)[1].strip()
        for line in info.splitlines()
        if line.startswith("redis_version:")
    )


# --- a listening process ---------------------------------------------------------


def listen(kind: str, where: str, count: int) -> None:
    """Child: print "ready", then, after ``count`` messages (or the timeout),
    the monotonic receipt time of each payload as JSON."""
    received: dict[str, float] = {}
    deadline = time.monotonic() + LISTEN_TIMEOUT
    if kind == "notify":
        import psycopg

        conn = psycopg.connect(where, autocommit=True)
        conn.execute(f"LISTEN {CHANNEL}")
        print("ready", flush=True)
        while len(received) < count and time.monotonic() < deadline:
            for notice in conn.notifies(timeout=1.0):
                received[notice.payload] = time.monotonic()
                if len(received) >= count:
                    break
    else:
        sock, reader = redis_connect(where)
        sock.sendall(resp("SUBSCRIBE", CHANNEL))
        read_reply(reader)  # the subscription's confirmation
        print("ready", flush=True)
        sock.settimeout(LISTEN_TIMEOUT)
        try:
            while len(received) < count:
                message = read_reply(reader)
                received[message[2].decode()] = time.monotonic()
        except OSError:
            pass  # timed out: what arrived is reported
    print(json.dumps(received), flush=True)


def start_listeners(kind: str, where: str, count: int, n: int) -> list:
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--listen", kind, where, str(count)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    return children


def collect(children: list) -> list[dict[str, float]]:
    results = []
    for child in children:
        out, _ = child.communicate(timeout=LISTEN_TIMEOUT + 30)
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


# --- the writer ------------------------------------------------------------------


def commits(
    url: str, redis: str, labels: list[tuple[str, str]], pause: float
) -> dict[str, dict[str, float]]:
    """One transaction per (kind, label); the writer's clock around each.
    With a pause (the latency runs), the writer then waits for its own
    listening session to have the notice, as ModelHub's writers do."""
    import psycopg

    conn = psycopg.connect(url)
    own = psycopg.connect(url, autocommit=True)
    own.execute(f"LISTEN {CHANNEL}")
    sock, reader = redis_connect(redis)
    times: dict[str, dict[str, float]] = {}
    for kind, label in labels:
        start = time.monotonic()
        with conn.transaction():
            conn.execute("UPDATE route SET n = n + 1 WHERE id = 1")
            if kind == "notify":
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, label))
        committed = time.monotonic()
        if kind == "redis":
            sock.sendall(resp("PUBLISH", CHANNEL, label))
            read_reply(reader)
        times[label] = {
            "start": start,
            "committed": committed,
            "sent": time.monotonic(),
        }
        if pause and kind == "notify":
            for notice in own.notifies(timeout=5):
                if notice.payload == label:
                    times[label]["own"] = time.monotonic()
                    break
        if pause:
            time.sleep(pause)
    own.close()
    conn.close()
    sock.close()
    return times


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p95": round(ordered[int(len(ordered) * 0.95) - 1], 3),
        "max": round(ordered[-1], 3),
    }


def latency(url: str, redis: str, args: argparse.Namespace) -> dict:
    """Both kinds in one run, commits alternating, so that both meet the
    same machine."""
    kinds = {"notify": url, "redis": redis}
    labels = [(kind, f"{kind}-{i}") for i in range(args.commits) for kind in kinds]
    children = {
        kind: start_listeners(kind, where, args.commits, args.listeners)
        for kind, where in kinds.items()
    }
    times = commits(url, redis, labels, pause=0.005)
    results = {}
    for kind in kinds:
        received = collect(children[kind])
        mine = [label for k, label in labels if k == kind]
        to_all = [
            (max(r[label] for r in received) - times[label]["committed"]) * 1000
            for label in mine
            if all(label in r for r in received)
        ]
        results[kind] = {
            "delivered_to_all": len(to_all),
            "last_listener_after_writers_own_ms": percentiles(
                [
                    (max(r[label] for r in received) - times[label]["own"]) * 1000
                    for label in mine
                    if "own" in times[label] and all(label in r for r in received)
                ]
            )
            if kind == "notify"
            else None,
            "commit_return_to_all_listeners_ms": percentiles(to_all),
            "writer_commit_ms": percentiles(
                [(times[x]["committed"] - times[x]["start"]) * 1000 for x in mine]
            ),
            "writer_publish_ms": percentiles(
                [(times[x]["sent"] - times[x]["committed"]) * 1000 for x in mine]
            ),
        }
    return results


def storm(kind: str, url: str, redis: str, args: argparse.Namespace) -> dict:
    labels = [(kind, f"{kind}-storm-{i}") for i in range(args.storm)]
    where = url if kind == "notify" else redis
    children = start_listeners(kind, where, len(labels), args.listeners)
    times = commits(url, redis, labels, pause=0)
    received = collect(children)
    first, last = times[labels[0][1]]["start"], times[labels[-1][1]]["sent"]
    everyone = [max(r.values()) for r in received if len(r) == len(labels)]
    return {
        "messages": len(labels),
        "writer_s": round(last - first, 3),
        "listeners_complete": len(everyone),
        "last_listener_behind_writer_ms": round((max(everyone) - last) * 1000, 2)
        if everyone
        else None,
    }


# --- per request, in a Django child ---------------------------------------------


def per_request(url: str, redis: str) -> None:
    """Child: µs per call of each check, as JSON."""
    import timeit

    work = django_child(url, "modelhub-route-push-")
    os.environ["MODELHUB_ROUTE_LISTEN"] = "1"
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from registry import actions, notices, routing

    actions.create_model(slug="iris")
    while notices.generation() is None:
        time.sleep(0.01)
    sock, _ = redis_connect(redis)
    sock.sendall(resp("SUBSCRIBE", CHANNEL))
    time.sleep(0.1)
    sock.recv(4096)
    lock = threading.RLock()
    counter = [1]

    def redis_check() -> int | None:
        with lock:
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            return None if poller.poll(0) else counter[0]

    statement = routing._active_statement()
    connection.ensure_connection()

    def route_query() -> None:
        routing._fetch_one(statement, "iris")

    figures = {}
    for name, fn, number in (
        ("notify_generation_check_us", notices.generation, 100_000),
        ("redis_generation_check_us", redis_check, 100_000),
        ("route_query_us", route_query, 5_000),
    ):
        best = min(timeit.repeat(fn, number=number, repeat=5))
        figures[name] = round(best / number * 1e6, 2)
    notices.stop()
    connection.close()
    sock.close()
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures), flush=True)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--listen":
        listen(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--per-request":
        per_request(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--listeners", type=int, default=4)
    parser.add_argument("--storm", type=int, default=1000)
    parser.add_argument("--redis", default="127.0.0.1:6379")
    args = parser.parse_args()
    import psycopg

    info = machine(
        {"postgresql": postgres_version(), "redis": redis_version(args.redis)}
    )
    with scratch_postgres(f"modelhub_bench_push_{os.getpid()}") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE route (id int PRIMARY KEY, n int)")
            conn.execute("INSERT INTO route VALUES (1, 0)")
        paired = latency(url, args.redis, args)
        results = {
            kind: {"latency": paired[kind], "storm": storm(kind, url, args.redis, args)}
            for kind in ("notify", "redis")
        }
        with scratch_postgres(f"modelhub_bench_push_app_{os.getpid()}") as app_url:
            child = subprocess.run(
                [sys.executable, __file__, "--per-request", app_url, args.redis],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if child.returncode:
                raise SystemExit(child.stderr)
            results["per_request"] = json.loads(child.stdout.strip().splitlines()[-1])
    report(results, info, args)


def report(results: dict, info: dict, args: argparse.Namespace) -> None:
    when = stamp()
    payload = {"scenario": "route-push", "args": vars(args), "machine": info}
    payload |= results
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"route-push-{when}.json").write_text(json.dumps(payload, indent=2))
    lines = [
        f"# Route push: NOTIFY against Redis pub/sub ({when} UTC)",
        "",
        f"{args.listeners} listening processes per kind, {args.commits} commits "
        f"of each kind, alternating, 5 ms apart; a storm of {args.storm} per kind.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        "| | commit → all listeners p50 / p95 / max ms | writer commit p50 ms "
        "| PUBLISH p50 ms | storm: writer s | storm: last listener behind ms |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("notify", "redis"):
        lat, st = results[kind]["latency"], results[kind]["storm"]
        c = lat["commit_return_to_all_listeners_ms"]
        lines.append(
            f"| {kind} | {c['p50']} / {c['p95']} / {c['max']} "
            f"| {lat['writer_commit_ms']['p50']} | {lat['writer_publish_ms']['p50']} "
            f"| {st['writer_s']} | {st['last_listener_behind_writer_ms']} |"
        )
    lag = results["notify"]["latency"]["last_listener_after_writers_own_ms"]
    lines += [
        "",
        "NOTIFY, the last listener after the writer's own listening session "
        f"had it (ms): p50 {lag['p50']}, p95 {lag['p95']}, max {lag['max']}",
    ]
    per = results["per_request"]
    lines += [
        "",
        "Per request (µs, best of 5): "
        + ", ".join(f"{k.removesuffix('_us')} {v}" for k, v in per.items()),
    ]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"route-push-{when}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
