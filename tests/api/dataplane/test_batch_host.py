"""The batch process's keeper (api.dataplane.batch_host) runs without Django:
its own lines still follow MODELHUB_LOG_FORMAT."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.servers import PROJECT_ROOT

SAY_A_SERVER_EXITED = """
import types
from api.dataplane import batch_host
batch_host._keeper_logging()
batch_host._settle(types.SimpleNamespace(pid=123, returncode=-9))
"""


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_keeper_says_a_batch_process_exited_in_the_log_format(log_format):
    result = subprocess.run(
        [sys.executable, "-c", SAY_A_SERVER_EXITED],
        cwd=PROJECT_ROOT,
        env={"MODELHUB_LOG_FORMAT": log_format, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (line,) = result.stderr.splitlines()
    assert "batch process 123 exited (-9)" in line
    if log_format == "json":
        assert json.loads(line)["logger"] == "api.dataplane.batch_host"
    else:
        assert " WARNING api.dataplane.batch_host batch process 123" in line
