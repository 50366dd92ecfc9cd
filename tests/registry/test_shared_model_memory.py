"""One copy of a model per host: mapped joblib copies and the master's preload.

Memory is read from /proc/<pid>/smaps_rollup of real processes: pages two
processes share count in Shared_*, pages one holds alone in Private_*.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier
from sklearn.neighbors import KNeighborsClassifier

from registry import forkshare, loading
from registry.exceptions import ModelUnavailable
from registry.loading import VersionRef
from tests.conftest import SleepsOnLoad
from tests.servers import PROJECT_ROOT, clean_env, manage, start_gunicorn

MB = 1024 * 1024
# The processes these tests start hold a model of tens of MB, never gigabytes.
MEMORY_LIMIT = 3 * 1024 * MB


def rollup(pid: int) -> dict[str, int]:
    """/proc/<pid>/smaps_rollup in bytes; Private and Shared summed over
    clean and dirty pages."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) * 1024
    fields["Private"] = fields["Private_Clean"] + fields["Private_Dirty"]
    fields["Shared"] = fields["Shared_Clean"] + fields["Shared_Dirty"]
    return fields


def ref_for(path: Path, media: Path, fmt: str = "joblib") -> VersionRef:
    data = path.read_bytes()
    stored = media / "models" / path.name
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(data)
    return VersionRef(
        id=1,
        slug="big",
        number=1,
        sha256=hashlib.sha256(data).hexdigest(),
        file_name=f"models/{path.name}",
        format=fmt,
        kind="classifier",
        input_schema={},
        classes=None,
    )


def same_bits(left: np.ndarray, right: np.ndarray) -> bool:
    return left.dtype == right.dtype and left.tobytes() == right.tobytes()


@pytest.fixture
def copies(settings: Any, tmp_path: Path) -> Path:
    settings.MODELHUB_MODEL_MMAP = True
    settings.MODELHUB_MODEL_COPY_DIR = tmp_path / "copies"
    return settings.MODELHUB_MODEL_COPY_DIR


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    x, _ = make_classification(n_samples=200, n_features=10, random_state=1)
    return x


@pytest.fixture(scope="module")
def boosted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y = make_classification(
        n_samples=2000, n_features=10, n_informative=6, n_classes=3, random_state=0
    )
    model = HistGradientBoostingClassifier(
        max_iter=30, max_leaf_nodes=63, early_stopping=False, random_state=0
    ).fit(x, y)
    path = tmp_path_factory.mktemp("boosted") / "hgb.joblib"
    joblib.dump(model, path)
    return path


