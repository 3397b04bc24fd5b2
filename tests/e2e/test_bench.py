"""The benchmark's smoke run: every section measures on small counts and writes its table,
JSON and chart (no figure is asserted: figures on a shared machine are not a test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import SECTIONS
from taskscheduler.devstack.embedded import rabbitmq_server

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(600)
def test_quick_benchmark_writes_every_figure(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=560,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads((tmp_path / "bench-quick.json").read_text())
    measured = {figure["section"] for figure in document["figures"]}
    # The brokers section needs rabbitmq-server (make test installs it) and says when it skips.
    assert measured == set(SECTIONS) - ({"brokers"} if rabbitmq_server() is None else set())
    for figure in document["figures"]:
        assert figure["service"] > 0, figure
        assert figure["baseline"] is None or figure["baseline"] > 0, figure
    assert (tmp_path / "bench-quick.png").stat().st_size > 10_000
    assert "| figure |" in result.stdout
