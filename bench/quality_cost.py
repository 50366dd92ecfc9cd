"""What model-quality monitoring adds to a prediction (issue 20): keeping
what each request was answered and counting its rows into the drift bins.

Run by hand (not a test; about five minutes, the machine otherwise idle):

    .venv/bin/python bench/quality_cost.py [--baseline REV] [--rounds 6]

Each checkout's whole Django stack in one process without sockets
(bench/wsgi_cpu.py: the iris single-row POST through the middleware, the
view and the log writer's thread), CPU per request over blocks of 1,000,
this checkout and ``--baseline`` (the last commit before issue 20, in a
temporary git worktree with this virtualenv) alternated. The process's CPU
includes the writer's thread, where the drift counts are binned and added
about once a second. The warm-up (3 s) predicts past the 1,000 rows of the
drift baseline, so the blocks measure the steady state: every row binned.

The issue's bar: at most 0.05 ms (50 µs) of server CPU added per request.
The report goes to bench/results/quality-<stamp>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    RESULTS,
    ROOT,
    inprocess_rounds,
    machine,
    paired,
    prepare_site,
    prepared_template,
    site_env,
    stamp,
)

BASELINE = "1f42bda"  # the last commit of issue 19
BAR_US = 50.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--blocks", type=int, default=5)
    args = parser.parse_args()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="modelhub-bench-quality-") as scratch:
        scratch_dir = Path(scratch)
        worktree = scratch_dir / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(worktree), args.baseline],
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=60,
        )
        try:
            head_site = prepared_template(scratch_dir / "head-site")
            base_site = scratch_dir / "base-site"
            base_site.mkdir()
            prepare_site(site_env(base_site), worktree)
            inprocess_rounds(
                runs,
                {"this": (ROOT, head_site), "baseline": (worktree, base_site)},
                args.rounds,
                blocks=args.blocks,
            )
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)],
                cwd=ROOT,
                capture_output=True,
                timeout=60,
            )
    report(runs, args)


def report(runs: list[dict], args: argparse.Namespace) -> None:
    # A block now and then costs ~20% more in either checkout (the host's
    # other tenants): each round's fastest block is its figure, and the bar
    # is read on the median of the paired differences.
    for run in runs:
        run["best_block_us"] = min(run["blocks_us"])
    added = paired(
        runs, "in-process", "this", "baseline", "best_block_us", lambda a, b: a - b
    )
    differences = sorted(
        this["best_block_us"] - base["best_block_us"]
        for this in runs
        for base in runs
        if this["target"] == "this"
        and base["target"] == "baseline"
        and this["round"] == base["round"]
    )
    added["median"] = round(statistics.median(differences), 3)
    when = stamp()
    info = machine()
    payload = {
        "scenario": "quality-cost",
        "baseline": args.baseline,
        "bar_us": BAR_US,
        "added_us": added,
        "machine": info,
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"quality-{when}.json").write_text(json.dumps(payload, indent=2))
    by_target: dict[str, list[float]] = {}
    for run in runs:
        by_target.setdefault(run["target"], []).append(run["best_block_us"])
    lines = [
        f"# What quality monitoring adds to a prediction ({when} UTC)",
        "",
        "Iris, one row, POST /api/predict/iris/ through Django's WSGI handler in "
        "one process (bench/wsgi_cpu.py), CPU µs per request (every thread), "
        f"the fastest of {args.blocks} blocks of 1,000 per round, {args.rounds} "
        f"rounds, this checkout and {args.baseline} alternated.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        "| checkout | µs per request, by round |",
        "|---|---|",
        *(
            f"| {name} | {' · '.join(f'{v:.1f}' for v in values)} |"
            for name, values in by_target.items()
        ),
        "",
        f"Added per request (this − baseline, paired by round): median "
        f"**{added['median']:.1f} µs**, mean {added['mean']:.1f} (range "
        f"{added['min']:.1f} to {added['max']:.1f}); bar ≤ {BAR_US:g} µs "
        + ("✅" if added["median"] <= BAR_US else "❌"),
        "",
    ]
    text = "\n".join(lines)
    (RESULTS / f"quality-{when}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
