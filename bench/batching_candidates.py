"""Which concurrency model should adaptive batching use (issue 23, part 2)?

Run by hand (not a test), one load at a time on the machine:

    .venv/bin/python bench/batching_candidates.py [--runs 3] [--duration 5]
        [--only A,D] [--rounds-lock /tmp/modelhub-bench.lock]

Each candidate is the bare app of bench/batching_wsgi.py (the reference
app: orjson -> float array in schema order -> predict -> orjson) under
gunicorn with ModelHub's settings, serving the suite's rf20 (a 100-tree
RandomForest pipeline, 20 features, make_classification seed 0) and the
demo iris model; only the worker model and the way ``predict`` is reached
change (CANDIDATES below). Scenarios: rf20 one row at c1, c8 and c32, iris
one row at c8 predicted in the request's thread (what a model that never
batches pays for the worker model), and, for the batching candidates, iris
through the batcher (what a cheap model pays for batching). wrk to
127.0.0.1, bounded runs; candidates interleaved, --runs rounds, each
candidate's server holding the benchmark lock (flock) while it runs.

Reported per scenario: req/s, p50, p99, server CPU per request (the whole
gunicorn process tree, inference process included, from /proc) and the mean
batch size (rows per model call, from the batchers' counters). The report
goes to bench/results/batching-<stamp>.md and .json.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batching_host import read_counts  # noqa: E402
from harness import (  # noqa: E402
    RESULTS,
    machine,
    post_script,
    require_wrk,
    stamp,
    wait_quiet,
)
from suite import Reference, run_child  # noqa: E402


@dataclass(frozen=True)
class Candidate:
    key: str
    about: str
    workers: int
    threads: int
    mode: str = "inline"  # inline | thread | host (bench/batching_wsgi.py)
    wait_ms: float = 2.0
    max_rows: int = 32

    @property
    def batches(self) -> bool:
        return self.mode != "inline"


CANDIDATES = (
    Candidate("A", "sync x2, no batching (make run today)", 2, 1),
    Candidate("B", "sync x8, no batching", 8, 1),
    Candidate("C", "gthread 2x8, no batching", 2, 8),
    Candidate(
        "D", "gthread 2x8 + a batcher thread per process, wait 2 ms", 2, 8, "thread"
    ),
    Candidate(
        "D0", "gthread 2x8 + batcher thread, no wait (greedy)", 2, 8, "thread", 0
    ),
    Candidate(
        "E", "sync x8 -> one inference process per host, wait 2 ms", 8, 1, "host"
    ),
    Candidate(
        "E0", "sync x8 -> one inference process, no wait (greedy)", 8, 1, "host", 0
    ),
    Candidate(
        "F", "gthread 1x16 + batcher thread, no wait (greedy)", 1, 16, "thread", 0
    ),
)


@dataclass(frozen=True)
class Scenario:
    model: str  # irisb = the iris model through the batcher
    connections: int
    batching_only: bool = False

    @property
    def name(self) -> str:
        label = "iris via batcher" if self.model == "irisb" else self.model
        return f"{label} 1 row c{self.connections}"


SCENARIOS = (
    Scenario("rf20", 1),
    Scenario("rf20", 8),
    Scenario("rf20", 32),
    Scenario("iris", 8),
    Scenario("irisb", 8, batching_only=True),
)


class CandidateServer(Reference):
    """The suite's reference server (ModelHub's gunicorn settings) with the
    candidate's workers, threads and way to the model."""

    name = "batching"

    def __init__(self, candidate: Candidate, models: Path) -> None:
        super().__init__(models, candidate.workers)
        self.command[-1] = "bench/batching_gunicorn.py"
        self.stats = self.work / "stats"
        self.stats.mkdir()
        files = {"iris": "iris", "irisb": "iris", "rf20": "rf20"}
        self.env.update(
            MODELHUB_THREADS=str(candidate.threads),
            MODELHUB_INFLIGHT_DIR=str(self.work / "inflight"),
            BENCH_REFERENCE_MODELS=",".join(
                f"{name}={models / f'{file}.joblib'}" for name, file in files.items()
            ),
            BENCH_BATCH_MODE=candidate.mode,
            BENCH_BATCH_MODELS="rf20,irisb",
            BENCH_BATCH_MAX_ROWS=str(candidate.max_rows),
            BENCH_BATCH_WAIT_MS=str(candidate.wait_ms),
            BENCH_BATCH_SOCKET=str(self.work / "infer.sock"),
            BENCH_BATCH_STATS_DIR=str(self.stats),
        )


