"""The benchmark suite: ModelHub against its floor (and MLflow, MLServer).

Run by hand (not a test):

    .venv/bin/python bench/suite.py [--duration 10] [--runs 3] [--quick]
        [--no-compare] [--workers 2] [--quiet-wait 5] [--baseline REV]
        [--database sqlite,postgres] [--servers NAMES] [--scenarios KEYS]

In one invocation, side by side so the ratios hold on a noisy machine:

1. in process (bench/inprocess.py, a child with Django set up in the
   checkout measured): ``model.predict`` for 1 and 1,000 rows (the floor),
   and decode + predict + encode through ModelHub's own code against a bare
   handler (json.loads -> float array in schema order -> predict ->
   json.dumps), timeit, for the demo iris LogisticRegression (4 features),
   a 100-tree random-forest pipeline and a 200-iteration
   HistGradientBoostingClassifier (20 features each);
2. under load (wrk, 127.0.0.1, bounded runs): the reference WSGI app
   (bench/reference_wsgi.py, ModelHub's gunicorn settings: the floor of this
   stack), ModelHub with the request log on (after_response) and off, over
   V2, on PostgreSQL (--database postgres: a scratch database, created and
   dropped here), with adaptive batching (only when the checkout's loadmodel
   has it), and, unless --no-compare, MLflow's scoring server and Seldon
   MLServer's sklearn runtime with and without its adaptive batching, each
   installed on demand into its own environment under bench/.envs/ (never a
   project dependency). Single-row requests for every model at concurrency
   1 and 8, one 1,000-row request at concurrency 1 (iris, boosted model);
   every server serves the same model files. Runs are interleaved
   (A B C … A B C …) --runs times, wait_quiet() before each; issue 23's
   targets are read off the runs (bench/targets.py);
3. memory: RSS of a ModelHub worker with 1, 10 and 50 distinct models
   cached, with MODELHUB_MODEL_CACHE_SIZE=16 (the bound) and 64.

--baseline REV: the same for ModelHub at REV too (a git worktree under
bench/.envs/, see bench/baseline.py; its own site, this virtualenv): each
ModelHub server gets a twin named <name>@base, run just before or after it,
the in-process children take turns, and the report adds after ÷ before per
scenario with the noise (the spread between runs of one server).

--quick: 2-second runs, 1 run, SQLite only, no comparisons (a smoke check).
--servers / --scenarios: only those servers and scenarios under load (the
in-process and memory blocks still run), e.g. ModelHub on PostgreSQL at c8
before and after a change:
``--baseline REV --database postgres --servers modelhub-pg --scenarios
'iris 1 row c8' --no-compare``.
The report goes to bench/results/suite-<stamp>.md and .json; bench/README.md
explains the rows and ratios. Helpers live in bench/harness.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import targets as issue_targets  # noqa: E402
from baseline import ENVS, baseline_checkout, head_info  # noqa: E402
from harness import (  # noqa: E402
    RESULTS,
    ROOT,
    Server,
    Service,
    free_port,
    machine,
    manage,
    paired,
    post_script,
    postgres_unreachable,
    postgres_version,
    registered_site,
    require_wrk,
    rss_kb,
    scratch_postgres,
    site_env,
    spread,
    stamp,
    wait_quiet,
)

BENCH = ROOT / "bench"
# The baseline's servers and in-process figures: modelhub@base, ...
BASE = "@base"
MODELS = ("iris", "rf20", "hgb20")
# Every process the suite starts (servers, in-process children, training)
# inherits this unless the caller set it: scikit-learn's OpenMP code (the
# boosted model's predict) otherwise runs a thread per core in each worker,
# and on a shared 2-core machine one-row predicts then spun for 30 ms instead
# of 3 ms, whoever the server was.
OPENMP_THREADS = "1"
# The model-bound models, for which batching exists: the batching targets
# (modelhub-batch, mlserver-batch) serve these only.
BATCHED_MODELS = ("rf20", "hgb20")
HGB_ITERATIONS = 200
BATCH_ROWS = 1000
MEMORY_MODELS = 50
MEMORY_STEPS = (1, 10, 50)
MEMORY_CACHE_SIZES = (16, 64)
# Targets from issue 6, checked in the report (never asserted).
TARGET_CPU_OVER_FLOOR_MS = 0.9
TARGET_RPS_VS_FLOOR = 0.5
TARGET_VS_MLSERVER = 2.0
TARGET_VS_MLFLOW = 7.0
TARGET_BATCH_CPU = 1.2
TARGET_RF_CPU = 1.15
TARGET_IN_PROCESS = 1.2


@dataclass(frozen=True)
class Scenario:
    """One kind of request: a model, a row count and a wrk concurrency."""

    model: str
    rows: int
    connections: int

    @property
    def key(self) -> str:
        rows = f"{self.rows} row{'s' if self.rows > 1 else ''}"
        return f"{self.model} {rows} c{self.connections}"


SCENARIOS = (
    Scenario("iris", 1, 1),
    Scenario("iris", 1, 8),
    Scenario("rf20", 1, 1),
    Scenario("rf20", 1, 8),
    Scenario("hgb20", 1, 1),
    Scenario("hgb20", 1, 8),
    Scenario("iris", BATCH_ROWS, 1),
    Scenario("hgb20", BATCH_ROWS, 1),
)


def records(sample: dict[str, list[dict[str, float]]], model: str, rows: int) -> list:
    """``rows`` records for ``model``, cycling through its sample rows."""
    pool = sample[model]
    return [pool[i % len(pool)] for i in range(rows)]


# --- child processes with Django set up ---------------------------------------


def _django(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    os.environ.update(site_env(directory))
    os.environ["DJANGO_SETTINGS_MODULE"] = "modelhub.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _register(path: Path, slug: str, meta: dict[str, Any], *, activate: bool) -> None:
    """Through `manage.py loadmodel` (in this process: no start-up per call)."""
    from django.core.management import call_command

    meta_file = path.with_suffix(".meta.json")
    meta_file.write_text(json.dumps(meta))
    call_command(
        "loadmodel",
        str(path),
        slug=slug,
        metadata=str(meta_file),
        no_activate=not activate,
        stdout=open(os.devnull, "w"),  # noqa: SIM115
    )


def build_site(directory: Path, models_dir: Path) -> dict:
    """Child: train the three models, save them in ``models_dir`` (with their
    metadata files) and register them in a fresh site in ``directory``.
    Returns the sample rows."""
    import joblib
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _django(directory)
    from registry.demo import DEMOS

    iris, iris_meta = DEMOS["iris"][2]()  # the demo model, trained as make run does
    x, y = make_classification(
        n_samples=2000, n_features=20, n_informative=10, random_state=0
    )
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(20)])
    forest = make_pipeline(
        StandardScaler(), RandomForestClassifier(n_estimators=100, random_state=0)
    ).fit(frame, y)
    # 200 iterations whatever the data: no early stopping
    boosted = HistGradientBoostingClassifier(
        max_iter=HGB_ITERATIONS, early_stopping=False, random_state=0
    ).fit(frame, y)
    sample = {
        "iris": [
            dict(zip(iris.feature_names_in_, r, strict=True)) for r in _iris_rows()
        ],
        "rf20": frame.head(200).to_dict("records"),
    }
    sample["hgb20"] = sample["rf20"]
    forest_meta = {
        "dataset": "make_classification(n_samples=2000, n_features=20, "
        "n_informative=10, random_state=0)",
        "input_example": sample["rf20"][0],
    }
    models_dir.mkdir(parents=True, exist_ok=True)
    for slug, model, meta in (
        ("iris", iris, iris_meta),
        ("rf20", forest, forest_meta),
        ("hgb20", boosted, forest_meta),
    ):
        joblib.dump(model, models_dir / f"{slug}.joblib")
        _register(models_dir / f"{slug}.joblib", slug, meta, activate=True)
    return {"sample": sample}


def _iris_rows() -> list[list[float]]:
    from sklearn.datasets import load_iris

    return load_iris().data.tolist()


def build_memory_site(directory: Path, models_dir: Path) -> dict:
    """Child: one slug with MEMORY_MODELS versions (v1 active, the rest
    pinned by URL), each a copy of one random forest with a distinct marker
    attribute, so every file (and sha256) differs. The preflight runs for v1
    and its report is reused for the others: they differ only in the marker,
    and 50 preflights would take minutes."""
    import joblib
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    _django(directory)
    from registry import actions

    x, y = make_classification(
        n_samples=2000, n_features=4, n_informative=3, n_redundant=0, random_state=1
    )
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(4)])
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(frame, y)
    real_preflight = actions.preflight
    first: list[Any] = []

    def preflight_once(*args: Any, **kwargs: Any) -> Any:
        if not first:
            first.append(real_preflight(*args, **kwargs))
        return first[0]

    actions.preflight = preflight_once
    models_dir.mkdir(parents=True, exist_ok=True)
    size = 0
    for number in range(1, MEMORY_MODELS + 1):
        forest.bench_copy_ = number
        path = models_dir / f"mem{number}.joblib"
        joblib.dump(forest, path)
        size = path.stat().st_size
        _register(
            path,
            "mem",
            {"input_example": frame.iloc[0].to_dict()},
            activate=number == 1,
        )
    return {
        "record": frame.iloc[0].to_dict(),
        "file_bytes": size,
        "estimator": "RandomForestClassifier(n_estimators=20), 4 features",
    }


def run_child(kind: str, directory: Path, models_dir: Path) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        str(directory),
        str(models_dir),
    ]
    try:
        out = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=1200, check=True
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"{kind} setup failed:\n{exc.stderr[-3000:]}") from None
    return json.loads(out.strip().splitlines()[-1])


# --- checkouts: the current tree and, with --baseline, another revision ---------


@dataclass(frozen=True)
class Tree:
    """A checkout measured: the current tree (suffix "") or the baseline's
    worktree (suffix BASE), and its prepared site (db.sqlite3 and media)."""

    suffix: str
    root: Path
    site: Path


class InProcess:
    """bench/inprocess.py running in one checkout, on a throw-away copy of
    its site (the protocol is in that file's docstring)."""

    timeout = 900

    def __init__(
        self, tree: Tree, work: Path, sample_file: Path, models_dir: Path
    ) -> None:
        site = work / f"inprocess{tree.suffix}"
        shutil.copytree(tree.site, site)
        env = {**site_env(site), "DJANGO_SETTINGS_MODULE": "modelhub.settings"}
        env.pop("PYTHONPATH", None)
        self.root = tree.root
        self.log = work / f"inprocess{tree.suffix}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    str(BENCH / "inprocess.py"),
                    str(sample_file),
                    str(models_dir),
                ],
                cwd=tree.root,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self.ready = self.answer()

    def answer(self) -> dict:
        ready, _, _ = select.select([self.process.stdout], [], [], self.timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.close()
            tail = self.log.read_text()[-3000:]
            raise SystemExit(f"in-process child in {self.root} failed:\n{tail}")
        return json.loads(line)

    def round(self, numbers: dict[str, int]) -> dict[str, float]:
        self.process.stdin.write(json.dumps({"numbers": numbers}) + "\n")
        self.process.stdin.flush()
        return self.answer()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def in_process(
    trees: list[Tree],
    sample: dict,
    models_dir: Path,
    work: Path,
    *,
    runs: int,
    quiet_wait: float,
) -> tuple[dict[str, dict[str, list[float]]], dict[str, str]]:
    """ms per call, per tree (by suffix), case and round; the trees take turns
    round by round (A B, then B A) with the same timeit loop counts, after
    wait_quiet(). Also returns each tree's layout (which ModelHub code was
    called)."""
    sample_file = work / "sample.json"
    sample_file.write_text(json.dumps(sample))
    children: list[tuple[Tree, InProcess]] = []
    try:
        for tree in trees:
            children.append((tree, InProcess(tree, work, sample_file, models_dir)))
        names = list(children[0][1].ready["numbers"])
        numbers = {
            name: max(child.ready["numbers"][name] for _, child in children)
            for name in names
        }
        samples: dict[str, dict[str, list[float]]] = {
            tree.suffix: {name: [] for name in names} for tree in trees
        }
        for round_number in range(runs):
            order = children if round_number % 2 == 0 else children[::-1]
            for tree, child in order:
                wait_quiet(quiet_wait)
                for name, ms in child.round(numbers).items():
                    samples[tree.suffix][name].append(ms)
                mh = samples[tree.suffix]["iris 1 ModelHub decode+predict+encode"]
                print(
                    f"  run {round_number + 1} in process{tree.suffix:6} "
                    f"iris 1 row ModelHub {mh[-1]:.4f} ms",
                    flush=True,
                )
        layouts = {tree.suffix: child.ready["layout"] for tree, child in children}
    finally:
        for _, child in children:
            child.close()
    return samples, layouts


# --- servers --------------------------------------------------------------------


@dataclass
class Target:
    """A server under test: how to start it and how to ask it for a scenario."""

    name: str
    # starts the server for a model ("" = one server for every model)
    start: Callable[[str], Service]
    path: Callable[[str], str]
    body: Callable[[list[dict]], object]
    # one server per model (MLflow serves one model per process)
    per_model: bool = False
    notes: str = ""
    # the models it serves: scenarios of other models skip it
    models: tuple[str, ...] = MODELS
    services: dict[str, Service] = field(default_factory=dict)

    def service(self, model: str) -> Service:
        return self.services[model if self.per_model else ""]


# name, settings, V2 protocol: every one is also run at the baseline (+ BASE)
MODELHUB_SERVERS = (
    ("modelhub", {"MODELHUB_LOG_MODE": "after_response"}, False),
    ("modelhub-log-off", {"MODELHUB_LOG_MODE": "off"}, False),
    ("modelhub-v2", {"MODELHUB_LOG_MODE": "after_response"}, True),
)
# ModelHub on PostgreSQL (--database postgres), run at the baseline too
PG_SERVER = "modelhub-pg"
PG_ENV = {"MODELHUB_LOG_MODE": "after_response"}
# ModelHub's adaptive batching (issue 23), started only when the checkout's
# `manage.py loadmodel --help` lists BATCH_FLAG: the models are registered
# with BATCH_OPTIONS, and BATCH_WORKERS sync workers (one request each) feed
# the host's batch process, so up to that many requests meet in a batch.
BATCH_SERVER = "modelhub-batch"
BATCH_FLAG = "--batch-max-rows"
BATCH_OPTIONS = (BATCH_FLAG, "32", "--batch-max-wait-ms", "2")
BATCH_WORKERS = 8
BATCH_ENV = {"MODELHUB_LOG_MODE": "after_response"}
# MLServer's adaptive batching, as issue 23 sets it (model-settings.json)
MLSERVER_BATCHING = {"max_batch_size": 8, "max_batch_time": 0.002}
MODELHUB_TARGETS = (
    *(name for name, _, _ in MODELHUB_SERVERS),
    PG_SERVER,
    BATCH_SERVER,
)
# Two servers compared scenario by scenario in the report (a ÷ b, paired)
PAIRS = (
    ("PostgreSQL ÷ SQLite", PG_SERVER, "modelhub"),
    ("PostgreSQL ÷ SQLite, before", PG_SERVER + BASE, "modelhub" + BASE),
    ("ModelHub batching on ÷ off", BATCH_SERVER, "modelhub"),
    ("MLServer batching on ÷ off", "mlserver-batch", "mlserver"),
    ("ModelHub batching ÷ MLServer batching", BATCH_SERVER, "mlserver-batch"),
)


def mlflow_body(rows: list[dict]) -> object:
    return {"dataframe_records": rows}


def v2_body(rows: list[dict]) -> object:
    columns = list(rows[0])
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(rows), len(columns)],
                "datatype": "FP64",
                "data": [[r[c] for c in columns] for r in rows],
            }
        ]
    }


