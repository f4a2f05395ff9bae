"""Shared fixtures for tests in a real browser: headless JupyterLab + Debian Chromium,
driven by Playwright (see ../shared/recipes/browser-tests.md for the gotchas).

``conftest.py`` makes the fixtures ``lab``, ``browser`` and ``page`` available; a test
module says which notebooks its server serves: ``NOTEBOOKS = {"name.ipynb":
[cell sources]}``, and optionally ``prepare_lab_root(root: Path)`` to put more files
next to them. Each module gets its own server (module scope), stopped afterwards with
its kernels. The server is JupyterLab; a module that parametrizes ``lab`` indirectly
with ``FRONT_ENDS`` (``"lab"``, ``"notebook"``) runs its tests in JupyterLab and in
Jupyter Notebook 7 (``lab["front_end"]`` says which); the helpers below work in both.

Without /usr/bin/chromium or the ``playwright`` package the tests are skipped,
unless the environment variable CI is set: then they fail, so CI cannot skip them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Bounded but generous: on a loaded machine (two suites on two cores) a server has taken
# over a minute to answer and a kernel as long to become idle.
SERVER_START_TIMEOUT = 180  # s for /api/status to answer
SERVER_START_ATTEMPTS = 3  # a server whose port was taken before it bound it is started again
READY_TIMEOUT = 120_000  # ms from page load to a notebook with its cells and an idle kernel
VISIBLE_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
FRONT_ENDS = ("lab", "notebook")  # JupyterLab, Jupyter Notebook 7: ``jupyter lab`` / ``jupyter notebook``
# The kernel is idle: Lab's status bar ends in "| Idle"; Notebook 7 has an execution indicator.
KERNEL_IDLE_JS = {
    "lab": "[...document.querySelectorAll('.jp-StatusBar-TextItem')]"
           ".some(el => /\\|\\s*Idle\\s*$/.test(el.textContent))",
    # Notebook 7: the indicator can say idle before a kernel is there, and on a loaded machine
    # it may ask which kernel to start (the notebook names python3): accept its choice.
    "notebook": ("(() => { const ask = document.querySelector('.jp-Dialog .jp-mod-accept'); if (ask) ask.click();"
                 " const w = window.jupyterapp.shell.currentWidget;"
                 " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
                 " return !ask && !!k && k.status === 'idle'"
                 " && !!document.querySelector('.jp-Notebook-ExecutionIndicator[data-status=\"idle\"]'); })()"),
}


def _missing(reason: str) -> None:
    """Skip on a developer machine; fail under CI so a missing browser is never silent."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip; run tests/browser_setup.sh "
                    "and pip install playwright)", pytrace=False)
    pytest.skip(reason)


def require_browser() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"{CHROMIUM} is missing (install it with tests/browser_setup.sh)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright package is missing (pip install playwright; never `playwright install`)")


