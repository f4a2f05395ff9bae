import pytest

from wan_nb.sim import Simulator


@pytest.fixture
def sim():
    """A simulator on a free loopback port with short task latency; stopped afterwards."""
    with Simulator(latency=0.1, seed=1234) as s:
        yield s