class Reference(Service):
    name = "reference"

    def __init__(self, models_dir: Path, workers: int) -> None:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        super().__init__(
            [str(gunicorn), "--config", "bench/reference_gunicorn.py"],
            ready_path="/readyz",
        )
        self.env.update(
            MODELHUB_BIND=f"127.0.0.1:{self.port}",
            MODELHUB_WORKERS=str(workers),
            PYTHONPATH=str(ROOT),
            PROMETHEUS_MULTIPROC_DIR=str(self.work / "prometheus"),
            BENCH_REFERENCE_MODELS=",".join(
                f"{m}={models_dir / f'{m}.joblib'}" for m in MODELS
            ),
        )


def modelhub_target(
    name: str,
    tree: Tree,
    workers: int,
    env: dict,
    *,
    v2: bool = False,
    about: str = "",
    site: Path | None = None,
    database_url: str | None = None,
    models: tuple[str, ...] = MODELS,
) -> Target:
    """ModelHub's own endpoint with MLflow's body, or (``v2``) its Open
    Inference Protocol endpoint with the very body MLServer gets; the code
    and site of ``tree``, or another ``site`` of that code (its media, and
    its database unless ``database_url`` names one)."""
    return Target(
        name=name + tree.suffix,
        start=lambda _: Server(
            workers=workers,
            prepared=site or tree.site,
            database_url=database_url,
            env=env,
            root=tree.root,
        ),
        path=(lambda model: f"/v2/models/{model}/infer")
        if v2
        else (lambda model: f"/api/predict/{model}/"),
        body=v2_body if v2 else mlflow_body,
        models=models,
        notes=", ".join(
            ([about] if about else [])
            + [f"{k}={v}" for k, v in env.items()]
            + (["V2 JSON tensor (FP64), as sent to MLServer"] if v2 else [])
        ),
    )


