import pytest
from browser_lab import browser, lab, page  # noqa: F401  (JupyterLab + Chromium fixtures for browser tests)

from wan_nb.sim import Simulator


@pytest.fixture
def sim():
    """A simulator on a free loopback port with short task latency; stopped afterwards."""
    with Simulator(latency=0.1, seed=1234) as s:
        yield s
