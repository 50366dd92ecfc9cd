"""Load scenario: single-row predictions under real gunicorn, measured with wrk.

Run by hand (not a test):

    .venv/bin/python bench/predict_load.py [--duration 10] [--workers 2]

Starts ModelHub on 127.0.0.1 with a throw-away SQLite database and the demo
models, drives POST /api/predict/iris/ with wrk at concurrency 1 and 8, reads
the server's CPU time from /proc, and writes a Markdown + JSON report to
bench/results/. Needs wrk (apt-get install wrk). Traffic stays on 127.0.0.1
and every run stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BODY = {
    "data": {
        "sepal length (cm)": 5.1,
        "sepal width (cm)": 3.5,
        "petal length (cm)": 1.4,
        "petal width (cm)": 0.2,
    }
}
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_tree_cpu(root_pid: int) -> float:
    """utime+stime (seconds) of a process and its live children."""
    pids = [root_pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == root_pid:
                pids.append(int(entry.name))
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def wait_ready(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server did not become ready: {url}")


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
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": to_ms(latency["50"]),
        "p99_ms": to_ms(latency["99"]),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "none",
    }


def to_ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def machine() -> dict:
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
        )
    }
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        **versions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", default="1,8")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="modelhub-bench-"))
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
        "MODELHUB_MEDIA_ROOT": str(work / "media"),
        "MODELHUB_STATIC_ROOT": str(work / "static"),
        "MODELHUB_SECRET_KEY_FILE": str(work / "secret"),
        "MODELHUB_BIND": f"127.0.0.1:{port}",
        "MODELHUB_WORKERS": str(args.workers),
        "MODELHUB_LOG_LEVEL": "WARNING",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    for command in (["migrate", "-v0"], ["loaddemos"]):
        subprocess.run(
            [*manage, *command], env=env, cwd=ROOT, check=True, capture_output=True
        )
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
    )
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "--config", "modelhub/gunicorn.conf.py"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api/predict/iris/"
    runs = []
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", time.monotonic() + 60)
        run_wrk(url, 2, 2, script)  # warm every worker's connection and cache
        for connections in (int(c) for c in args.connections.split(",")):
            before = process_tree_cpu(server.pid)
            result = run_wrk(url, connections, args.duration, script)
            cpu = process_tree_cpu(server.pid) - before
            result["connections"] = connections
            result["server_cpu_ms_per_request"] = round(
                cpu * 1000 / max(result["requests"], 1), 3
            )
            runs.append(result)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    report(runs, args)


def report(runs: list[dict], args: argparse.Namespace) -> None:
    info = machine()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "scenario": "predict-single-row",
        "workers": args.workers,
        "duration_s": args.duration,
        "machine": info,
        "runs": runs,
    }
    (RESULTS / f"predict-{stamp}.json").write_text(json.dumps(payload, indent=2))
    lines = [
        f"# Single-row predictions, demo iris classifier ({stamp} UTC)",
        "",
        f"gunicorn {args.workers} sync workers, wrk on the same machine, "
        f"{args.duration} s per run, every request validated (no request log yet).",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        "| connections | req/s | p50 ms | p99 ms | server CPU ms/req | non-2xx |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['connections']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
        f"{r['p99_ms']:.2f} | {r['server_cpu_ms_per_request']:.3f} | {r['non_2xx']} |"
        for r in runs
    ]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"predict-{stamp}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