def batch_target(
    work: Path,
    model_files: dict[str, Path],
    *,
    absent: dict[str, str],
) -> list[Target]:
    """BATCH_SERVER on a site of its own whose BATCHED_MODELS are registered
    with BATCH_OPTIONS, when this checkout has batching; otherwise none, and
    ``absent`` says why."""
    help_text = manage(ROOT, site_env(work / "site"), "loadmodel", "--help")
    if BATCH_FLAG not in help_text:
        absent[BATCH_SERVER] = (
            f"this checkout has no batching (manage.py loadmodel --help lists no "
            f"{BATCH_FLAG})"
        )
        return []
    print("setting up: the batching site", flush=True)
    try:
        registered_site(
            ROOT,
            work / "site-batch",
            {m: model_files[m] for m in BATCHED_MODELS},
            options=BATCH_OPTIONS,
        )
    except SystemExit as exc:
        absent[BATCH_SERVER] = f"its models did not register: {exc}"
        return []
    tree = Tree("", ROOT, work / "site-batch")
    return [
        modelhub_target(
            BATCH_SERVER,
            tree,
            BATCH_WORKERS,
            BATCH_ENV,
            about=f"loadmodel {' '.join(BATCH_OPTIONS)}, {BATCH_WORKERS} workers",
            models=BATCHED_MODELS,
        )
    ]


# --- comparison environments ----------------------------------------------------


def _dir_bytes(path: Path) -> int:
    return sum(
        p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()
    )


def bench_env(name: str, requirements: list[str]) -> dict:
    """bench/.envs/<name>: a venv with ``requirements``, created on demand and
    reused while the requirements are the same. Never a project dependency."""
    env = ENVS / name
    marker = env / ".bench-env.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("requirements") == requirements:
            return {**info, "reused": True}
    started = time.monotonic()
    ENVS.mkdir(parents=True, exist_ok=True)
    log = ENVS / f"{name}-install.log"
    with log.open("w") as out:
        for command in (
            [sys.executable, "-m", "venv", str(env)],
            [
                str(env / "bin" / "pip"),
                "install",
                "--disable-pip-version-check",
                *requirements,
            ],
        ):
            done = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, timeout=1800, check=False
            )
            if done.returncode:
                return {
                    "error": f"{' '.join(command[:3])}… failed, see {log}",
                    "requirements": requirements,
                }
    freeze = subprocess.run(
        [str(env / "bin" / "pip"), "freeze"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    pins = dict(line.split("==", 1) for line in freeze.splitlines() if "==" in line)
    info = {
        "requirements": requirements,
        "install_seconds": round(time.monotonic() - started, 1),
        "disk_mb": round(_dir_bytes(env) / 1e6),
        "versions": {
            k: pins[k]
            for k in pins
            if k.lower()
            in {
                "mlflow",
                "mlserver",
                "mlserver-sklearn",
                "scikit-learn",
                "numpy",
                "pandas",
                "uvicorn",
                "fastapi",
                "gunicorn",
                "flask",
            }
        },
    }
    marker.write_text(json.dumps(info, indent=2))
    return {**info, "reused": False}


SAVE_MLFLOW = """
import json, sys
import joblib, pandas as pd, mlflow.sklearn, sklearn
from mlflow.models import infer_signature
source, target, example = sys.argv[1:4]
model = joblib.load(source)
frame = pd.DataFrame(json.loads(example))
mlflow.sklearn.save_model(
    model, target, signature=infer_signature(frame, model.predict(frame)),
    # MLflow 3's default, skops, refuses to save a tree model (forest or
    # boosted) unless its tree types are passed as skops_trusted_types
    # (still so in 3.17); the format only changes the load, not predict.
    serialization_format="cloudpickle",
    pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
"""
# MLflow 3.17 loads a model of any format (skops included) only while
# MLFLOW_ALLOW_PICKLE_DESERIALIZATION is true: its default, set so that a
# changed default cannot stop the servers.
QUIET_MLFLOW = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
}


class MLflowServer(Service):
    name = "mlflow"

    def __init__(self, model_dir: Path, workers: int) -> None:
        port = free_port()
        super().__init__(
            [
                str(ENVS / "mlflow" / "bin" / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model_dir),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                str(workers),
            ],
            port=port,
            # mlflow execs `uvicorn` through bash: the environment's bin first
            env={
                **QUIET_MLFLOW,
                "PATH": f"{ENVS / 'mlflow' / 'bin'}:{os.environ['PATH']}",
            },
            ready_path="/ping",
            ready_timeout=180,
            log=model_dir.parent / f"{model_dir.name}-server.log",
        )


class MLServer(Service):
    name = "mlserver"

    def __init__(self, repository: Path, workers: int) -> None:
        """``repository``: one folder per model (mlserver_repository)."""
        port = free_port()
        (repository / "settings.json").write_text(
            json.dumps(
                {
                    "host": "127.0.0.1",
                    "http_port": port,
                    "grpc_port": free_port(),
                    "metrics_port": free_port(),
                    "parallel_workers": workers,
                }
            )
        )
        super().__init__(
            [str(ENVS / "mlserver" / "bin" / "mlserver"), "start", str(repository)],
            port=port,
            ready_path="/v2/health/ready",
            ready_timeout=180,
            log=repository / "server.log",
        )


def mlserver_repository(
    repository: Path, models_dir: Path, models: tuple[str, ...], settings: dict
) -> Path:
    """A model repository for ``mlserver start``: each model's joblib file
    and model-settings.json (the sklearn runtime, plus ``settings``)."""
    for model in models:
        (repository / model).mkdir(parents=True, exist_ok=True)
        shutil.copy2(
            models_dir / f"{model}.joblib", repository / model / "model.joblib"
        )
        (repository / model / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": model,
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": "./model.joblib"},
                    **settings,
                }
            )
        )
    return repository


