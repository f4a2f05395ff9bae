"""Fixtures shared by every test module, and the two tiers of the suite.

The fast tier is what plain ``python -m pytest`` runs: every test not in a slow family.
The slow families (``SLOW_FAMILIES``, each a marker registered in pyproject.toml) are
left out, with a line saying so, unless the command line asks for them: ``--full``
(what ``tests/run.sh`` and so CI pass), any ``-m`` or ``-k`` expression (``-m browser``,
``-m "not binder"``), or a test file or test id named on it (``python -m pytest
tests/test_browser_widgets.py`` runs that file's tests). Every test of a slow family
also carries the umbrella marker ``slow``.
"""

import sys

import pg_server as _pg
import pytest
from browser_lab import browser, lab, page  # noqa: F401  (JupyterLab + Chromium fixtures for browser tests)

from wan_nb.sim import Simulator

# postgres: ~100 cases of the log's tests on PostgreSQL and the team's (about a minute with
# the server's start): run by --full (CI), -m postgres, or a named file, not by the fast tier
SLOW_FAMILIES = ("browser", "notebooks", "binder", "reliability", "benchmarks", "subprocess", "wheel", "postgres")


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


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true",
                     help="run the whole suite: the fast tier and every slow family (tests/run.sh, CI)")


def _fast_tier_only(config) -> bool:
    """Plain ``python -m pytest`` (or a folder): the fast tier. Any explicit choice runs what it chose."""
    if config.getoption("--full") or config.option.markexpr or config.option.keyword:
        return False
    here = config.invocation_params.dir
    return not any("::" in arg or (here / arg).is_file() for arg in config.args)


# The fast tier runs on this many pytest-xdist workers unless -n says otherwise: most of its
# time is spent waiting on simulated tasks, so two processes halve it on two cores. The slow
# families run in one process (browsers, kernels and servers of their own are load enough).
FAST_TIER_WORKERS = 2


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Plain ``python -m pytest``: the fast tier, on FAST_TIER_WORKERS workers (before xdist reads -n)."""
    if hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("xdist"):
        return  # a worker, or xdist not installed: one process
    explicit = config.option.numprocesses is not None or config.getoption("usepdb") or config.option.collectonly
    if not explicit and _fast_tier_only(config):
        config.option.numprocesses = FAST_TIER_WORKERS


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(item.get_closest_marker(name) for name in SLOW_FAMILIES):
            item.add_marker(pytest.mark.slow)
    if not _fast_tier_only(config):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
        config.stash[_LEFT_OUT] = slow
        if hasattr(config, "workeroutput"):  # a worker: the controller says the line
            families = sorted({name for item in slow for name in SLOW_FAMILIES if item.get_closest_marker(name)})
            config.workeroutput["left_out"] = (len(slow), families)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controller of a run on workers: the first worker's count of what the fast tier left out."""
    left_out = getattr(node, "workeroutput", {}).get("left_out")
    if left_out:
        node.config.stash.setdefault(_LEFT_OUT_COUNT, left_out)


_LEFT_OUT = pytest.StashKey[list]()
_LEFT_OUT_COUNT = pytest.StashKey[tuple]()


def pytest_terminal_summary(terminalreporter, config):
    left_out = config.stash.get(_LEFT_OUT, [])
    count, families = config.stash.get(_LEFT_OUT_COUNT, (len(left_out), None))
    if families is None:
        families = sorted({name for item in left_out for name in SLOW_FAMILIES if item.get_closest_marker(name)})
    if count:
        workers = config.option.numprocesses if hasattr(config.option, "numprocesses") else None
        where = f" (on {workers} workers: -n 0 runs it in one process)" if workers else ""
        terminalreporter.write_line(
            f"fast tier{where}: {count} slow tests not run ({', '.join(families)}); "
            "`bash tests/run.sh` or `python -m pytest --full` runs everything, `-m <family>` one family")
    # The reliability suite's figures (tests/test_reliability.py), when it ran.
    suite = sys.modules.get("test_reliability")
    lines = suite.report_lines() if suite is not None else []
    if len(lines) > 1:
        terminalreporter.section("reliability")
        for line in lines:
            terminalreporter.write_line(line)

