"""Issue 6 in a real browser: the bbox drawer and the palette editor, driven by the mouse.

Headless JupyterLab + Debian Chromium + Playwright (fixtures in ``browser_lab``). A
1600×900 image is shown at 800×450; boxes drawn with the mouse must come back in the
original pixels, the 2-box cap must be visible, move / resize / click + Delete must
work, a drag released outside the canvas must end cleanly, and the boxes must reach
``wan.interactive_edit`` and the log unchanged. The kernel's view of the state is read
by running a cell that prints it: mouse events travel on the same channel before the
execute request, so the cell sees every event sent before it.

Screenshots go to ``WAN_NB_SCREENSHOTS`` when set (to refresh docs/screenshots/),
else to the test's temporary folder.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from browser_lab import cell, fail_info, open_notebook, run_cell, screenshot_dir
from PIL import Image, ImageDraw

W, H = 1600, 900  # the image; shown at 800×450, so one screen pixel is 2 image pixels
TOL = 2  # ± one display pixel, in image pixels

SETUP = (
    "import json\nimport wan_nb as wan\n"
    "wan.connect(latency=0.1, home='wan_runs_widgets', quiet=True)\n"
    "d = wan.BBoxDrawer('photo.png')"
)
STATE = ("print('STATE ' + json.dumps({'boxes': d.bbox_list, 'message': d.message, "
         "'selected': d.selected, 'redraws': d.redraws}))")
EDIT = (
    "r = wan.interactive_edit('a red boat on the water', d, seed=3)\n"
    "row = wan.log().runs().iloc[-1]\n"
    "print('LOGGED ' + json.dumps({'action': str(row['action']), 'status': str(row['status']),\n"
    "      'boxes': [[list(map(int, b)) for b in bs] for bs in row['bbox_list']],\n"
    "      'sent': [[list(b) for b in bs] for bs in r.request.bbox_list]}))"
)

pytestmark = pytest.mark.browser

NOTEBOOKS = {
    "draw.ipynb": [SETUP, "d", STATE],
    "outside.ipynb": [SETUP, "d", STATE, "d", EDIT],
    "reload.ipynb": [SETUP + "\nd.bbox_list = [[[160, 120, 520, 400]]]", "d"],
    "sharp.ipynb": [SETUP + "\nd.bbox_list = [[[160, 120, 520, 400]]]", "d", "t = wan.BBoxDrawer('tiny.png')\nt"],
    "palette.ipynb": [
        "import json\nimport wan_nb as wan\np = wan.PaletteEditor()",
        "p",
        "print('PALETTE ' + json.dumps(p.color_palette))",
    ],
}


def prepare_lab_root(root: Path) -> None:
    """A 1600×900 picture with something to box: sky, sea, a sun, a boat."""
    im = Image.new("RGB", (W, H), (120, 170, 220))
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 520, W, H), fill=(30, 80, 130))
    draw.ellipse((1180, 120, 1380, 320), fill=(250, 210, 90))
    draw.polygon([(420, 600), (760, 600), (700, 680), (480, 680)], fill=(90, 60, 40))
    im.save(root / "photo.png")
    tiny = Image.new("L", (64, 48))  # a checkerboard: any smoothing shows as grey
    tiny.putdata([255 if (x + y) % 2 else 0 for y in range(48) for x in range(64)])
    tiny.save(root / "tiny.png")


# --------------------------------------------------------------------------- page helpers

# The picture is an <img> with the boxes' transparent canvas over it (2 canvas pixels per
# screen pixel); coordinates below are screen pixels from the picture's top-left corner.
CANVAS_JS = """(i) => {
    const c = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')[i];
    const canvas = c && c.querySelector('canvas.wan-bbox-canvas');
    const img = canvas && canvas.parentElement.querySelector('img');
    if (!canvas || !img || !img.complete || !img.naturalWidth) return null;
    const r = canvas.getBoundingClientRect(), ri = img.getBoundingClientRect();
    return {left: r.left, top: r.top, width: r.width, height: r.height, cw: canvas.width, ch: canvas.height,
            img: [ri.left, ri.top, ri.width, ri.height, img.naturalWidth, img.naturalHeight],
            dpr: window.devicePixelRatio};
}"""

PIXEL_JS = """([i, x, y]) => {
    const c = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')[i];
    const canvas = c && c.querySelector('canvas.wan-bbox-canvas');
    return canvas ? [...canvas.getContext('2d').getImageData(x, y, 1, 1).data] : null;
}"""

SNAPSHOT_JS = """(i) => {
    const c = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')[i];
    return c.querySelector('canvas.wan-bbox-canvas').toDataURL();
}"""
RED_AT = "(p => !!p && p[0] > 200 && p[1] < 120 && p[3] > 200)"  # box 1's outline on the canvas


class Canvas:
    """The drawer in cell ``i``: screen pixels over its picture ↔ page and canvas pixels."""

    def __init__(self, page: Any, i: int) -> None:
        cell(page, i).scroll_into_view_if_needed()
        page.wait_for_function(f"() => ({CANVAS_JS})({i}) !== null")
        self.page, self.i = page, i
        self.rect = page.evaluate(CANVAS_JS, i)
        self.density = self.rect["cw"] / self.rect["width"]  # canvas px per screen px

    def at(self, sx: float, sy: float) -> tuple[float, float]:
        return self.rect["left"] + sx, self.rect["top"] + sy

    def drag(
        self, a: tuple[float, float], b: tuple[float, float], *, page_b: tuple[float, float] | None = None
    ) -> None:
        m = self.page.mouse
        m.move(*self.at(*a))
        m.down()
        m.move(*(page_b or self.at(*b)), steps=12)
        m.up()

    def click(self, sx: float, sy: float) -> None:
        self.page.mouse.click(*self.at(sx, sy))

    def pixel(self, sx: float, sy: float) -> list[int]:
        """The boxes canvas at a screen point (transparent where no box is)."""
        return self.page.evaluate(PIXEL_JS, [self.i, round(sx * self.density), round(sy * self.density)])

    def seen(self, sx: float, sy: float) -> list[int]:
        """What the page shows at a screen point: the picture with the boxes over it."""
        x, y = self.at(sx, sy)
        png = self.page.screenshot(clip={"x": round(x), "y": round(y), "width": 1, "height": 1})
        pixel = Image.open(io.BytesIO(png)).convert("RGB").getpixel((0, 0))
        assert isinstance(pixel, tuple)
        return list(pixel)

    def is_box_colour(self, sx: float, sy: float) -> bool:
        """Box 1 is outlined in red (#ff3b30); the picture has no red."""
        r, g, b, a = self.pixel(sx, sy)
        return r > 200 and g < 120 and b < 120 and a > 200

    def bare(self, sx: float, sy: float) -> bool:
        """No box drawn there."""
        return self.pixel(sx, sy)[3] == 0


def state(page: Any, i: int) -> dict[str, Any]:
    out = run_cell(page, i, wait_for="STATE ")
    return json.loads(out.split("STATE ", 1)[1].strip().splitlines()[0])


def near(actual: list[int], expected: list[int], tol: int = TOL) -> bool:
    return len(actual) == len(expected) and all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


SKY, SEA = [120, 170, 220], [30, 80, 130]


def looks(pixel: list[int], colour: list[int]) -> bool:
    """The picture's colour at a point (it is sent as a JPEG: a few levels off)."""
    return near(pixel[:3], colour, 8)


def shown(page: Any, lab: Any, name: str, n_cells: int, tmp_path: Path, *, display_cell: int = 1) -> Canvas:
    """Open ``name``, run its set-up cell and the cell that shows the drawer; the canvas."""
    open_notebook(page, lab, name, n_cells)
    run_cell(page, 0)
    run_cell(page, display_cell)
    try:
        canvas = Canvas(page, display_cell)
    except Exception as exc:  # noqa: BLE001 - any failure: report it with a screenshot
        pytest.fail(f"the drawer did not show its image: {exc}\n{fail_info(page, lab, tmp_path / 'fail.png')}")
    r = canvas.rect
    assert abs(r["width"] - 800) <= 1 and abs(r["height"] - 450) <= 1, f"the canvas is stretched on the page: {r}"
    assert r["img"][:4] == [r["left"], r["top"], r["width"], r["height"]], f"the boxes are not over the picture: {r}"
    assert looks(canvas.seen(50, 50), SKY) and looks(canvas.seen(50, 400), SEA), "the picture is not shown"
    return canvas


# --------------------------------------------------------------------------- tests


@pytest.mark.timeout(180)
def test_boxes_drawn_by_mouse_come_back_in_original_pixels(page: Any, lab: Any, tmp_path: Path) -> None:
    c = shown(page, lab, "draw.ipynb", 3, tmp_path)

    # Two boxes, drawn in display pixels; the kernel holds them in the image's pixels.
    c.drag((100, 80), (300, 230))
    c.drag((450, 100), (650, 300))
    s = state(page, 2)
    assert len(s["boxes"]) == 1 and len(s["boxes"][0]) == 2, s
    a, b = s["boxes"][0]
    assert near(a, [200, 160, 600, 460]) and near(b, [900, 200, 1300, 600]), s
    assert s["message"] == "", s
    # the canvas shows them: box 1's outline on its left edge, the bare picture between the boxes
    assert c.is_box_colour(100, 150), c.pixel(100, 150)
    assert c.bare(380, 350) and looks(c.seen(380, 350), SEA), c.seen(380, 350)

    # A third box is refused, visibly, and nothing changes.
    c.drag((350, 330), (430, 420))
    s3 = state(page, 2)
    assert s3["boxes"] == s["boxes"], s3
    assert "at most 2 boxes per image" in s3["message"], s3
    message = cell(page, 1).locator(".wan-bbox-message")
    assert "at most 2 boxes per image" in message.inner_text()
    assert message.is_visible()

    # A drag inside box 1 moves it (+50, +40 display px = +100, +80 image px), size kept.
    c.drag((200, 150), (250, 190))
    s = state(page, 2)
    a2, b2 = s["boxes"][0]
    assert near(a2, [a[0] + 100, a[1] + 80, a[2] + 100, a[3] + 80]) and b2 == b, s
    assert a2[2] - a2[0] == a[2] - a[0] and a2[3] - a2[1] == a[3] - a[1], "a move changed the size"
    assert s["message"] == "", "a successful gesture clears the refusal message"

    # A drag on box 2's bottom-right corner resizes it; the top-left corner stays.
    c.drag((650, 300), (700, 350))
    s = state(page, 2)
    a3, b3 = s["boxes"][0]
    assert a3 == a2 and b3[:2] == b[:2] and near(b3[2:], [b[2] + 100, b[3] + 100]), s
    assert s["selected"] == [0, 1], s

    shots = screenshot_dir(tmp_path)
    cell(page, 1).locator(".wan-bbox").screenshot(path=str(shots / "bbox_drawer.png"))

    # Click box 1 (selects it), Delete removes it; box 2 is left as it was.
    c.click(250, 200)
    page.keyboard.press("Delete")
    s = state(page, 2)
    assert s["boxes"] == [[b3]], s
    assert s["selected"] == [], s
    assert c.bare(150, 130) and looks(c.seen(250, 200), SKY), "the deleted box is still drawn"
    print(f"\nredraws of the boxes layer for 6 gestures: {s['redraws']}")


@pytest.mark.timeout(180)
def test_drag_released_outside_ends_cleanly_and_boxes_reach_the_log(page: Any, lab: Any, tmp_path: Path) -> None:
    c = shown(page, lab, "outside.ipynb", 5, tmp_path)
    r = c.rect

    # Press inside, release beyond the bottom-right corner of the canvas.
    c.drag((600, 300), (0, 0), page_b=(r["left"] + r["width"] + 60, r["top"] + r["height"] + 40))
    s = state(page, 2)
    assert len(s["boxes"][0]) == 1, s
    (box,) = s["boxes"][0]
    assert near(box, [1200, 600, W, H]) and box[2] == W and box[3] == H, f"not clamped to the image: {s}"

    # The pointer comes back without a button: no box follows it, nothing is redrawn.
    before = page.evaluate(SNAPSHOT_JS, 1)
    m = page.mouse
    m.move(*c.at(700, 400))
    m.move(*c.at(150, 120), steps=15)
    m.up()  # a late release over the canvas ends nothing
    s2 = state(page, 2)
    assert s2["boxes"] == s["boxes"], f"a box moved with the mouse after the release outside: {s2}"
    assert page.evaluate(SNAPSHOT_JS, 1) == before, "the canvas changed after the drag ended"

    # A second box, then the same drawer shown again: the new view draws image and boxes.
    c.drag((80, 60), (260, 200))
    s = state(page, 2)
    assert len(s["boxes"][0]) == 2, s
    run_cell(page, 3)
    again = Canvas(page, 3)
    x1, y1, x2, _ = s["boxes"][0][1]  # box 2 (blue): its left edge, in canvas pixels (as many as the image's)
    page.wait_for_function(f"() => (p => !!p && p[2] > 200 && p[0] < 60)(({PIXEL_JS})([3, {x1}, {y1 + 60}]))")
    assert looks(again.seen(50, 50), SKY) and looks(again.seen(x2 / 2 + 40, y1 / 2 + 30), SKY), (
        "the second view does not show the picture"
    )

    # The boxes drawn by mouse are what interactive_edit sends and the log records.
    out = run_cell(page, 4, wait_for="LOGGED ", timeout=60_000)
    logged = json.loads(out.split("LOGGED ", 1)[1].strip().splitlines()[0])
    assert logged["action"] == "interactive_edit" and logged["status"] == "completed", logged
    assert logged["boxes"] == s["boxes"] == logged["sent"], (logged, s)


@pytest.mark.timeout(150)
def test_a_reloaded_page_draws_the_image_and_boxes_again(page: Any, lab: Any, tmp_path: Path) -> None:
    """ipycanvas keeps no drawing as state: after a reload the front end makes new canvas
    models, and only the drawer's redraw on client_ready puts the picture back."""
    c = shown(page, lab, "reload.ipynb", 2, tmp_path)
    assert c.is_box_colour(80, 100)  # box 1's left edge, at (160 / 2, 200 / 2)
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-mod-dirty')")
    open_notebook(page, lab, "reload.ipynb", 2)
    try:
        again = Canvas(page, 1)
        page.wait_for_function(f"() => {RED_AT}(({PIXEL_JS})([1, 160, 200]))", timeout=20_000)
    except Exception as exc:  # noqa: BLE001 - any failure: report it with a screenshot
        pytest.fail(f"the reloaded view is not redrawn: {exc}\n{fail_info(page, lab, tmp_path / 'reload.png')}")
    assert looks(again.seen(300, 200), SKY) and again.is_box_colour(80, 100)


@pytest.mark.timeout(150)
def test_palette_editor_keeps_ratios_at_100(page: Any, lab: Any, tmp_path: Path) -> None:
    open_notebook(page, lab, "palette.ipynb", 3)
    run_cell(page, 0)
    run_cell(page, 1)
    editor = cell(page, 1).locator(".wan-palette")
    editor.wait_for()
    rows = editor.locator(".wan-palette-row")
    assert rows.count() == 3

    # Typing 70 into the first ratio rebalances the others (50/35/15 → 70/21/9).
    ratio = rows.nth(0).locator(".wan-palette-ratio input")
    ratio.fill("70")
    ratio.press("Enter")
    page.wait_for_function(
        """() => [...document.querySelectorAll('.wan-palette-ratio input')]
                 .map(e => +e.value).join() === '70,21,9'"""
    )
    out = run_cell(page, 2, wait_for="PALETTE ")
    palette = json.loads(out.split("PALETTE ", 1)[1].strip())
    assert [p["ratio"] for p in palette] == [70, 21, 9] and sum(p["ratio"] for p in palette) == 100

    # Add a colour: four rows, still 100, and the preview bar has four parts.
    editor.get_by_role("button", name="Add colour").click()
    page.wait_for_function("() => document.querySelectorAll('.wan-palette-row').length === 4")
    page.wait_for_function("() => document.querySelectorAll('.wan-palette-bar > div').length === 4")
    out = run_cell(page, 2, wait_for="PALETTE ")
    palette = json.loads(out.split("PALETTE ", 1)[1].strip())
    assert len(palette) == 4 and sum(p["ratio"] for p in palette) == 100, palette
    widths = page.evaluate(
        "() => [...document.querySelectorAll('.wan-palette-bar > div')].map(d => d.getBoundingClientRect().width)"
    )
    total = sum(widths)
    for w, p in zip(widths, palette, strict=True):
        assert abs(w / total * 100 - p["ratio"]) < 1.5, (widths, palette)

    editor.screenshot(path=str(screenshot_dir(tmp_path) / "palette_editor.png"))

    # A bad hex is shown next to its field and not taken.
    hex_field = rows.nth(1).locator(".wan-palette-hex input")
    hex_field.fill("#12345")
    hex_field.press("Enter")
    problem = rows.nth(1).locator(".wan-palette-problem")
    problem.get_by_text("hex colour").wait_for()
    assert problem.is_visible()
    out = run_cell(page, 2, wait_for="PALETTE ")
    assert json.loads(out.split("PALETTE ", 1)[1].strip()) == palette


@pytest.mark.timeout(150)
def test_sharp_on_a_hidpi_screen_and_a_tiny_image_enlarged_in_square_pixels(
    browser: Any, lab: Any, tmp_path: Path
) -> None:
    """At devicePixelRatio 2 (most laptops) a canvas or picture with one pixel per screen
    pixel is upscaled by the browser, and blurred. A 64×48 image is too small to draw on:
    it is enlarged 4 times, each of its pixels a sharp square."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        c = shown(page, lab, "sharp.ipynb", 3, tmp_path)
        r = c.rect
        assert r["dpr"] == 2 and r["cw"] / r["width"] >= 2, f"the boxes canvas is blurred at dpr 2: {r}"
        assert r["img"][4] / r["img"][2] >= 2, f"the picture is blurred at dpr 2: {r}"
        assert c.is_box_colour(80, 100)
        cell(page, 1).locator(".wan-bbox").screenshot(path=str(tmp_path / "drawer_dpr2.png"))

        run_cell(page, 2)
        t = Canvas(page, 2)
        assert abs(t.rect["width"] - 256) <= 1 and abs(t.rect["height"] - 192) <= 1, t.rect
        row = [t.seen(x + 0.5, 1.5)[0] for x in range(16)]  # 4 image pixels, 4 screen px each
        assert all(v <= 12 or v >= 243 for v in row), f"the enlarged pixels are smoothed into grey: {row}"
        runs = "".join("b" if v <= 12 else "w" for v in row).replace("bw", "b w").replace("wb", "w b").split()
        assert len(runs) >= 4 and all(len(run) == 4 for run in runs[1:-1]), f"not 4 screen px per pixel: {row}"
    finally:
        context.close()