def comparison_targets(
    models_dir: Path, work: Path, sample: dict, workers: int, sklearn: str
) -> tuple[list[Target], dict]:
    """MLflow, MLServer and MLServer with adaptive batching, for those whose
    environments install; the rest is reported with the reason."""
    targets, status = [], {}
    mlflow = bench_env("mlflow", ["mlflow>=3,<4", f"scikit-learn=={sklearn}"])
    status["mlflow"] = mlflow
    if "error" not in mlflow:
        try:
            for model in MODELS:
                example = json.dumps(records(sample, model, 2))
                subprocess.run(
                    [
                        str(ENVS / "mlflow" / "bin" / "python"),
                        "-c",
                        SAVE_MLFLOW,
                        str(models_dir / f"{model}.joblib"),
                        str(work / "mlflow" / model),
                        example,
                    ],
                    env={**os.environ, **QUIET_MLFLOW},
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=True,
                )
        except subprocess.CalledProcessError as exc:
            status["mlflow"] = {
                **mlflow,
                "error": f"save_model failed: {exc.stderr[-800:]}",
            }
        else:
            targets.append(
                Target(
                    name="mlflow",
                    start=lambda model: MLflowServer(work / "mlflow" / model, workers),
                    path=lambda model: "/invocations",
                    body=mlflow_body,
                    per_model=True,
                    notes=f"mlflow models serve --env-manager local -w {workers}, "
                    "model re-saved with mlflow.sklearn.save_model "
                    "(signature inferred)",
                )
            )
    # uvloop 0.22+ raises in MLServer 1.7's asyncio.get_event_loop() at start-up
    mlserver = bench_env(
        "mlserver",
        [
            "mlserver>=1.7,<2",
            "mlserver-sklearn>=1.7,<2",
            f"scikit-learn=={sklearn}",
            "uvloop<0.22",
        ],
    )
    status["mlserver"] = mlserver
    if "error" not in mlserver:
        for name, models, settings in (
            ("mlserver", MODELS, {}),
            ("mlserver-batch", BATCHED_MODELS, MLSERVER_BATCHING),
        ):
            repository = mlserver_repository(work / name, models_dir, models, settings)
            targets.append(
                Target(
                    name=name,
                    start=lambda _, r=repository: MLServer(r, workers),
                    path=lambda model: f"/v2/models/{model}/infer",
                    body=v2_body,
                    models=models,
                    notes=f"mlserver start, sklearn runtime, parallel_workers="
                    f"{workers}, V2 JSON tensor (FP64)"
                    + "".join(f", {k}={v}" for k, v in settings.items()),
                )
            )
    return targets, status


def start_targets(targets: list[Target]) -> Iterator[tuple[str, str]]:
    """Start every target's server(s); yields (name, why) per failure and
    drops that target."""
    for target in list(targets):
        models = target.models if target.per_model else ("",)
        try:
            for model in models:
                target.services[model] = target.start(model).__enter__()
        except (SystemExit, OSError, subprocess.SubprocessError) as exc:
            for service in target.services.values():
                service.__exit__(None, None, None)
            targets.remove(target)
            yield target.name, f"did not start: {exc}"


# --- measuring ------------------------------------------------------------------


def measure_all(
    targets: list[Target], sample: dict, args: argparse.Namespace
) -> list[dict]:
    scripts: dict[tuple[str, Scenario], Path] = {}
    for target in targets:
        for scenario in serves(target, args.scenarios):
            service = target.service(scenario.model)
            name = f"{target.name}-{scenario.model}-{scenario.rows}"
            scripts[target.name, scenario] = post_script(
                service.work / f"{name}.lua",
                target.body(records(sample, scenario.model, scenario.rows)),
            )
    for target in targets:  # warm every worker and cache, once per model
        warmed = set()
        for scenario in serves(target, args.scenarios):
            if scenario.model not in warmed:
                warmed.add(scenario.model)
                service = target.service(scenario.model)
                service.warm(
                    target.path(scenario.model),
                    scripts[target.name, scenario],
                    duration=1 if args.quick else 2,
                )
    runs = []
    for round_number in range(1, args.runs + 1):
        for scenario in chosen(args.scenarios):
            for target in round_order(targets, round_number):
                if scenario.model not in target.models:
                    continue
                busy = wait_quiet(args.quiet_wait)
                service = target.service(scenario.model)
                result = service.measure(
                    target.path(scenario.model),
                    scenario.connections,
                    args.duration,
                    scripts[target.name, scenario],
                )
                result.update(
                    round=round_number,
                    target=target.name,
                    scenario=scenario.key,
                    machine_busy_before=busy,
                )
                result["errors"] = result["non_2xx"] + result["socket_errors_total"]
                runs.append(result)
                print(
                    f"  run {round_number} {scenario.key:22} {target.name:21} "
                    f"{result['rps']:8.0f} req/s  cpu "
                    f"{result['server_cpu_ms_per_request']:7.3f} ms/req  "
                    f"p50 {result['p50_ms']:7.2f}  p99 {result['p99_ms']:7.2f}  "
                    f"errors {result['errors']}",
                    flush=True,
                )
    return runs


def chosen(keys: list[str] | None) -> list[Scenario]:
    """SCENARIOS, or those whose key --scenarios names."""
    return [s for s in SCENARIOS if keys is None or s.key in keys]


def serves(target: Target, keys: list[str] | None) -> list[Scenario]:
    return [s for s in chosen(keys) if s.model in target.models]


def round_order(targets: list[Target], round_number: int) -> list[Target]:
    """``targets`` as listed (each baseline server just before its current
    twin), except that on even rounds each twin pair swaps: A B, then B A, so
    neither side always runs first."""
    order = list(targets)
    if round_number % 2 == 0:
        for i in range(len(order) - 1):
            if order[i].name == order[i + 1].name + BASE:
                order[i], order[i + 1] = order[i + 1], order[i]
    return order


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    values = re.findall(rf"^{name}(?:{{[^}}]*}})?\s+(\S+)$", text, re.M)
    return sum(float(v) for v in values)


def post(url: str, body: object) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),  # noqa: S310
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return response.status


