"""Issue 7 in a real browser: the form and the log explorer, driven by keyboard and mouse.

Headless JupyterLab + Debian Chromium + Playwright (fixtures in ``browser_lab``). The
kernel's side is read by running a cell that prints JSON with a prefix: widget
messages travel on the same channel before the execute request, so the cell sees
every change made in the page before it.

Screenshots go to ``WAN_NB_SCREENSHOTS`` when set (to refresh docs/screenshots/), else
to the test's temporary folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from browser_lab import cell, fail_info, open_notebook, run_cell, screenshot_dir
from PIL import Image, ImageDraw

SETUP = ("import json, time\nimport wan_nb as wan\n"
         "s = wan.connect(latency={latency}, concurrency=1, home='{home}', quiet=True)\n")
STATE = (
    "print('FORM ' + json.dumps({'request': str(f.request), 'running': f.running, "
    "'result': f.result.run_id if f.result else None, 'seed': f.result.request.seed if f.result else None}))"
)
LEDGER = "print('LEDGER ' + json.dumps(s.simulator.ledger()))"
NEXT = "print('NEXT', time.time())"

pytestmark = pytest.mark.browser

NOTEBOOKS = {
    "form.ipynb": [
        SETUP.format(latency=4.0, home="wan_runs_form") + "f = wan.form(resolution='1K')",
        "f",
        NEXT,
        STATE,
        LEDGER,
    ],
    "cancel.ipynb": [
        (
            SETUP.format(latency=30.0, home="wan_runs_cancel")
            + "busy = wan.form(prompt='holds the only slot', seed=1, resolution='1K')\n_ = busy.submit()\n"
            + "while s.simulator.ledger()['by_status'].get('processing') != 1:\n    time.sleep(0.02)\n"
            + "f = wan.form(prompt='a queued task', seed=2, resolution='1K')"
        ),
        "f",
        LEDGER,
        STATE,
    ],
    "palette.ipynb": [
        (
            SETUP.format(latency=0.2, home="wan_runs_palette")
            + "f = wan.form(prompt='a travel poster', resolution='1K', color_palette="
            + "[{'hex': '#0A2540', 'ratio': 50}, {'hex': '#F5F5F0', 'ratio': 35}, {'hex': '#E04B3A', 'ratio': 15}])"
        ),
        "f",
        STATE,
    ],
    "boxes.ipynb": [
        SETUP.format(latency=0.3, home="wan_runs_boxes")
        + "f = wan.form('interactive_edit', prompt='a red boat', images='photo.png', seed=3, resolution='1K')",
        "f",
        STATE,
        (
            "row = wan.log().runs().iloc[-1]\nprint('LOGGED ' + json.dumps({'action': str(row['action']), "
            "'boxes': [[list(map(int, b)) for b in bs] for bs in row['bbox_list']], "
            "'sent': [[list(b) for b in bs] for bs in f.result.request.bbox_list]}))"
        ),
    ],
    "double.ipynb": [
        SETUP.format(latency=3.0, home="wan_runs_double")
        + "f = wan.form(prompt='a double-clicked heron', seed=11, resolution='1K')",
        "f",
        STATE,
    ],
    "explore.ipynb": [
        SETUP.format(latency=0.05, home="wan_runs_explore")
        + "sw = wan.sweep('a {animal} in snow', animal=['fox', 'owl', 'cat'], seed=range(3), "
        + "resolution=['1K', '2K'], quiet=True, concurrency=4).wait(120)\n"
        + "e = wan.log().explore(rows='animal', cols='seed')",
        "e",
        ("print('GRID ' + json.dumps({'rows': e.grid.row_name, 'cols': e.grid.col_name, 'selected': e.selected}))"),
    ],
}


def prepare_lab_root(root: Path) -> None:
    """A 1200×800 picture for the interactive edit: sky, sea, a boat."""
    im = Image.new("RGB", (1200, 800), (120, 170, 220))
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 460, 1200, 800), fill=(30, 80, 130))
    draw.polygon([(320, 520), (620, 520), (570, 600), (370, 600)], fill=(90, 60, 40))
    im.save(root / "photo.png")


def printed(page: Any, i: int, prefix: str, timeout: float = 30_000) -> dict[str, Any]:
    out = run_cell(page, i, wait_for=prefix + " ", timeout=timeout)
    return json.loads(out.split(prefix + " ", 1)[1].strip().splitlines()[0])


def shown(page: Any, lab: Any, name: str, n_cells: int, tmp_path: Path, selector: str = ".wan-form") -> Any:
    """Open ``name``, run its set-up cell and the cell that shows the widget."""
    open_notebook(page, lab, name, n_cells)
    run_cell(page, 0, wait_for=None)
    page.wait_for_function(
        """() => { const c = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')[0];
                   return c && c.querySelector('.jp-InputArea-prompt').textContent.match(/\\[\\d+\\]/); }""",
        timeout=180_000,
    )
    run_cell(page, 1)
    widget = cell(page, 1).locator(selector).first
    try:
        widget.wait_for(timeout=30_000)
    except Exception as exc:  # noqa: BLE001 - any failure: report it with a screenshot
        pytest.fail(f"the widget did not show: {exc}\n{fail_info(page, lab, tmp_path / 'fail.png')}")
    return widget


def button(form: Any, name: str) -> Any:
    return form.locator(f"button.wan-form-{name}")


@pytest.mark.timeout(240)
def test_prompt_enables_generate_which_runs_in_the_background(page: Any, lab: Any, tmp_path: Path) -> None:
    form = shown(page, lab, "form.ipynb", 5, tmp_path)
    generate = button(form, "generate")
    assert generate.is_disabled(), "Generate is enabled with an empty prompt"
    cost = form.locator(".wan-form-cost")
    assert "$0.02295 per image" in cost.inner_text() and "= $0.02295" not in cost.inner_text()
    assert "is required" in form.locator(".wan-form-problem-prompt").inner_text()

    form.locator(".wan-form-prompt textarea").fill("a heron in reeds at dawn")
    page.wait_for_function("() => !document.querySelector('button.wan-form-generate').disabled")
    page.wait_for_function("() => document.querySelector('.wan-form-cost').innerText.includes('= $0.02295')")
    assert form.locator(".wan-form-problem-prompt").inner_text().strip() == ""

    # Generate on a slow simulator (4 s a task): the next cell runs at once.
    generate.click()
    page.wait_for_function("() => document.querySelector('.wan-form-status').innerText.includes('⏳')")
    t = time.monotonic()
    run_cell(page, 2, wait_for="NEXT", timeout=10_000)
    took = time.monotonic() - t
    state = printed(page, 3, "FORM")
    assert state["running"] and state["result"] is None, f"the run was over before the next cell ran: {state}"
    assert took < 3.0, f"the next cell waited {took:.1f} s"
    assert generate.is_disabled()

    # The image appears in the form, with its seed and cost.
    try:
        form.locator(".wan-form-output img").first.wait_for(timeout=40_000)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"no image in the form: {exc}\n{fail_info(page, lab, tmp_path / 'result.png')}")
    status = form.locator(".wan-form-status").inner_text()
    state = printed(page, 3, "FORM")
    assert state["result"] and f"seed {state['seed']}" in status and "$0.02295" in status, (status, state)
    assert not generate.is_disabled()

    form.get_by_role("button", name="Copy as code").click()
    page.wait_for_function("() => document.querySelector('.wan-form-code textarea').value.startsWith('wan.generate(')")
    assert f"seed={state['seed']}" in form.locator(".wan-form-code textarea").input_value()
    form.screenshot(path=str(screenshot_dir(tmp_path) / "form.png"))
    ledger = printed(page, 4, "LEDGER")
    assert ledger["submitted"] == 1 and ledger["billed_quota"] == 11475, ledger

    # saved, the notebook's static view of the form is the form as the run left it
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    deadline = time.monotonic() + 15
    while True:
        outputs = json.loads((lab["root"] / "form.ipynb").read_text())["cells"][1]["outputs"]
        static = "".join("".join(o.get("data", {}).get("text/html", "")) for o in outputs)
        if "a heron in reeds at dawn" in static or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert "a heron in reeds at dawn" in static and "<img" in static and f"seed={state['seed']}" in static, static[:500]


@pytest.mark.timeout(240)
def test_a_double_click_and_an_edit_during_the_run_leave_nothing_stale(page: Any, lab: Any, tmp_path: Path) -> None:
    """Issue 18: "already running" stayed beside "✓ done", and a prompt typed during the run
    was shown beside the image the old prompt made."""
    form = shown(page, lab, "double.ipynb", 3, tmp_path)
    button(form, "generate").dblclick()
    page.wait_for_function("() => document.querySelector('.wan-form-message').innerText.includes('already running')")
    form.locator(".wan-form-prompt textarea").fill("a blue whale")
    try:
        form.locator(".wan-form-output img").first.wait_for(timeout=40_000)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"no image in the form: {exc}\n{fail_info(page, lab, tmp_path / 'result.png')}")
    page.wait_for_function("() => document.querySelector('.wan-form-status').innerText.includes('done')")
    page.wait_for_function("() => !document.querySelector('.wan-form-message').innerText.includes('already running')")
    output = form.locator(".wan-form-output").inner_text()
    assert "wan.generate('a double-clicked heron'" in output and "a blue whale" not in output, output
    assert "have changed since this result was made" in form.locator(".wan-form-result-note").inner_text()
    state = printed(page, 2, "FORM")
    assert state["result"] and state["seed"] == 11 and "a blue whale" in state["request"], state


@pytest.mark.timeout(240)
def test_cancel_during_a_queued_run_is_refunded(page: Any, lab: Any, tmp_path: Path) -> None:
    form = shown(page, lab, "cancel.ipynb", 4, tmp_path)
    button(form, "generate").click()
    cancel = button(form, "cancel")
    page.wait_for_function("() => !document.querySelector('button.wan-form-cancel').disabled")
    deadline = time.monotonic() + 20  # both tasks on the server: the blocker processing, ours queued
    while printed(page, 2, "LEDGER")["submitted"] < 2:
        assert time.monotonic() < deadline, "the form's task never reached the server"
        time.sleep(0.3)
    cancel.click()
    page.wait_for_function(
        "() => document.querySelector('.wan-form-status').innerText.includes('cancelled')", timeout=30_000
    )
    ledger = printed(page, 2, "LEDGER")
    assert ledger["by_status"].get("cancelled") == 1 and ledger["refunded_quota"] == 11475, ledger
    assert ledger["billed_quota"] == 0, ledger
    assert "refunded" in form.locator(".wan-form-status").inner_text()
    assert not button(form, "generate").is_disabled() and cancel.is_disabled()
    assert printed(page, 3, "FORM")["running"] is False


@pytest.mark.timeout(240)
def test_an_invalid_palette_disables_generate_with_the_message_next_to_it(page: Any, lab: Any, tmp_path: Path) -> None:
    form = shown(page, lab, "palette.ipynb", 3, tmp_path)
    generate = button(form, "generate")
    page.wait_for_function("() => !document.querySelector('button.wan-form-generate').disabled")
    hex_field = form.locator(".wan-palette-row").nth(1).locator(".wan-palette-hex input")
    hex_field.fill("#12345")
    hex_field.press("Enter")
    page.wait_for_function("() => document.querySelector('button.wan-form-generate').disabled")
    message = form.locator(".wan-form-problem-color_palette")
    message.get_by_text("hex colour").wait_for()
    assert message.is_visible() and "color_palette[1].hex" in message.inner_text()
    assert form.locator(".wan-palette-row").nth(1).locator(".wan-palette-problem").is_visible()
    assert "RequestError" in printed(page, 2, "FORM")["request"] or "problem" in printed(page, 2, "FORM")["request"]

    hex_field.fill("#123456")
    hex_field.press("Enter")
    page.wait_for_function("() => !document.querySelector('button.wan-form-generate').disabled")
    assert message.inner_text().strip() == "" and not generate.is_disabled()


@pytest.mark.timeout(240)
def test_interactive_edit_draws_a_box_and_generates(page: Any, lab: Any, tmp_path: Path) -> None:
    form = shown(page, lab, "boxes.ipynb", 4, tmp_path)
    generate = button(form, "generate")
    assert generate.is_disabled()
    assert "needs 1 to 2 boxes" in form.locator(".wan-form-problem-bbox_list").inner_text()
    canvas = form.locator("canvas.wan-bbox-canvas").first
    canvas.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    r = canvas.bounding_box()
    scale = r["width"] / 800  # the 1200×800 picture is shown at 800×533 (scale 2/3)
    m = page.mouse
    m.move(r["x"] + 200 * scale, r["y"] + 300 * scale)
    m.down()
    m.move(r["x"] + 440 * scale, r["y"] + 420 * scale, steps=12)
    m.up()
    page.wait_for_function("() => !document.querySelector('button.wan-form-generate').disabled")
    generate.click()
    form.locator(".wan-form-output img").first.wait_for(timeout=40_000)
    logged = printed(page, 3, "LOGGED")
    assert logged["action"] == "interactive_edit" and logged["boxes"] == logged["sent"], logged
    (box,) = logged["boxes"][0]
    assert all(abs(a - b) <= 3 for a, b in zip(box, [300, 450, 660, 630], strict=True)), box  # original pixels


@pytest.mark.timeout(300)
def test_the_explorer_shows_a_grid_and_switching_the_column_redraws_it(page: Any, lab: Any, tmp_path: Path) -> None:
    explorer = shown(page, lab, "explore.ipynb", 3, tmp_path, selector=".wan-explore")
    grid = explorer.locator(".wan-explore-grid")
    page.wait_for_function("() => document.querySelectorAll('.wan-explore-grid img').length === 18")

    def heads() -> list[str]:
        return [t.strip() for t in grid.locator(":scope > .widget-html").all_inner_texts()]

    before = heads()
    assert before[:4] == ["animal ↓ seed →", "0", "1", "2"], before
    assert "wan-explore-tile" in grid.locator(".wan-explore-tile").first.get_attribute("class")
    explorer.screenshot(path=str(screenshot_dir(tmp_path) / "explorer.png"))

    explorer.locator(".wan-explore-cols select").select_option("resolution")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.wan-explore-grid > .widget-html')].some(e => e.innerText.includes('2K'))"
    )
    after = heads()
    assert after[:3] == ["animal ↓ resolution →", "1K", "2K"], after
    assert page.evaluate("() => document.querySelectorAll('.wan-explore-grid img').length") == 18
    state = printed(page, 2, "GRID")
    assert (state["rows"], state["cols"]) == ("animal", "resolution")

    # a click on a run's button shows its details and its image at full size
    grid.locator("button.wan-explore-open").first.click()
    explorer.locator(".wan-explore-info").wait_for()
    explorer.locator("img.wan-explore-full").first.wait_for()
    assert (
        "a fox in snow" in explorer.locator(".wan-explore-info").inner_text()
        or "in snow" in explorer.locator(".wan-explore-info").inner_text()
    )
    assert printed(page, 2, "GRID")["selected"]
