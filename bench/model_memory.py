"""Memory of 4 gunicorn workers serving one big model, sharing off and on.

Run by hand, one load at a time:

    flock /tmp/modelhub-bench.lock .venv/bin/python bench/model_memory.py

For a ~200 MB forest (extremely randomized trees: the same Tree structure
as a random forest's, trained in a fraction of the time) and a
HistGradientBoosting model, starts ModelHub under gunicorn with 4 workers
three times: sharing off (MODELHUB_MODEL_MMAP=0, MODELHUB_SHARE_MODELS=0),
mapped files only (MODELHUB_MODEL_MMAP=1) and on (both 1, the defaults).
Each is compared with the same site serving a tiny model of the same kind.
Reports the workers' (and the master's) RSS, PSS and private memory from
/proc/<pid>/smaps_rollup after a few predictions, the time from start to
every worker serving, the load time of one version in a process (unmapped,
mapped with a new copy, mapped from the existing copy) and the predict time
of one row (timeit) for the unmapped and the mapped estimator.
Writes bench/results/model-memory-<stamp>.md. All traffic stays
on 127.0.0.1; every process started is stopped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    RESULTS,
    ROOT,
    Service,
    free_port,
    machine,
    manage,
    site_env,
    stamp,
)

MB = 1024 * 1024
WORKERS = 4
SERVED, BASELINE = "served", "baseline"
MODES = {
    "off": {"MODELHUB_MODEL_MMAP": "0", "MODELHUB_SHARE_MODELS": "0"},
    "mmap only": {"MODELHUB_MODEL_MMAP": "1", "MODELHUB_SHARE_MODELS": "0"},
    "on": {"MODELHUB_MODEL_MMAP": "1", "MODELHUB_SHARE_MODELS": "1"},
}

_IN_PROCESS = """
import json, sys, time, timeit
import django
django.setup()
import numpy as np
import joblib, sklearn.ensemble, sklearn.tree  # imported before any timing
from django.conf import settings
from registry import loading
from registry.routing import resolve
ref = resolve(sys.argv[1])
row = np.zeros((1, int(sys.argv[2])))
out, models = {}, {}
for name, mapped in (("unmapped", False), ("mapped, new copy", True),
                     ("mapped, copy exists", True)):
    settings.MODELHUB_MODEL_MMAP = mapped
    started = time.perf_counter()
    models[name] = loading.load(ref).estimator
    out[name] = {"load_s": time.perf_counter() - started, "predict_ms": 1e9}
    models[name].predict(row)
# Rounds taking turns, best of each: a busy neighbour slows every model alike.
for _ in range(9):
    for name, model in models.items():
        ms = timeit.timeit(lambda: model.predict(row), number=50) / 50 * 1000
        out[name]["predict_ms"] = min(out[name]["predict_ms"], ms)
