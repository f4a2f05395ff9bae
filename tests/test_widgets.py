"""The bbox drawer and the palette editor in the kernel alone (no browser).

The drawer's own handlers are called with canvas coordinates, as ipycanvas calls them,
for a 1600×900 image shown at 800×450 screen pixels (a canvas of 1600×900: two canvas
pixels per screen pixel); the tests speak in screen pixels, what a user sees, and what
comes out is checked in the image's own pixels. Runs go to a simulator over loopback
HTTP. The same gestures in a real browser are in test_browser_widgets.py.
"""

from __future__ import annotations

import asyncio
import io
import random
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import wan_nb as wan
from wan_nb import _box_geometry as geo
from wan_nb._bbox import CAP_MESSAGE
from wan_nb._canvas_view import DRAW_INTERVAL
from wan_nb._palette import rebalance, spread, with_added, without
from wan_nb.sim import Simulator

W, H = 1600, 900
PX = geo.DENSITY  # canvas pixels per screen pixel: ipycanvas reports canvas pixels


def at(x: float, y: float) -> tuple[float, float]:
    """A point given in screen pixels, as ipycanvas reports it (canvas pixels)."""
    return x * PX, y * PX


def picture(w: int = W, h: int = H, colour: tuple[int, int, int] = (120, 170, 220)) -> Image.Image:
    return Image.new("RGB", (w, h), colour)


def drag(
    d: wan.BBoxDrawer,
    a: tuple[float, float],
    b: tuple[float, float],
    *,
    image: int = 0,
    steps: int = 8,
    end: str = "up",
) -> None:
    """Press at ``a``, move in steps, release at ``b`` (screen pixels), as the browser sends it."""
    d._on_down(image, *at(*a))
    for k in range(1, steps + 1):
        d._on_move(image, *at(a[0] + (b[0] - a[0]) * k / steps, a[1] + (b[1] - a[1]) * k / steps))
    (d._on_up if end == "up" else d._on_out)(image, *at(*b))


def click(d: wan.BBoxDrawer, x: float, y: float, image: int = 0) -> None:
    d._on_down(image, *at(x, y))
    d._on_up(image, *at(x, y))


@pytest.fixture
def drawer() -> wan.BBoxDrawer:
    return wan.BBoxDrawer(picture())


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME"):
        monkeypatch.delenv(name, raising=False)
    with Simulator(latency=0.05, seed=6) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path / "runs", quiet=True)
        try:
            yield sess
        finally:
            sess.close()


# ----------------------------------------------------------------- geometry and scale


def test_the_image_fills_its_canvas_at_one_scale() -> None:
    wide = geo.View.fit(1600, 900, 800, 600)
    assert (wide.screen_width, wide.screen_height, wide.zoom) == (800, 450, 0.5)
    assert (wide.canvas_width, wide.canvas_height) == (1600, 900)  # 2 canvas px per screen px
    tall = geo.View.fit(900, 1600, 800, 600)
    assert tall.screen_height == 600 and tall.screen_width == 338  # fits the height
    small = geo.View.fit(300, 200, 800, 600)
    assert (small.screen_width, small.screen_height, small.enlarged) == (300, 200, 0)  # its own size
    assert wide.to_image(1600, 900) == (1600, 900) and wide.to_image(-40, 1999) == (0, 900)  # clamped


def shown_picture(d: wan.BBoxDrawer, i: int = 0) -> Image.Image:
    """The picture the browser is sent for image ``i``."""
    return Image.open(io.BytesIO(d._displayed[i]))


def test_canvas_and_picture_have_two_pixels_per_screen_pixel_but_no_more_than_the_original() -> None:
    """A canvas with one pixel per screen pixel is blurred on a HiDPI screen
    (devicePixelRatio 2, most laptops): the boxes canvas and the picture have two."""
    d = wan.BBoxDrawer(picture())  # shown at 800×450 screen px
    assert d.children[0].layout.width == "800px"
    assert (d._canvases[0].width, d._canvases[0].height) == (1600, 900)
    assert shown_picture(d).size == (1600, 900)
    assert shown_picture(wan.BBoxDrawer(picture(4000, 2250))).size == (1600, 900)
    mid = wan.BBoxDrawer(picture(1000, 600))  # 800×480 on screen: the original's 1000 px, not upscaled
    assert mid.children[0].layout.width == "800px" and shown_picture(mid).size == (1000, 600)


