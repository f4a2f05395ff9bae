"""Ctrl-C (what "interrupt kernel" sends) while wan_nb blocks: queued tasks are cancelled
on the server and refunded, nothing new is sent, and the interrupt still reaches the user."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time

import loopback
import pytest
from children import child, communicate, describe, wait_for

from wan_nb import _spec
from wan_nb.sim import Simulator

pytestmark = pytest.mark.subprocess

GENERATE = textwrap.dedent("""
    import sys, wan_nb as wan
    wan.connect(base_url=sys.argv[1], home=sys.argv[2], quiet=True)
    try:
        wan.generate("waits in the queue", seed=5, resolution="1K")
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
""")

SWEEP = textwrap.dedent("""
    import sys, wan_nb as wan
    wan.connect(base_url=sys.argv[1], home=sys.argv[2], quiet=True)
    sw = wan.sweep("interrupt {i}", i=list(range(6)), resolution="1K", concurrency=3, quiet=True)
    try:
        sw.wait()
    except KeyboardInterrupt:
        print("INTERRUPTED", sw.counts(), flush=True)
""")


def _run_and_interrupt(script: str, sim: Simulator, tmp_path, until_submitted: int) -> str:
    """Start ``script``, wait until the simulator has ``until_submitted`` tasks (the child is
    blocked in wan_nb, its tasks on the server), then Ctrl-C it; its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "WAVE_API_KEY"}
    with child([sys.executable, "-c", script, sim.base_url, str(tmp_path)], env=env) as proc:
        wait_for(lambda: sim.ledger()["submitted"] >= until_submitted, proc=proc,
                 what=f"the child to submit (the simulator to count {until_submitted} tasks) before Ctrl-C")
        proc.send_signal(signal.SIGINT)
        out, err = communicate(proc, what="the child to exit after Ctrl-C")
    assert "INTERRUPTED" in out, f"the child did not catch the KeyboardInterrupt{describe(out, err)}"
    return out


# The simulator's one slot is held far longer than a loaded machine takes to start the child
# and interrupt it, so the tasks that should be queued at Ctrl-C still are (the held task is
# abandoned when the simulator stops).
HELD = 120.0


def test_interrupting_generate_cancels_its_queued_task(tmp_path):
    with Simulator(latency=HELD, concurrency=1) as sim:
        # occupy the only slot so the script's task stays queued
        loopback.post(sim.base_url + "/tasks", json={"model": "wan2.7-image", "prompt": "busy"},
                   headers={"Authorization": "Bearer k"}, timeout=60)
        _run_and_interrupt(GENERATE, sim, tmp_path, until_submitted=2)
        ledger = sim.ledger()
    assert ledger["submitted"] == 2
    assert ledger["by_status"]["cancelled"] == 1 and ledger["refunded_quota"] == _spec.UNIT_QUOTA


def test_interrupting_sweep_wait_cancels_the_sweep(tmp_path):
    with Simulator(latency=HELD, concurrency=1) as sim:
        _run_and_interrupt(SWEEP, sim, tmp_path, until_submitted=3)
        time.sleep(0.5)  # a submit the child sent just before it exited would be counted by now
        ledger = sim.ledger()
    assert ledger["submitted"] == 3, "no cell may be sent after the interrupt"
    assert ledger["by_status"]["cancelled"] == 2  # the two queued behind the one processing
    assert ledger["refunded_quota"] == 2 * _spec.UNIT_QUOTA
