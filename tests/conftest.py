import sys

import pytest
from browser_lab import browser, lab, page  # noqa: F401  (JupyterLab + Chromium fixtures for browser tests)

from wan_nb.sim import Simulator


@pytest.fixture
def sim():
    """A simulator on a free loopback port with short task latency; stopped afterwards."""
    with Simulator(latency=0.1, seed=1234) as s:
        yield s


def pytest_terminal_summary(terminalreporter):
    """The reliability suite's figures (tests/test_reliability.py), when it ran."""
    suite = sys.modules.get("test_reliability")
    lines = suite.report_lines() if suite is not None else []
    if len(lines) > 1:
        terminalreporter.section("reliability")
        for line in lines:
            terminalreporter.write_line(line)