@pytest.fixture(scope="module")
def neighbours(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A model whose bulk is one numpy array (its training rows): 40 MB."""
    x, y = make_classification(n_samples=500_000, n_features=10, random_state=0)
    model = KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(x, y)
    path = tmp_path_factory.mktemp("neighbours") / "knn.joblib"
    joblib.dump(model, path)
    return path, model._fit_X.nbytes


def test_mapped_model_predicts_bitwise_like_a_normal_load(
    settings: Any, copies: Path, media_root: Path, boosted: Path, rows: np.ndarray
) -> None:
    ref = ref_for(boosted, media_root)
    settings.MODELHUB_MODEL_MMAP = False
    plain = loading.load(ref).estimator
    settings.MODELHUB_MODEL_MMAP = True
    mapped = loading.load(ref).estimator

    assert isinstance(mapped._predictors[0][0].nodes, np.memmap)
    assert not isinstance(plain._predictors[0][0].nodes, np.memmap)
    assert same_bits(mapped.predict(rows), plain.predict(rows))
    assert same_bits(mapped.predict_proba(rows), plain.predict_proba(rows))
    assert [p.name for p in copies.glob("*.joblib")] == [f"{ref.sha256}.joblib"]


def test_damaged_local_copy_is_rebuilt_never_served(
    copies: Path, media_root: Path, boosted: Path, rows: np.ndarray
) -> None:
    ref = ref_for(boosted, media_root)
    expected = loading.load(ref).estimator.predict_proba(rows)
    copy = copies / f"{ref.sha256}.joblib"
    damaged = bytearray(copy.read_bytes())
    # The last bytes are array data: the damaged copy would still unpickle.
    damaged[-200] ^= 0xFF
    copy.write_bytes(bytes(damaged))

    served = loading.load(ref).estimator

    assert same_bits(served.predict_proba(rows), expected)
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == ref.sha256


def test_altered_stored_file_is_unavailable_despite_a_good_local_copy(
    copies: Path, media_root: Path, boosted: Path
) -> None:
    ref = ref_for(boosted, media_root)
    loading.load(ref)
    stored = media_root / ref.file_name
    stored.write_bytes(stored.read_bytes()[:-1] + b"\x00")

    with pytest.raises(ModelUnavailable, match="does not match its sha256"):
        loading.load(ref)


def test_compressed_joblib_file_loads_unmapped_with_the_same_predictions(
    copies: Path, media_root: Path, boosted: Path, tmp_path: Path, rows: np.ndarray
) -> None:
    original = joblib.load(boosted)
    compressed = tmp_path / "compressed.joblib"
    joblib.dump(original, compressed, compress=3)

    loaded = loading.load(ref_for(compressed, media_root)).estimator

    assert not isinstance(loaded._predictors[0][0].nodes, np.memmap)
    assert same_bits(loaded.predict(rows), original.predict(rows))


def test_unusable_copy_directory_falls_back_to_reading_the_file(
    settings: Any, media_root: Path, boosted: Path, tmp_path: Path, rows: np.ndarray
) -> None:
    settings.MODELHUB_MODEL_MMAP = True
    settings.MODELHUB_MODEL_COPY_DIR = tmp_path / "open-to-all"
    settings.MODELHUB_MODEL_COPY_DIR.mkdir(mode=0o777)
    settings.MODELHUB_MODEL_COPY_DIR.chmod(0o777)

    loaded = loading.load(ref_for(boosted, media_root)).estimator

    assert same_bits(loaded.predict(rows), joblib.load(boosted).predict(rows))
    assert list(settings.MODELHUB_MODEL_COPY_DIR.iterdir()) == []


_WORKER = """
import json, sys
import django
django.setup()
from registry import loading
from registry.loading import VersionRef
import numpy as np
import sklearn.neighbors
ref = VersionRef(**json.loads(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
model = loading.load(ref).estimator
model.predict(np.zeros((1, 10)))
print("loaded", flush=True)
sys.stdin.readline()
"""


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def test_two_processes_share_the_pages_of_one_mapped_model(
    tmp_path: Path, media_root: Path, neighbours: tuple[Path, int]
) -> None:
    path, array_bytes = neighbours
    ref = ref_for(path, media_root)
    env = clean_env(
        tmp_path,
        MODELHUB_MEDIA_ROOT=str(media_root),
        MODELHUB_MODEL_COPY_DIR=str(tmp_path / "copies"),
        OMP_NUM_THREADS="1",
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, json.dumps(ref.__dict__)],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_limited,
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        before = [rollup(worker.pid) for worker in workers]
        for worker in workers:
            worker.stdin.write("\n")
            worker.stdin.flush()
            assert worker.stdout.readline().strip() == "loaded"
        after = [rollup(worker.pid) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()

    for start, end in zip(before, after, strict=True):
        assert end["Shared_Clean"] - start["Shared_Clean"] >= 0.9 * array_bytes
        assert end["Private"] - start["Private"] < 0.2 * array_bytes
        assert end["Pss"] - start["Pss"] < 0.7 * array_bytes


def test_master_probe_survives_a_model_that_hangs_while_loading(
    tmp_path: Path, media_root: Path
) -> None:
    sleeps = tmp_path / "sleeps.pkl"
    sleeps.write_bytes(pickle.dumps(SleepsOnLoad()))

    assert not forkshare.loads_in_child(
        ref_for(sleeps, media_root, "pickle"), timeout=1
    )


def test_master_probe_survives_a_model_that_ends_its_process(
    tmp_path: Path, media_root: Path, boosted: Path
) -> None:
    exits = tmp_path / "exits.pkl"
    exits.write_bytes(pickle.dumps(ExitsOnLoad()))

    assert not forkshare.loads_in_child(
        ref_for(exits, media_root, "pickle"), timeout=30
    )
    assert forkshare.loads_in_child(ref_for(boosted, media_root), timeout=30)


class ExitsOnLoad:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os._exit, (3,))


def _forest(directory: Path) -> tuple[Path, int]:
    """Deep extremely randomized trees on noisy labels: ~50 MB of tree nodes,
    trained in seconds."""
    x, y = make_classification(
        n_samples=40_000, n_features=10, flip_y=0.3, random_state=0
    )
    model = ExtraTreesClassifier(n_estimators=20, random_state=0).fit(x, y)
    path = directory / "forest.joblib"
    joblib.dump(model, path)
    nodes = 0
    for tree in model.estimators_:
        state = tree.tree_.__getstate__()
        nodes += state["nodes"].nbytes + state["values"].nbytes
    return path, nodes


def _serve_forest(run_dir: Path, forest: Path, **env: str) -> list[dict[str, int]]:
    """Worker memory of a two-worker gunicorn serving the forest."""
    run_dir.mkdir()
    (run_dir / "static").mkdir()
    settings_env = clean_env(
        run_dir,
        MODELHUB_LOG_LEVEL="WARNING",
        MODELHUB_MODEL_COPY_DIR=str(run_dir / "copies"),
        **env,
    )
    manage(settings_env, "migrate", "--noinput", "--verbosity", "0")
    manage(settings_env, "loadmodel", str(forest), "--slug", "forest")
    server = start_gunicorn(settings_env, run_dir, workers=2)
    try:
        for _ in range(4):
            answer = server.post("/api/predict/forest/", {"inputs": [[0.5] * 10]})
            assert answer.status == 200
        return [rollup(int(pid)) for pid in server.booted_workers()]
    finally:
        assert server.stop() == 0


@pytest.mark.slow
def test_two_workers_share_the_pages_of_a_forest_the_master_loaded(
    tmp_path: Path,
) -> None:
    """A forest's nodes are copied out of any mapping by scikit-learn, so
    its pages are shared through the fork instead (anonymous: Shared_Dirty)."""
    forest, tree_bytes = _forest(tmp_path)
    assert tree_bytes > 30 * MB
    limit = {"MODELHUB_PREFLIGHT_MEMORY_MB": "3072"}

    shared = _serve_forest(tmp_path / "on", forest, MODELHUB_SHARE_MODELS="1", **limit)
    alone = _serve_forest(tmp_path / "off", forest, MODELHUB_SHARE_MODELS="0", **limit)

    for on, off in zip(shared, alone, strict=True):
        assert on["Shared"] - off["Shared"] >= 0.9 * tree_bytes
        assert off["Private"] - on["Private"] >= 0.9 * tree_bytes
