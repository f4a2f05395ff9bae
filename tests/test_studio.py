"""The studio without a browser: its tabs and header, its money rules, what ``wan-nb studio``
would run, Colab's widget manager, and nothing that asks a front end for pixels (VS Code).

The studio in a real browser under Voilà is ``tests/test_browser_studio.py``; the command
as a user runs it, ``tests/test_cli.py``.
"""

from __future__ import annotations

import ast
import html
import json
import os
import re
import sys
import types
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest
from children import wait_for
from ipywidgets.widgets.widget import _instances

import wan_nb as wan
from wan_nb import _colab, _serve, _studio
from wan_nb._session import current

REPO = Path(__file__).resolve().parent.parent
FAKE_KEY = "wk-test-studio-0123456789abcdef"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME", "WAN_NB_BUDGET_USD", "SERVER_SOFTWARE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def closing() -> Any:
    """Studios made by a test, closed with their session afterwards."""
    made: list[wan.Studio] = []
    yield made
    for s in made:
        s.close()
    sess = current()
    if sess is not None:
        sess.close()


def _text(html: str) -> str:
    """What a reader sees of some HTML."""
    return re.sub(r"<[^>]+>", "", html)


def _make(made: list[Any], home: Path, **kw: Any) -> Any:
    s = wan.studio(home, **kw)
    made.append(s)
    return s


def _all_state(root: widgets.Widget) -> str:
    """Every widget's synced state under ``root``, as the front end receives it (JSON)."""
    seen, todo, out = set(), [root], []
    while todo:
        w = todo.pop()
        if id(w) in seen:
            continue
        seen.add(id(w))
        state = w.get_state()
        out.append(json.dumps({k: v for k, v in state.items() if not isinstance(v, (bytes, memoryview))},
                              default=str))
        for value in state.values():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, str) and item.startswith("IPY_MODEL_"):
                    todo.append(_instances[item.removeprefix("IPY_MODEL_")])
    return "\n".join(out)


# ----------------------------------------------------------------- the notebook


def test_the_packaged_notebook_and_notebooks_studio_have_the_same_cells() -> None:
    # plain JSON: nbformat's import costs the fast tier ~2 s (jsonschema's URI grammar)
    def cells(path: Path) -> list[tuple[str, str]]:
        nb = json.loads(path.read_text(encoding="utf-8"))
        return [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]]

    shipped = cells(_serve.STUDIO_NOTEBOOK)
    assert shipped == cells(REPO / "notebooks" / "studio.ipynb")
    code = [source for kind, source in shipped if kind == "code"]
    assert code == ["import wan_nb as wan\n\napp = wan.studio()\napp"], "the app is one short cell"
    assert _serve.STUDIO_NOTEBOOK.is_relative_to(Path(wan.__file__).parent), "it ships inside the package"


# ----------------------------------------------------------------- the widget


def test_tabs_header_and_no_code_on_the_simulator(tmp_path: Path, clean_env: None, closing: list[Any]) -> None:
    s = _make(closing, tmp_path / "runs", app=False)
    assert s.tabs.titles == ("Generate", "Sweep", "Explore")
    assert s.tabs.children[0] is s.form and s.tabs.children[1] is s.sweep_form
    assert s.session.backend == "simulator" and s.session.home == tmp_path / "runs"
    header = _text(s.header.value)
    assert "Simulator" in header and "nothing is billed" in header and "Spent $0.00000" in header
    assert "No budget" in header
    for button in (s.form.code_button, s.form.sweep_button, s.sweep_form.code_button):
        assert button.layout.display == "none"
    assert "wan.set_budget" not in s.form.cost.value, "the Generate tab shows code"
    assert s.explorer is None  # made when Explore is first opened
    s.show_tab("Explore")
    assert s.explorer is not None and s.tabs.children[2].children == (s.explorer,)
    bundle = s._repr_mimebundle_()
    assert "wan-studio-static" in bundle["text/html"] and "Spent $0.00000" in _text(bundle["text/html"])