def memory(template: Path, record: dict) -> list[dict]:
    """RSS of one worker after 1, 10 and 50 distinct models were requested,
    per cache size. One worker, so every request lands in the one measured."""
    rows = []
    for cache in MEMORY_CACHE_SIZES:
        env = {"MODELHUB_MODEL_CACHE_SIZE": str(cache), "MODELHUB_LOG_MODE": "off"}
        with Server(workers=1, prepared=template, env=env) as server:
            requested = 0
            for step in MEMORY_STEPS:
                while requested < step:
                    requested += 1
                    post(
                        f"{server.base}/api/predict/mem/v{requested}/", {"data": record}
                    )
                (worker,) = server.worker_pids()
                rss = rss_kb(worker)
                rows.append(
                    {
                        "cache_size": cache,
                        "distinct_models_requested": step,
                        "models_loaded": metric(server.base, "modelhub_models_loaded"),
                        "worker_rss_mb": round(rss["VmRSS"] / 1024, 1),
                        "worker_anon_mb": round(rss["RssAnon"] / 1024, 1),
                        "master_rss_mb": round(
                            rss_kb(server.process.pid)["VmRSS"] / 1024, 1
                        ),
                    }
                )
                print(
                    f"  cache {cache:2}: {step:2} models requested, "
                    f"{rows[-1]['models_loaded']:.0f} loaded, worker RSS "
                    f"{rows[-1]['worker_rss_mb']} MB",
                    flush=True,
                )
    return rows


# --- summary and report ---------------------------------------------------------


def summarize(runs: list[dict]) -> dict:
    out: dict[str, dict[str, dict]] = {}
    for run in runs:
        out.setdefault(run["scenario"], {}).setdefault(run["target"], []).append(run)
    summary = {}
    for scenario, per_target in out.items():
        summary[scenario] = {
            target: {
                **{
                    key: spread([r[key] for r in rows])
                    for key in (
                        "rps",
                        "p50_ms",
                        "p99_ms",
                        "server_cpu_ms_per_request",
                        "database_cpu_ms_per_request",
                        "background_cpu_share",
                    )
                },
                "errors": sum(r["errors"] for r in rows),
            }
            for target, rows in per_target.items()
        }
    return summary


def ratios(runs: list[dict]) -> list[dict]:
    def div(x: float, y: float) -> float:
        return x / y if y else math.nan

    def sub(x: float, y: float) -> float:
        return x - y

    rows = []
    targets = {r["target"] for r in runs}
    ran = {(r["target"], r["scenario"]) for r in runs}
    for scenario in dict.fromkeys(r["scenario"] for r in runs):
        single = " 1 row " in scenario
        for mh in (n + s for n in MODELHUB_TARGETS for s in (BASE, "")):
            if (mh, scenario) not in ran:
                continue
            row: dict[str, Any] = {"scenario": scenario, "modelhub": mh}
            row["rps_vs_floor"] = paired(runs, scenario, mh, "reference", "rps", div)
            row["cpu_minus_floor_ms"] = paired(
                runs, scenario, mh, "reference", "server_cpu_ms_per_request", sub
            )
            row["cpu_vs_floor"] = paired(
                runs, scenario, mh, "reference", "server_cpu_ms_per_request", div
            )
            for other in ("mlserver", "mlserver-batch", "mlflow"):
                if other in targets:
                    row[f"rps_vs_{other}"] = paired(
                        runs, scenario, mh, other, "rps", div
                    )
            row["checks"] = checks(scenario, single, row)
            rows.append(row)
    return rows


def checks(scenario: str, single: bool, row: dict) -> dict[str, bool]:
    """Issue 6's targets that apply to this scenario (means)."""
    out = {}

    def mean(key: str) -> float | None:
        return row[key]["mean"] if row.get(key) else None

    if single and scenario.startswith("iris"):
        if mean("cpu_minus_floor_ms") is not None:
            out[f"CPU ≤ floor + {TARGET_CPU_OVER_FLOOR_MS} ms"] = (
                mean("cpu_minus_floor_ms") <= TARGET_CPU_OVER_FLOOR_MS
            )
        if mean("rps_vs_floor") is not None:
            out[f"req/s ≥ {TARGET_RPS_VS_FLOOR}× floor"] = (
                mean("rps_vs_floor") >= TARGET_RPS_VS_FLOOR
            )
        if mean("rps_vs_mlserver") is not None:
            out[f"≥ {TARGET_VS_MLSERVER}× MLServer"] = (
                mean("rps_vs_mlserver") >= TARGET_VS_MLSERVER
            )
        if mean("rps_vs_mlflow") is not None:
            out[f"≥ {TARGET_VS_MLFLOW}× MLflow"] = (
                mean("rps_vs_mlflow") >= TARGET_VS_MLFLOW
            )
    elif (
        not single and scenario.startswith("iris") and mean("cpu_vs_floor") is not None
    ):
        out[f"CPU ≤ {TARGET_BATCH_CPU}× floor"] = (
            mean("cpu_vs_floor") <= TARGET_BATCH_CPU
        )
    elif scenario.startswith("rf20") and mean("cpu_vs_floor") is not None:
        out[f"CPU ≤ {TARGET_RF_CPU}× floor"] = mean("cpu_vs_floor") <= TARGET_RF_CPU
    return out


def pairs(runs: list[dict]) -> list[dict]:
    """PAIRS that ran, per scenario: req/s, server CPU ms/req and p99 of the
    first server over the second's, paired by run."""
    rows = []
    targets = {r["target"] for r in runs}
    for label, a, b in PAIRS:
        if not {a, b} <= targets:
            continue
        for scenario in dict.fromkeys(r["scenario"] for r in runs):
            row: dict[str, Any] = {"pair": label, "scenario": scenario, "a": a, "b": b}
            for key in ("rps", "server_cpu_ms_per_request", "p99_ms"):
                row[key] = paired(
                    runs, scenario, a, b, key, lambda x, y: x / y if y else math.nan
                )
            if row["rps"] is not None:
                rows.append(row)
    return rows


def noise(values: list[float]) -> float | None:
    """max/min − 1 over the runs of one server (or the rounds of one tree in
    process): how far repeats of the very same thing land apart. None with
    fewer than two."""
    values = [v for v in values if v > 0 and not math.isnan(v)]
    if len(values) < 2:
        return None
    return round(max(values) / min(values) - 1, 4)


def compare(
    before: list[float],
    after: list[float],
    *,
    higher_is_faster: bool,
    pool: list[list[float]],
) -> dict:
    """Two sides measured round by round (``before[i]`` and ``after[i]`` in
    the same round): after ÷ before per round, then mean (min–max); each
    side's noise; the noise of the scenario, n = the largest noise among
    ``pool`` (every series of the scenario, both sides: with a few runs one
    server's max/min can come out small by chance); the rounds where after
    was slower; and whether the difference is beyond the noise: the mean
    ratio outside [1/(1+n), 1+n] and every round on that side."""
    pairs = [
        (b, a)
        for b, a in zip(before, after, strict=True)
        if b > 0 and not (math.isnan(a) or math.isnan(b))
    ]
    ratio = spread([a / b for b, a in pairs])
    slower = sum((a < b) if higher_is_faster else (a > b) for b, a in pairs)
    pooled = [noise(series) for series in pool]
    scenario = None if None in pooled or not pooled else max(pooled)
    if scenario is None or math.isnan(ratio["mean"]):
        beyond = "unknown"
    else:
        up = ratio["mean"] > 1 + scenario
        down = ratio["mean"] < 1 / (1 + scenario)
        if higher_is_faster:
            up, down = down, up
        if up and slower == len(pairs):
            beyond = "slower"
        elif down and slower == 0:
            beyond = "faster"
        else:
            beyond = "within"
    return {
        "before": spread(before, 4),
        "after": spread(after, 4),
        "ratio": ratio,
        "noise_before": noise(before),
        "noise_after": noise(after),
        "noise_scenario": scenario,
        "slower_rounds": slower,
        "rounds": len(pairs),
        "beyond_noise": beyond,
    }


