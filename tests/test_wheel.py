"""The package as people install it: the sdist and the wheel built from this repository,
the wheel installed in a fresh virtual environment outside it, the demo run there.

``python -m build`` makes both (the wheel from the sdist, as a package index's users get
it, each in an isolated build environment with the build requirement of pyproject.toml).
The sdist must carry the licence, README and changelog; the wheel ``py.typed``, the
simulator and no tests. Then a new venv (this Python, its own pip), ``pip install`` of the
wheel alone (dependencies from the index or pip's cache), and, from a scratch folder with
no key and nothing of the repository on ``sys.path``: ``python -m wan_nb demo`` makes
images and says where the log is; the installed version is ``wan_nb.__version__``; the
``wan-nb`` command runs; and mypy, pointed at that environment, reads the package's types
(PEP 561: without ``py.typed`` it would call the package untyped).

Slow (a fresh environment, ~1-2 minutes with pip's cache warm); marked ``wheel``, so
``-m "not wheel"`` leaves it out while developing.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import wan_nb

REPO = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 300  # s for python -m build (it may fetch setuptools for its isolated environments)
INSTALL_TIMEOUT = 600  # s for pip install of the wheel and its dependencies
DEMO_TIMEOUT = 180  # s for python -m wan_nb demo on the simulator

# pytest-timeout counts the module fixtures (build, venv, install) in the first test that uses them
pytestmark = [pytest.mark.wheel, pytest.mark.timeout(BUILD_TIMEOUT + INSTALL_TIMEOUT + DEMO_TIMEOUT)]


def _clean_env(venv: Path | None, scratch: Path) -> dict[str, str]:
    """No key, no run folder, nothing of the repository or of this venv leaking in."""
    drop = {"WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
            "MYPYPATH"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(venv)
    env["PYTHONNOUSERSITE"] = "1"
    env["MPLCONFIGDIR"] = str(scratch / "matplotlib")
    env["IPYTHONDIR"] = str(scratch / "ipython")
    return env


def _run(cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float,
         ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run to the end (subprocess.run waits and closes the pipes, and kills on timeout)."""
    done = subprocess.run(cmd, check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if ok and done.returncode != 0:
        tail = (done.stdout + done.stderr)[-4000:]
        pytest.fail(f"{' '.join(cmd)} failed with exit code {done.returncode}:\n{tail}", pytrace=False)
    return done


class Built:
    def __init__(self, folder: Path) -> None:
        (self.sdist,) = folder.glob("wan_nb-*.tar.gz")
        (self.wheel,) = folder.glob("wan_nb-*.whl")

    def sdist_names(self) -> list[str]:
        with tarfile.open(self.sdist) as tar:
            top = tar.getnames()[0].split("/")[0]
            return [name.removeprefix(top + "/") for name in tar.getnames()]

    def wheel_names(self) -> list[str]:
        with zipfile.ZipFile(self.wheel) as whl:
            return whl.namelist()

    def wheel_metadata(self) -> email.message.Message:
        with zipfile.ZipFile(self.wheel) as whl:
            (name,) = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
            return email.message_from_bytes(whl.read(name))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
         env=_clean_env(None, out), cwd=out, timeout=BUILD_TIMEOUT)
    return Built(out)


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    """(the venv, its environment, a scratch working folder): outside the repository."""
    scratch = tmp_path_factory.mktemp("fresh")
    assert not scratch.is_relative_to(REPO)
    venv = scratch / "venv"
    env = _clean_env(venv, scratch)
    _run([sys.executable, "-m", "venv", str(venv)], env=env, cwd=scratch, timeout=120)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile",
          "--disable-pip-version-check", str(built.wheel)], env=env, cwd=scratch, timeout=INSTALL_TIMEOUT)
    work = scratch / "work"
    work.mkdir()
    return venv, env, work


def test_the_sdist_carries_the_licence_readme_and_changelog(built: Built) -> None:
    names = built.sdist_names()
    for wanted in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "wan_nb/__init__.py",
                   "wan_nb/py.typed", "wan_nb/sim/__init__.py", "wan_nb/app/studio.ipynb"):
        assert wanted in names, f"{wanted} is not in {built.sdist.name}"
    assert not [n for n in names if n.startswith(("tests/", ".venv/", "wan_runs/"))], "the sdist ships no tests"