@contextlib.contextmanager
def bench_lock(path: str) -> Iterator[float]:
    """The machine's benchmark lock (one load at a time); yields the wait."""
    started = time.monotonic()
    with open(path, "a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield time.monotonic() - started
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def run_candidate(
    candidate: Candidate,
    models: Path,
    bodies: dict[str, Path],
    duration: int,
) -> list[dict]:
    rows = []
    with CandidateServer(candidate, models) as server:
        for model in ("rf20", "iris"):
            server.warm(f"/predict/{model}/", bodies[model])
        if candidate.batches:
            server.warm("/predict/irisb/", bodies["iris"])
        for scenario in SCENARIOS:
            if scenario.batching_only and not candidate.batches:
                continue
            before = read_counts(str(server.stats))
            result = server.measure(
                f"/predict/{scenario.model}/",
                scenario.connections,
                duration,
                bodies["rf20" if scenario.model == "rf20" else "iris"],
            )
            after = read_counts(str(server.stats))
            batches, batched = (
                a - b
                for a, b in zip(
                    after.get(scenario.model, (0, 0)),
                    before.get(scenario.model, (0, 0)),
                    strict=True,
                )
            )
            result.update(
                candidate=candidate.key,
                scenario=scenario.name,
                mean_batch=round(batched / batches, 2) if batches else None,
            )
            rows.append(result)
            print(
                f"  {candidate.key:3} {scenario.name:26} {result['rps']:8.1f} req/s"
                f"  p50 {result['p50_ms']:6.2f}  p99 {result['p99_ms']:6.2f} ms"
                f"  cpu {result['server_cpu_ms_per_request']:.3f} ms/req"
                f"  batch {result['mean_batch']}"
                f"  errors {result['non_2xx'] + result['socket_errors_total']}",
                flush=True,
            )
    return rows


@dataclass
class Summary:
    rps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    batch: list[float] = field(default_factory=list)
    errors: int = 0


def summarise(rows: list[dict]) -> dict[tuple[str, str], Summary]:
    table: dict[tuple[str, str], Summary] = {}
    for row in rows:
        summary = table.setdefault((row["scenario"], row["candidate"]), Summary())
        summary.rps.append(row["rps"])
        summary.p50.append(row["p50_ms"])
        summary.p99.append(row["p99_ms"])
        summary.cpu.append(row["server_cpu_ms_per_request"])
        if row["mean_batch"] is not None:
            summary.batch.append(row["mean_batch"])
        summary.errors += row["non_2xx"] + row["socket_errors_total"]
    return table


def report(rows: list[dict], about: dict, candidates: tuple[Candidate, ...]) -> str:
    lines = [
        "# Batching candidates",
        "",
        "Made by bench/batching_candidates.py. Machine: "
        + ", ".join(f"{k} {v}" for k, v in about.items()),
        "",
        "Medians of the runs (req/s: mean, with min-max); CPU = server CPU ms "
        "per request; batch = mean rows per model call.",
        "",
    ]
    for key, candidate in ((c.key, c) for c in candidates):
        lines.append(f"- **{key}**: {candidate.about}")
    table = summarise(rows)
    for scenario in SCENARIOS:
        lines += [
            "",
            f"## {scenario.name}",
            "",
            "| candidate | req/s | p50 ms | p99 ms | CPU ms/req | batch | errors |",
            "|---|---|---|---|---|---|---|",
        ]
        for candidate in candidates:
            s = table.get((scenario.name, candidate.key))
            if s is None:
                continue
            batch = f"{statistics.median(s.batch):.2f}" if s.batch else "-"
            lines.append(
                f"| {candidate.key} | {statistics.mean(s.rps):.0f} "
                f"({min(s.rps):.0f}-{max(s.rps):.0f}) "
                f"| {statistics.median(s.p50):.2f} | {statistics.median(s.p99):.2f} "
                f"| {statistics.median(s.cpu):.3f} | {batch} | {s.errors} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--only", default="", help="candidate keys, e.g. A,D")
    parser.add_argument("--lock", default="/tmp/modelhub-bench.lock")
    args = parser.parse_args()
    require_wrk()
    keys = set(filter(None, args.only.split(",")))
    candidates = tuple(c for c in CANDIDATES if not keys or c.key in keys)
    with tempfile.TemporaryDirectory(prefix="modelhub-batching-") as scratch:
        # the suite's own models (rf20, the demo iris), trained by its child
        site = run_child("site", Path(scratch) / "site", Path(scratch) / "models")
        models = Path(scratch) / "models"
        bodies = {
            name: post_script(models / f"{name}.lua", {"dataframe_records": [rows[0]]})
            for name, rows in site["sample"].items()
        }
        rows: list[dict] = []
        for run in range(args.runs):
            # rotate the order so no candidate always runs first or last
            turn = run % len(candidates)
            order = candidates[turn:] + candidates[:turn]
            for candidate in order:
                with bench_lock(args.lock) as waited:
                    busy = wait_quiet(max_wait=10)
                    print(
                        f"run {run + 1} {candidate.key}: lock wait {waited:.0f} s,"
                        f" machine busy {busy}",
                        flush=True,
                    )
                    for row in run_candidate(candidate, models, bodies, args.duration):
                        rows.append({**row, "run": run + 1, "busy_before": busy})
    about = machine({"duration_s": args.duration, "runs": args.runs})
    RESULTS.mkdir(exist_ok=True)
    name = RESULTS / f"batching-{stamp()}"
    name.with_suffix(".json").write_text(json.dumps({"machine": about, "rows": rows}))
    text = report(rows, about, candidates)
    name.with_suffix(".md").write_text(text)
    print(text)
    print(f"written {name}.md and .json")


if __name__ == "__main__":
    main()
