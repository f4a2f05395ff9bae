"""Issue 21 in a real browser: the studio app, served by ``wan-nb studio`` (Voilà), clicked through.

A real ``wan-nb studio`` (the command users run, serving the notebook shipped in the package)
on a free loopback port, with its run folder in a temporary folder and no API key: the
studio's kernel runs the built-in simulator. Headless Chromium (Playwright) then does what a
designer would: Generate with a typed prompt, a 2 × 2 sweep, a box drawn on an earlier image
in the interactive_edit mode (read back in the image's own pixels, then the edit run), and a
star clicked in Explore. What the kernel did is read from the run folder's log by this
process (``wan.Log``): the browser cannot run code, only click.

The key check starts a second studio with a (fake) ``WAVE_API_KEY`` against a simulator
that accepts only that key, with a budget: the header shows the budget left, a run is
billed through the key, a reload (a new kernel, a new session) still shows what is left of
the same budget, and the key is in nothing the browser received (the page, every HTTP
response, every WebSocket frame: the widget state travels there).

Screenshot: ``docs/screenshots/studio.png`` with ``WAN_NB_SCREENSHOTS=docs/screenshots``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from browser_lab import CHROMIUM, CHROMIUM_ARGS, free_port, require_browser, screenshot_dir, tail

from wan_nb import Log
from wan_nb.sim import Simulator

pytestmark = pytest.mark.browser

START_TIMEOUT = 120  # s for `wan-nb studio` to print its URL (Voilà's imports on a loaded machine)
STOP_TIMEOUT = 30  # s for it to stop (Voilà shuts its kernels down first)
LOAD_TIMEOUT = 90_000  # ms from goto to the studio drawn: Voilà runs the notebook first
RUN_TIMEOUT = 60_000  # ms for a run or a sweep to show its images (simulator: 1.5 s a task)
WIDGET_ERROR = "Error displaying widget"
FAKE_KEY = "wk-studio-leak-check-7f3a9c1e5b2d"  # a fake key, easy to find in anything that leaks it


def _env(base: Path, home: Path, **extra: str) -> dict[str, str]:
    drop = ("WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME", "WAN_NB_BUDGET_USD", "JUPYTER_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR"):
        folder = base / var.lower()
        folder.mkdir(exist_ok=True)
        env[var] = str(folder)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


@contextlib.contextmanager
def studio_server(base: Path, home: Path, *args: str, **env: str) -> Iterator[dict[str, Any]]:
    """``wan-nb studio`` as a user starts it, in a folder of its own; its URL once it prints it."""
    require_browser()
    folder = base / "cwd"  # a fresh folder: the studio notebook comes from the package
    folder.mkdir(exist_ok=True)
    out, err = base / "studio.out", base / "studio.err"
    cmd = [sys.executable, "-m", "wan_nb", "studio", "--port", str(free_port()), "--home", str(home), *args]
    started = time.monotonic()
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(cmd, cwd=folder, env=_env(base, home, **env), stdout=o, stderr=e,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        while not (m := re.search(r"wan-nb studio: (http://\S+)", out.read_text())):
            if proc.poll() is not None:
                pytest.fail(f"wan-nb studio exited with {proc.returncode}:\n{tail(err)}", pytrace=False)
            if time.monotonic() - started > START_TIMEOUT:
                pytest.fail(f"wan-nb studio printed no URL in {START_TIMEOUT} s:\n{tail(err)}", pytrace=False)
            time.sleep(0.2)
        yield {"url": m.group(1), "out": out, "err": err, "home": home, "start_s": time.monotonic() - started}
    finally:
        proc.send_signal(signal.SIGTERM)  # the command stops Voilà, which shuts its kernel down
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
            pytest.fail(f"wan-nb studio did not stop on SIGTERM within {STOP_TIMEOUT} s", pytrace=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("studio")
    home = base / "wan_runs"
    # an earlier image in the run folder, as a designer would find it (the interactive edit draws on one)
    subprocess.run([sys.executable, "-m", "wan_nb", "demo", "--home", str(home), "--latency", "0.05"],
                   env=_env(base, home), cwd=base, check=True, capture_output=True, timeout=120)
    with studio_server(base, home) as s:
        yield s


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    require_browser()
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


def _open(chromium: Any, url: str) -> tuple[Any, Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.console_log = []
    page.on("console", lambda m: page.console_log.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: page.console_log.append(f"pageerror: {e}"))
    page.set_default_timeout(30_000)
    page.goto(url)
    page.locator(".wan-studio .wan-form").first.wait_for(timeout=LOAD_TIMEOUT)
    return context, page


@pytest.fixture(scope="module")
def app(chromium: Any, server: dict[str, Any]) -> Iterator[Any]:
    """The studio open in one page for the whole module (tests run in order, as a session would)."""
    t = time.monotonic()
    context, page = _open(chromium, server["url"])
    page.load_s = time.monotonic() - t
    try:
        yield page
    finally:
        context.close()


def _why(page: Any, server: dict[str, Any], shot: Path) -> str:
    with contextlib.suppress(Exception):
        page.screenshot(path=str(shot), full_page=True)
    console = "\n".join(page.console_log[-30:])
    return f"screenshot: {shot}\nconsole:\n{console}\nserver:\n{tail(server['err'], 3000)}"


def _tab(page: Any, title: str) -> None:
    page.locator(".wan-studio-tabs .lm-TabBar-tab", has_text=title).first.click()


def _no_widget_errors(page: Any) -> None:
    assert WIDGET_ERROR not in page.content(), "a widget failed to display"
    assert "Traceback" not in page.inner_text("body"), "a traceback is visible in the app"


def _screenshot(page: Any, path: Path) -> None:
    """The whole app: the page made as tall as the studio for the picture, then put back."""
    top = ("() => { window.scrollTo(0, 0); for (const el of document.querySelectorAll('*')) "
           "if (el.scrollTop) el.scrollTop = 0; "  # Voilà's page scrolls in an element of its own
           "return Math.ceil(document.querySelector('.wan-studio').getBoundingClientRect().bottom + 16); }")
    size = page.viewport_size
    height = page.evaluate(top)
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(height, 4000))})
    try:
        page.evaluate(top)
        page.screenshot(path=str(path))
    finally:
        page.set_viewport_size(size)


def _runs(home: Path) -> Any:
    return Log(home / "log.sqlite").runs()


def _wait_for_run(home: Path, before: int, action: str, timeout: float = 60) -> Any:
    """The first run of ``action`` logged after the first ``before`` runs, once it is completed."""
    deadline = time.monotonic() + timeout
    while True:
        runs = _runs(home)
        new = runs.iloc[before:]
        done = new[(new["action"].astype(str) == action) & (new["status"].astype(str) == "completed")]
        if len(done):
            return done.iloc[0]
        assert time.monotonic() < deadline, f"no completed {action} run logged: {new[['action', 'status']]}"
        time.sleep(0.3)


# ----------------------------------------------------------------- a designer's session


def test_the_app_loads_with_its_tabs_and_header_and_no_code(app: Any, server: dict[str, Any]) -> None:
    print(f"wan-nb studio printed its URL after {server['start_s']:.1f} s; the page showed the studio "
          f"{app.load_s:.1f} s after goto")
    assert server["url"].startswith("http://127.0.0.1:") and "?token=" in server["url"]
    titles = app.locator(".wan-studio-tabs .lm-TabBar-tab").all_inner_texts()
    assert [t.strip() for t in titles] == ["Generate", "Sweep", "Explore"]
    header = app.locator(".wan-studio-header").inner_text()
    assert "Simulator" in header and "nothing is billed" in header and "Spent $0.00000" in header, header
    _no_widget_errors(app)
    # no code in the app: no cell source, no code buttons, and no stray output text
    assert "wan.studio()" not in app.content()
    code_buttons = app.locator(".wan-studio button", has_text=re.compile("Copy as code|Sweep this")).all()
    assert code_buttons and not any(b.is_visible() for b in code_buttons)
    assert "wan_nb: " not in app.inner_text("body"), "connect()'s line is visible in the app"


def test_generate_with_a_typed_prompt_shows_the_image(app: Any, server: dict[str, Any], tmp_path: Path) -> None:
    before = len(_runs(server["home"]))
    form = app.locator(".wan-studio .wan-form").first
    form.locator(".wan-form-prompt textarea").fill("a lighthouse on a cliff at dusk")
    generate = form.locator("button.wan-form-generate")
    app.wait_for_function("() => !document.querySelector('.wan-studio button.wan-form-generate').disabled")
    t = time.monotonic()
    generate.click()
    try:
        form.locator(".wan-form-output img").first.wait_for(timeout=RUN_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure: report it with a screenshot
        pytest.fail(f"no image in Generate: {exc}\n{_why(app, server, tmp_path / 'generate.png')}")
    print(f"Generate → image shown in {time.monotonic() - t:.1f} s")
    row = _wait_for_run(server["home"], before, "generate")
    assert row["prompt"] == "a lighthouse on a cliff at dusk"
    assert "wan.generate(" not in form.inner_text(), "the result shows the code that made it"
    # the header follows the spending (the simulator bills as the API would)
    app.wait_for_function(
        "() => document.querySelector('.wan-studio-header').innerText.includes('Spent $0.02295')", timeout=10_000)
    _no_widget_errors(app)


def test_a_two_by_two_sweep_fills_its_grid(app: Any, server: dict[str, Any], tmp_path: Path) -> None:
    _tab(app, "Sweep")
    sweep = app.locator(".wan-studio .wan-sweep-form").first
    sweep.locator(".wan-form-prompt textarea").fill("a {animal} in snow")
    sweep.locator(".wan-sweep-axis-animal input").wait_for()
    sweep.locator(".wan-sweep-axis-animal input").fill("fox, owl")
    sweep.locator(".wan-sweep-axis-seed input").fill("1-2")
    app.wait_for_function(
        "() => document.querySelector('.wan-studio .wan-sweep-form-plan').innerText.startsWith('4 cells')")
    t = time.monotonic()
    sweep.locator("button.wan-sweep-form-start").click()
    grid = sweep.locator(".wan-sweep-form-output")
    try:
        app.wait_for_function(
            "() => document.querySelectorAll('.wan-studio .wan-sweep-form-output img').length >= 4",
            timeout=RUN_TIMEOUT)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"the sweep's grid did not fill: {exc}\n{_why(app, server, tmp_path / 'sweep.png')}")
    print(f"Start → 2 × 2 grid filled in {time.monotonic() - t:.1f} s")
    text = grid.inner_text()
    assert "fox" in text and "owl" in text, text
    runs = _runs(server["home"])
    swept = runs[runs["sweep_id"].notna() & (runs["prompt"].astype(str).str.endswith(" in snow"))]
    assert len(swept) == 4 and set(swept["status"].astype(str)) == {"completed"}
    _no_widget_errors(app)


def test_a_box_drawn_in_interactive_edit_comes_back_in_original_pixels_and_the_edit_runs(
    app: Any, server: dict[str, Any], tmp_path: Path
) -> None:
    _tab(app, "Generate")
    form = app.locator(".wan-studio .wan-form").first
    form.locator(".wan-form-mode select").select_option(label="interactive_edit · edit inside boxes")
    form.locator("button", has_text="Recent results").click()
    form.locator(".wan-images-recent-tile button").first.click()  # the newest image of the log
    canvas = form.locator("canvas.wan-bbox-canvas")
    try:
        canvas.wait_for(timeout=30_000)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"no drawer for the chosen image: {exc}\n{_why(app, server, tmp_path / 'drawer.png')}")
    canvas.scroll_into_view_if_needed()
    status = form.locator(".wan-bbox-status")
    size = re.search(r"(\d+)×(\d+) px shown", status.inner_text())
    assert size, status.inner_text()
    width, height = int(size.group(1)), int(size.group(2))
    rect = canvas.evaluate("c => { const r = c.getBoundingClientRect(); "
                           "return {left: r.left, top: r.top, width: r.width, height: r.height}; }")
    scale = width / rect["width"]  # image pixels per screen pixel
    a, b = (0.25, 0.30), (0.60, 0.75)  # the drag, as shares of the picture
    mouse = app.mouse
    mouse.move(rect["left"] + a[0] * rect["width"], rect["top"] + a[1] * rect["height"])
    mouse.down()
    mouse.move(rect["left"] + b[0] * rect["width"], rect["top"] + b[1] * rect["height"], steps=12)
    mouse.up()
    app.wait_for_function(
        "() => /box 1/.test(document.querySelector('.wan-studio .wan-bbox-status').innerText)", timeout=10_000)
    shown = re.search(r"box 1 \[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\]", status.inner_text())
    assert shown, status.inner_text()
    box = [int(v) for v in shown.groups()]
    expected = [a[0] * width, a[1] * height, b[0] * width, b[1] * height]
    tolerance = 2 * scale + 1  # ± a screen pixel or so, in image pixels
    assert all(abs(got - want) <= tolerance for got, want in zip(box, expected, strict=True)), (box, expected)

    form.locator(".wan-form-prompt textarea").fill("a red boat on the water")
    app.wait_for_function("() => !document.querySelector('.wan-studio button.wan-form-generate').disabled")
    before = len(_runs(server["home"]))
    form.locator("button.wan-form-generate").click()
    try:
        row = _wait_for_run(server["home"], before, "interactive_edit")
        form.locator(".wan-form-output img").first.wait_for(timeout=RUN_TIMEOUT)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"the edit did not run: {exc}\n{_why(app, server, tmp_path / 'edit.png')}")
    assert [[list(map(int, b)) for b in bs] for bs in row["bbox_list"]] == [[box]]
    assert (int(row["width"]), int(row["height"])) == (width, height)  # an interactive edit keeps the input's size
    _no_widget_errors(app)
    _screenshot(app, screenshot_dir(tmp_path) / "studio.png")


def test_a_star_clicked_in_explore_is_in_the_log(app: Any, server: dict[str, Any], tmp_path: Path) -> None:
    _tab(app, "Explore")
    tile = app.locator(".wan-studio .wan-explore-tile").first
    try:
        tile.wait_for(timeout=30_000)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Explore shows no runs: {exc}\n{_why(app, server, tmp_path / 'explore.png')}")
    try:  # a tile's children are drawn after the tile itself: wait for its stars, fail if they never come
        tile.locator(".wan-stars button").nth(3).wait_for(timeout=30_000)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"the Explore tile shows no stars: {exc}\n{_why(app, server, tmp_path / 'stars.png')}")
    run_id = tile.locator("button.wan-explore-open").get_attribute("title").split(":")[0]
    tile.locator(".wan-stars button").nth(3).click()  # the 4th star
    deadline = time.monotonic() + 15
    while True:
        stars = _runs(server["home"]).set_index("run_id").loc[run_id, "stars"]
        if stars is not None and stars is not pd.NA and stars == 4:
            break
        assert time.monotonic() < deadline, f"run {run_id} has stars {stars!r}, not 4"
        time.sleep(0.3)
    _no_widget_errors(app)


# ----------------------------------------------------------------- money safety


def test_with_a_key_the_header_shows_the_budget_left_and_the_key_never_reaches_the_browser(
    chromium: Any, tmp_path: Path
) -> None:
    with Simulator(latency=0.2, api_key=FAKE_KEY) as sim:  # refuses any other key: the run below used it
        with studio_server(tmp_path, tmp_path / "wan_runs", "--budget", "1.50",
                           WAVE_API_KEY=FAKE_KEY, WAN_NB_BASE_URL=sim.base_url) as s:
            assert FAKE_KEY not in s["out"].read_text() + s["err"].read_text()
            received: list[str] = []
            context = chromium.new_context(viewport={"width": 1280, "height": 1000})
            try:
                page = context.new_page()

                def on_response(response: Any) -> None:
                    with contextlib.suppress(Exception):  # a redirect or a stream has no body to read
                        received.append(response.body().decode("utf-8", "replace"))

                def on_socket(ws: Any) -> None:
                    ws.on("framereceived", lambda f: received.append(f if isinstance(f, str) else
                                                                      bytes(f).decode("utf-8", "replace")))

                page.on("response", on_response)
                page.on("websocket", on_socket)
                page.goto(s["url"])
                page.locator(".wan-studio .wan-form").first.wait_for(timeout=LOAD_TIMEOUT)
                header = page.locator(".wan-studio-header")
                assert "Budget $1.50 for everyone using this studio, $1.50000 left" in header.inner_text()
                form = page.locator(".wan-studio .wan-form").first
                form.locator(".wan-form-prompt textarea").fill("a paid lighthouse")
                page.wait_for_function(
                    "() => !document.querySelector('.wan-studio button.wan-form-generate').disabled")
                form.locator("button.wan-form-generate").click()
                form.locator(".wan-form-output img").first.wait_for(timeout=RUN_TIMEOUT)
                page.wait_for_function(
                    "() => document.querySelector('.wan-studio-header').innerText.includes('$1.47705 left')",
                    timeout=10_000)
                received.append(page.content())
                # a reload is a new kernel and session, not a new budget: what was spent stays spent
                page.reload()
                page.locator(".wan-studio .wan-form").first.wait_for(timeout=LOAD_TIMEOUT)
                page.wait_for_function(
                    "() => document.querySelector('.wan-studio-header').innerText.includes('$1.47705 left')",
                    timeout=10_000)
                received.append(page.content())
            finally:
                context.close()
        assert sim.ledger()["billed_quota"] == 11475  # the run went through with the key
    hits = [r[:200] for r in received if FAKE_KEY in r]
    assert not hits, f"the API key reached the browser: {hits}"
    assert len(received) > 10, "the check saw almost nothing the browser received"
    ws_text = "\n".join(received)
    assert "comm_open" in ws_text and "wan-studio" in ws_text, "the widget state was not among what was checked"
