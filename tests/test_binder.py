"""Binder's build, replayed: the environment repo2docker makes from binder/, in a fresh venv.

What ``repo2docker --no-build --debug .`` (jupyter-repo2docker 2026.4.0) prints for
these files, the lines that matter:

    Building conda environment for python=3.11                 <- binder/runtime.txt
    (base environment: the conda-forge lock environment.py-3.11: JupyterLab, Notebook 7, ...)
    RUN apt-get install --yes --no-install-recommends fonts-wqy-microhei   <- binder/apt.txt
    COPY --chown=... src/ ${REPO_DIR}/
    USER ${NB_USER}
    RUN ${KERNEL_PYTHON_PREFIX}/bin/pip install --no-cache-dir -r "binder/requirements.txt"
    CMD ["jupyter", "notebook", "--ip", "0.0.0.0"]

requirements.txt holds a local path (``-e .[lab]``), so repo2docker runs that pip step
after copying the repository, with the repository root as the working folder: Binder
installs wan_nb with pyproject.toml's own dependency list.

The replay, in the same order: a new virtual environment made with the runtime.txt
Python; the base environment's Jupyter packages at the versions of repo2docker's lock
(``BASE_ENVIRONMENT``); then ``pip install -r binder/requirements.txt`` from the
repository root. Where it departs: pip's cache is allowed and bytecode is not compiled
(speed only); the base environment's jupyterhub-singleuser, jupyter-offlinenotebook,
jupyter-resource-usage and nodejs are left out (hub login, a download button, a memory
meter: nothing the notebooks use); apt.txt is **not installed** (that needs root and
changes this machine): each of its packages is only checked to exist in the machine's
Debian package lists, when ``apt-cache`` is present. Every notebook is then executed in
that environment by its own ``jupyter nbconvert``, one after another in one folder as a
Binder user would run them, with no API key; the widget front ends must be listed by
``jupyter labextension list``; and the Binder command serves the quickstart at the URL
the README gives, and the studio app through Voilà (a server extension the ``lab`` extra
installs) at the README's ``voila/render`` URL.

Slow (a fresh environment, ~2-3 minutes); marked ``binder`` so it can be left out while
developing with ``-m "not binder"``. CI runs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from wan_nb import Log

REPO = Path(__file__).resolve().parent.parent
BINDER = REPO / "binder"
NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
# A Binder user opens the quickstart first (the README's link), then the others.
RUN_ORDER = sorted(NOTEBOOKS, key=lambda name: (name != "quickstart.ipynb", name))

# repo2docker 2026.4.0, buildpacks/conda/environment.py-3.11-linux-64.lock: the versions
# of the base environment's Jupyter packages that Binder starts from.
BASE_ENVIRONMENT = [
    "jupyterlab==4.4.9",
    "notebook==7.4.7",
    "jupyter_server==2.17.0",
    "ipywidgets==8.1.7",
    "jupyterlab_widgets==3.0.15",
    "ipykernel==7.0.1",
    "ipython==9.6.0",
]
# Files in binder/ that this replay understands; repo2docker reads them, except start-lab.sh
# (the README's main job, not a repo2docker file). Any other file repo2docker would act on
# (postBuild, environment.yml, start, ...) must be added to the replay first.
KNOWN_FILES = {"runtime.txt", "apt.txt", "requirements.txt", "start-lab.sh"}
WIDGET_FRONTENDS = ("@jupyter-widgets/jupyterlab-manager", "ipycanvas")
INSTALL_TIMEOUT = 900  # s for each pip step (the first one fetches JupyterLab and its dependencies)
NOTEBOOK_TIMEOUT = 300  # s for one notebook
SERVER_START_TIMEOUT = 180  # s; bounded, and generous for a loaded machine

# pytest-timeout counts the module fixture (the two pip steps) in the first test; the tests
# of the environment are marked `binder` (the checks of binder/'s files are in the fast tier)
pytestmark = pytest.mark.timeout(2 * INSTALL_TIMEOUT + NOTEBOOK_TIMEOUT)


def _python_for(runtime: str) -> str:
    """An interpreter of the version runtime.txt names (``python-3.11``)."""
    m = re.fullmatch(r"python-(\d+)\.(\d+)", runtime.strip())
    assert m, f"binder/runtime.txt: expected python-X.Y, got {runtime!r}"
    wanted = (int(m.group(1)), int(m.group(2)))
    if sys.version_info[:2] == wanted:
        return sys.executable
    found = shutil.which(f"python{wanted[0]}.{wanted[1]}")
    if found is None:
        pytest.fail(f"binder/runtime.txt asks for Python {wanted[0]}.{wanted[1]}, which is not on this machine")
    return found


def _clean_env(venv: Path, scratch: Path) -> dict[str, str]:
    """The environment's own tools first on PATH, no key, Jupyter's folders in scratch."""
    drop = {"WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
            "JUPYTER_PATH", "JUPYTER_CONFIG_PATH"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["PYTHONNOUSERSITE"] = "1"
    for var, name in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                      ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"),
                      ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"), ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"),
                      ("MPLCONFIGDIR", "matplotlib")]:
        env[var] = str(scratch / name)
    return env


def _run(cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-4000:]
        pytest.fail(f"{' '.join(cmd)} failed with exit code {done.returncode}:\n{tail}", pytrace=False)
    return done


class BinderEnv:
    def __init__(self, venv: Path, scratch: Path) -> None:
        self.venv = venv
        self.scratch = scratch
        self.env = _clean_env(venv, scratch)
        self.folder = scratch / "notebooks"  # a copy of notebooks/: outputs and wan_runs stay out of the repo

    def tool(self, name: str) -> str:
        return str(self.venv / "bin" / name)


@pytest.fixture(scope="module")
def binder_env(tmp_path_factory: pytest.TempPathFactory):
    scratch = tmp_path_factory.mktemp("binder")
    venv = scratch / "venv"
    python = _python_for((BINDER / "runtime.txt").read_text())
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    env = BinderEnv(venv, scratch)
    pip = [env.tool("python"), "-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check"]
    _run([*pip, *BASE_ENVIRONMENT], env=env.env, cwd=scratch, timeout=INSTALL_TIMEOUT)
    # repo2docker's assemble step, from the repository root as it does
    _run([*pip, "-r", "binder/requirements.txt"], env=env.env, cwd=REPO, timeout=INSTALL_TIMEOUT)
    shutil.copytree(REPO / "notebooks", env.folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    yield env
    shutil.rmtree(venv, ignore_errors=True)  # ~1 GB; pytest would keep the last three


# ----------------------------------------------------------------- the files


def test_binder_folder_holds_only_files_the_replay_knows() -> None:
    present = {p.name for p in BINDER.iterdir()}
    unknown = present - KNOWN_FILES
    assert not unknown, f"binder/ has {sorted(unknown)}: replay what repo2docker does with them in this test"
    assert "requirements.txt" in present and "runtime.txt" in present


def test_binder_installs_the_package_with_its_own_dependency_list() -> None:
    lines = [ln.split("#", 1)[0].strip() for ln in (BINDER / "requirements.txt").read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    # one list to keep: the package itself (pyproject.toml), nothing repeated beside it
    assert lines == ["-e .[lab]"], lines


def test_apt_packages_exist_where_apt_is_present() -> None:
    lines = [ln.strip() for ln in (BINDER / "apt.txt").read_text().splitlines()]
    names = [ln for ln in lines if ln and not ln.startswith("#")]
    assert names and all(re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", n) for n in names), names
    if shutil.which("apt-cache") is None:
        pytest.skip("apt-cache is not on this machine: apt.txt's package names are not checked")
    for name in names:
        shown = subprocess.run(["apt-cache", "show", name], check=False, capture_output=True, text=True)
        assert shown.returncode == 0 and f"Package: {name}" in shown.stdout, f"apt.txt: Debian has no package {name!r}"


# ----------------------------------------------------------------- the environment


@pytest.mark.binder
def test_binder_env_has_the_widget_frontends(binder_env: BinderEnv) -> None:
    listed = _run([binder_env.tool("jupyter"), "labextension", "list"], env=binder_env.env,
                  cwd=binder_env.scratch, timeout=120)
    text = listed.stdout + listed.stderr
    for name in WIDGET_FRONTENDS:
        line = next((ln for ln in text.splitlines() if name in ln), None)
        assert line is not None, f"{name} is not in `jupyter labextension list`:\n{text}"
        assert "enabled" in line and "OK" in line, line


@pytest.mark.binder
def test_binder_env_kernel_is_its_own_python(binder_env: BinderEnv) -> None:
    listed = _run([binder_env.tool("jupyter"), "kernelspec", "list", "--json"], env=binder_env.env,
                  cwd=binder_env.scratch, timeout=60)
    spec = json.loads(listed.stdout)["kernelspecs"]["python3"]["spec"]
    exe = shutil.which(spec["argv"][0], path=binder_env.env["PATH"])
    assert exe is not None and Path(exe).parent == binder_env.venv / "bin", spec["argv"]
    probe = _run([exe, "-c", "import wan_nb, sys; print(wan_nb.__file__); print(sys.prefix)"],
                 env=binder_env.env, cwd=binder_env.scratch, timeout=60).stdout.split()
    assert Path(probe[0]).is_relative_to(REPO) and Path(probe[1]) == binder_env.venv  # the editable install


@pytest.mark.binder
@pytest.mark.parametrize("name", RUN_ORDER)
def test_binder_env_runs_every_notebook(binder_env: BinderEnv, name: str) -> None:
    out = binder_env.scratch / "executed"
    _run([binder_env.tool("jupyter"), "nbconvert", "--to", "notebook", "--execute",
          f"--ExecutePreprocessor.timeout={NOTEBOOK_TIMEOUT}", "--ExecutePreprocessor.kernel_name=python3",
          "--output-dir", str(out), name],
         env=binder_env.env, cwd=binder_env.folder, timeout=NOTEBOOK_TIMEOUT + 60)
    executed = json.loads((out / name).read_text(encoding="utf-8"))
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert code and all(c["execution_count"] is not None for c in code)
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    # its runs went to the Binder user's run folder beside the notebooks, on the simulator
    runs = Log(binder_env.folder / "wan_runs" / "log.sqlite").runs()
    assert len(runs) and set(runs["backend"].astype(str)) == {"simulator"}


# ----------------------------------------------------------------- the Binder command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:  # not listening yet
        return 0, ""


@contextlib.contextmanager
def _binder_server(binder_env: BinderEnv) -> Iterator[tuple[str, str]]:
    """Binder's command (``jupyter notebook`` in the repository) on loopback: (base URL, token)."""
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [binder_env.tool("jupyter"), "notebook", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.root_dir={REPO}", f"--IdentityProvider.token={token}", "--ServerApp.password="]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    server_log = binder_env.scratch / "server.log"
    env = {**binder_env.env, "WAN_NB_HOME": str(binder_env.scratch / "server_runs")}  # not into the repository
    with open(server_log, "w") as log:
        server = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while _get(f"{base}/api/status?token={token}")[0] != 200:
            assert server.poll() is None, f"the Binder command exited:\n{server_log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, (f"precondition not met: the Binder command did not answer "
                                                 f"/api/status in {SERVER_START_TIMEOUT} s:\n"
                                                 f"{server_log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server shuts its kernels down
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_binder_command_opens_the_quickstart(binder_env: BinderEnv) -> None:
    """Binder runs ``jupyter notebook`` in the repository; the README's link opens the quickstart."""
    with _binder_server(binder_env) as (base, token):
        status, page = _get(f"{base}/lab/tree/notebooks/quickstart.ipynb?token={token}")
        assert status == 200 and "JupyterLab" in page
        status, body = _get(f"{base}/api/contents/notebooks/quickstart.ipynb?token={token}&content=0")
        assert status == 200 and json.loads(body)["type"] == "notebook"
        status, body = _get(f"{base}/api/kernelspecs?token={token}")
        assert status == 200 and "python3" in json.loads(body)["kernelspecs"]


def test_binder_renders_the_studio_through_voila(binder_env: BinderEnv) -> None:
    """The README's studio link (``urlpath=voila/render/notebooks/studio.ipynb``): Voilà, installed by
    the ``lab`` extra, runs the notebook in Binder's server and sends the app, with no error."""
    with _binder_server(binder_env) as (base, token):
        status, page = _get(f"{base}/voila/render/notebooks/studio.ipynb?token={token}", timeout=180)
    assert status == 200, status
    assert "wan-studio" in page and "Simulator" in page, page[-2000:]
    for failure in ("There was an error when executing cell", "Traceback", "Error displaying widget"):
        assert failure not in page