def verdict(parts: dict[str, dict]) -> str:
    """One line from compare()'s results, by label (req/s, CPU, ms)."""
    beyond = {label: part["beyond_noise"] for label, part in parts.items()}
    if "unknown" in beyond.values():
        return "noise unknown (needs ≥ 2 runs)"
    out = []
    for word, flag in (("slower", "⚠ "), ("faster", "")):
        labels = [label for label, b in beyond.items() if b == word]
        if labels:
            out.append(f"{flag}{word} beyond noise: {', '.join(labels)}")
    # Within the pooled noise, but slower in every round: worth a look (a
    # V2 label conversion was found this way).
    steady = [
        label
        for label, part in parts.items()
        if part["beyond_noise"] == "within"
        and part["rounds"] >= 3
        and part["slower_rounds"] == part["rounds"]
    ]
    if steady:
        out.append(f"⚠ slower in every run: {', '.join(steady)}")
    return "; ".join(out) or "within noise"


def before_after(runs: list[dict]) -> list[dict]:
    """Each ModelHub server against its baseline twin, per scenario: req/s
    and server CPU ms/req, paired by run; the scenario's noise is pooled over
    every ModelHub server of both sides."""
    rows = []
    targets = {r["target"] for r in runs}
    for scenario in dict.fromkeys(r["scenario"] for r in runs):
        by = {(r["target"], r["round"]): r for r in runs if r["scenario"] == scenario}
        pairs = [
            (mh, mh + BASE) for mh in MODELHUB_TARGETS if {mh, mh + BASE} <= targets
        ]
        for mh, base in pairs:
            rounds = sorted(n for t, n in by if t == mh and (base, n) in by)
            row: dict[str, Any] = {"scenario": scenario, "server": mh}
            for key, label, faster in (
                ("rps", "req/s", True),
                ("server_cpu_ms_per_request", "CPU", False),
            ):
                pool = [
                    [r[key] for (t, _), r in by.items() if t == name]
                    for pair in pairs
                    for name in pair
                ]
                row[label] = compare(
                    [by[base, n][key] for n in rounds],
                    [by[mh, n][key] for n in rounds],
                    higher_is_faster=faster,
                    pool=pool,
                )
            row["verdict"] = verdict({"req/s": row["req/s"], "CPU": row["CPU"]})
            rows.append(row)
    return rows


def in_process_before_after(timings: dict[str, dict[str, list[float]]]) -> list:
    """Each in-process case, the current tree against the baseline, paired by
    round. The noise is pooled over the three cases of the same model and
    rows on both sides: the floor and the bare handler run the same code on
    both sides, so their spread is the in-process noise itself."""
    rows = []
    for case, after in timings[""].items():
        model_rows = case.split()[:2]  # "<slug> <rows> <case>"
        pool = [
            series
            for side in timings.values()
            for name, series in side.items()
            if name.split()[:2] == model_rows
        ]
        ms = compare(timings[BASE][case], after, higher_is_faster=False, pool=pool)
        rows.append({"case": case, "ms": ms, "verdict": verdict({"ms": ms})})
    return rows


def fmt_noise(part: dict) -> str:
    sides = (part["noise_before"], part["noise_after"], part["noise_scenario"])
    return " / ".join("—" if n is None else f"{n:.1%}" for n in sides)


def fmt(s: dict | None, digits: int = 2) -> str:
    if not s or math.isnan(s["mean"]):
        return "—"
    if s["n"] == 1:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def flagged(payload: dict, phrase: str) -> list[str]:
    """Every server and in-process case whose verdict says ``phrase``."""
    return [
        f"{row['scenario']} {row['server']}"
        for row in payload["before_after"]
        if phrase in row["verdict"]
    ] + [
        f"in process: {row['case']}"
        for row in payload["in_process_before_after"]
        if phrase in row["verdict"]
    ]


def before_after_header(payload: dict) -> list[str]:
    """What was compared with what, and the verdicts in one line."""
    base, head = payload["baseline"], payload["head"]
    changes = (
        "with uncommitted changes to tracked files (measured as they are)"
        if head["tracked_changes"]
        else "no uncommitted changes to tracked files"
    )
    slower = flagged(payload, "slower beyond")
    steady = flagged(payload, "slower in every run")
    unknown = any(
        "unknown" in row["verdict"]
        for row in payload["before_after"] + payload["in_process_before_after"]
    )
    if slower:
        outcome = "⚠ slower beyond noise: " + "; ".join(slower) + "."
    elif unknown:
        outcome = "noise unknown with one run: repeat with --runs 3 or more."
    else:
        outcome = "no scenario slower beyond noise."
    if steady and not unknown:
        outcome += " Within the noise but slower in every run: " + "; ".join(steady)
        outcome += "."
    checkout = Path(base["checkout"]).relative_to(ROOT)
    layouts = payload["in_process_layouts"]
    return [
        "## Before and after",
        "",
        f"- **Before**: `{base['rev']}` = {base['sha']} (worktree {checkout}, "
        f"{'reused' if base['reused'] else 'made for this run'}); servers and "
        f"figures marked `{BASE}`.",
        f"- **After**: the current tree, HEAD {head['sha']}, {changes}.",
        "- Same virtualenv, model files, settings and wrk scripts on both sides; "
        "each side's own site (migrate and loadmodel by its own manage.py). "
        f"In process, ModelHub's code: before `{layouts[BASE]}`, after "
        f"`{layouts['']}`.",
        "- **Noise** = max/min − 1 of one server's figure over the "
        f"{payload['args']['runs']} run(s): before, after, and *all* = the "
        "largest among every ModelHub server of the scenario, both sides (in "
        "process: the floor, bare handler and ModelHub cases of that model and "
        "row count). A difference is beyond noise when the mean of after ÷ "
        "before lies outside [1/(1+all), 1+all] and every run points the same "
        "way.",
        f"- **Outcome**: {outcome}",
        "",
    ]


def render_again(results: Path) -> None:
    """The report of an earlier run, from its own figures: for a report whose
    layout changed since (its runs are not run again)."""
    payload = json.loads(results.read_text())
    payload["targets"] = issue_targets.evaluate(
        payload["runs"], payload.get("not_started", {})
    )
    results.write_text(json.dumps(payload, indent=2))
    when = results.stem.removeprefix("suite-")
    results.with_suffix(".md").write_text(report(payload, when))
    print(results.with_suffix(".md"))


