"""ModelHub's decode + predict + encode in one process, timed for the suite.

bench/suite.py runs this file as a child, once per checkout it measures (the
current tree and, with --baseline, the revision compared with it):

    cd <checkout> && python <this file> <sample.json> <models dir>

with DJANGO_SETTINGS_MODULE=modelhub.settings and the environment of a
throw-away site (a copy of one migrated and filled by that checkout's own
manage.py). The checkout's code is imported from the working directory, never
from the tree this file lives in, so one file measures both sides of a
refactor. ``modelhub_handler`` is the one place that knows where a checkout
keeps its prediction code.

Cases, per model (``<slug>.joblib`` in the models directory) and row count
(1 and 1,000 rows of the sample):

- ``floor: model.predict`` on a float array;
- ``bare handler (json)``: json.loads -> float array in schema order ->
  predict -> json.dumps;
- ``ModelHub decode+predict+encode``: ModelHub's own code on the same body.

Protocol, one JSON object per line: when ready the child writes
``{"layout", "root", "numbers"}`` (``numbers``: timeit's autorange loop count
per case); then for every line it reads, ``{"numbers": {...}}`` (the counts to
use, the same for every checkout), it times each case once (best of 5
repeats) and writes ``{case: ms per call}``. It exits at the end of its
input. The suite interleaves the children's rounds, so they never run at the
same time.
"""

from __future__ import annotations

import json
import os
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BATCH_ROWS = 1000
REPEATS = 5


@dataclass(frozen=True)
class Handler:
    """ModelHub's handling of one request body for one model, as the predict
    view does it minus HTTP: bytes in, response body bytes out."""

    layout: str
    call: Callable[[bytes], bytes]


def modelhub_handler(slug: str) -> Handler:
    """Load ``slug``'s active version once and return ModelHub's decode +
    predict + encode for it, through whichever layout this checkout has.

    Newest layout first: a checkout may keep an old module beside a new one
    for a while, and the new one is what it serves with. To measure a new
    layout, add its branch above the existing ones, in the same form:
    ``try:`` import the new module (``import api.dataplane...``),
    ``except ModuleNotFoundError as exc:`` re-raise unless ``exc.name`` is
    that module (so a broken import still fails loudly), ``else:`` load the
    model and return a Handler whose ``call`` builds the same response body as
    the branch below. (``from api import x`` would report a missing ``x`` as
    ``api`` itself: import the module by its dotted name.)
    """
    # Issue 17's layout: api.dataplane.infer's steps minus HTTP and routing.
    try:
        import api.dataplane.infer
        import api.dataplane.rest
        import api.renderers
    except ModuleNotFoundError as exc:
        if exc.name not in ("api.dataplane", "api.dataplane.infer"):
            raise
    else:
        infer = api.dataplane.infer
        rest = api.dataplane.rest
        loaded = infer.serve_model(slug=slug, version=None, authorize=lambda ref: None)

        def call(body: bytes) -> bytes:
            decoded, proba = rest.decode_body(
                loaded, body, "application/json", proba=None
            )
            predictions, probabilities = infer.run_model(
                loaded, decoded.data, proba=proba and loaded.has_proba
            )
            inference = infer.Inference(
                loaded=loaded,
                model_input=decoded,
                predictions=predictions,
                probabilities=probabilities,
                load_ms=0.0,
                decode_ms=0.0,
                predict_ms=0.0,
            )
            return api.renderers.dumps(
                rest.response_body(inference, request_id="0" * 32)
            )

        return Handler("api.dataplane (decode_body, run_model, response_body)", call)

    # Up to issue 17's refactor: api.services and api.renderers.
    try:
        import api.services

        import api.renderers
    except ModuleNotFoundError as exc:
        if exc.name not in ("api.services", "api.renderers"):
            raise
    else:
        services = api.services
        loaded = services.load(services.resolve(slug, None))

        def call(body: bytes) -> bytes:
            result = services.predict(
                loaded=loaded, body=body, content_type="application/json", proba=None
            )
            # the response body the predict view renders
            return api.renderers.dumps(
                {
                    "model": loaded.ref.slug,
                    "version": loaded.ref.number,
                    "request_id": "0" * 32,
                    "predictions": result.predictions,
                }
            )

        return Handler("api.services.predict + api.renderers.dumps", call)
    raise SystemExit(
        f"no known ModelHub layout in {Path.cwd()}: add its branch to "
        "modelhub_handler in bench/inprocess.py"
    )


def bare_handler(model: Any, names: list[str]) -> Callable[[bytes], bytes]:
    import numpy as np

    def call(body: bytes) -> bytes:
        rows = json.loads(body)["dataframe_records"]
        array = np.array([[r[n] for n in names] for r in rows], dtype=float)
        return json.dumps({"predictions": model.predict(array).tolist()}).encode()

    return call


def cases(
    sample: dict[str, list[dict[str, float]]], models_dir: Path
) -> tuple[dict[str, Callable[[], object]], str]:
    """Every case by name (the suite's report names), and the layout used."""
    import joblib
    import numpy as np

    out: dict[str, Callable[[], object]] = {}
    layout = ""
    for slug, pool in sample.items():
        model = joblib.load(models_dir / f"{slug}.joblib")
        names = [str(n) for n in model.feature_names_in_]
        handler = modelhub_handler(slug)
        layout = handler.layout
        bare = bare_handler(model, names)
        for rows in (1, BATCH_ROWS):
            batch = [pool[i % len(pool)] for i in range(rows)]
            array = np.array([[r[n] for n in names] for r in batch], dtype=float)
            body = json.dumps({"dataframe_records": batch}).encode()
            out[f"{slug} {rows} floor: model.predict"] = lambda m=model, a=array: (
                m.predict(a)
            )
            out[f"{slug} {rows} bare handler (json)"] = lambda h=bare, b=body: h(b)
            out[f"{slug} {rows} ModelHub decode+predict+encode"] = (
                lambda h=handler.call, b=body: h(b)
            )
    return out, layout


def imported_from(root: Path) -> None:
    """Stop if ModelHub's code did not come from ``root``: the figures would
    belong to another checkout."""
    for name in ("api", "registry", "modelhub"):
        module = sys.modules.get(name)
        origin = Path(getattr(module, "__file__", "") or "").resolve()
        if module is not None and root not in origin.parents:
            raise SystemExit(f"{name} imported from {origin}, not from {root}")


def main() -> None:
    root = Path.cwd().resolve()
    # The checkout's packages, not this file's tree (sys.path[0] is bench/).
    sys.path[0] = str(root)
    # Replies go on the original stdout; anything else printed goes to stderr.
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sample_file, models_dir = sys.argv[1:3]
    import django

    django.setup()
    sample = json.loads(Path(sample_file).read_text())
    timed, layout = cases(sample, Path(models_dir))
    imported_from(root)
    numbers = {name: timeit.Timer(call).autorange()[0] for name, call in timed.items()}
    print(
        json.dumps({"layout": layout, "root": str(root), "numbers": numbers}),
        file=replies,
        flush=True,
    )
    names = list(timed)
    for round_number, line in enumerate(sys.stdin):
        counts = json.loads(line)["numbers"]
        shift = round_number % len(names)
        result = {}
        for name in names[shift:] + names[:shift]:
            number = counts[name]
            best = min(timeit.Timer(timed[name]).repeat(repeat=REPEATS, number=number))
            result[name] = best * 1000 / number
        print(json.dumps(result), file=replies, flush=True)


if __name__ == "__main__":
    main()
