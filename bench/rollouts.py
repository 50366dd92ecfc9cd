"""What rollouts cost a prediction (issue 19), under gunicorn on 127.0.0.1.

Run by hand (not a test; about eight minutes with the defaults, the machine
otherwise idle):

    .venv/bin/python bench/rollouts.py [--baseline REV] [--rounds 4] [--duration 5]

1. **The split decision, no policy set** (the issue's bar: at most 20 µs of
   server CPU per request). Two servers on the same prepared SQLite site,
   2 sync workers each: this checkout and ``--baseline`` (a revision before
   rollouts, default 258bd78, in a temporary git worktree, with this
   virtualenv). wrk, 8 connections, rounds alternated; server CPU per
   request and req/s, paired by round. Alongside, in this process, the
   decision itself timed alone (``traffic.choose`` for a route without a
   policy), which the whole-process figures cannot resolve to a microsecond.
   And (part ``inprocess``) each checkout's whole Django stack in one
   process without sockets (bench/wsgi_cpu.py), CPU per request over blocks
   of 1,000, the two alternated for twice ``--rounds``: far less noise than
   under wrk.
2. **A policy's own cost**, this checkout only, same rounds: the unpinned
   URL with a 20% candidate (a fresh draw per request), with a sticky header
   (a hash per request), and a request through an alias.
3. **A shadow 5x slower than the served model**: a 20-tree random forest on
   iris served, a 100-tree one as its shadow, 2 sync workers; wrk with 1
   connection (a client waiting for each answer) and with 2, rounds
   alternating no shadow / shadow. The issue's bar: the client's p50 rises
   by at most 10%. The shadow runs after the response, so what it costs is
   worker time (the req/s and CPU columns), not the client's latency.
4. (part ``burner``) The 20-tree forest alone and beside a CPU-bound
   process at SCHED_IDLE with nothing of ModelHub in it: what the lowest
   priority leaves of the workers' speed on this machine.

The report goes to bench/results/rollouts-<stamp>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    IRIS_BODY,
    RESULTS,
    ROOT,
    Server,
    inprocess_rounds,
    machine,
    manage,
    paired,
    post_script,
    prepared_template,
    require_wrk,
    stamp,
    wait_quiet,
)

BASELINE = "258bd78"
BAR_DECISION_US = 20.0
BAR_SHADOW_P50 = 1.10


def policy(server: Server, *args: str) -> None:
    manage(ROOT, server.env, "rollout", "iris", *args)


def decision_alone() -> float:
    """µs per traffic.choose() for a route without a policy, in-process."""
    code = (
        "from api.dataplane import traffic\n"
        "from registry.loading import VersionRef\n"
        "from registry.routing import Route\n"
        "ref = VersionRef(1, 'iris', 1, '', '', 'joblib', 'classifier', {}, None)\n"
        "route = Route(ref, 'active')\n"
        "meta = {}\n"
    )
    env_code = (
        f"import os, sys, django\nsys.path.insert(0, {str(ROOT)!r})\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'modelhub.settings')\n"
        "django.setup()\n"
    )
    timer = timeit.Timer("traffic.choose(route, meta)", setup=env_code + code)
    number, _ = timer.autorange()
    best = min(timer.repeat(repeat=5, number=number))
    return best / number * 1e6


def train_forests(directory: Path) -> dict[str, Path]:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    data = load_iris(as_frame=True)
    paths = {}
    for trees in (20, 100):
        model = RandomForestClassifier(trees, random_state=0).fit(
            data.data, data.target
        )
        paths[f"rf{trees}"] = directory / f"rf{trees}.joblib"
        joblib.dump(model, paths[f"rf{trees}"])
    return paths


def run_rounds(
    runs: list[dict],
    scenario: str,
    targets: dict[str, tuple[Server, str, Path, callable | None]],
    rounds: int,
    duration: int,
    connections: int,
) -> None:
    for number in range(rounds):
        order = list(targets)
        if number % 2:
            order.reverse()
        for name in order:
            server, path, script, before = targets[name]
            if before is not None:
                before()
            wait_quiet(max_wait=20)
            result = server.measure(path, connections, duration, script)
            runs.append(
                {"scenario": scenario, "target": name, "round": number, **result}
            )
            print(
                f"{scenario:>10} {name:>12} r{number}: {result['rps']:8.1f} req/s "
                f"p50 {result['p50_ms']:.3f} ms "
                f"cpu {result['server_cpu_ms_per_request']:.3f} ms",
                flush=True,
            )


BURNER = "import numpy as np\na = np.random.rand(200, 200)\nwhile True:\n    a @ a\n"


def idle_burner_rounds(
    runs: list[dict],
    site: Path,
    forests: dict[str, Path],
    scratch_dir: Path,
    args: argparse.Namespace,
) -> None:
    """The served forest with and without a CPU-bound process at SCHED_IDLE
    beside it (nothing of ModelHub in it): what a shadow process at the
    lowest priority costs the workers on this machine before any of its
    own work, through the cores' shared execution units and caches."""
    burner: list[subprocess.Popen] = []

    def start() -> None:
        stop()
        burner.append(
            subprocess.Popen(
                ["chrt", "--idle", "0", sys.executable, "-c", BURNER],
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
        )

    def stop() -> None:
        while burner:
            process = burner.pop()
            process.kill()
            process.wait()

    with Server(prepared=site) as head:
        manage(ROOT, head.env, "loadmodel", str(forests["rf20"]), "--slug", "forest")
        script = post_script(scratch_dir / "burner.lua", {"data": IRIS_BODY["data"]})
        head.warm("/api/predict/forest/", script)
        try:
            for connections in (1, 2):
                run_rounds(
                    runs,
                    f"burner c{connections}",
                    {
                        "alone": (head, "/api/predict/forest/", script, stop),
                        "idle burner": (head, "/api/predict/forest/", script, start),
                    },
                    args.rounds,
                    args.duration,
                    connections,
                )
                stop()
        finally:
            stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument(
        "--parts",
        default="inprocess,decision,policies,shadow,burner",
        help="which parts to run (comma-separated)",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    require_wrk()
    runs: list[dict] = []
    alone = decision_alone()
    print(f"traffic.choose() alone, no policy: {alone:.3f} µs", flush=True)

    with tempfile.TemporaryDirectory(prefix="modelhub-bench-rollouts-") as scratch:
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
            forests = train_forests(scratch_dir)
            base_site = scratch_dir / "base-site"
            if parts & {"decision", "inprocess"}:
                base_site.mkdir()
                from harness import prepare_site, site_env

                prepare_site(site_env(base_site), worktree)
            if "inprocess" in parts:
                inprocess_rounds(
                    runs,
                    {"this": (ROOT, head_site), "baseline": (worktree, base_site)},
                    args.rounds * 2,
                )
            if "decision" in parts:
                with (
                    Server(prepared=head_site) as head,
                    Server(prepared=base_site, root=worktree) as base,
                ):
                    script = head.post_script(IRIS_BODY)
                    for server in (head, base):
                        server.warm("/api/predict/iris/", script)
                    run_rounds(
                        runs,
                        "no policy",
                        {
                            "this": (head, "/api/predict/iris/", script, None),
                            "baseline": (base, "/api/predict/iris/", script, None),
                        },
                        args.rounds,
                        args.duration,
                        8,
                    )
            if "policies" in parts:
                # A policy's own cost: this checkout, iris v1 active, demo v? as
                # candidate: the demo site registers iris once; add a second
                # version (the same file) to split between.
                with Server(prepared=head_site) as head:
                    iris_file = next((head.work / "media").rglob("*.joblib"))
                    manage(
                        ROOT,
                        head.env,
                        "loadmodel",
                        str(iris_file),
                        "--slug",
                        "iris",
                        "--no-activate",
                    )
                    manage(ROOT, head.env, "alias", "iris", "champion", "1")
                    script = head.post_script(IRIS_BODY)
                    sticky = scratch_dir / "sticky.lua"
                    sticky.write_text(
                        script.read_text()
                        + 'wrk.headers["X-Route-Key"] = "caller-42"\n'
                    )
                    head.warm("/api/predict/iris/", script)
                    run_rounds(
                        runs,
                        "policies",
                        {
                            "no policy": (
                                head,
                                "/api/predict/iris/",
                                script,
                                lambda: policy(head, "--end"),
                            ),
                            "split 20%": (
                                head,
                                "/api/predict/iris/",
                                script,
                                lambda: policy(
                                    head,
                                    "--candidate",
                                    "2",
                                    "--weight",
                                    "0.2",
                                    "--no-sticky",
                                ),
                            ),
                            "sticky 20%": (
                                head,
                                "/api/predict/iris/",
                                sticky,
                                lambda: policy(
                                    head,
                                    "--candidate",
                                    "2",
                                    "--weight",
                                    "0.2",
                                    "--sticky",
                                    "X-Route-Key",
                                ),
                            ),
                            "alias": (
                                head,
                                "/api/predict/iris@champion/",
                                script,
                                None,
                            ),
                        },
                        args.rounds,
                        args.duration,
                        8,
                    )
            if "burner" in parts:
                idle_burner_rounds(runs, head_site, forests, scratch_dir, args)
            shadow_rows: list[str] = []
            if "shadow" in parts:
                with Server(prepared=head_site) as head:
                    for slug_version, path in (
                        ("rf20", forests["rf20"]),
                        ("rf100", forests["rf100"]),
                    ):
                        manage(
                            ROOT,
                            head.env,
                            "loadmodel",
                            str(path),
                            "--slug",
                            "forest",
                            *(("--no-activate",) if slug_version == "rf100" else ()),
                        )
                    body = {"data": IRIS_BODY["data"]}
                    script = post_script(scratch_dir / "forest.lua", body)
                    head.warm("/api/predict/forest/", script)
                    for connections in (1, 2):
                        run_rounds(
                            runs,
                            f"shadow c{connections}",
                            {
                                "no shadow": (
                                    head,
                                    "/api/predict/forest/",
                                    script,
                                    lambda: manage(
                                        ROOT, head.env, "rollout", "forest", "--end"
                                    ),
                                ),
                                "shadow 5x": (
                                    head,
                                    "/api/predict/forest/",
                                    script,
                                    lambda: manage(
                                        ROOT,
                                        head.env,
                                        "rollout",
                                        "forest",
                                        "--shadow",
                                        "2",
                                    ),
                                ),
                            },
                            args.rounds,
                            args.duration,
                            connections,
                        )
                    shadow_rows = manage(
                        ROOT,
                        head.env,
                        "shell",
                        "--verbosity",
                        "0",
                        "-c",
                        "from monitoring.models import RequestLog\n"
                        "print(RequestLog.objects.filter(route='shadow').count(), "
                        "RequestLog.objects.filter(slug='forest').exclude(route='shadow').count())",
                    ).split()[-2:]
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)],
                cwd=ROOT,
                capture_output=True,
                timeout=60,
            )
    report(runs, alone, args, shadow_rows)


