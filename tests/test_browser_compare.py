"""Issue 17 in a real browser: ``wan.ImageCompare`` of two simulator images, driven by the mouse.

Headless JupyterLab + Debian Chromium + Playwright (fixtures in ``browser_lab``). Two
1024×1024 images are shown at 600×600 screen pixels. Dragging the swipe handle must
move ``position`` in the kernel to where it was dropped, the arrow keys must step it,
setting it from Python must move the split on the page, and the mode buttons must
switch to the diff and side views (kernel and page alike), with no "Error displaying
widget". The page's canvas is read with ``getImageData`` by the test (the widget never
asks the browser for pixels); the kernel's side by running a cell that prints JSON.

``WAN_NB_SCREENSHOTS=docs/screenshots`` writes ``image_compare.png`` (the swipe, split
where the mouse left it), the picture in README.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from browser_lab import cell, fail_info, open_notebook, run_cell, screenshot_dir

pytestmark = pytest.mark.browser

SIDE = 600  # screen px of the swipe frame: 1024×1024 fitted into 800×600
TOL = 0.01  # of the width: ± a few screen pixels (the canvas sits at a fractional position)

SETUP = (
    "import json\nimport wan_nb as wan\n"
    "wan.connect(latency=0.1, home='wan_runs_compare', quiet=True)\n"
    "a = wan.generate('a lighthouse on a cliff at dusk', resolution='1K', seed=1)\n"
    "b = wan.generate('a lighthouse on a cliff at dusk, in fog', resolution='1K', seed=2)\n"
    "c = wan.ImageCompare(a, b)"
)
STATE = "print('STATE ' + json.dumps({'mode': c.mode, 'position': c.position, 'redraws': c.redraws}))"
NOTEBOOKS = {
    "swipe.ipynb": [SETUP, "c", STATE, "c.position = 0.2"],
    "modes.ipynb": [SETUP, "c", STATE],
    "reload.ipynb": [SETUP + "\nc.position = 0.3", "c"],
}
SHOWN, STATE_CELL, SET = 1, 2, 3

# The swipe canvas in cell i: where it is on the page, and its own pixel size.
CANVAS_JS = """(i) => {
    const c = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')[i];
    const canvas = c && c.querySelector('canvas.wan-compare-canvas');
    const img = canvas && canvas.parentElement.querySelector('img');
    if (!canvas || !img || !img.complete || !img.naturalWidth) return null;
    const r = canvas.getBoundingClientRect();
    return {left: r.left, top: r.top, width: r.width, height: r.height, cw: canvas.width, ch: canvas.height,
            title: canvas.getAttribute('title')};
}"""
# The alpha of the canvas's pixels along its middle row at the given shares of its width.
ALPHAS_JS = """([i, shares]) => {
    const c = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')[i];
    const canvas = c && c.querySelector('canvas.wan-compare-canvas');
    if (!canvas) return shares.map(() => -1);
    const y = Math.round(canvas.height * 0.25);  // above the grip
    return shares.map(s => canvas.getContext('2d').getImageData(Math.round(s * canvas.width), y, 1, 1).data[3]);
}"""


def split_at(i: int, share: float) -> str:
    """A JS test that the canvas shows A (transparent: the <img> under it) just left of
    ``share`` and B (opaque) just right of it: the split is there."""
    left, right = max(share - 0.04, 0.005), min(share + 0.04, 0.995)
    return f"(a => a[0] === 0 && a[1] === 255)(({ALPHAS_JS})([{i}, [{left}, {right}]]))"


def state(page: Any) -> dict[str, Any]:
    out = run_cell(page, STATE_CELL, wait_for="STATE ")
    return json.loads(out.split("STATE ", 1)[1].strip().splitlines()[0])


def shown(page: Any, lab: Any, name: str, n_cells: int, tmp_path: Path) -> dict[str, Any]:
    """Open ``name``, make the two images and show the widget; the canvas's rectangle."""
    open_notebook(page, lab, name, n_cells)
    run_cell(page, 0)  # the next cell runs after it
    run_cell(page, SHOWN)
    try:
        cell(page, SHOWN).scroll_into_view_if_needed()
        page.wait_for_function(f"() => ({CANVAS_JS})({SHOWN}) !== null")
        page.wait_for_function(f"() => {split_at(SHOWN, 0.5)}")  # B drawn right of the middle
    except Exception as exc:  # noqa: BLE001 - any failure: report it with a screenshot
        pytest.fail(f"the compare widget did not draw: {exc}\n{fail_info(page, lab, tmp_path / 'fail.png')}")
    rect: dict[str, Any] = page.evaluate(CANVAS_JS, SHOWN)
    assert abs(rect["width"] - SIDE) <= 1 and abs(rect["height"] - SIDE) <= 1, rect
    assert rect["cw"] == 2 * SIDE, f"not 2 canvas px per screen px: {rect}"
    assert "Error displaying widget" not in page.inner_text("body")
    return rect