def report(payload: dict, when: str) -> str:
    args = payload["args"]
    info = payload["machine"]
    lines = [
        f"# ModelHub benchmark suite ({when} UTC)",
        "",
        f"{'Quick smoke run. ' if args['quick'] else ''}{args['runs']} run(s) of "
        f"{args['duration']} s per server and scenario, interleaved; gunicorn "
        f"{args['workers']} sync workers (ModelHub and the reference); wrk on the "
        "same machine, 127.0.0.1. Figures: mean (min–max) over the runs.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
    ]
    lines += issue_targets.markdown(payload["targets"])
    baseline = payload.get("baseline")
    if baseline:
        lines += before_after_header(payload)
    lines += ["## In process (timeit, ms per call, best of 5 per round)", ""]
    if baseline:
        lines += [
            "| case | before ms | after ms | after ÷ before "
            "| noise before / after / all | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for row in payload["in_process_before_after"]:
            ms = row["ms"]
            lines.append(
                f"| {row['case']} | {fmt(ms['before'], 4)} | {fmt(ms['after'], 4)} "
                f"| {fmt(ms['ratio'], 3)} | {fmt_noise(ms)} | {row['verdict']} |"
            )
    else:
        lines += ["| case | ms |", "|---|---|"]
        for name, s in payload["in_process"].items():
            lines.append(f"| {name} | {fmt(s, 4)} |")
    sides = {"in_process": "ModelHub ÷ bare handler"}
    if baseline:
        sides = {
            "in_process_baseline": "ModelHub ÷ bare handler, before",
            "in_process": "after",
        }
    lines += [
        "",
        f"| model, rows | {' | '.join(sides.values())} | target |",
        "|---|" + "---|" * len(sides) + "---|",
    ]
    for slug in MODELS:
        for rows in (1, BATCH_ROWS):
            cells = []
            for key in sides:
                timing = payload[key]
                mh = timing[f"{slug} {rows} ModelHub decode+predict+encode"]
                bare = timing[f"{slug} {rows} bare handler (json)"]
                cells.append(mh["mean"] / bare["mean"])
            ratio = cells[-1]
            target = ""
            if slug == "iris" and rows == BATCH_ROWS:
                target = f"≤ {TARGET_IN_PROCESS}× " + (
                    "✅" if ratio <= TARGET_IN_PROCESS else "❌"
                )
            lines.append(
                f"| {slug}, {rows} | "
                + " | ".join(f"{c:.2f}×" for c in cells)
                + f" | {target} |"
            )
    lines += [
        "",
        "## Under load",
        "",
        "| scenario | server | req/s | p50 ms | p99 ms | server CPU ms/req | errors "
        "| background CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario, per_target in payload["summary"].items():
        for target, s in per_target.items():
            flag = f"**{s['errors']} ⚠**" if s["errors"] else "0"
            cpu = fmt(s["server_cpu_ms_per_request"], 3)
            if s["database_cpu_ms_per_request"]["max"] > 0:
                cpu += (
                    f", of which PostgreSQL {s['database_cpu_ms_per_request']['mean']}"
                )
            lines.append(
                f"| {scenario} | {target} | {fmt(s['rps'], 0)} | {fmt(s['p50_ms'])} | "
                f"{fmt(s['p99_ms'])} | {cpu} | "
                f"{flag} | "
                f"{s['background_cpu_share']['max']:.0%} max |"
            )
    if baseline:
        lines += [
            "",
            "## Before and after, under load (after ÷ before paired per run, "
            "then mean (min–max))",
            "",
            "| scenario | server | req/s before → after | after ÷ before "
            "| noise before / after / all | CPU ms/req before → after "
            "| after ÷ before | noise before / after / all "
            "| runs slower (req/s, CPU) | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in payload["before_after"]:
            rps, cpu = row["req/s"], row["CPU"]
            lines.append(
                f"| {row['scenario']} | {row['server']} | "
                f"{rps['before']['mean']:.0f} → {rps['after']['mean']:.0f} | "
                f"{fmt(rps['ratio'], 3)} | {fmt_noise(rps)} | "
                f"{cpu['before']['mean']:.3f} → {cpu['after']['mean']:.3f} | "
                f"{fmt(cpu['ratio'], 3)} | {fmt_noise(cpu)} | "
                f"{rps['slower_rounds']}, {cpu['slower_rounds']} of {rps['rounds']} | "
                f"{row['verdict']} |"
            )
    lines += [
        "",
        "## Ratios (paired per run, then mean (min–max))",
        "",
        "| scenario | ModelHub | req/s ÷ floor | CPU − floor ms/req | CPU ÷ floor "
        "| ÷ MLServer req/s | ÷ MLServer (batching) req/s | ÷ MLflow req/s "
        "| targets |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in payload["ratios"]:
        verdicts = "; ".join(
            f"{k} {'✅' if ok else '❌'}" for k, ok in row["checks"].items()
        )
        lines.append(
            f"| {row['scenario']} | {row['modelhub']} | {fmt(row['rps_vs_floor'])} | "
            f"{fmt(row['cpu_minus_floor_ms'], 3)} | {fmt(row['cpu_vs_floor'])} | "
            f"{fmt(row.get('rps_vs_mlserver'))} | "
            f"{fmt(row.get('rps_vs_mlserver-batch'))} | "
            f"{fmt(row.get('rps_vs_mlflow'))} | {verdicts} |"
        )
    if payload["pairs"]:
        lines += [
            "",
            "## Side by side (first ÷ second, paired per run, then mean (min–max))",
            "",
            "| pair | scenario | servers | req/s | server CPU ms/req | p99 |",
            "|---|---|---|---|---|---|",
        ]
        for row in payload["pairs"]:
            lines.append(
                f"| {row['pair']} | {row['scenario']} | {row['a']} ÷ {row['b']} | "
                f"{fmt(row['rps'])} | {fmt(row['server_cpu_ms_per_request'])} | "
                f"{fmt(row['p99_ms'])} |"
            )
    mem = payload["memory"]
    lines += [
        "",
        f"## Memory: one ModelHub worker, {mem['models']['estimator']} "
        f"({mem['models']['file_bytes'] / 1e6:.2f} MB file each), request log off"
        + (" (current tree only)" if baseline else ""),
        "",
        "| MODELHUB_MODEL_CACHE_SIZE | distinct models requested | models loaded "
        "(/metrics) | worker VmRSS MB | worker RssAnon MB | master VmRSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for r in mem["rows"]:
        bound = " ❌ over the bound" if r["models_loaded"] > r["cache_size"] else ""
        lines.append(
            f"| {r['cache_size']} | {r['distinct_models_requested']} | "
            f"{r['models_loaded']:.0f}{bound} | {r['worker_rss_mb']} | "
            f"{r['worker_anon_mb']} | {r['master_rss_mb']} |"
        )
    lines += ["", "## Servers and comparisons", ""]
    for name, notes in payload["servers"].items():
        lines.append(f"- **{name}**: {notes}")
    for name, why in payload["not_started"].items():
        lines.append(f"- **{name}**: not measured: {why}")
    for name, status in payload["comparisons"].items():
        if "error" not in status:  # else in not_started
            lines.append(
                f"- **{name}** environment (bench/.envs/{name}, "
                f"{'reused' if status.get('reused') else 'installed'}: "
                f"{status.get('install_seconds', '?')} s, "
                f"{status.get('disk_mb', '?')} MB): "
                + ", ".join(f"{k} {v}" for k, v in status.get("versions", {}).items())
            )
    if any(s["errors"] for p in payload["summary"].values() for s in p.values()):
        lines.append(
            "- ⚠ some runs had errors (non-2xx or socket errors): see the table."
        )
    return "\n".join(lines) + "\n"


# --- main -----------------------------------------------------------------------


def databases(text: str) -> list[str]:
    """--database: ModelHub always runs on SQLite (the figure PostgreSQL is
    compared with), so "postgres" alone means "sqlite,postgres"."""
    kinds = {k.strip() for k in text.split(",") if k.strip()}
    if not kinds or kinds - {"sqlite", "postgres"}:
        raise argparse.ArgumentTypeError(f"{text!r}: sqlite, postgres or both")
    return ["sqlite", "postgres"] if "postgres" in kinds else ["sqlite"]


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        kind, directory, models_dir = sys.argv[2:]
        build = build_site if kind == "site" else build_memory_site
        print(json.dumps(build(Path(directory), Path(models_dir))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--quick", action="store_true", help="2-second runs, 1 run, no comparisons"
    )
    parser.add_argument(
        "--no-compare", action="store_true", help="skip MLflow and MLServer"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=5,
        help="seconds to wait at most for the machine to calm down before each block",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure ModelHub at this git revision (e.g. main~5), "
        "interleaved with the current tree, and report after ÷ before",
    )
    parser.add_argument(
        "--database",
        type=databases,
        metavar="KINDS",
        help="sqlite (ModelHub on SQLite only) or sqlite,postgres (also "
        f"{PG_SERVER}, ModelHub on a scratch PostgreSQL database at "
        "$MODELHUB_BENCH_PG's server); 'postgres' means the same. "
        "Default: sqlite,postgres; sqlite with --quick",
    )
    for flag, what, example in (
        ("--servers", "servers, each with its twin at --baseline", PG_SERVER),
        ("--scenarios", "scenarios, as the report names them", SCENARIOS[1].key),
    ):
        parser.add_argument(
            flag,
            type=lambda text: text.split(","),
            metavar=flag.removeprefix("--").upper(),
            help=f"only these {what} under load (e.g. {example!r}); default: all",
        )
    parser.add_argument(
        "--render",
        metavar="JSON",
        help="write the report of an earlier run again from its results file "
        "(bench/results/suite-<stamp>.json), targets re-read off its runs",
    )
    args = parser.parse_args()
    if args.render:
        render_again(Path(args.render))
        return
    if args.quick:
        args.duration, args.runs, args.no_compare, args.quiet_wait = 2, 1, True, 0.5
    if args.database is None:
        args.database = ["sqlite"] if args.quick else ["sqlite", "postgres"]
    require_wrk()
    os.environ.setdefault("OMP_NUM_THREADS", OPENMP_THREADS)
    started = time.monotonic()
    scratch_stamp = stamp().replace("-", "_")
    sklearn = metadata.version("scikit-learn")
    baseline = head = None
    if args.baseline:
        print(f"baseline: a checkout of {args.baseline}", flush=True)
        baseline = baseline_checkout(args.baseline)
        head = head_info()  # now: the tree may be committed to during the run
    work = Path(tempfile.mkdtemp(prefix="modelhub-suite-"))
    targets: list[Target] = []
    # why a server the targets need did not run, by name
    absent: dict[str, str] = {}
    extra_machine: dict[str, str] = {}
    scratch = contextlib.ExitStack()
    try:
        print("setting up: models, sites", flush=True)
        site = run_child("site", work / "site", work / "models")
        sample = site["sample"]
        trees = [Tree("", ROOT, work / "site")]
        model_files = {m: work / "models" / f"{m}.joblib" for m in MODELS}
        if baseline:
            print(f"setting up: the site of {baseline['sha'][:12]}", flush=True)
            checkout = Path(baseline["checkout"])
            registered_site(checkout, work / "site-base", model_files)
            trees.insert(0, Tree(BASE, checkout, work / "site-base"))
        mem_models = run_child("memory", work / "memory", work / "memory-models")
        print("in process", flush=True)
        timings, layouts = in_process(
            trees,
            sample,
            work / "models",
            work,
            runs=max(args.runs, 1),
            quiet_wait=args.quiet_wait,
        )
        targets.append(
            Target(
                name="reference",
                start=lambda _: Reference(work / "models", args.workers),
                path=lambda model: f"/predict/{model}/",
                body=mlflow_body,
                notes="bench/reference_wsgi.py under ModelHub's gunicorn settings "
                "(orjson → float array → predict → orjson)",
            )
        )
        about = {
            tree.suffix: f"ModelHub at {baseline['rev']} ({baseline['sha'][:12]})"
            if tree.suffix
            else ""
            for tree in trees
        }
        for name, env, v2 in MODELHUB_SERVERS:
            for tree in trees:
                targets.append(
                    modelhub_target(
                        name, tree, args.workers, env, v2=v2, about=about[tree.suffix]
                    )
                )
        if "postgres" in args.database:
            print("setting up: PostgreSQL sites", flush=True)
            unreachable = postgres_unreachable()
            if unreachable:
                absent[PG_SERVER] = f"skipped: PostgreSQL unreachable ({unreachable})"
            else:
                extra_machine["postgresql"] = postgres_version()
                for tree in trees:
                    url = scratch.enter_context(
                        scratch_postgres(
                            f"modelhub_bench_{scratch_stamp}"
                            + ("_base" if tree.suffix else "")
                        )
                    )
                    directory = work / f"site-pg{tree.suffix}"
                    registered_site(tree.root, directory, model_files, database_url=url)
                    targets.append(
                        modelhub_target(
                            PG_SERVER,
                            tree,
                            args.workers,
                            PG_ENV,
                            about=", ".join(
                                filter(
                                    None, [about[tree.suffix], f"{url}, dropped after"]
                                )
                            ),
                            site=directory,
                            database_url=url,
                        )
                    )
        else:
            absent[PG_SERVER] = "PostgreSQL not asked for (--database sqlite)"
        if args.servers is None or BATCH_SERVER in args.servers:
            targets += batch_target(work, model_files, absent=absent)
        comparisons: dict = {}
        if args.no_compare:
            for name in ("mlflow", "mlserver", "mlserver-batch"):
                absent[name] = "comparisons off (--no-compare, or --quick)"
        else:
            print("comparisons: preparing bench environments", flush=True)
            more, comparisons = comparison_targets(
                work / "models", work, sample, args.workers, sklearn
            )
            targets += more
            for name, status in comparisons.items():
                if "error" in status:
                    absent[name] = f"not available: {status['error']}"
            if "mlserver" in absent:
                absent["mlserver-batch"] = absent["mlserver"]
        if args.servers is not None:
            for target in list(targets):
                if target.name.removesuffix(BASE) not in args.servers:
                    targets.remove(target)
                    absent[target.name] = "not asked for (--servers)"
        try:
            print("starting servers", flush=True)
            for name, why in start_targets(targets):
                absent[name] = why
            print("under load", flush=True)
            runs = measure_all(targets, sample, args)
        finally:
            for target in targets:
                for service in target.services.values():
                    service.__exit__(None, None, None)
        print("memory", flush=True)
        memory_rows = memory(work / "memory", mem_models["record"])
    finally:
        scratch.close()
        shutil.rmtree(work, ignore_errors=True)
    when = stamp()
    payload: dict[str, Any] = {
        "scenario": "suite",
        "args": vars(args),
        "machine": machine(
            {**extra_machine, "OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"]}
        ),
        "in_process": {name: spread(v, 4) for name, v in timings[""].items()},
        "in_process_layouts": layouts,
    }
    if baseline:
        payload |= {
            "baseline": baseline,
            "head": head,
            "in_process_baseline": {
                name: spread(v, 4) for name, v in timings[BASE].items()
            },
            "in_process_before_after": in_process_before_after(timings),
            "before_after": before_after(runs),
        }
    payload |= {
        "targets": issue_targets.evaluate(runs, absent),
        "servers": {t.name: t.notes for t in targets},
        "not_started": absent,
        "comparisons": comparisons,
        "summary": summarize(runs),
        "ratios": ratios(runs),
        "pairs": pairs(runs),
        "memory": {
            "models": {k: v for k, v in mem_models.items() if k != "record"},
            "rows": memory_rows,
        },
        "runs": runs,
        "in_process_rounds": timings,
        "elapsed_s": round(time.monotonic() - started),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"suite-{when}.json").write_text(json.dumps(payload, indent=2))
    text = report(payload, when)
    (RESULTS / f"suite-{when}.md").write_text(text)
    print(text)
    print(f"report: bench/results/suite-{when}.md ({payload['elapsed_s']} s)")


if __name__ == "__main__":
    main()
