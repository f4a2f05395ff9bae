"""The status line of a blocking call, executed in a real kernel (nbclient)."""

from __future__ import annotations

import os

import pytest
from children import run_notebook

pytestmark = pytest.mark.notebooks

def _run(tmp_path, cells):
    import nbformat  # here, not at the top: its import costs every collection ~2 s

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    env = {k: v for k, v in os.environ.items() if k not in ("WAVE_API_KEY", "WAN_NB_BASE_URL")}
    env["WAN_NB_HOME"] = str(tmp_path / "runs")
    run_notebook(nb, cwd=tmp_path, env=env, timeout=120)
    return nb


def _html_outputs(cell):
    return [o["data"].get("text/html", "") for o in cell.outputs if o.get("output_type") == "display_data"]


def test_slow_call_shows_a_status_line_that_ends_as_a_summary(tmp_path):
    nb = _run(
        tmp_path,
        [
            "import wan_nb as wan\nwan.connect(latency=3.0, quiet=True)",
            'r = wan.generate("a slow heron", seed=1, resolution="1K")',
            'fast = wan.generate("a slow heron", seed=1, resolution="1K")  # cache hit: instant',
        ],
    )
    slow = _html_outputs(nb.cells[1])
    assert len(slow) == 1 and "generate · $0.02295 · done after" in slow[0]
    assert _html_outputs(nb.cells[2]) == []  # quick calls show nothing
