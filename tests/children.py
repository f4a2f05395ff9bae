"""Child processes for the tests, started and ended one way.

* ``child(...)`` starts one with its output captured and, whatever the test does, ends
  it: killed if it still runs, waited for, its pipes closed (a ``Popen`` collected
  while running is a ResourceWarning, which ``filterwarnings = error`` turns into a
  failure of whichever test the garbage collector happens to run in).
* ``wait_for(check, what=..., proc=...)`` waits for a readiness signal (the child
  submitted, the server counted it, a file appeared), never a fixed sleep. Its time
  limit is generous, because a loaded machine may take long to start a Python process,
  and bounded; when it passes, or the child exits first, the test fails saying which
  precondition was not met, with the machine's load and the child's output.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

# Seconds a precondition may take (a child starting up and sending its first request).
# About 2 s on a quiet machine; far longer when two suites share two cores.
READY_TIMEOUT = float(os.environ.get("WAN_NB_TEST_READY_TIMEOUT", "180"))
# Seconds a child may take to finish once the test has done its part (communicate).
EXIT_TIMEOUT = 180.0


@contextlib.contextmanager
def child(args: Sequence[str | os.PathLike[str]], *, env: dict[str, str] | None = None,
          cwd: str | Path | None = None, capture: bool = True) -> Iterator[subprocess.Popen[str]]:
    """``Popen(args)`` (text; stdout and stderr piped unless ``capture=False``), ended on exit."""
    pipe = subprocess.PIPE if capture else None
    # faulthandler on: a child that hangs is asked for every thread's stack (SIGABRT) before it is killed
    env = {**(os.environ if env is None else env), "PYTHONFAULTHANDLER": "1"}
    with _ctrl_c_reaches_children():
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=pipe, stderr=pipe,
                                text=True)
    try:
        yield proc
    finally:
        finish(proc)


@contextlib.contextmanager
def _ctrl_c_reaches_children() -> Iterator[None]:
    """While a child is started, SIGINT is not ignored here, so the child takes Ctrl-C as a
    Python started from a terminal does.

    A suite started where SIGINT is ignored (bash starts a script's background jobs so,
    nohup'd runs under such a script too) passes that on to every child it starts, and a
    child whose Ctrl-C is under test (test_interrupt.py) would never see it: it went on
    waiting for its task. An ignored signal stays ignored across exec; a handled one
    starts at its default, which Python turns into KeyboardInterrupt.
    """
    ignored = (signal.getsignal(signal.SIGINT) is signal.SIG_IGN
               and threading.current_thread() is threading.main_thread())
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def finish(proc: subprocess.Popen[str], *, stacks: bool = False) -> tuple[str, str]:
    """Kill ``proc`` if it still runs, wait for it, close its pipes; its output so far.
    ``stacks``: first ask it (SIGABRT, with faulthandler on) to print where each thread is."""
    signals = ""
    if stacks and proc.poll() is None:
        with contextlib.suppress(OSError):  # which signals it blocks, ignores, catches, has pending
            lines = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            signals = "\n".join(ln for ln in lines if ln.startswith(("SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")))
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGABRT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    try:
        out, err = proc.communicate(timeout=60)  # reads what is left, reaps the process
    except (ValueError, OSError):  # pipes closed already: a communicate() that finished
        proc.wait(timeout=60)
        out = err = ""
    finally:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return out or "", (err or "") + (f"\n{signals}" if signals else "")


def communicate(proc: subprocess.Popen[str], timeout: float = EXIT_TIMEOUT, what: str = "the child to exit"
                ) -> tuple[str, str]:
    """``proc.communicate(timeout)``; past the timeout the child is ended and the test fails saying so."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = finish(proc, stacks=True)
        pytest.fail(f"{what}: not within {timeout:.0f} s ({load()}){describe(out, err)}", pytrace=False)
    return out or "", err or ""


def wait_for(check: Callable[[], Any], *, what: str, proc: subprocess.Popen[str] | None = None,
             timeout: float = READY_TIMEOUT, interval: float = 0.02) -> None:
    """Poll ``check()`` until it is true. If ``proc`` exits first, or ``timeout`` passes,
    fail: "precondition not met: <what>", with the load average and ``proc``'s output."""
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            out, err = finish(proc)
            pytest.fail(f"precondition not met: {what} (the child exited with {proc.returncode} first)"
                        f"{describe(out, err)}", pytrace=False)
        if time.monotonic() > deadline:
            out, err = finish(proc, stacks=True) if proc is not None else ("", "")
            pytest.fail(f"precondition not met: {what}, not within {timeout:.0f} s ({load()})"
                        f"{describe(out, err)}", pytrace=False)
        time.sleep(interval)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} on {os.cpu_count()} cores"


def describe(out: str, err: str, limit: int = 6000) -> str:
    parts = [f"\n--- child {name} (last {limit} chars) ---\n{text[-limit:]}"
             for name, text in (("stdout", out), ("stderr", err)) if text.strip()]
    return "".join(parts) or "\n(the child printed nothing)"


# Seconds a kernel may take to start and answer (nbclient's default is 60; a loaded
# machine starting ipykernel and pandas has taken longer).
KERNEL_START_TIMEOUT = 240


def run_notebook(nb: Any, *, cwd: str | Path, env: dict[str, str], timeout: float) -> Any:
    """Execute ``nb`` in place in a fresh python3 kernel (nbclient), connected over Unix
    sockets; its kernel process is ended and waited for afterwards, whatever happened.

    nbclient shuts the kernel down gracefully, then SIGTERM, then SIGKILL; when the last
    wait (5 s) runs out on a loaded machine it gives up and drops the ``Popen`` still
    running, which surfaces later, in another test, as a ResourceWarning. This keeps a
    reference to the kernel manager and reaps what is left.
    """
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=timeout, startup_timeout=KERNEL_START_TIMEOUT, kernel_name="python3",
                            allow_errors=False, resources={"metadata": {"path": str(cwd)}})
    km = client.create_kernel_manager()  # nbclient still owns it (shuts it down); we keep a reference
    # The kernel's five channels on Unix sockets in a folder of its own, not on TCP ports:
    # jupyter_client picks "free" ports and the kernel binds them later, and another
    # process (a second suite, another kernel) took one in between ("Address already in use").
    with tempfile.TemporaryDirectory(prefix="wan-kernel-") as sockets:
        km.transport = "ipc"
        km.ip = os.path.join(sockets, "k")
        try:
            return client.execute(env=env)  # raises CellExecutionError naming the failing cell
        finally:
            _reap_kernel(km)


def _reap_kernel(km: Any) -> None:
    provisioner = getattr(km, "provisioner", None)
    proc = getattr(provisioner, "process", None)
    if proc is None:
        return  # nbclient's shutdown waited for it
    if proc.poll() is None:
        pgid = getattr(provisioner, "pgid", None)
        with contextlib.suppress(ProcessLookupError):
            if pgid == proc.pid:  # a group of its own (jupyter_client starts a new session)
                os.killpg(pgid, signal.SIGKILL)  # the kernel and anything it started
            else:
                proc.kill()
    proc.wait(timeout=60)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    provisioner.process = None
