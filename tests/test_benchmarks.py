"""The benchmarks cannot rot: their short version runs here and prints every figure.

``python -m benchmarks --short`` starts its own simulators (and a kernel, for the
notebook figures) with small counts. Its numbers say nothing about the targets (the
full run does, see README); this checks that every figure is still measured.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmarks

REPO = Path(__file__).resolve().parents[1]
NEEDLES = (
    "wall/ideal, default settings", "documented loop", "HTTP requests per task",                 # sweeps
    "runs(where=", "grid() of a 64-cell slice", "starting a 48-cell sweep", "one append",       # log_scale
    "runs() / read_sql", "images() / read_sql", "count(seed=3)", "distinct('seed')", "search(",  # log_million
    "one explorer page", "resuming a 1,000-cell sweep", "log file per run", "peak memory",
    "client CPU per task", "client memory growth", "render of a 4K image",                    # client_cost
    "notebook bytes per displayed image", "task end -> cell", "bytes sent for a",
)


@pytest.mark.timeout(900)  # about 2 min on a quiet machine (a 100,000-run log is built once, then cached)
def test_short_benchmark_prints_every_figure():
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--short"], cwd=REPO, capture_output=True,
                          text=True, timeout=890, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if not ln.startswith("#")]
    judged = [ln for ln in lines if re.search(r"  \S+  \S.*  (PASS|FAIL)$", ln)]
    assert len(judged) == len(lines) >= 40, proc.stdout
    assert f"# {len(judged)} figures" in proc.stdout
    assert "postgresql log of" in proc.stdout or "log_postgres: no PostgreSQL" in proc.stdout, proc.stdout
    for needle in NEEDLES:
        assert needle in proc.stdout, f"no figure for {needle!r}:\n{proc.stdout}"