def test_the_header_follows_a_run_and_explore_shows_it(tmp_path: Path, clean_env: None,
                                                       closing: list[Any]) -> None:
    wan.connect(home=tmp_path / "runs", latency=0.05, quiet=True)
    s = _make(closing, tmp_path / "runs", app=False)
    s.show_tab("Explore")
    assert s.explorer.grid is None  # nothing logged yet
    s.form.set(prompt="a fox", seed=3, resolution="1K")
    s.form.submit()
    s.form.wait(60)
    s.refresh_header()
    assert "Spent $0.02295" in _text(s.header.value)
    assert "wan.generate(" not in _text(s.form.output.value) and "<img" in s.form.output.value
    s.show_tab("Generate")
    s.show_tab("Explore")  # opened again: the log is read again
    assert s.explorer.grid is not None and len(s.explorer.runs()) == 1


def test_budget_from_the_environment_is_the_sessions(tmp_path: Path, clean_env: None, closing: list[Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAN_NB_BUDGET_USD", "1.5")
    s = _make(closing, tmp_path / "runs", app=True)
    assert s.session.budget_usd == 1.5
    assert "Budget $1.50, $1.50000 left" in _text(s.header.value)


def test_past_its_budget_the_app_says_whose_budget_it_is_not_the_code_that_raises_it(
        tmp_path: Path, clean_env: None, closing: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAN_NB_BUDGET_USD", "0.01")  # less than one image
    wan.connect(home=tmp_path / "runs", latency=0.05, quiet=True)
    s = _make(closing, tmp_path / "runs", app=True)
    s.form.set(prompt="too dear", seed=1, resolution="1K")
    with pytest.raises(wan.BudgetError):
        s.form.submit().result(timeout=30)
    wait_for(lambda: not s.form.running, what="the form to stop running after the error")
    said = html.unescape(_text(s.form.message.value))
    assert "nothing was sent" in said and "whoever runs the studio can raise it" in said and "wan." not in said, said
    assert not s.form.generate_button.disabled  # usable again
    s.sweep_form.fields.prompt.value = "a {x}"
    s.sweep_form.set_axis("x", "fox, owl")
    s.sweep_form.start_button.click()
    said = html.unescape(_text(s.sweep_form.message.value))
    assert "nothing was sent" in said and "whoever runs the studio can raise it" in said and "wan." not in said, said
    s.session.budget_usd = 1.0
    s.session.sweep_budget_usd = 0.01  # past the per-sweep budget, the button asks: no confirm=True
    s.sweep_form.start_button.click()
    said = html.unescape(_text(s.sweep_form.message.value))
    assert 'Click "Start anyway"' in said and "confirm=True" not in said, said
    assert s.sweep_form.start_button.description.startswith("Start anyway")
    assert s.session.log.runs().empty
    # a form in a notebook keeps the code that raises the budget
    f = wan.form(prompt="too dear in a notebook", seed=2, resolution="1K")
    s.session.budget_usd = 0.01
    with pytest.raises(wan.BudgetError):
        f.submit().result(timeout=30)
    wait_for(lambda: "wan.set_budget(usd)" in f.message.value, what="the notebook form's message")


def test_a_paid_app_without_a_budget_does_not_open(tmp_path: Path, clean_env: None, closing: list[Any],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from wan_nb.sim import Simulator

    with Simulator(latency=0.05, api_key=FAKE_KEY) as sim:
        monkeypatch.setenv("WAVE_API_KEY", FAKE_KEY)
        monkeypatch.setenv("WAN_NB_BASE_URL", sim.base_url)  # whatever the base URL: a key may cost money
        s = _make(closing, tmp_path / "runs", app=True)
        assert s.refused and s.tabs.children == () and s.form is None
        assert "has no budget" in s.message.value and "--budget" in s.message.value
        assert "No budget" in s.header.value and "with an API key" in s.header.value
        assert FAKE_KEY not in _all_state(s)
        # in a notebook (not an app) it opens, and says it has no budget
        s2 = _make(closing, tmp_path / "runs", app=False)
        assert s2.form is not None and "⚠" in s2.header.value
        # given a budget it opens, and the key is in nothing the browser would receive
        monkeypatch.setenv("WAN_NB_BUDGET_USD", "0.50")
        s3 = _make(closing, tmp_path / "runs", app=True)
        assert s3.form is not None and "$0.50000 left" in s3.header.value
        s3.form.set(prompt="a paid fox", seed=1, resolution="1K")
        s3.form.submit()
        s3.form.wait(60)
        s3.refresh_header()
        assert "$0.47705 left" in s3.header.value
        assert FAKE_KEY not in _all_state(s3) + json.dumps(s3._repr_mimebundle_(), default=str)
        assert sim.ledger()["billed_quota"] == 11475


def test_errors_are_messages_in_the_app_never_tracebacks(tmp_path: Path, clean_env: None, closing: list[Any],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    shell = types.SimpleNamespace(showtraceback=lambda *a, **k: pytest.fail("a traceback was shown"))
    monkeypatch.setattr(_studio, "get_ipython", lambda: shell)
    s = _make(closing, tmp_path / "runs", app=True)
    # a widget callback that raises (ipywidgets reports it with the shell's showtraceback)
    try:
        raise RuntimeError("the disk is on fire")
    except RuntimeError:
        shell.showtraceback()
    assert "RuntimeError: the disk is on fire" in s.message.value and "Traceback" not in s.message.value
    assert s._message_row.layout.display == ""
    s._dismiss.click()
    assert s.message.value == "" and s._message_row.layout.display == "none"
    # the studio's own callbacks: guarded
    s._guarded(lambda: 1 / 0)()
    assert "✕ ZeroDivisionError: division by zero" in s.message.value
    # a studio that cannot open shows why
    monkeypatch.setattr(_studio, "connect", lambda **kw: (_ for _ in ()).throw(wan.ConfigError("no way in")))
    monkeypatch.setattr(_studio, "current", lambda: None)
    broken = _make(closing, tmp_path / "other", app=True)
    assert "no way in" in broken.message.value and broken.tabs.children == ()
    assert "Not connected" in broken.header.value


# ----------------------------------------------------------------- what wan-nb studio runs


def test_serve_plan_loopback_token_and_the_key_only_in_the_environment(tmp_path: Path, clean_env: None,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plan = _serve.plan(port=0)
    assert plan.ip == "127.0.0.1" and plan.local and 0 < plan.port < 65536
    assert plan.url.startswith(f"http://127.0.0.1:{plan.port}/?token=")
    token = plan.url.rsplit("=", 1)[1]
    assert len(token) >= 32 and plan.env["JUPYTER_TOKEN"] == token and token not in " ".join(plan.cmd)
    assert "--Voila.ip=127.0.0.1" in plan.cmd and "--Voila.auto_token=True" in plan.cmd
    assert str(_serve.STUDIO_NOTEBOOK) in plan.cmd and plan.cwd == _serve.STUDIO_NOTEBOOK.parent
    assert plan.env["WAN_NB_HOME"] == str(tmp_path / "wan_runs")  # made absolute: the kernel runs elsewhere
    assert "WAN_NB_BUDGET_USD" not in plan.env and not plan.paid

    monkeypatch.setenv("WAVE_API_KEY", FAKE_KEY)
    with pytest.raises(_serve.ServeError, match=r"--budget USD or WAN_NB_BUDGET_USD \(nothing was started\)"):
        _serve.plan(port=0)
    paid = _serve.plan(port=0, budget="2.5", home="elsewhere")
    assert paid.paid and paid.budget_usd == 2.5 and paid.env["WAN_NB_BUDGET_USD"] == "2.5"
    assert paid.env["WAN_NB_HOME"] == str(tmp_path / "elsewhere")
    assert FAKE_KEY not in " ".join(paid.cmd) and paid.env["WAVE_API_KEY"] == FAKE_KEY  # inherited, never an arg
    monkeypatch.setenv("WAN_NB_BUDGET_USD", "0.75")
    assert _serve.plan(port=0).budget_usd == 0.75
    assert any("$0.75" in line for line in _serve.plan(port=0).lines())
    for bad in ("abc", "-1", "inf", "nan"):
        with pytest.raises(_serve.ServeError, match="--budget"):
            _serve.plan(port=0, budget=bad)
    monkeypatch.setenv("WAN_NB_BUDGET_USD", "lots")
    with pytest.raises(_serve.ServeError, match="WAN_NB_BUDGET_USD"):
        _serve.plan(port=0)
    assert not _serve.plan(port=1234, ip="0.0.0.0", budget="1").local


def test_studio_on_all_interfaces_warns(tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from wan_nb import cli

    started: list[list[str]] = []

    class Exited:  # Voilà, as if it could not listen: nothing is served
        returncode = 1

        def __init__(self, cmd: list[str], **kw: Any) -> None:
            started.append(cmd)

        def poll(self) -> int:
            return 1

        def wait(self, timeout: float | None = None) -> int:
            return 1

    monkeypatch.setattr("subprocess.Popen", Exited)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["studio", "--ip", "0.0.0.0", "--port", "8999"]) == 2
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0, not only on this machine" in err
    assert "Voilà stopped before serving the studio" in err
    assert "--Voila.ip=0.0.0.0" in started[0]


# ----------------------------------------------------------------- Colab and VS Code


def test_connect_turns_on_colabs_custom_widget_manager_once(tmp_path: Path, clean_env: None,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[str] = []
    output = types.ModuleType("google.colab.output")
    output.enable_custom_widget_manager = lambda: calls.append("on")  # type: ignore[attr-defined]
    colab = types.ModuleType("google.colab")
    colab.output = output  # type: ignore[attr-defined]
    google = types.ModuleType("google")
    google.colab = colab  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    monkeypatch.setattr(_colab, "_enabled", False)
    try:
        wan.connect(home=tmp_path / "runs", latency=0.05)
        wan.connect(home=tmp_path / "runs", latency=0.05)
    finally:
        current().close()
    assert calls == ["on"]
    printed = capsys.readouterr().out.splitlines()
    assert printed.count(_colab.LINE) == 1 and "custom widget manager" in _colab.LINE


def test_outside_colab_connect_does_nothing_about_widgets(tmp_path: Path, clean_env: None,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(_colab, "_enabled", False)
    try:
        wan.connect(home=tmp_path / "runs", latency=0.05)
    finally:
        current().close()
    assert "Colab" not in capsys.readouterr().out and "google.colab" not in sys.modules


def test_no_widget_asks_the_front_end_for_pixels() -> None:
    """VS Code's widget manager (and any remote one) need not send pixels back: no widget
    reads a canvas (ipycanvas' ``sync_image_data`` / ``image_data``) or needs a round trip
    from the browser to show what it shows."""
    package = Path(wan.__file__).parent
    reads = {"sync_image_data", "image_data", "get_image_data", "to_file", "to_array"}
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ({node.attr} if isinstance(node, ast.Attribute) else
                     {node.arg} if isinstance(node, ast.keyword) and node.arg else
                     {node.value} if isinstance(node, ast.Constant) and isinstance(node.value, str) else set())
            line = getattr(node, "lineno", "?")
            assert not names & reads, f"{path.name}:{line} asks for pixels back: {names & reads}"


def test_the_budget_is_shared_by_every_page_of_one_server(tmp_path: Path, clean_env: None, closing: list[Any],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Voilà starts a session per page: reloading or opening a second page must not bring a fresh
    budget. What another page (here another process on the same run folder) spent since the
    server started comes off this page's cap."""
    import datetime
    import subprocess

    home = tmp_path / "runs"
    monkeypatch.setenv("WAN_NB_BUDGET_USD", "0.05")  # two images' worth ($0.0459), not three
    monkeypatch.setenv("WAN_NB_BUDGET_SINCE", datetime.datetime.now(datetime.UTC).isoformat())
    wan.connect(home=home, latency=0.05, quiet=True)
    s = _make(closing, home, app=True)
    assert s.shared == (0.05, s.shared[1]) and s.session.budget_usd == 0.05
    assert "Budget $0.05 for everyone using this studio, $0.05000 left" in _text(s.header.value)
    other_page = (f"import wan_nb as wan; wan.connect(home={str(home)!r}, latency=0.05, quiet=True); "
                  "wan.generate('another page', seed=5, resolution='1K')")
    env = {k: v for k, v in os.environ.items() if k not in ("WAVE_API_KEY", "WAN_NB_BASE_URL")}
    subprocess.run([sys.executable, "-c", other_page], check=True, env=env, timeout=120, capture_output=True)
    s.share_budget()
    s.refresh_header()
    assert s.session.budget_usd == pytest.approx(0.05 - 0.02295)
    assert "$0.02705 left" in _text(s.header.value)
    s.form.set(prompt="this page", seed=6, resolution="1K")
    s.form.submit()
    s.form.wait(60)
    s.share_budget()  # this page's own run is not counted twice
    assert s.session.budget_usd == pytest.approx(0.05 - 0.02295)
    with pytest.raises(wan.BudgetError):  # a third image would go past the shared $0.05
        s.session.budget.check(11475)
