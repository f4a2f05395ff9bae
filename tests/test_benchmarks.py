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
FIGURES = 22


@pytest.mark.timeout(600)  # about 40 s on a quiet machine; bounded, not tight, for a loaded one
def test_short_benchmark_prints_every_figure():
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--short"], cwd=REPO, capture_output=True,
                          text=True, timeout=590, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if not ln.startswith("#")]
    judged = [ln for ln in lines if re.search(r"  \S+  \S.*  (PASS|FAIL)$", ln)]
    assert len(judged) == FIGURES == len(lines), proc.stdout
    assert f"# {FIGURES} figures" in proc.stdout
    for needle in ("wall/ideal, default settings", "documented loop", "HTTP requests per task",
                   "runs(where=", "grid() of a 64-cell slice", "starting a 48-cell sweep", "one append",
                   "client CPU per task", "client memory growth", "render of a 4K image",
                   "notebook bytes per displayed image", "task end -> cell", "bytes sent for a"):
        assert needle in proc.stdout, f"no figure for {needle!r}:\n{proc.stdout}"
