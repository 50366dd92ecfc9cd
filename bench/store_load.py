"""The cost of a cold load from an object store against a load from the
host's local copy, for a ~1 MB and a ~50 MB model.

Run by hand, the machine otherwise idle:

    flock /tmp/modelhub-bench.lock .venv/bin/python bench/store_load.py

Starts moto's S3 server on 127.0.0.1 (a Python server: a real store on the
same network answers faster, so the store's share here is an upper bound
for a local MinIO and a lower one for a distant region), stores two
extremely randomized forests (uncompressed joblib, as uploaded) and times
``registry.loading.load`` in one process, each case ``--repeat`` times:

- ``store, cold``: no local copy; fetched from the store, hashed, copied,
  mapped (MODELHUB_STORAGE=s3);
- ``store, copy held``: the host's verified copy is hashed and mapped, the
  store is not asked;
- ``local disk``: MODELHUB_STORAGE=local as before this change (the stored
  file hashed, the copy hashed and mapped);
- ``fetch only``: the download alone, for the share of the cold load.

Writes bench/results/store-load-<stamp>.md; stops every process it started.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import machine, stamp, timed  # noqa: E402
from tests.objectstore import CREDENTIALS, start_s3_server  # noqa: E402

SIZES_MB = (1, 50)


def forest(megabytes: int, directory: Path) -> Path:
    """An ExtraTrees forest on the digits dataset of about ``megabytes``."""
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.ensemble import ExtraTreesClassifier

    x, y = load_digits(return_X_y=True)
    one = directory / "one.joblib"
    joblib.dump(ExtraTreesClassifier(n_estimators=4, random_state=0).fit(x, y), one)
    per_tree = one.stat().st_size / 4
    trees = max(1, round(megabytes * 1024 * 1024 / per_tree))
    path = directory / f"forest-{megabytes}mb.joblib"
    model = ExtraTreesClassifier(n_estimators=trees, random_state=0).fit(x, y)
    joblib.dump(model, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="modelhub-store-bench-"))
    server = start_s3_server(work / "moto.log")
    try:
        bucket = server.new_bucket()
        os.environ.update(
            {
                **CREDENTIALS,
                "DJANGO_SETTINGS_MODULE": "modelhub.settings",
                "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
                "MODELHUB_SECRET_KEY_FILE": str(work / "secret_key"),
                "MODELHUB_MEDIA_ROOT": str(work / "media"),
                "MODELHUB_MODEL_COPY_DIR": str(work / "copies"),
                "MODELHUB_STORAGE": "s3",
                "MODELHUB_S3_BUCKET": bucket,
                "MODELHUB_S3_ENDPOINT_URL": server.endpoint,
                "MODELHUB_LOG_LEVEL": "WARNING",
            }
        )
        results = run(work, args.repeat)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(results, args.repeat)


def run(work: Path, repeat: int) -> list[dict]:
    import hashlib

    import django

    django.setup()
    from django.core.files.storage import FileSystemStorage

    from registry import store
    from registry.loading import VersionRef

    local = FileSystemStorage(location=work / "media")
    results = []
    for megabytes in SIZES_MB:
        path = forest(megabytes, work)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        with path.open("rb") as handle:
            name = store.save(f"models/forest/{path.name}", handle)
        with path.open("rb") as handle:
            local.save(name, handle)
        ref = VersionRef(
            id=megabytes,
            slug="forest",
            number=1,
            sha256=digest,
            file_name=name,
            format="joblib",
            kind="classifier",
            input_schema={},
            classes=None,
        )
        row = {"model_mb": round(path.stat().st_size / 2**20, 1)}
        row.update(measure(ref, work, repeat))
        results.append(row)
        print(json.dumps(row), flush=True)
    return results


def measure(ref, work: Path, repeat: int) -> dict:  # noqa: ANN001
    from django.conf import settings
    from django.test.utils import override_settings

    from modelhub.model_storage import model_storage
    from registry import loading, store

    copies = Path(settings.MODELHUB_MODEL_COPY_DIR)

    def cold() -> None:
        shutil.rmtree(copies, ignore_errors=True)
        loading.load(ref)

    def fetch() -> None:
        with store.opened(ref.file_name) as handle:
            while handle.read(1 << 20):
                pass

    row = {
        "store, cold": timed(cold, repeat),
        "store, copy held": timed(lambda: loading.load(ref), repeat),
        "fetch only": timed(fetch, repeat),
    }
    disk = model_storage("local", bucket="", prefix="", endpoint_url=None)
    with override_settings(
        MODELHUB_STORAGE="local",
        MEDIA_ROOT=work / "media",
        STORAGES={**settings.STORAGES, "default": disk},
    ):
        row["local disk"] = timed(lambda: loading.load(ref), repeat)
    return row


def report(results: list[dict], repeat: int) -> None:
    cases = ("store, cold", "store, copy held", "local disk", "fetch only")
    lines = [
        "# Cold load from the object store vs the local copy",
        "",
        f"`bench/store_load.py --repeat {repeat}`; median ms of "
        "`registry.loading.load` in one process (the best run in brackets); "
        "moto_server on 127.0.0.1.",
        "",
        "| model | " + " | ".join(cases) + " |",
        "|---|" + "---|" * len(cases),
    ]
    for row in results:
        cells = [f"{row[c]['median_ms']} (best {row[c]['best_ms']})" for c in cases]
        lines.append(f"| {row['model_mb']} MB | " + " | ".join(cells) + " |")
    lines += ["", "```json", json.dumps(machine(), indent=2), "```", ""]
    out = ROOT / "bench" / "results" / f"store-load-{stamp()}.md"
    out.write_text("\n".join(lines))
    print(out)


if __name__ == "__main__":
    main()