print(json.dumps(out))
"""


def train(directory: Path, forest_trees: int) -> dict[str, tuple[Path, int, int, Path]]:
    """(file, bytes of the model's big arrays, features, file of a tiny model
    of the same kind) per model."""
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier

    x, y = make_classification(
        n_samples=40_000, n_features=20, flip_y=0.3, random_state=0
    )
    forest = ExtraTreesClassifier(n_estimators=forest_trees, random_state=0).fit(x, y)
    forest_bytes = sum(
        t.tree_.__getstate__()["nodes"].nbytes + t.tree_.__getstate__()["values"].nbytes
        for t in forest.estimators_
    )
    xb, yb = make_classification(
        n_samples=20_000, n_features=20, n_informative=10, n_classes=5, random_state=0
    )
    boosted = HistGradientBoostingClassifier(
        max_iter=200, max_leaf_nodes=255, early_stopping=False, random_state=0
    ).fit(xb, yb)
    boosted_bytes = sum(p.nodes.nbytes for it in boosted._predictors for p in it)
    tiny = {
        "forest": ExtraTreesClassifier(n_estimators=1, max_depth=2).fit(x, y),
        "hgb": HistGradientBoostingClassifier(max_iter=1, max_leaf_nodes=3).fit(xb, yb),
    }
    out = {}
    for name, model, size in (
        ("forest", forest, forest_bytes),
        ("hgb", boosted, boosted_bytes),
    ):
        path = directory / f"{name}.joblib"
        joblib.dump(model, path)
        small = directory / f"{name}-tiny.joblib"
        joblib.dump(tiny[name], small)
        out[name] = (path, size, 20, small)
    return out


def smaps(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) * 1024
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "private": fields["Private_Clean"] + fields["Private_Dirty"],
        "shared": fields["Shared_Clean"] + fields["Shared_Dirty"],
    }


def serve(env: dict[str, str], slug: str, features: int, log: Path) -> dict:
    """Starts gunicorn, waits for every worker, predicts, reads memory."""
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "--config",
        "modelhub/gunicorn.conf.py",
    ]
    port = free_port()
    env = {**env, "MODELHUB_BIND": f"127.0.0.1:{port}", "MODELHUB_WORKERS": "4"}
    started = time.perf_counter()
    service = Service(
        command, port=port, env=env, ready_path="/healthz", ready_timeout=600, log=log
    )
    with service:
        deadline = time.monotonic() + 600
        while log.read_text(errors="replace").count("Booting worker") < WORKERS:
            if time.monotonic() > deadline:
                raise SystemExit(f"workers did not boot:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        body = json.dumps({"inputs": [[0.0] * features]}).encode()
        for _ in range(WORKERS * 8):
            request = urllib.request.Request(
                f"{service.base}/api/predict/{slug}/",
                data=body,
                headers={"Content-Type": "application/json", "Connection": "close"},
            )
            with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
                assert answer.status == 200
        ready = time.perf_counter() - started
        return {
            "ready_s": ready,
            "workers": {pid: smaps(pid) for pid in service.worker_pids()},
            "master": smaps(service.process.pid),
        }


def total(memory: dict, key: str, *, master: bool) -> float:
    value = sum(m[key] for m in memory["workers"].values())
    return (value + (memory["master"][key] if master else 0)) / MB


def report(results: dict, sizes: dict, info: dict) -> str:
    lines = [
        f"# Model memory, {info['stamp']}",
        "",
        f"Machine: {info['machine']['cpu']}, {info['machine']['cores']} cores; "
        f"Python {info['machine']['python']}, scikit-learn "
        f"{info['machine']['scikit-learn']}, numpy {info['machine']['numpy']}, "
        f"gunicorn {info['machine']['gunicorn']}, kernel "
        f"{info['machine']['kernel']}; commit {info['machine']['commit']}.",
        "",
        f"{WORKERS} gunicorn workers, one model each run; memory read from "
        "/proc/<pid>/smaps_rollup after "
        f"{WORKERS * 8} predictions. 'one copy' = the bytes of the model's big "
        "arrays (tree nodes and values; HGB predictor nodes).",
        "",
        "| model | sharing | workers' RSS MB | workers' PSS MB | workers + master "
        "PSS MB | same, tiny model | the model's PSS ÷ one copy | workers' private MB "
        "| start to serving s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_mode in results["served"].items():
        copy = sizes[name] / MB
        for mode, memory in by_mode.items():
            pss_all = total(memory, "pss", master=True)
            empty = total(results["baseline"][name][mode], "pss", master=True)
            lines.append(
                f"| {name} ({copy:.0f} MB) | {mode} "
                f"| {total(memory, 'rss', master=False):.0f} "
                f"| {total(memory, 'pss', master=False):.0f} "
                f"| {pss_all:.0f} | {empty:.0f} | {(pss_all - empty) / copy:.2f} "
                f"| {total(memory, 'private', master=False):.0f} "
                f"| {memory['ready_s']:.1f} |"
            )
    lines += [
        "",
        "RSS counts a shared page once in every process that maps it; PSS "
        "divides it among them, so the sum of PSS is what the host spends. "
        "'same, tiny model': the same site and settings serving a tiny model of "
        "the same kind (a 1-tree forest, a 1-iteration HGB: the same libraries "
        "imported) before the big one was activated; the model's PSS is the "
        "difference.",
        "",
        "## Load and predict, in one process",
        "",
        "| model | load | load s | predict 1 row ms (best of 9 rounds × 50) |",
        "|---|---|---|---|",
    ]
    for name, timings in results["in_process"].items():
        for how, figures in timings.items():
            lines.append(
                f"| {name} | {how} | {figures['load_s']:.2f} "
                f"| {figures['predict_ms']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forest-trees", type=int, default=80)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelhub-bench-memory-"))
    try:
        models = train(work, args.forest_trees)
        sizes = {name: size for name, (_, size, _, _) in models.items()}
        results: dict = {SERVED: {}, BASELINE: {}, "in_process": {}}
        for name, (path, _, features, tiny) in models.items():
            site = work / name
            (site / "static").mkdir(parents=True)
            env = {
                **site_env(site),
                "MODELHUB_MAX_MODEL_BYTES": str(1024 * MB),
                "MODELHUB_PREFLIGHT_TIMEOUT": "600",
                "MODELHUB_MODEL_COPY_DIR": str(site / "copies"),
                "MODELHUB_LOG_LEVEL": "INFO",
                "DJANGO_SETTINGS_MODULE": "modelhub.settings",
                "OMP_NUM_THREADS": "1",
            }
            manage(ROOT, env, "migrate", "-v0")
            # The tiny model first, then the big one as its next version.
            for key, file, suffix in ((BASELINE, tiny, "-tiny"), (SERVED, path, "")):
                manage(ROOT, env, "loadmodel", str(file), "--slug", name)
                results[key][name] = {}
                for mode, overrides in MODES.items():
                    shutil.rmtree(site / "copies", ignore_errors=True)
                    results[key][name][mode] = serve(
                        {**env, **overrides},
                        name,
                        features,
                        site / f"{mode.replace(' ', '-')}{suffix}.log",
                    )
            shutil.rmtree(site / "copies", ignore_errors=True)
            timed = subprocess.run(
                [sys.executable, "-c", _IN_PROCESS, name, str(features)],
                cwd=ROOT,
                env={**env, "MODELHUB_LOG_LEVEL": "WARNING"},
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            results["in_process"][name] = json.loads(timed.stdout.splitlines()[-1])
        when = stamp()
        info = {"stamp": when, "machine": machine()}
        RESULTS.mkdir(exist_ok=True)
        target = RESULTS / f"model-memory-{when}.md"
        target.write_text(report(results, sizes, info))
        (RESULTS / f"model-memory-{when}.json").write_text(
            json.dumps({"info": info, "sizes": sizes, **results}, indent=1)
        )
        print(target.read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