@pytest.mark.timeout(180)
def test_dragging_the_handle_moves_position_and_python_moves_the_handle(page: Any, lab: Any, tmp_path: Path) -> None:
    r = shown(page, lab, "swipe.ipynb", 4, tmp_path)
    assert r["title"] and "drag" in r["title"], "the handle has no title to name it"
    mouse = page.mouse

    # Drag the handle (at the middle) to three quarters of the width.
    y = r["top"] + r["height"] / 2
    mouse.move(r["left"] + 0.5 * r["width"], y)
    mouse.down()
    mouse.move(r["left"] + 0.75 * r["width"], y, steps=12)
    mouse.up()
    s = state(page)
    assert abs(s["position"] - 0.75) <= TOL, s
    page.wait_for_function(f"() => {split_at(SHOWN, 0.75)}")
    shots = screenshot_dir(tmp_path)
    cell(page, SHOWN).locator(".wan-compare").screenshot(path=str(shots / "image_compare.png"))

    # Released outside the picture: the drag ends at its edge.
    mouse.move(r["left"] + 0.75 * r["width"], y)
    mouse.down()
    mouse.move(r["left"] + r["width"] + 80, y, steps=10)
    mouse.up()
    assert state(page)["position"] == 1.0

    # A click takes the split there; then the arrow keys step it by 5 %.
    mouse.click(r["left"] + 0.4 * r["width"], y)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    s = state(page)
    assert abs(s["position"] - 0.5) <= TOL, s

    # From Python: the split moves on the page.
    run_cell(page, SET)
    page.wait_for_function(f"() => {split_at(SHOWN, 0.2)}")
    assert state(page)["position"] == 0.2
    print(f"\nredraws of the swipe canvas for 3 gestures, 2 keys and 1 set: {s['redraws']}")
    assert "Error displaying widget" not in page.inner_text("body")


@pytest.mark.timeout(180)
def test_the_mode_buttons_switch_to_diff_and_side(page: Any, lab: Any, tmp_path: Path) -> None:
    shown(page, lab, "modes.ipynb", 3, tmp_path)
    widget = cell(page, SHOWN).locator(".wan-compare")
    swipe, side, diff = (widget.locator(f".wan-compare-{m}") for m in ("swipe", "side", "diff"))
    assert swipe.is_visible() and not side.is_visible() and not diff.is_visible()
    buttons = widget.locator(".wan-compare-modes button")
    titles = [buttons.nth(k).get_attribute("title") for k in range(buttons.count())]
    assert len(titles) == 3 and all(titles), f"a mode button has no title: {titles}"

    widget.get_by_role("button", name="Diff", exact=True).click()
    diff.wait_for(state="visible")
    assert not swipe.is_visible() and "of pixels changed" in diff.inner_text()
    heat = diff.locator("img")
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=heat.element_handle())
    assert abs(heat.bounding_box()["width"] - SIDE) <= 1
    assert state(page)["mode"] == "diff"
    widget.screenshot(path=str(tmp_path / "diff.png"))

    widget.get_by_role("button", name="Side by side", exact=True).click()
    side.wait_for(state="visible")
    assert not diff.is_visible() and not swipe.is_visible()
    pictures = side.locator("img")
    assert pictures.count() == 2
    boxes = [pictures.nth(k).bounding_box() for k in range(2)]
    assert abs(boxes[0]["width"] - boxes[1]["width"]) <= 1 and boxes[0]["x"] + boxes[0]["width"] <= boxes[1]["x"]
    differs = side.locator("tr.differs")
    assert sorted(differs.nth(k).locator("td").nth(1).inner_text() for k in range(differs.count())) == [
        "prompt", "seed"]
    assert state(page)["mode"] == "side"
    widget.screenshot(path=str(tmp_path / "side.png"))

    widget.get_by_role("button", name="Swipe", exact=True).click()
    swipe.wait_for(state="visible")
    page.wait_for_function(f"() => {split_at(SHOWN, 0.5)}")  # the canvas kept its drawing
    assert "Error displaying widget" not in page.inner_text("body")


@pytest.mark.timeout(150)
def test_a_reloaded_page_draws_the_swipe_again(page: Any, lab: Any, tmp_path: Path) -> None:
    """ipycanvas keeps no drawing as state: a reloaded page has blank canvases (B's source
    among them) until the widget draws them again when each front end says it is ready."""
    open_notebook(page, lab, "reload.ipynb", 2)
    run_cell(page, 0)
    run_cell(page, SHOWN)
    page.wait_for_function(f"() => {split_at(SHOWN, 0.3)}")
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-mod-dirty')")
    open_notebook(page, lab, "reload.ipynb", 2)
    try:
        cell(page, SHOWN).scroll_into_view_if_needed()
        page.wait_for_function(f"() => ({CANVAS_JS})({SHOWN}) !== null")
        page.wait_for_function(f"() => {split_at(SHOWN, 0.3)}", timeout=20_000)
    except Exception as exc:  # noqa: BLE001 - any failure: report it with a screenshot
        pytest.fail(f"the reloaded swipe is not redrawn: {exc}\n{fail_info(page, lab, tmp_path / 'reload.png')}")
    assert "Error displaying widget" not in page.inner_text("body")
