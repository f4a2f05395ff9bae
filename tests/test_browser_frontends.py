"""Issue 10: the drawer, a form and a live sweep work in Jupyter Notebook 7 as in JupyterLab.

One notebook, opened in each front end (the ``lab`` fixture of ``browser_lab``,
parametrized with ``FRONT_ENDS``: a ``jupyter lab`` and a ``jupyter notebook`` server),
headless Debian Chromium driven by Playwright. In each: a box drawn with the mouse on a
1600×900 picture shown at 800×450 comes back in the picture's own pixels; a form's
Generate is disabled until a prompt is typed, and the result appears in the form; a
sweep's grid fills in live while the next cell runs. The kernel's side is read by
running a cell that prints JSON with a prefix.

``WAN_NB_SCREENSHOTS=docs/screenshots`` writes ``overview.png`` (JupyterLab: the drawer,
the form and the filled-in grid side by side), the picture at the top of README.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from browser_lab import (
    FRONT_ENDS,
    cell,
    fail_info,
    open_notebook,
    run_cell,
    screenshot_dir,
)
from PIL import Image, ImageDraw

W, H = 1600, 900  # the picture, shown 800 px wide: one screen pixel is two of its pixels
TOL = 3  # image pixels: ± one screen pixel and the canvas's fractional position

SETUP = (
    "import json\nimport wan_nb as wan\n"
    "wan.connect(latency=0.8, home='wan_runs', quiet=True)\n"
    "d = wan.BBoxDrawer('photo.png')\n"
    "f = wan.form(resolution='1K', seed=11)"
)
CELLS = [
    SETUP,
    "d",
    "print('BOXES ' + json.dumps(d.bbox_list))",
    "f",
    "print('FORM ' + json.dumps({'prompt': f.result.request.prompt, 'seed': f.result.seed} if f.result else None))",
    'sw = wan.sweep("a {animal} in snow", animal=["fox", "owl"], seed=range(3), resolution="1K", concurrency=2)\nsw',
    "print('NEXT', 1 + 1)",
]
NOTEBOOKS = {"tour.ipynb": CELLS}
DRAWER, BOXES, FORM, FORM_STATE, SWEEP, NEXT = 1, 2, 3, 4, 5, 6

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("lab", FRONT_ENDS, indirect=True, scope="module")]


def prepare_lab_root(root: Path) -> None:
    """A 1600×900 picture with something to box: sky, sea, a boat."""
    im = Image.new("RGB", (W, H), (120, 170, 220))
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 520, W, H), fill=(30, 80, 130))
    draw.polygon([(420, 600), (760, 600), (700, 680), (480, 680)], fill=(90, 60, 40))
    im.save(root / "photo.png")


def printed(page: Any, i: int, prefix: str) -> Any:
    out = run_cell(page, i, wait_for=prefix + " ")
    return json.loads(out.split(prefix + " ", 1)[1].strip().splitlines()[0])


def shown(page: Any, lab: Any, i: int, selector: str, tmp_path: Path) -> Any:
    """Run cell ``i`` and wait for ``selector`` in its output."""
    run_cell(page, i)
    element = cell(page, i).locator(selector).first
    try:
        element.wait_for(timeout=30_000)
    except Exception as exc:  # noqa: BLE001 - any failure: report it with a screenshot
        pytest.fail(f"{selector} did not show in {lab['front_end']}: {exc}\n"
                    f"{fail_info(page, lab, tmp_path / 'fail.png')}")
    element.scroll_into_view_if_needed()
    return element


SWEEP_STATE_JS = """(i) => {
    const c = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')[i];
    const grid = c && c.querySelector('.jp-OutputArea-output .wan-grid');
    if (!grid) return null;
    const done = (grid.innerText.match(/(\\d+)\\/(\\d+) done/) || []).slice(1).map(Number);
    return {imgs: grid.querySelectorAll('img[src^="data:"]').length, done: done,
            widget: !!grid.closest('.jupyter-widgets, .widget-html')};
}"""


@pytest.mark.timeout(300)
def test_drawer_form_and_live_sweep(page: Any, lab: Any, tmp_path: Path) -> None:
    where = lab["front_end"]
    open_notebook(page, lab, "tour.ipynb", len(CELLS))
    run_cell(page, 0, wait_for=None)

    # 1. The drawer: a box drawn with the mouse comes back in the picture's own pixels.
    drawer = shown(page, lab, DRAWER, "canvas.wan-bbox-canvas", tmp_path)
    page.wait_for_function(
        "(i) => { const c = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')[i];"
        "         const img = c.querySelector('.wan-bbox img');"
        "         return !!img && img.complete && img.naturalWidth > 0; }",
        arg=DRAWER)
    box = drawer.bounding_box()
    assert box and abs(box["width"] - 800) <= 1, f"{where}: the drawer is not shown 800 px wide: {box}"
    scale = W / box["width"]
    m = page.mouse
    m.move(box["x"] + 100, box["y"] + 80)
    m.down()
    m.move(box["x"] + 300, box["y"] + 230, steps=12)
    m.up()
    (drawn,) = printed(page, BOXES, "BOXES")[0]
    expected = [100 * scale, 80 * scale, 300 * scale, 230 * scale]
    assert all(abs(a - e) <= TOL for a, e in zip(drawn, expected, strict=True)), \
        f"{where}: drew {expected}, got {drawn}"

    # 2. A form: Generate is enabled once a prompt is typed; the result appears in the form.
    form = shown(page, lab, FORM, ".wan-form", tmp_path)
    generate = form.locator("button.wan-form-generate")
    assert generate.is_disabled(), f"{where}: Generate is enabled with an empty prompt"
    form.locator(".wan-form-prompt textarea").fill("a heron in reeds at dawn")
    page.wait_for_function("() => !document.querySelector('button.wan-form-generate').disabled")
    generate.click()
    try:
        form.locator(".wan-form-output img").first.wait_for(timeout=40_000)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{where}: no image in the form: {exc}\n{fail_info(page, lab, tmp_path / 'form.png')}")
    assert printed(page, FORM_STATE, "FORM") == {"prompt": "a heron in reeds at dawn", "seed": 11}
    assert "seed 11" in form.locator(".wan-form-status").inner_text()

    # 3. A live sweep: its grid is shown at once, the next cell runs while it fills in.
    run_cell(page, SWEEP)
    page.wait_for_function(f"() => ({SWEEP_STATE_JS})({SWEEP}) !== null", timeout=20_000)
    first = page.evaluate(SWEEP_STATE_JS, SWEEP)
    assert first["widget"] and first["done"][1] == 6, f"{where}: not the live grid of 6 cells: {first}"
    run_cell(page, NEXT, wait_for="NEXT 2", timeout=20_000)
    during = page.evaluate(SWEEP_STATE_JS, SWEEP)
    assert during["done"][0] < 6, f"{where}: the next cell ran only after the sweep had finished: {during}"
    try:
        page.wait_for_function(
            f"() => {{ const s = ({SWEEP_STATE_JS})({SWEEP}); return s && s.imgs === 6 && s.done[0] === 6; }}",
            timeout=40_000)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{where}: the grid did not fill in: {exc}\n{fail_info(page, lab, tmp_path / 'sweep.png')}")

    if where == "lab":
        _overview(page, form, tmp_path)


def _overview(page: Any, form: Any, tmp_path: Path) -> None:
    """README's picture: the drawer with its box, the form with its result, the live grid."""
    parts = []
    for name, element in (("drawer", cell(page, DRAWER).locator(".wan-bbox").first), ("form", form),
                          ("grid", cell(page, SWEEP).locator(".wan-grid").first)):
        element.scroll_into_view_if_needed()
        page.wait_for_timeout(200)
        path = tmp_path / f"{name}.png"
        element.screenshot(path=str(path))
        parts.append(Image.open(path).convert("RGB"))
    left_w = max(parts[0].width, parts[2].width)
    height = max(parts[0].height + parts[2].height + 16, parts[1].height)
    sheet = Image.new("RGB", (left_w + 16 + parts[1].width, height), "white")
    sheet.paste(parts[0], (0, 0))
    sheet.paste(parts[2], (0, parts[0].height + 16))
    sheet.paste(parts[1], (left_w + 16, 0))
    sheet.save(screenshot_dir(tmp_path) / "overview.png", optimize=True)