def test_the_wheel_has_py_typed_the_simulator_and_no_tests(built: Built) -> None:
    names = built.wheel_names()
    assert "wan_nb/py.typed" in names
    assert "wan_nb/app/studio.ipynb" in names, "wan-nb studio serves the notebook shipped in the package"
    assert {"wan_nb/sim/__init__.py", "wan_nb/sim/__main__.py", "wan_nb/__main__.py", "wan_nb/cli.py"} <= set(names)
    stray = [n for n in names if not n.startswith(("wan_nb/", "wan_nb-"))]
    assert not stray, f"outside the package: {stray}"  # tests/, benchmarks/, notebooks/ stay out
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_the_wheel_says_its_version_and_licence(built: Built) -> None:
    meta = built.wheel_metadata()
    assert meta["Version"] == wan_nb.__version__, "the wheel's version is not wan_nb.__version__"
    assert built.wheel.name.startswith(f"wan_nb-{wan_nb.__version__}-")
    assert meta["License-Expression"] == "Apache-2.0"
    assert (REPO / "LICENSE").read_text(encoding="utf-8").startswith("Copyright 2026 the wan_nb authors\n")
    assert "Apache License\n                           Version 2.0, January 2004" in (REPO / "LICENSE").read_text()


def test_the_installed_wheel_runs_the_demo(installed: tuple[Path, dict[str, str], Path]) -> None:
    venv, env, work = installed
    python = str(venv / "bin" / "python")
    where = _run([python, "-c", "import wan_nb; print(wan_nb.__file__)"], env=env, cwd=work, timeout=60)
    assert Path(where.stdout.strip()).is_relative_to(venv), f"imported from {where.stdout.strip()}, not the venv"

    done = _run([python, "-m", "wan_nb", "demo"], env=env, cwd=work, timeout=DEMO_TIMEOUT)
    out = done.stdout
    home = work / "wan_runs"
    assert "using the built-in simulator" in out + done.stderr
    assert f"log:        {home / 'log.sqlite'}" in out, out[-2000:]
    images = sorted((home / "images").rglob("*.jpg"))
    assert len(images) >= 4 and all(str(p) in out for p in images), out[-2000:]
    assert (home / "log.sqlite").stat().st_size > 0


def test_the_installed_version_is_wan_nb_version(installed: tuple[Path, dict[str, str], Path]) -> None:
    venv, env, work = installed
    _run([str(venv / "bin" / "python"), "-c",
          "import wan_nb, importlib.metadata as m; assert wan_nb.__version__ == m.version('wan_nb'), "
          "(wan_nb.__version__, m.version('wan_nb'))"], env=env, cwd=work, timeout=60)
    shown = _run([str(venv / "bin" / "wan-nb"), "--version"], env=env, cwd=work, timeout=60)
    assert shown.stdout.strip() == f"wan_nb {wan_nb.__version__}"


def test_type_checkers_read_the_installed_package(installed: tuple[Path, dict[str, str], Path]) -> None:
    """mypy (this venv's) checks a user's file against the installed wheel: with ``py.typed``
    it knows ``wan_nb.__version__`` is a ``str`` and says so; without it, an untyped package."""
    venv, env, work = installed
    user = work / "user_code.py"
    user.write_text("import wan_nb\n\nversion: int = wan_nb.__version__\n", encoding="utf-8")
    done = _run([sys.executable, "-m", "mypy", "--python-executable", str(venv / "bin" / "python"),
                 "--no-incremental", "--config-file", os.devnull, str(user)],
                env=env, cwd=work, timeout=300, ok=False)
    out = done.stdout + done.stderr
    assert "py.typed" not in out and "missing library stubs" not in out, out
    assert 'Incompatible types in assignment (expression has type "str", variable has type "int")' in out, out


@pytest.mark.timeout(INSTALL_TIMEOUT + 300)
def test_the_installed_wheel_serves_the_studio_from_any_folder(installed: tuple[Path, dict[str, str], Path]) -> None:
    """``wan-nb studio`` from the wheel: without Voilà it says how to get it; with Voilà (the
    ``lab`` extra's part that serves it) it serves the notebook shipped in the package."""
    import re
    import signal
    import subprocess
    import time
    import urllib.request

    venv, env, work = installed
    env = {**env, **{f"JUPYTER_{name.upper()}_DIR": str(work.parent / f"jupyter_{name}")
                     for name in ("runtime", "config", "data")}}
    studio = [str(venv / "bin" / "wan-nb"), "studio", "--port", "0"]
    refused = _run(studio, env=env, cwd=work, timeout=60, ok=False)
    assert refused.returncode == 2 and "is not installed: pip install 'wan_nb[lab]'" in refused.stderr
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile",
          "--disable-pip-version-check", "voila>=0.5,<0.6", "ipykernel"], env=env, cwd=work, timeout=INSTALL_TIMEOUT)
    out = work / "studio.out"
    with open(out, "w") as o:
        proc = subprocess.Popen(studio, env=env, cwd=work, stdout=o, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (m := re.search(r"^wan-nb studio: (http://\S+)$", out.read_text(), flags=re.M)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.3)
        with urllib.request.urlopen(m.group(1), timeout=120) as resp:
            page = resp.read().decode("utf-8", "replace")
        assert "wan-studio" in page and "Traceback" not in page, page[-2000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        proc.stderr.close()
    assert (work / "wan_runs").is_dir()  # the studio's runs go to the folder it was started in