def write_notebook(path: Path, sources: list[str]) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, str(path))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A JupyterLab (or, parametrized ``"notebook"``, Notebook 7) server on loopback serving
    a temporary folder with the module's notebooks."""
    front_end = getattr(request, "param", "lab")
    assert front_end in FRONT_ENDS, front_end
    require_browser()
    try:
        import jupyterlab  # noqa: F401
        import nbformat  # noqa: F401

        if front_end == "notebook":
            import notebook  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"JupyterLab, Notebook 7 and nbformat are needed for the browser test: {exc}", pytrace=False)

    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    for name, cells in getattr(request.module, "NOTEBOOKS", {}).items():
        write_notebook(root / name, cells)
    prepare = getattr(request.module, "prepare_lab_root", None)
    if prepare is not None:
        prepare(root)

    env = dict(os.environ)
    env.pop("WAVE_API_KEY", None)
    env.pop("WAN_NB_BASE_URL", None)
    env["WAN_NB_HOME"] = str(base / "wan_home")
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR"):
        d = base / var.lower()
        d.mkdir()
        env[var] = str(d)
    # no "Would you like to get notified about official Jupyter news?" toast over the output
    news = base / "jupyterlab_settings_dir" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    # the kernel must be this interpreter (the one wan_nb is installed in)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")

    token = uuid.uuid4().hex
    log_path = base / "jupyter.log"
    started = time.monotonic()
    # A port found free may be taken by another process before the server binds it (a
    # second suite on the machine): then the server exits at once, and is started again
    # on another port. Kernels talk over Unix sockets, so they cannot clash on ports.
    # Unix socket paths are short (~100 bytes): the kernels' sockets go in a short folder of their own.
    sockets = tempfile.mkdtemp(prefix="wan-k-")
    for attempt in range(1, SERVER_START_ATTEMPTS + 1):
        port = free_port()
        logged = log_path.stat().st_size if log_path.exists() else 0
        cmd = [
            sys.executable, "-m", "jupyter", front_end, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
            "--ServerApp.password=", "--allow-root",
            "--KernelManager.transport=ipc", f"--KernelManager.ip={sockets}/k",
        ]
        if front_end == "lab":
            cmd += ["--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                    "--LabApp.expose_app_in_browser=True"]
        else:
            cmd += ["--JupyterNotebookApp.expose_app_in_browser=True"]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        if _server_answers(proc, url, token):
            break
        _stop_server(proc)
        clash = b"already in use" in log_path.read_bytes()[logged:].lower()
        if not clash or attempt == SERVER_START_ATTEMPTS:
            shutil.rmtree(sockets, ignore_errors=True)
            what = (f"exited with {proc.returncode}" if proc.returncode not in (None, -signal.SIGTERM)
                    else f"did not answer in {SERVER_START_TIMEOUT} s")
            pytest.fail(f"precondition not met: jupyter {front_end} {what} ({_load()}):\n{tail(log_path)}",
                        pytrace=False)
    try:
        yield {"url": url, "token": token, "root": root, "base": base, "log": log_path,
               "home": base / "wan_home", "start_s": time.monotonic() - started, "front_end": front_end}
    finally:
        _stop_server(proc)
        shutil.rmtree(sockets, ignore_errors=True)


def _server_answers(proc: subprocess.Popen[bytes], url: str, token: str) -> bool:
    """Wait until the server answers /api/status: True; False if it exits or the time is up."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            req = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                json.loads(resp.read())
                return True
        except OSError:
            time.sleep(0.2)
    return False


def _stop_server(proc: subprocess.Popen[bytes]) -> None:
    """The server and its kernels (its process group) ended and waited for."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} on {os.cpu_count()} cores"


@pytest.fixture(scope="module")
def browser(lab: Any) -> Any:
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


@pytest.fixture
def page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    pg = context.new_page()
    pg.console_log = []
    pg.on("console", lambda m: pg.console_log.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: pg.console_log.append(f"pageerror: {e}"))
    pg.set_default_timeout(30_000)
    try:
        yield pg
    finally:
        context.close()


# --------------------------------------------------------------------------- helpers

def open_notebook(page: Any, lab: Any, name: str, n_cells: int) -> float:
    """Open a notebook and wait until it is really ready (recipe gotcha 1). Returns seconds."""
    t = time.monotonic()
    front_end = lab.get("front_end", "lab")
    path = (f"lab/tree/{name}?token={lab['token']}&reset" if front_end == "lab"
            else f"notebooks/{name}?token={lab['token']}")
    page.goto(f"{lab['url']}/{path}")
    page.wait_for_function(
        """(n) => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            if (!panel || panel.querySelectorAll('.jp-Notebook .jp-Cell').length !== n) return false;
            return IDLE;
        }""".replace("IDLE", KERNEL_IDLE_JS[front_end]),
        arg=n_cells,
        timeout=READY_TIMEOUT,
    )
    return time.monotonic() - t


def run_all(page: Any) -> None:
    """Run every cell; returns when the last has finished."""
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def cell(page: Any, i: int) -> Any:
    """Cell ``i`` of the notebook shown."""
    return page.locator(f"{VISIBLE_PANEL} .jp-Notebook .jp-Cell").nth(i)


def run_cell(page: Any, i: int, *, wait_for: str | None = None, timeout: float = 30_000) -> str:
    """Run cell ``i`` alone (recipe: activeCellIndex + notebook:run-cell) and return its
    output text once it contains ``wait_for`` (a fresh run: the old output is cleared first)."""
    page.evaluate(
        """(i) => {
            const nb = window.jupyterapp.shell.currentWidget.content;
            const out = nb.widgets[i].outputArea;
            if (out) out.model.clear();
            nb.activeCellIndex = i;
            nb.deselectAll();
            window.jupyterapp.commands.execute('notebook:run-cell');
        }""",
        i,
    )
    if wait_for is not None:
        page.wait_for_function(
            """([i, needle]) => {
                const c = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')[i];
                const out = c && c.querySelector('.jp-OutputArea');
                return !!out && out.innerText.includes(needle);
            }""",
            arg=[i, wait_for],
            timeout=timeout,
        )
    return cell(page, i).locator(".jp-OutputArea").inner_text()


def fail_info(page: Any, lab: Any, shot: Path) -> str:
    try:
        page.screenshot(path=str(shot))
    except Exception as exc:  # noqa: BLE001 - diagnostics only: a failed screenshot must not hide the failure
        return f"(no screenshot: {exc})"
    console = "\n".join(page.console_log[-40:])
    return f"screenshot: {shot}\nconsole:\n{console}\njupyter log tail:\n{tail(lab['log'], 2500)}"


def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: ``WAN_NB_SCREENSHOTS`` if set (to refresh docs/screenshots/), else tmp."""
    folder = Path(os.environ.get("WAN_NB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
