"""Headless Debian chromium through Playwright, for tests marked ``browser``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT_ROOT

# Screenshots and failure captures; git-ignored.
ARTIFACTS = PROJECT_ROOT / "test-artifacts"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SKIP_HINT = "apt-get install chromium (.ci/run installs it)"
NO_PLAYWRIGHT = "playwright is not importable: pip install -r requirements-dev.txt"


def chromium_path() -> Path:
    """The chromium binary: MODELHUB_CHROMIUM or Debian's; skips when absent."""
    path = Path(os.environ.get("MODELHUB_CHROMIUM") or "/usr/bin/chromium")
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"chromium not installed at {path}: {SKIP_HINT}")
    return path


@contextmanager
def chromium_page(name: str, timeout_ms: int = 15_000) -> Iterator[Any]:
    """A fresh page in a new headless browser; saves ``<name>-failure.png`` on error.

    Playwright's sync API keeps an event loop running in this thread, so the
    caller must allow Django's ORM beside it (DJANGO_ALLOW_ASYNC_UNSAFE).
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(NO_PLAYWRIGHT)
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(timeout_ms)
            try:
                yield page
            except BaseException:
                ARTIFACTS.mkdir(exist_ok=True)
                with suppress(Exception):  # never hide the real failure
                    page.screenshot(path=ARTIFACTS / f"{name}-failure.png")
                raise
        finally:
            browser.close()


def collect_errors(page: Any, base: str) -> list[str]:
    """What goes wrong on ``page`` from now on, as it comes: script errors,
    console errors, responses of 400 and above (but a favicon's), and any
    request leaving ``base``."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    page.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.on(
        "request",
        lambda r: None if r.url.startswith(base) else errors.append(r.url),
    )
    return errors


def screenshot(page: Any, name: str) -> Path:
    """The whole page as ``ARTIFACTS/name``, a PNG."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return shot
