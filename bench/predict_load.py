"""Load scenario: single-row predictions under real gunicorn, measured with wrk.

Run by hand (not a test):

    .venv/bin/python bench/predict_load.py [--duration 10] [--workers 2]

Starts ModelHub on 127.0.0.1 with a throw-away SQLite database and the demo
models, drives POST /api/predict/iris/ with wrk at concurrency 1 and 8, reads
the server's CPU time from /proc, and writes a Markdown + JSON report to
bench/results/. The request log runs in its configured mode
(MODELHUB_LOG_MODE, default after_response); bench/logging_cost.py compares
the modes. Needs wrk (apt-get install wrk). Traffic stays on 127.0.0.1 and
every run stops by itself. Helpers live in bench/harness.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import RESULTS, Server, machine, require_wrk, stamp  # noqa: E402

PATH = "/api/predict/iris/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", default="1,8")
    args = parser.parse_args()
    require_wrk()

    runs = []
    with Server(workers=args.workers) as server:
        server.warm(PATH)
        for connections in (int(c) for c in args.connections.split(",")):
            runs.append(server.measure(PATH, connections, args.duration))
    report(runs, args)


def report(runs: list[dict], args: argparse.Namespace) -> None:
    info = machine()
    when = stamp()
    log_mode = os.environ.get("MODELHUB_LOG_MODE", "after_response")
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "scenario": "predict-single-row",
        "workers": args.workers,
        "duration_s": args.duration,
        "log_mode": log_mode,
        "machine": info,
        "runs": runs,
    }
    (RESULTS / f"predict-{when}.json").write_text(json.dumps(payload, indent=2))
    lines = [
        f"# Single-row predictions, demo iris classifier ({when} UTC)",
        "",
        f"gunicorn {args.workers} sync workers, wrk on the same machine, "
        f"{args.duration} s per run, every request validated, "
        f"request log mode {log_mode} (SQLite).",
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
    (RESULTS / f"predict-{when}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
