"""What checking a credential costs a prediction (issue 18): CPU per request.

Run by hand (not a test; about a minute with the defaults):

    .venv/bin/python bench/key_check.py [--rounds 20] [--block 500]

In one process, on a throw-away SQLite site with the demo models: POST one
iris row to /api/predict/iris/ through Django's WSGI handler (every
middleware, the view, the model; the response closed as gunicorn does), in
blocks of --block requests per mode, the modes interleaved (rotated order)
over --rounds rounds after a warm-up round. CPU is time.process_time(), so
neighbours on a shared machine cost wall time, not figures. Modes:

- none      no Authorization header (the baseline)
- token     ``Token <key>``: DRF's TokenAuthentication, one query a request
- api_key   ``Api-Key <key>``: verified once, then api.access.keys' cache
            (MODELHUB_KEY_RECHECK_MS, default 2 s, re-reads it: included)
- verify    api.access.keys.verify(key) alone, no request around it

The request log is off (MODELHUB_LOG_MODE=off): its row costs the same with
or without a key and only adds noise. The issue's bar: the key check adds at
most 50 µs of CPU per prediction (api_key - none, paired per round).

The report goes to bench/results/key-check-<stamp>.md and .json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import RESULTS, ROOT, machine, stamp, wsgi_request  # noqa: E402

BAR_US = 50.0


def set_up_site(work: Path) -> tuple[str, str]:
    """Django against a fresh site in ``work``; a user's token and an API key."""
    (work / "static").mkdir()
    os.environ.update(
        DATABASE_URL=f"sqlite:///{work / 'db.sqlite3'}",
        DJANGO_SETTINGS_MODULE="modelhub.settings",
        MODELHUB_MEDIA_ROOT=str(work / "media"),
        MODELHUB_STATIC_ROOT=str(work / "static"),
        MODELHUB_SECRET_KEY_FILE=str(work / "secret"),
        MODELHUB_QUOTA_FILE=str(work / "quota.sqlite3"),
        MODELHUB_LOG_LEVEL="WARNING",
        MODELHUB_LOG_MODE="off",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from api.access import issuing

    call_command("migrate", verbosity=0)
    call_command("loaddemos", stdout=io.StringIO())
    user = get_user_model().objects.create_user("bench")
    token = Token.objects.create(user=user).key
    _, key = issuing.create_key(name="bench", owner=user)
    return token, key


def measure(rounds: int, block: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="modelhub-keycheck-"))
    try:
        token, key = set_up_site(work)
        from api.access import keys

        modes: dict[str, Callable[[], object]] = {
            "none": wsgi_request(None),
            "token": wsgi_request(f"Token {token}"),
            "api_key": wsgi_request(f"Api-Key {key}"),
            "verify": lambda: keys.verify(key),
        }
        samples: dict[str, list[float]] = {mode: [] for mode in modes}
        names = list(modes)
        for round_number in range(rounds + 1):  # round 0 warms up
            shift = round_number % len(names)
            for mode in names[shift:] + names[:shift]:
                call = modes[mode]
                cpu = time.process_time()
                for _ in range(block):
                    call()
                cpu = time.process_time() - cpu
                if round_number:
                    samples[mode].append(cpu * 1e6 / block)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {}
    for mode, values in samples.items():
        row = {
            "us_per_request": round(statistics.median(values), 1),
            "p10_p90": [round(q, 1) for q in _deciles(values)],
        }
        if mode in ("token", "api_key"):
            deltas = [a - b for a, b in zip(values, samples["none"], strict=True)]
            row["delta_vs_none_us"] = round(statistics.median(deltas), 1)
            row["delta_p10_p90"] = [round(q, 1) for q in _deciles(deltas)]
        out[mode] = row
    return out


def _deciles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=10)
    return cuts[0], cuts[-1]


def report(result: dict, args: argparse.Namespace, env: dict) -> str:
    lines = [
        "# API key check: CPU per prediction (bench/key_check.py)",
        "",
        f"{args.rounds} interleaved rounds of {args.block} requests per mode "
        "after a warm-up round; median (p10–p90) µs of CPU per request.",
        "",
        "| mode | µs / request | vs none (paired) |",
        "|---|---:|---:|",
    ]
    for mode, row in result.items():
        low, high = row["p10_p90"]
        delta = ""
        if "delta_vs_none_us" in row:
            dlow, dhigh = row["delta_p10_p90"]
            delta = f"{row['delta_vs_none_us']:+.1f} ({dlow:+.1f}…{dhigh:+.1f})"
        lines.append(
            f"| {mode} | {row['us_per_request']:.1f} ({low:.1f}…{high:.1f}) | {delta} |"
        )
    added = result["api_key"]["delta_vs_none_us"]
    verdict = "within" if added <= BAR_US else "OVER"
    lines += [
        "",
        f"Outcome: the API key adds {added:+.1f} µs per prediction, {verdict} the "
        f"{BAR_US:.0f} µs bar.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in env.items()),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--block", type=int, default=500)
    args = parser.parse_args()
    result = measure(args.rounds, args.block)
    env = machine()
    text = report(result, args, env)
    RESULTS.mkdir(exist_ok=True)
    name = f"key-check-{stamp()}"
    (RESULTS / f"{name}.md").write_text(text)
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"machine": env, "args": vars(args), "result": result}, indent=2)
    )
    print(text)
    print(f"report: bench/results/{name}.md")


if __name__ == "__main__":
    main()
