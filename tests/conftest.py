import sys

import pg_server as _pg
import pytest
from browser_lab import browser, lab, page  # noqa: F401  (JupyterLab + Chromium fixtures for browser tests)

from wan_nb.sim import Simulator


@pytest.fixture
def sim():
    """A simulator on a free loopback port with short task latency; stopped afterwards."""
    with Simulator(latency=0.1, seed=1234) as s:
        yield s


@pytest.fixture(scope="session")
def pg():
    """A throwaway PostgreSQL server for the session (tests/pg_server.py); skipped where
    PostgreSQL is missing, failed under CI."""
    reason = _pg.missing_reason()
    if reason:
        _pg.unavailable(reason)
    server = _pg.PgServer().init()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(pg) -> str:
    """The URL (password included) of a log in a fresh schema: nobody else's runs in it."""
    return pg.new_schema()


# The log's tests run on both engines: a test that takes ``log_url`` runs once per engine.
ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=ENGINES)
def log_url(request, tmp_path) -> str:
    """Where the test's log is: ``wan_runs/log.sqlite`` in its tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "wan_runs" / "log.sqlite")
    return request.getfixturevalue("pg_url")


def pytest_terminal_summary(terminalreporter):
    """The reliability suite's figures (tests/test_reliability.py), when it ran."""
    suite = sys.modules.get("test_reliability")
    lines = suite.report_lines() if suite is not None else []
    if len(lines) > 1:
        terminalreporter.section("reliability")
        for line in lines:
            terminalreporter.write_line(line)
