"""``python -m wan_nb`` as a user runs it: real subprocesses, the simulator, a tmp run folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from children import child, describe, finish

from wan_nb import Log

pytestmark = pytest.mark.subprocess  # each test runs `python -m wan_nb ...` as a user does

TIMEOUT = 120
PROMPT = "a <b>bold</b> {animal} & friends"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WAVE_API_KEY", "WAN_NB_BASE_URL")}
    env["WAN_NB_HOME"] = str(home)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@pytest.fixture
def cli(tmp_path: Path):
    """Run ``python -m wan_nb ARGS`` in tmp_path with WAN_NB_HOME=tmp_path/runs and no key."""
    home = tmp_path / "runs"

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "wan_nb", *args], cwd=tmp_path, env=env or _env(home),
            capture_output=True, text=True, encoding="utf-8", timeout=TIMEOUT,
        )

    run.home = home  # type: ignore[attr-defined]
    run.dir = tmp_path  # type: ignore[attr-defined]
    return run


def write_sweep(folder: Path, name: str = "sweep.json", **spec) -> Path:
    spec.setdefault("prompts", PROMPT)
    spec.setdefault("fields", {"animal": ["fox", "owl"], "seed": "0-1", "resolution": "1K"})
    path = folder / name
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit status 2, one line on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("wan-nb: error: "), lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ----------------------------------------------------------------- help


def test_help_lists_the_commands(cli) -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    for command in ("sim", "demo", "sweep", "export"):
        assert command in proc.stdout


def test_unknown_command_is_one_line(cli) -> None:
    assert_user_error(cli("paint"), "paint")


# ----------------------------------------------------------------- demo


def test_demo_writes_images_and_says_where(cli) -> None:
    proc = cli("demo", "--latency", "0.1")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "simulator" in out and "nothing is billed" in out
    home = cli.home.resolve()
    shown = [Path(p) for p in re.findall(r"^\s+(\S+\.jpg)  \(\d+×\d+\)$", out, flags=re.M)]
    assert len(shown) == 6
    for p in shown:
        assert p.is_file() and p.resolve().is_relative_to(home)
    assert f"images:     {home / 'images'}" in out
    assert f"log:        {home / 'log.sqlite'}" in out
    runs = Log(home / "log.sqlite").runs()
    assert {"generate", "group", "edit"} <= set(runs["action"].astype(str))
    assert (runs["status"].astype(str) == "completed").all()
    assert len(list((home / "images").rglob("*.jpg"))) == 6

    again = cli("demo", "--latency", "0.1")  # fixed seeds: all from the log, $0
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("cache hit, $0") == 4 and "spent $0.00000" in again.stdout
    assert len(list((home / "images").rglob("*.jpg"))) == 6


def test_demo_on_the_hosted_api_asks_before_paying(cli, tmp_path: Path) -> None:
    env = _env(cli.home)
    env["WAVE_API_KEY"] = "not-a-real-key-3141592653"
    proc = cli("demo", env=env)
    line = assert_user_error(proc, "--yes", "$")
    assert "3141592653" not in line + proc.stdout  # the key is never shown
    assert not cli.home.exists()  # nothing was sent, nothing written


# ----------------------------------------------------------------- sweep


def test_sweep_from_a_file(cli) -> None:
    path = write_sweep(cli.dir, budget_usd=1.0)
    proc = cli("sweep", str(path), "--latency", "0.1")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    cost = re.search(r"sweep (sw-\w+): 4 task\(s\), 4 image\(s\), \$0\.09180 in all; \$0\.09180 to pay", out)
    assert cost, out
    sweep_id = cost.group(1)
    assert f"sweep {sweep_id}: 4/4 completed · 4 image file(s) · spent $0.09180" in out
    assert out.index("to pay") < out.index("completed")  # the cost came first
    assert str(cli.home.resolve() / "log.sqlite") in out

    runs = Log(cli.home / "log.sqlite").runs(sweep_id=sweep_id)
    assert len(runs) == 4 and (runs["status"].astype(str) == "completed").all()
    assert sorted(runs["prompt"]) == sorted(["a <b>bold</b> fox & friends"] * 2 + ["a <b>bold</b> owl & friends"] * 2)
    assert sorted(runs["seed"].tolist()) == [0, 0, 1, 1]

    again = cli("sweep", str(path), "--latency", "0.1")
    assert again.returncode == 0, again.stderr
    assert "$0.00000 to pay ($0.09180 already in the log)" in again.stdout
    assert "spent $0.00000" in again.stdout
    assert len(Log(cli.home / "log.sqlite").runs()) == 4  # nothing sent again


def test_sweep_above_budget_needs_yes(cli) -> None:
    path = write_sweep(cli.dir, budget_usd=0.01)
    proc = cli("sweep", str(path), "--latency", "0.1")
    assert_user_error(proc, "budget_usd=$0.01", "--yes", "nothing was sent")
    assert "$0.09180 to pay" in proc.stdout  # the cost was shown
    assert len(Log(cli.home / "log.sqlite").runs()) == 0

    confirmed = cli("sweep", str(path), "--yes", "--latency", "0.1")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "4/4 completed" in confirmed.stdout


def test_sweep_with_failed_cells_reports_them_and_exits_1(cli, tmp_path: Path) -> None:
    # a simulator whose every task fails; the CLI finds it by WAN_NB_BASE_URL
    with child([sys.executable, "-m", "wan_nb.sim", "--port", "0", "--latency", "0.1", "--task-fail-rate", "1"]) as sim:
        url = sim.stdout.readline().strip()  # printed once it listens
        assert url.startswith("http://127.0.0.1:"), f"the simulator did not start{describe(*finish(sim))}"
        env = _env(cli.home)
        env["WAN_NB_BASE_URL"] = url
        path = write_sweep(cli.dir, fields={"animal": ["fox", "owl"], "seed": 3, "resolution": "1K"})
        proc = cli("sweep", str(path), env=env)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "0/2 completed, 2 failed" in proc.stdout and "spent $0.00000" in proc.stdout
    assert "failed: animal=fox:" in proc.stdout and "failed: animal=owl:" in proc.stdout
    runs = Log(cli.home / "log.sqlite").runs()
    assert (runs["status"].astype(str) == "failed").all() and (runs["cost_usd"] == 0).all()


BAD_FILES = {
    "not-json": ('{"prompts": "a fox",', ["not valid JSON", "line 1"]),
    "not-an-object": ('["a fox"]', ["expected a JSON object"]),
    "unknown-key": ('{"prompts": "a fox", "feilds": {}}', ["feilds", "did you mean 'fields'"]),
    "no-prompts": ('{"fields": {"seed": 1}}', ['"prompts"']),
    "fields-not-object": ('{"prompts": "a fox", "fields": ["seed"]}', ['"fields"']),
    "bad-budget": ('{"prompts": "a fox", "budget_usd": "lots"}', ["budget_usd"]),
    "bad-resolution": ('{"prompts": "a fox", "fields": {"resolution": "8K"}}', ["resolution", "8K"]),
    "unknown-field": ('{"prompts": "a fox", "fields": {"colour": "red"}}', ["colour", "not a field"]),
    "missing-placeholder": ('{"prompts": "a {animal}", "fields": {}}', ["animal"]),
    "group-4k": ('{"prompts": "a comic", "fields": {"action": "group", "n": 4, "resolution": "4K"}}',
                 ["resolution", "2K"]),
    "bad-seed": ('{"prompts": "a fox", "fields": {"seed": "lots"}}', ["seed"]),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_sweep_file_is_one_clear_line(cli, name: str) -> None:
    text, needles = BAD_FILES[name]
    path = cli.dir / f"{name}.json"
    path.write_text(text, encoding="utf-8")
    proc = cli("sweep", str(path))
    assert_user_error(proc, *needles)
    assert not (cli.home / "log.sqlite").exists()  # refused before anything started


def test_missing_sweep_file(cli) -> None:
    assert_user_error(cli("sweep", "nowhere.json"), "nowhere.json", "no such file")
    assert_user_error(cli("sweep"), "FILE.json")


# ----------------------------------------------------------------- export


def test_export_csv_parquet_html(cli) -> None:
    path = write_sweep(cli.dir)
    assert cli("sweep", str(path), "--latency", "0.1").returncode == 0
    proc = cli("export", "--csv", "runs.csv", "--parquet", "runs.parquet", "--html", "report.html")
    assert proc.returncode == 0, proc.stderr
    for name in ("runs.csv", "runs.parquet", "report.html"):
        assert str(cli.dir / name) in proc.stdout

    csv = pd.read_csv(cli.dir / "runs.csv")
    parquet = pd.read_parquet(cli.dir / "runs.parquet")
    assert len(csv) == len(parquet) == 4
    assert set(csv["prompt"]) == {"a <b>bold</b> fox & friends", "a <b>bold</b> owl & friends"}

    report = (cli.dir / "report.html").read_text(encoding="utf-8")
    assert "&lt;b&gt;bold&lt;/b&gt;" in report and "<b>bold</b>" not in report  # prompts escaped
    assert report.count('src="data:image/') >= 4  # thumbnails embedded: opens without a server


def test_export_filters_and_home(cli, tmp_path: Path) -> None:
    path = write_sweep(cli.dir)
    done = cli("sweep", str(path), "--latency", "0.1")
    sweep_id = re.search(r"sweep (sw-\w+):", done.stdout).group(1)
    other_env = _env(tmp_path / "elsewhere")  # --home wins over WAN_NB_HOME
    proc = cli("export", "--home", str(cli.home), "--sweep", sweep_id, "--where", "seed == 1",
               "--csv", "seed1.csv", env=other_env)
    assert proc.returncode == 0, proc.stderr
    df = pd.read_csv(cli.dir / "seed1.csv")
    assert len(df) == 2 and set(df["seed"]) == {1}


def test_export_mistakes_are_one_line(cli) -> None:
    assert_user_error(cli("export", "--csv", "x.csv"), "no experiment log", str(cli.home))
    assert not (cli.home / "log.sqlite").exists()  # export never creates a log
    path = write_sweep(cli.dir)
    assert cli("sweep", str(path), "--latency", "0.1").returncode == 0
    assert_user_error(cli("export"), "--csv", "--html")
    assert_user_error(cli("export", "--html", "r.html", "--where", "seed >"), "where=")
    assert_user_error(cli("export", "--html", "r.html", "--sweep", "sw-nope"), "sw-nope")
    assert not (cli.dir / "r.html").exists()


# ----------------------------------------------------------------- sim


def test_sim_passes_its_options_through(tmp_path: Path) -> None:
    with child([sys.executable, "-m", "wan_nb", "sim", "--port", "0", "--latency", "0.1"],
               env=_env(tmp_path / "runs")) as proc:
        url = proc.stdout.readline().strip()  # printed once it listens
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", url), f"the simulator did not start{describe(*finish(proc))}"
        origin = url.rsplit("/v1", 1)[0]
        with urllib.request.urlopen(origin + "/sim/ledger", timeout=30) as resp:
            ledger = json.load(resp)
        assert ledger["submitted"] == 0


def test_sim_help(cli) -> None:
    proc = cli("sim", "--help")
    assert proc.returncode == 0 and "--latency" in proc.stdout


def test_sweep_above_the_default_per_sweep_budget_needs_yes(cli) -> None:
    path = write_sweep(cli.dir, fields={"animal": [f"a{i}" for i in range(30)], "seed": [1, 2, 3],
                                        "resolution": "1K"})
    proc = cli("sweep", str(path), "--latency", "0.1")
    assert_user_error(proc, "default per-sweep budget of $2.00", "--yes", "nothing was sent")
    log = cli.home / "log.sqlite"
    assert not log.exists() or len(Log(log).runs()) == 0  # nothing was logged, so nothing was sent


# ----------------------------------------------------------------- studio


@pytest.mark.parametrize("base_url", [None, "http://127.0.0.1:9/v1"], ids=["hosted", "loopback"])
def test_studio_with_a_key_and_no_budget_refuses_to_start(cli, base_url: str | None) -> None:
    """Whatever the base URL, a key means money: no budget, no studio (and nothing started)."""
    env = _env(cli.home)
    env.pop("WAN_NB_BUDGET_USD", None)
    env["WAVE_API_KEY"] = "not-a-real-key-2718281828"
    if base_url:
        env["WAN_NB_BASE_URL"] = base_url
    proc = cli("studio", "--port", "0", env=env)
    line = assert_user_error(proc, "WAVE_API_KEY is set", "--budget USD or WAN_NB_BUDGET_USD", "nothing was started")
    assert "2718281828" not in line + proc.stdout
    assert "Voil" not in proc.stderr.replace(line, "") and not cli.home.exists()  # nothing ran, nothing written
    assert_user_error(cli("studio", "--budget", "ten", env=env), "--budget must be a number of dollars")


def _listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP socket listens on at ``port`` (Linux /proc: no tools needed)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port and len(addr) == width:
                found.add(addr)
    return found


@pytest.mark.timeout(240)
def test_studio_serves_on_loopback_with_a_token_and_stops_on_sigterm(cli, tmp_path: Path) -> None:
    """``wan-nb studio`` in a fresh folder: the packaged notebook on 127.0.0.1, the URL printed
    with its token, the page refused without it; SIGTERM stops Voilà and its kernel."""
    import http.client
    import signal
    import time

    env = _env(cli.home)
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR"):
        (tmp_path / var.lower()).mkdir()
        env[var] = str(tmp_path / var.lower())
    out = tmp_path / "out.txt"
    with open(out, "w") as o:
        proc = subprocess.Popen([sys.executable, "-m", "wan_nb", "studio", "--port", "0"], cwd=tmp_path, env=env,
                                stdout=o, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (m := re.search(r"^wan-nb studio: (http://\S+)$", out.read_text(), flags=re.M)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        url = m.group(1)
        port = int(re.match(r"http://127\.0\.0\.1:(\d+)/\?token=[0-9a-f]{48}$", url).group(1))
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
        assert "nothing is billed" in out.read_text() and str(cli.home.resolve()) in out.read_text()
        for path in ("/", "/voila/render/studio.ipynb"):  # no token: sent to the login page, not the app
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", path)
            answer = conn.getresponse()
            assert answer.status in (302, 403) and "wan-studio" not in answer.read().decode(), (path, answer.status)
            conn.close()
        with urllib.request.urlopen(url, timeout=90) as resp:  # the app: Voilà runs the notebook
            page = resp.read().decode("utf-8", "replace")
        assert "wan-studio" in page and "Traceback" not in page
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        stderr = proc.stderr.read()
        proc.stderr.close()
    assert code == 0, stderr
    assert "Kernel shutdown" in stderr or "Kernel started" not in stderr  # Voilà shut its kernel down
