"""``wan_nb.cli.main`` called in this process: the fast tier's check of the command line.

test_cli.py runs ``python -m wan_nb`` as a user does (a process per command, in the
``subprocess`` family); these call the same entry point with an argument list, so every
command's path through ``cli.py`` (and ``python -m wan_nb``'s ``__main__``) runs in
milliseconds to a second, on the built-in simulator in a temporary run folder.
"""

from __future__ import annotations

import json
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import wan_nb as wan
from wan_nb import Log, cli


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Iterator[Path]:
    """No key, no base URL, the run folder in tmp; the session a command opened is closed after it."""
    for name in ("WAVE_API_KEY", "WAN_NB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WAN_NB_HOME", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    yield tmp_path / "runs"
    current = wan._session_module._current
    if current is not None:
        current.close()
        wan._session_module._current = None


def one_error_line(capsys, *needles: str) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("wan-nb: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def write(folder: Path, spec: object, name: str = "sweep.json") -> str:
    path = folder / name
    path.write_text(json.dumps(spec), encoding="utf-8")
    return str(path)


def test_no_command_prints_the_help_and_exits_2(home, capsys):
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    assert all(command in out for command in ("sim", "demo", "sweep", "export"))


def test_help_and_version_exit_0(home, capsys):
    for argv in (["--help"], ["--version"], ["sweep", "--help"], ["sim", "--help"]):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 0, argv
    assert "--latency" in capsys.readouterr().out  # sim --help: the simulator's own options


def test_unknown_command_is_one_line(home, capsys):
    assert cli.main(["paint"]) == 2
    one_error_line(capsys, "paint", "--help")


@pytest.mark.parametrize(("spec", "needle"), [
    ("not json", "not valid JSON"),
    (["a list"], "expected a JSON object"),
    ({"prompts": "x", "budget": 1}, "did you mean 'budget_usd'?"),
    ({"prompts": ""}, '"prompts" must be'),
    ({"prompts": "x", "budget_usd": -1}, '"budget_usd" must be'),
    ({"prompts": "x", "fields": []}, '"fields" must be'),
    ({"prompts": "x", "fields": {"prompt": "y"}}, "put prompts in"),
    ({"prompts": "x", "concurrency": 0}, '"concurrency" must be'),
    ({"prompts": "x", "tags": "t"}, '"tags" must be'),
    ({"prompts": "x", "fresh": "yes"}, '"fresh" must be'),
    ({"prompts": "a {animal}", "fields": {"resolution": "8K"}}, "resolution"),
], ids=["not-json", "list", "typo", "no-prompt", "budget", "fields", "prompt-in-fields", "concurrency", "tags",
        "fresh", "bad-field"])
def test_a_bad_sweep_file_is_one_line_and_starts_nothing(home, tmp_path, capsys, spec, needle):
    path = tmp_path / "sweep.json"
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec), encoding="utf-8")
    assert cli.main(["sweep", str(path)]) == 2
    one_error_line(capsys, needle)
    assert wan._session_module._current is None and not home.exists()


def test_a_missing_sweep_file_and_a_folder(home, tmp_path, capsys):
    assert cli.main(["sweep", str(tmp_path / "nope.json")]) == 2
    one_error_line(capsys, "no such file")
    assert cli.main(["sweep", str(tmp_path)]) == 2
    one_error_line(capsys, "is a folder")


def test_sweep_then_export(home, tmp_path, capsys):
    path = write(tmp_path, {"prompts": "a {animal}", "budget_usd": 1.0, "tags": ["cli"],
                            "fields": {"animal": ["fox", "owl"], "seed": 3, "resolution": "1K"}})
    assert cli.main(["sweep", path, "--latency", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "2/2 completed" in out and "(simulator: nothing is billed)" in out
    assert out.index("to pay") < out.index("completed")  # the cost came first
    runs = Log(home / "log.sqlite").runs()
    assert len(runs) == 2 and (runs["status"].astype(str) == "completed").all()

    sweep_id = str(runs["sweep_id"].iloc[0])
    argv = ["export", "--csv", "runs.csv", "--html", "report.html", "--sweep", sweep_id, "--where", "seed == 3"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "CSV: " in out and "HTML report: " in out and "(2 run(s))" in out
    assert (tmp_path / "runs.csv").is_file() and "a fox" in (tmp_path / "report.html").read_text()

    assert cli.main(["export", "--csv", "x.csv", "--sweep", "sw-nope"]) == 2
    one_error_line(capsys, "sw-nope")
    assert cli.main(["export", "--html", "x.html", "--where", "seed >"]) == 2
    one_error_line(capsys)


def test_a_sweep_over_its_budget_needs_yes(home, tmp_path, capsys):
    path = write(tmp_path, {"prompts": "a {animal}", "budget_usd": 0.01,
                            "fields": {"animal": ["fox", "owl"], "resolution": "1K"}})
    assert cli.main(["sweep", path, "--latency", "0.05"]) == 2
    one_error_line(capsys, "--yes", "nothing was sent")
    assert len(Log(home / "log.sqlite").runs()) == 0


def test_export_needs_a_format_and_a_log(home, capsys):
    assert cli.main(["export"]) == 2
    one_error_line(capsys, "--csv")
    assert cli.main(["export", "--csv", "x.csv"]) == 2
    one_error_line(capsys, "no experiment log")


def test_demo_on_the_simulator(home, capsys):
    assert cli.main(["demo", "--latency", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "(simulator: nothing is billed)" in out and "done: 6 image file(s)" in out
    assert f"log:        {home.absolute() / 'log.sqlite'}" in out


def test_demo_on_the_hosted_api_asks_first(home, monkeypatch, capsys):
    monkeypatch.setenv("WAVE_API_KEY", "not-a-real-key-2718281828")
    assert cli.main(["demo"]) == 2
    line = one_error_line(capsys, "--yes")
    assert "2718281828" not in line and not home.exists()


def test_python_dash_m_wan_nb_is_the_same_command(home, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["wan_nb", "paint"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("wan_nb", run_name="__main__", alter_sys=True)
    assert info.value.code == 2
    one_error_line(capsys, "paint")