def report(
    runs: list[dict], alone: float, args: argparse.Namespace, shadow_rows: list[str]
) -> None:
    def diff_us(a: float, b: float) -> float:
        return (a - b) * 1000

    def ratio(a: float, b: float) -> float:
        return a / b

    summary = {
        "decision_alone_us": round(alone, 3),
        "inprocess_cpu_added_us": paired(
            runs,
            "in-process",
            "this",
            "baseline",
            "cpu_us_per_request",
            lambda a, b: a - b,
        ),
        "no_policy_cpu_added_us": paired(
            runs, "no policy", "this", "baseline", "server_cpu_ms_per_request", diff_us
        ),
        "no_policy_rps_ratio": paired(
            runs, "no policy", "this", "baseline", "rps", ratio
        ),
        "split_cpu_added_us": paired(
            runs,
            "policies",
            "split 20%",
            "no policy",
            "server_cpu_ms_per_request",
            diff_us,
        ),
        "sticky_cpu_added_us": paired(
            runs,
            "policies",
            "sticky 20%",
            "no policy",
            "server_cpu_ms_per_request",
            diff_us,
        ),
        "alias_cpu_added_us": paired(
            runs, "policies", "alias", "no policy", "server_cpu_ms_per_request", diff_us
        ),
        "shadow_c1_p50_ratio": paired(
            runs, "shadow c1", "shadow 5x", "no shadow", "p50_ms", ratio
        ),
        "shadow_c2_p50_ratio": paired(
            runs, "shadow c2", "shadow 5x", "no shadow", "p50_ms", ratio
        ),
        "shadow_c1_rps_ratio": paired(
            runs, "shadow c1", "shadow 5x", "no shadow", "rps", ratio
        ),
        "shadow_c2_rps_ratio": paired(
            runs, "shadow c2", "shadow 5x", "no shadow", "rps", ratio
        ),
        "burner_c1_p50_ratio": paired(
            runs, "burner c1", "idle burner", "alone", "p50_ms", ratio
        ),
        "burner_c2_p50_ratio": paired(
            runs, "burner c2", "idle burner", "alone", "p50_ms", ratio
        ),
        "shadow_rows_vs_client_rows": shadow_rows,
    }
    name = f"rollouts-{stamp()}"
    document = {
        "machine": machine(),
        "args": vars(args),
        "summary": summary,
        "runs": runs,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(document, indent=1, default=str))
    lines = [
        f"# Rollouts' cost ({name})",
        "",
        f"`bench/rollouts.py --baseline {args.baseline} --rounds {args.rounds} "
        f"--duration {args.duration}`",
        "",
        "Machine: "
        + ", ".join(
            f"{k} {v}"
            for k, v in document["machine"].items()
            if not isinstance(v, dict)
        ),
        "",
        "| figure | mean (min–max over rounds) | bar |",
        "|---|---|---|",
        f"| traffic.choose() alone, no policy | {alone:.3f} µs | |",
    ]
    bars = {
        "no_policy_cpu_added_us": f"≤ {BAR_DECISION_US:g} µs",
        "inprocess_cpu_added_us": f"≤ {BAR_DECISION_US:g} µs",
        "shadow_c1_p50_ratio": f"≤ {BAR_SHADOW_P50:g}",
        "shadow_c2_p50_ratio": f"≤ {BAR_SHADOW_P50:g}",
    }
    for key, value in summary.items():
        if isinstance(value, dict):
            lines.append(
                f"| {key} | {value['mean']:.3f} "
                f"({value['min']:.3f}–{value['max']:.3f}) | {bars.get(key, '')} |"
            )
    lines += [
        "",
        f"Shadow rows / client rows of the forest: {' / '.join(shadow_rows)}",
        "",
    ]
    lines += [
        "| scenario | target | round | req/s | p50 ms | p99 ms | server CPU ms/req |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        if "rps" not in run:
            continue
        lines.append(
            f"| {run['scenario']} | {run['target']} | {run['round']} | "
            f"{run['rps']:.1f} | {run['p50_ms']:.3f} | {run['p99_ms']:.3f} | "
            f"{run['server_cpu_ms_per_request']:.3f} |"
        )
    inprocess = [run for run in runs if run["scenario"] == "in-process"]
    if inprocess:
        lines += [
            "",
            "| in-process | round | CPU µs/request per block | median |",
            "|---|---|---|---|",
        ]
        for run in inprocess:
            blocks = " ".join(f"{f:.1f}" for f in run["blocks_us"])
            lines.append(
                f"| {run['target']} | {run['round']} | {blocks} | "
                f"{run['cpu_us_per_request']:.1f} |"
            )
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:20]))


if __name__ == "__main__":
    main()