def test_a_tiny_image_is_enlarged_by_a_whole_factor_with_square_pixels() -> None:
    """64×48 px at its own size is too small to draw two boxes on; enlarged smoothly it is
    a blur. It is shown 4 times larger, each pixel a sharp square."""
    tiny = Image.new("RGB", (64, 48))
    tiny.putdata([(255, 255, 255) if (x + y) % 2 else (0, 0, 0) for y in range(48) for x in range(64)])
    d = wan.BBoxDrawer(tiny)
    assert d.children[0].layout.width == "256px" and "64×48 px shown at 400%" in d._status.value
    shown = shown_picture(d).convert("RGB")
    assert shown.size == (512, 384)  # 4 × 2 canvas px per image px
    for x, y in ((0, 0), (7, 7), (8, 0), (15, 9), (509, 383)):
        assert shown.getpixel((x, y)) == tiny.getpixel((x // 8, y // 8)), (x, y)
    drag(d, (0, 0), (128, 96))  # half the picture on screen: half the image
    assert d.bbox_list == [[[0, 0, 32, 24]]]
    assert geo.View.fit(255, 40, 800, 600).zoom == 2 and geo.View.fit(300, 40, 800, 600).zoom == 1


def test_boxes_drawn_on_a_scaled_image_are_in_original_pixels(drawer: wan.BBoxDrawer) -> None:
    seen: list[Any] = []
    drawer.observe(lambda change: seen.append(change["new"]), "bbox_list")
    assert drawer.bbox_list == [[]]
    drag(drawer, (100, 80), (300, 230))
    drag(drawer, (650, 300), (450, 100))  # drawn from bottom-right to top-left
    assert drawer.bbox_list == [[[200, 160, 600, 460], [900, 200, 1300, 600]]]
    assert all(isinstance(v, int) for box in drawer.bbox_list[0] for v in box)
    assert len(seen) == 2, "observers hear once per finished gesture, not once per mouse move"
    assert drawer.selected == [0, 1]


def test_tall_image_shown_scaled_maps_back_too() -> None:
    d = wan.BBoxDrawer(picture(900, 1600))  # shown 338 × 600
    drag(d, (30, 60), (300, 540))
    x1, y1, x2, y2 = d.bbox_list[0][0]
    s = 1600 / 600
    for got, canvas in ((x1, 30), (y1, 60), (x2, 300), (y2, 540)):
        assert abs(got - canvas * s) <= s, d.bbox_list


def test_stray_click_adds_no_box(drawer: wan.BBoxDrawer) -> None:
    click(drawer, 100, 100)
    drag(drawer, (100, 100), (103, 160))  # 3 px wide on screen
    assert drawer.bbox_list == [[]]


def test_at_most_two_boxes_per_image(drawer: wan.BBoxDrawer) -> None:
    drag(drawer, (10, 10), (100, 100))
    drag(drawer, (200, 10), (300, 100))
    click(drawer, 500, 300)  # a click on empty space only deselects, with no complaint
    assert drawer.message == "" and drawer.selected == []
    drag(drawer, (500, 300), (600, 400))
    assert drawer.bbox_list == [[[20, 20, 200, 200], [400, 20, 600, 200]]]
    assert drawer.message == CAP_MESSAGE and "at most 2 boxes per image" in drawer._message.value
    drag(drawer, (50, 50), (60, 70))  # moving a box is still allowed, and clears the message
    assert drawer.bbox_list[0][0] == [40, 60, 220, 240] and drawer.message == ""


def test_drag_inside_moves_and_stops_at_the_edges(drawer: wan.BBoxDrawer) -> None:
    drag(drawer, (100, 100), (200, 200))  # [200, 200, 400, 400]
    drag(drawer, (150, 150), (175, 140))
    assert drawer.bbox_list == [[[250, 180, 450, 380]]]
    drag(drawer, (150, 150), (950, -300))  # far past the top-right corner
    assert drawer.bbox_list == [[[W - 200, 0, W, 200]]], "a move keeps the size and stays inside"


def test_corner_drag_resizes_flips_and_clamps(drawer: wan.BBoxDrawer) -> None:
    drag(drawer, (100, 100), (200, 200))  # [200, 200, 400, 400]
    drag(drawer, (200, 200), (300, 250))  # bottom-right corner
    assert drawer.bbox_list == [[[200, 200, 600, 500]]]
    drag(drawer, (100, 100), (105, 96))  # top-left corner, a little
    assert drawer.bbox_list == [[[210, 192, 600, 500]]]
    drag(drawer, (300, 250), (50, 60))  # bottom-right dragged past the top-left: flipped, still valid
    assert drawer.bbox_list == [[[100, 120, 210, 192]]]
    drag(drawer, (105, 96), (900, 500))  # that corner (now bottom-right) past the canvas: clamped
    assert drawer.bbox_list == [[[100, 120, W, H]]]
    click(drawer, 50, 60)  # a click on a corner selects without moving it
    assert drawer.bbox_list == [[[100, 120, W, H]]] and drawer.selected == [0, 0]


def test_released_outside_the_canvas_ends_the_drag(drawer: wan.BBoxDrawer) -> None:
    drag(drawer, (600, 300), (880, 500), end="out")  # ipycanvas reports the pointer leaving
    assert drawer.bbox_list == [[[1200, 600, W, H]]]
    before = drawer.redraws
    for x in range(100, 700, 25):  # the pointer comes back, no button: nothing follows it
        drawer._on_move(0, *at(x, 200))
    drawer._on_up(0, *at(300, 200))  # a late release over the canvas
    assert drawer.bbox_list == [[[1200, 600, W, H]]]
    assert drawer.redraws == before, "pointer moves without a drag must cost nothing"
    drag(drawer, (650, 350), (900, -20), end="out")  # moving a box out: it stops at the edge
    assert drawer.bbox_list == [[[1200, 0, W, 300]]]


def test_mouse_moves_during_a_drag_are_throttled(drawer: wan.BBoxDrawer) -> None:
    drawer._on_down(0, *at(10, 10))
    before = drawer.redraws
    t = time.monotonic()
    for k in range(400):
        drawer._on_move(0, *at(10 + k, 10 + k / 2))
    elapsed = time.monotonic() - t
    drawn = drawer.redraws - before
    assert drawn <= 1 + elapsed / DRAW_INTERVAL, f"{drawn} redraws for 400 moves in {elapsed:.3f} s"
    assert drawn < 400
    drawer._on_up(0, *at(409, 209.5))
    assert drawer.bbox_list == [[[20, 20, 818, 419]]]  # the last position counts, drawn or not


def test_a_pointer_that_stops_mid_drag_has_its_box_drawn_where_it_stopped(drawer: wan.BBoxDrawer) -> None:
    """The throttle skips moves that come too soon after a redraw; when the pointer then
    stops (the button still down, placing the box precisely), the skipped last move must
    still be drawn, or the box stays short of the pointer (seen in Chromium: 9 px)."""
    drawn: list[Any] = []
    draw = drawer._draw_boxes

    def recording_draw(i: int) -> None:
        drawn.append(drawer._shape)
        draw(i)

    drawer._draw_boxes = recording_draw  # type: ignore[method-assign]

    async def gesture() -> None:  # in the kernel, mouse events arrive on its event loop
        drawer._on_down(0, *at(10, 10))
        for k in range(1, 60):
            drawer._on_move(0, *at(10 + 5 * k, 10 + 3 * k))
        await asyncio.sleep(DRAW_INTERVAL * 4)  # the pointer rests

    asyncio.run(gesture())
    assert drawn[-1] == drawer._shape == (20, 20, 610, 374), drawn[-3:]
    assert len(drawn) <= 3, f"{len(drawn)} redraws for 59 moves in a few ms"
    drawer._on_up(0, *at(305, 187))
    assert drawer.bbox_list == [[[20, 20, 610, 374]]]


def test_delete_by_key_and_button_and_clear(drawer: wan.BBoxDrawer) -> None:
    drag(drawer, (10, 10), (100, 100))
    drag(drawer, (200, 10), (300, 100))
    click(drawer, 50, 50)
    assert drawer.selected == [0, 0] and not drawer._delete_button.disabled
    drawer._on_key(0, "Delete", False, False, False)
    assert drawer.bbox_list == [[[400, 20, 600, 200]]] and drawer.selected == []
    assert drawer._delete_button.disabled
    drawer._on_key(0, "Backspace", False, False, False)  # nothing selected: nothing removed
    assert drawer.bbox_list == [[[400, 20, 600, 200]]]
    click(drawer, 250, 50)
    drawer._delete_button.click()
    assert drawer.bbox_list == [[]]
    drag(drawer, (10, 10), (100, 100))
    click(drawer, 50, 50)
    drawer._on_key(0, "Backspace", False, False, False)  # a Mac keyboard's delete key
    assert drawer.bbox_list == [[]]
    drag(drawer, (10, 10), (100, 100))
    drawer._clear_button.click()
    assert drawer.bbox_list == [[]]


def test_several_images_each_with_its_own_boxes() -> None:
    d = wan.BBoxDrawer([picture(), picture(600, 1200)])  # 800×450 and 300×600
    assert d._tab is not None and len(d._tab.children) == 2
    assert d._tab.titles == ("1: image 1", "2: image 2")
    drag(d, (10, 10), (100, 100), image=0)
    drag(d, (10, 10), (100, 100), image=1)
    drag(d, (150, 300), (250, 500), image=1)
    assert d.bbox_list == [[[20, 20, 200, 200]], [[20, 20, 200, 200], [300, 600, 500, 1000]]]
    drag(d, (120, 120), (200, 200), image=1)  # empty space, but image 2 already has 2 boxes
    assert d.message == CAP_MESSAGE and len(d.bbox_list[1]) == 2
    d._tab.selected_index = 1
    d._clear_button.click()  # clears the image shown
    assert d.bbox_list == [[[20, 20, 200, 200]], []]
    assert "600×1200" in d._status.value


def test_bad_boxes_from_python_raise_request_error_naming_the_field(drawer: wan.BBoxDrawer) -> None:
    cases = {
        "bbox_list[0][0]": [[[0, 0, 1700, 10]]],  # outside the 1600 px wide image
        "bbox_list[0]": [[[0, 0, 9, 9], [1, 1, 9, 9], [2, 2, 9, 9]]],  # 3 boxes
        "bbox_list": [[], []],  # two lists for one image
    }
    for field, value in cases.items():
        with pytest.raises(wan.RequestError) as info:
            drawer.bbox_list = value
        assert info.value.fields == [field], info.value
    with pytest.raises(wan.RequestError) as info:
        drawer.bbox_list = [[[50, 10, 20, 30]]]
    assert info.value.problems[0].rule == "corners"
    assert drawer.bbox_list == [[]], "a refused value leaves the boxes as they were"
    drawer.bbox_list = [[[10.0, 20, 30, 40]]]  # whole floats are fine: stored as ints
    assert drawer.bbox_list == [[[10, 20, 30, 40]]] and isinstance(drawer.bbox_list[0][0][0], int)
    drawer.set_state({"bbox_list": [[[1, 2, 3, 4], [5, 6, 700, 800]]]})  # as the front end would
    assert drawer.bbox_list == [[[1, 2, 3, 4], [5, 6, 700, 800]]]
    with pytest.raises(wan.RequestError):
        drawer.set_state({"bbox_list": [[[1, 2, 3, 4000]]]})
    assert drawer.bbox_list == [[[1, 2, 3, 4], [5, 6, 700, 800]]]


def test_none_or_an_empty_list_from_python_clears_every_image() -> None:
    """``d.bbox_list = None`` was a bare traitlets TraitError (not a wan.RequestError), and
    ``[]`` was refused as "0 lists for 2 images": both mean "no boxes" to a user."""
    d = wan.BBoxDrawer([picture(), picture(600, 1200)], bbox_list=[[[1, 1, 9, 9]], []])
    d.bbox_list = None
    assert d.bbox_list == [[], []]
    d.bbox_list = [[[1, 1, 9, 9]], [[2, 2, 8, 8]]]
    d.bbox_list = []
    assert d.bbox_list == [[], []]
    with pytest.raises(wan.RequestError) as info:  # a third box is still refused, in the drawer's words
        d.bbox_list = [[[0, 0, 9, 9], [1, 1, 9, 9], [2, 2, 9, 9]], []]
    assert str(info.value.problems[0]) == "bbox_list[0]: takes at most 2 boxes per image (got 3)"


def test_boxes_computed_with_numpy_are_taken_as_whole_pixels() -> None:
    """np.int64 coordinates (and arrays of boxes) were refused as 'not whole' numbers."""
    import numpy as np

    d = wan.BBoxDrawer(picture(), bbox_list=np.array([10, 10, 50, 50]))
    assert d.bbox_list == [[[10, 10, 50, 50]]]
    d.bbox_list = [[np.array([1, 2, 30, 40]), [np.int64(5), np.int32(6), 70, np.float64(80.0)]]]
    assert d.bbox_list == [[[1, 2, 30, 40], [5, 6, 70, 80]]]
    assert all(type(v) is int for box in d.bbox_list[0] for v in box)
    with pytest.raises(wan.RequestError) as info:
        d.bbox_list = np.array([[[0, 0, 10, 901]]])
    assert info.value.fields == ["bbox_list[0][0]"] and info.value.problems[0].rule == "inside_image"


def test_constructor_takes_boxes_and_the_one_image_shorthand() -> None:
    assert wan.BBoxDrawer(picture(), bbox_list=[[10, 10, 50, 50]]).bbox_list == [[[10, 10, 50, 50]]]
    assert wan.BBoxDrawer(picture(), bbox_list=[10, 10, 50, 50]).bbox_list == [[[10, 10, 50, 50]]]
    with pytest.raises(wan.RequestError) as info:
        wan.BBoxDrawer(picture(), bbox_list=[[[0, 0, 10, 901]]])
    assert info.value.fields == ["bbox_list[0][0]"]


def test_inputs_paths_bytes_pil_and_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "a & <b>.png"
    picture(320, 200).save(path)
    for value in (path, str(path), path.read_bytes(), Image.open(path)):
        assert wan.BBoxDrawer(value).sizes == [(320, 200)]
    with pytest.raises(wan.RequestError) as info:
        wan.BBoxDrawer(tmp_path / "missing.png")
    assert info.value.fields == ["images[0]"]
    with pytest.raises(wan.RequestError) as info:
        wan.BBoxDrawer([path, b"not an image"])
    assert info.value.fields == ["images[1]"]
    with pytest.raises(wan.RequestError):
        wan.BBoxDrawer([])


def test_client_ready_redraws_the_boxes(drawer: wan.BBoxDrawer) -> None:
    drag(drawer, (10, 10), (100, 100))
    before = drawer.redraws
    drawer._canvases[0]._client_ready_callbacks()  # what ipycanvas runs when a view (re)appears
    assert drawer.redraws == before + 1


def test_static_fallback_shows_boxes_and_numbers_escaped(tmp_path: Path) -> None:
    path = tmp_path / "<b>harbour<b> & co.png"
    picture().save(path)
    d = wan.BBoxDrawer(path, bbox_list=[[[200, 160, 600, 460]]])
    bundle = d._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # the live widget first
    html = bundle["text/html"]
    assert "<b>harbour" not in html and "&lt;b&gt;harbour&lt;b&gt; &amp; co.png" in html
    assert "[200,160,600,460]" in html and "(1600×900)" in html
    assert html.count("src='data:image/jpeg;base64,") == 1
    assert bundle["text/plain"].startswith("<BBoxDrawer 1 image(s)")
    # the picture in it has the box drawn: red on the box's left edge (x = 200 / 1600 * 320 = 40)
    import base64

    data = html.split("base64,", 1)[1].split("'", 1)[0]
    small = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
    assert small.size == (320, 180)
    pixel = small.getpixel((40, 60))
    assert isinstance(pixel, tuple)
    r, g, b = pixel
    assert r > 180 and g < 120, (r, g, b)


# ----------------------------------------------------------------- with the simulator


def test_results_and_urls_as_images_and_interactive_edit_from_the_drawer(session: Any) -> None:
    base = wan.generate("a harbour at dawn", aspect_ratio="16:9", resolution="1K", seed=2)  # 1360×768
    d = wan.BBoxDrawer(base)  # a Result stands for its images
    assert d.images == base.images and d.sizes == [(1360, 768)]
    url = base.images[0].source_url
    assert url and wan.BBoxDrawer(url).sizes == [(1360, 768)]  # fetched over loopback
    with pytest.raises(wan.DownloadError):
        wan.BBoxDrawer(url.rsplit("/", 1)[0] + "/no-such-image.jpg")
    assert wan.BBoxDrawer(base.images[0]).sizes == [(1360, 768)]  # a StoredImage

    with pytest.raises(wan.RequestError) as info:  # no box yet: the request says so
        wan.interactive_edit("a red boat", d)
    assert info.value.fields == ["bbox_list[0]"]

    d.set_state({"bbox_list": [[[100, 380, 520, 700]]]})
    drag(d, (500, 50), (600, 150))
    boxes = d.bbox_list
    r = wan.interactive_edit("a red boat", d, seed=1)
    assert [[list(b) for b in bs] for bs in r.request.bbox_list] == boxes
    row = wan.log().runs().iloc[-1]
    assert row["action"] == "interactive_edit" and row["status"] == "completed"
    assert [[list(map(int, b)) for b in bs] for bs in row["bbox_list"]] == boxes
    r2 = wan.interactive_edit("a red boat", d.images, d.bbox_list, seed=1)  # the long form: same request
    assert r2.request.canonical() == r.request.canonical() and r2.cache_hit

    edited = wan.edit("make it night", base, resolution="1K", seed=4)  # a Result as the edit's input
    assert edited.request.images[0].sha256 == base.images[0].sha256


def test_a_group_result_is_one_tab_per_image_and_one_request(session: Any) -> None:
    g = wan.group("a three-panel comic of a harbour", n=3, resolution="1K", seed=5)
    d = wan.BBoxDrawer(g)
    assert d._tab is not None and len(d._tab.children) == 3 and d.images == g.images
    d.bbox_list = [[[10, 10, 200, 200]], [[20, 20, 300, 300]], [[30, 30, 400, 400], [500, 500, 600, 600]]]
    r = wan.interactive_edit("add a lighthouse", d, seed=2)
    assert len(r.request.images) == 3 and [len(b) for b in r.request.bbox_list] == [1, 1, 2]
    with pytest.raises(wan.RequestError) as info:  # as an edit's one image, a 3-image result is ambiguous
        wan.edit("make it night", g)
    assert info.value.fields == ["image_urls[0]"]


def test_palette_editor_feeds_generate(session: Any) -> None:
    p = wan.PaletteEditor()
    p._ratio_edited(2, {"new": 40})
    r = wan.generate("a poster", color_palette=p, resolution="1K", seed=1)
    assert [list(x) for x in r.request.color_palette] == [[q["hex"], q["ratio"]] for q in p.color_palette]
    assert sum(q["ratio"] for q in p.color_palette) == 100 and p.color_palette[2]["ratio"] == 40

    proposed = wan.palette_from_image(r, k=4)  # a Result, as the notebook does
    assert 3 <= len(proposed) <= 4 and sum(q["ratio"] for q in proposed) == 100


# ----------------------------------------------------------------- palette arithmetic and editor


def test_spread_and_rebalance_always_sum_to_100() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        n = rng.randint(3, 10)
        ratios = spread([rng.random() * rng.choice([1, 10, 100]) for _ in range(n)])
        assert sum(ratios) == 100 and min(ratios) >= 1
        i, v = rng.randrange(n), rng.randint(-5, 120)
        out = rebalance(ratios, i, v)
        assert sum(out) == 100 and min(out) >= 1 and len(out) == n
        assert out[i] == max(1, min(v, 100 - (n - 1)))
    assert rebalance([50, 35, 15], 0, 70) == [70, 21, 9]  # the others keep their proportion
    assert spread([1, 1, 1]) == [34, 33, 33]


def test_stepping_a_ratio_keeps_the_others_in_their_proportions() -> None:
    """The ratio field's arrow keys change it one unit at a time. Rebalanced from the last
    rounded values, 50/35/15 with the last stepped up to 20 became 45/35/20 (the first
    colour paid for all of it) and did not come back when stepped down again."""
    p = wan.PaletteEditor()
    field = p._rows.children[2].children[2]
    for v in range(16, 21):
        field.value = v  # as the front end sends each arrow press
    assert [q["ratio"] for q in p.color_palette] == rebalance([50, 35, 15], 2, 20) == [47, 33, 20]
    for v in range(19, 14, -1):
        field.value = v
    assert [q["ratio"] for q in p.color_palette] == [50, 35, 15]
    p._rows.children[0].children[2].value = 60  # another row: starts from the palette as it is
    assert [q["ratio"] for q in p.color_palette] == [60, 28, 12]


def test_add_and_remove_keep_100_within_3_to_10() -> None:
    p = wan.PaletteEditor()
    for _ in range(12):
        p._add()
        assert sum(q["ratio"] for q in p.color_palette) == 100
    assert len(p.color_palette) == 10 and p._add_button.disabled
    assert len({q["hex"] for q in p.color_palette}) == 10, "added colours are distinct"
    for _ in range(12):
        p._remove(0)
        assert sum(q["ratio"] for q in p.color_palette) == 100
    assert len(p.color_palette) == 3 and all(row.children[3].disabled for row in p._rows.children)
    palette = [{"hex": "#000000", "ratio": 60}, {"hex": "#FFFFFF", "ratio": 40}]
    assert without(with_added(palette, "#FF0000"), 2) == palette


def test_palette_from_python_is_checked_by_the_request_rules() -> None:
    p = wan.PaletteEditor([("#0a2540", 60), ("#f5f5f0", 30), ("#e04b3a", 10)])
    assert p.color_palette[0] == {"hex": "#0A2540", "ratio": 60}
    cases = {
        "color_palette[1].hex": [("#0A2540", 60), ("blue", 30), ("#E04B3A", 10)],
        "color_palette": [("#0A2540", 60), ("#F5F5F0", 30), ("#E04B3A", 11)],  # 101
        "color_palette[2].ratio": [("#0A2540", 60), ("#F5F5F0", 40), ("#E04B3A", 0)],
    }
    for field, value in cases.items():
        with pytest.raises(wan.RequestError) as info:
            p.color_palette = value
        assert field in info.value.fields, info.value
    with pytest.raises(wan.RequestError) as info:
        wan.PaletteEditor([("#000000", 50), ("#FFFFFF", 50)])
    assert info.value.problems[0].rule == "items"
    assert p.color_palette[0]["ratio"] == 60  # unchanged by the refused values
    with pytest.raises(wan.RequestError):  # as the front end would send it
        p.set_state({"color_palette": [{"hex": "#000000", "ratio": 99}] * 3})
    assert p.color_palette[0] == {"hex": "#0A2540", "ratio": 60}


def test_a_bad_hex_typed_is_shown_and_not_taken() -> None:
    p = wan.PaletteEditor()
    before = list(p.color_palette)
    row = p._rows.children[1]
    row.children[1].value = "#12345"
    assert p.color_palette == before
    assert "hex colour" in row.children[4].value and "#12345" in row.children[4].value
    row.children[1].value = "#abcdef"
    assert p.color_palette[1]["hex"] == "#ABCDEF" and row.children[4].value == ""
    row.children[0].value = "#00ff00"  # the colour picker
    assert p.color_palette[1]["hex"] == "#00FF00" and row.children[1].value == "#00FF00"


def test_palette_editor_static_view_and_preview_bar() -> None:
    p = wan.PaletteEditor()
    html = p._repr_mimebundle_()["text/html"]
    assert "#0A2540 50%" in html and html.count("flex:") == 3
    assert "flex:50 0 0;background:#0A2540" in p._preview.value


def test_palette_from_image_finds_the_colours_in_their_ratios() -> None:
    im = Image.new("RGB", (200, 100), (200, 30, 30))
    im.paste((20, 40, 160), (100, 0, 170, 100))  # 35 %
    im.paste((240, 240, 230), (170, 0, 200, 100))  # 15 %
    palette = wan.palette_from_image(im, k=3)
    assert [q["ratio"] for q in palette] == [50, 35, 15]
    for got, want in zip(palette, [(200, 30, 30), (20, 40, 160), (240, 240, 230)], strict=True):
        rgb = tuple(int(got["hex"][i : i + 2], 16) for i in (1, 3, 5))
        assert all(abs(a - b) <= 8 for a, b in zip(rgb, want, strict=True)), (got, want)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    assert wan.palette_from_image(buf.getvalue(), k=3) == palette
    with pytest.raises(wan.RequestError) as info:
        wan.palette_from_image(im, k=11)
    assert info.value.fields == ["k"]
    with pytest.raises(wan.RequestError) as info:
        wan.palette_from_image(picture(50, 50), k=5)  # one colour is not a palette
    assert info.value.fields == ["img"]
