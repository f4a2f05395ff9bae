"""``wan.ImageCompare`` in the kernel alone (no browser): inputs, traits, fields, sizes, diff.

Runs come from a simulator over loopback HTTP (one module-wide session: 1K images, a
few tenths of a second each). The swipe's handlers are called with canvas coordinates,
as ipycanvas calls them (two canvas pixels per screen pixel). The same widget driven by
the mouse in JupyterLab is in test_browser_compare.py.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image, ImageDraw

import wan_nb as wan
from wan_nb import _compare
from wan_nb.sim import Simulator

W, H = 400, 300
ALERT = "a <script>alert('x')</script> lighthouse"


def picture(w: int = W, h: int = H, colour: tuple[int, int, int] = (100, 150, 200)) -> Image.Image:
    return Image.new("RGB", (w, h), colour)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME"):
            mp.delenv(name, raising=False)
        with Simulator(latency=0.05, seed=17) as sim:
            sess = wan.connect(base_url=sim.base_url, home=tmp_path_factory.mktemp("compare") / "runs", quiet=True)
            try:
                ns = SimpleNamespace(
                    sess=sess,
                    alert=wan.generate(ALERT, resolution="1K", seed=1),
                    fog=wan.generate("a lighthouse in fog", resolution="1K", seed=2),
                    wide=wan.generate("a lighthouse in fog", resolution="1K", aspect_ratio="16:9", seed=2),
                    pair=wan.generate("two lighthouses", resolution="1K", n=2, seed=3),
                    sweep=wan.sweep("a {animal} in snow", animal=["fox", "owl"], seed=[5], resolution="1K",
                                    quiet=True),
                )
                ns.sweep.wait()
                yield ns
            finally:
                sess.close()


def rows(c: wan.ImageCompare) -> list[tuple[str, Any, Any, bool]]:
    assert c._params is not None
    return [(p.name, p.a, p.b, p.differs) for p in c._params]


# ----------------------------------------------------------------- inputs


def test_results_log_rows_and_get_run_dicts_compare_the_fields_log_compare_does(runs: SimpleNamespace) -> None:
    log = wan.log()
    expected = log.compare(runs.alert, runs.fog)
    c = wan.ImageCompare(runs.alert, runs.fog)
    assert c.differing == expected.differing == ["prompt", "seed"]
    assert rows(c) == [(p.name, p.a, p.b, p.differs) for p in expected.params]

    frame = log.runs()
    by_id = {row["run_id"]: row for _, row in frame.iterrows()}
    from_rows = wan.ImageCompare(by_id[runs.alert.run_id], log.get_run(runs.fog.run_id))  # a Series, a dict
    assert rows(from_rows) == rows(c)
    assert from_rows._sides[0].label == runs.alert.run_id

    # a sweep's cells: the template's keys are compared too, as Log.compare does
    fox, owl = (cell.result for cell in runs.sweep.cells)
    cells = wan.ImageCompare(fox, log.get_run(owl.run_id))
    assert cells.differing == log.compare(fox, owl).differing == ["animal", "prompt"]
    assert rows(cells) == [(p.name, p.a, p.b, p.differs) for p in log.compare(fox, owl).params]


def test_a_result_outside_the_current_log_brings_its_request(runs: SimpleNamespace,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_compare, "current", lambda: None)
    c = wan.ImageCompare(runs.alert, runs.fog)
    assert c.differing == ["prompt", "seed"]


def test_bare_images_of_every_kind_say_their_fields_are_unknown(runs: SimpleNamespace, tmp_path: Path) -> None:
    png = tmp_path / "photo.png"
    picture().save(png)
    buf = io.BytesIO()
    picture().save(buf, "PNG")
    for value, label in ((png, "photo.png"), (str(png), "photo.png"), (picture(), "PIL image"),
                         (buf.getvalue(), "bytes"), (runs.fog.images[0], runs.fog.images[0].path.name[:12])):
        c = wan.ImageCompare(value, value)
        assert c._sides[0].label == label and c.differing is None
        assert c.changed_share == 0.0, label
    side = wan.ImageCompare(runs.fog, png)._fields_html()
    assert "B is a file (photo.png), not a run: its request fields are unknown" in side
    assert "a lighthouse in fog" in side and "unknown" in side and "class='differs'" not in side
    both = wan.ImageCompare(png, picture())._fields_html()
    assert "neither image is a run: their request fields are unknown" in both


def test_a_result_of_several_images_shows_its_first_and_says_so(runs: SimpleNamespace) -> None:
    c = wan.ImageCompare(runs.pair, runs.pair.images[1])
    assert c.changed_share > 0
    assert "the first of 2 images" in c._caption_html(0)


def test_inputs_that_are_no_image_are_refused_naming_a_or_b(tmp_path: Path) -> None:
    with pytest.raises(wan.RequestError) as info:
        wan.ImageCompare(picture(), tmp_path / "missing.png")
    assert info.value.fields == ["b"] and "no such file" in str(info.value)
    with pytest.raises(wan.RequestError) as info:
        wan.ImageCompare({"run_id": "run-x", "paths": [], "status": "failed"}, picture())
    assert info.value.fields == ["a"] and "run-x has no image file in the log (status failed)" in str(info.value)
    with pytest.raises(wan.RequestError) as info:
        wan.ImageCompare(picture(), 42)
    assert info.value.fields == ["b"]


# ----------------------------------------------------------------- traits


def test_mode_and_position_are_checked_and_a_refused_value_is_not_kept() -> None:
    c = wan.ImageCompare(picture(), picture(), mode="diff", position=0.3)
    assert (c.mode, c.position) == ("diff", 0.3)
    bad: Any
    for bad in ("overlay", "", None, 3):
        with pytest.raises(wan.RequestError) as info:
            c.mode = bad
        assert info.value.fields == ["mode"] and "must be 'swipe', 'side' or 'diff'" in str(info.value)
        assert c.mode == "diff"
    for bad in (1.5, -0.01, float("nan"), float("inf"), "0.5", True, None):
        with pytest.raises(wan.RequestError) as info:
            c.position = bad
        assert info.value.fields == ["position"] and "from 0 (all B) to 1 (all A)" in str(info.value)
        assert c.position == 0.3
    c.position = 1  # an int is a number
    assert c.position == 1.0 and isinstance(c.position, float)
    with pytest.raises(wan.RequestError):  # as the front end would send it: rolled back
        c.set_state({"position": 2})
    assert c.position == 1.0
    with pytest.raises(wan.RequestError) as info:  # refused before any image is opened
        wan.ImageCompare("nowhere.png", "nowhere.png", mode="blink")
    assert info.value.fields == ["mode"]


def test_the_mode_buttons_and_the_trait_are_one_and_show_one_panel() -> None:
    c = wan.ImageCompare(picture(), picture())
    shown = lambda: [m for m, panel in c._panels.items() if panel.layout.display != "none"]  # noqa: E731
    assert shown() == ["swipe"] and c._buttons.value == "swipe"
    c._buttons.value = "diff"  # a click on Diff
    assert c.mode == "diff" and shown() == ["diff"]
    c.mode = "side"
    assert c._buttons.value == "side" and shown() == ["side"]


def at(share: float) -> float:
    """A point at ``share`` of the swipe canvas's width, in canvas pixels."""
    return share * 2 * W  # a 400×300 picture is shown at its size: 800 canvas px wide


def test_dragging_the_swipe_moves_position_once_per_gesture() -> None:
    c = wan.ImageCompare(picture(), picture(colour=(200, 50, 50)))
    assert c._canvas.width == 2 * W and c._canvas.height == 2 * H
    heard: list[float] = []
    c.observe(lambda ch: heard.append(ch["new"]), "position")
    before = c.redraws
    c._on_move(at(0.9), 10)  # a pointer moving without a drag is ignored
    assert c.redraws == before and c.position == 0.5
    c._on_down(at(0.5), 100)
    for k in range(1, 9):
        c._on_move(at(0.5 + 0.3 * k / 8), 100)
    c._on_up(at(0.8), 100)
    assert c.position == pytest.approx(0.8) and heard == [pytest.approx(0.8)]
    assert c.redraws - before <= 10

    c._on_down(at(0.8), 100)
    c._on_move(at(1.2), 100)
    c._on_up(at(1.3), 100)  # released beyond the right edge (mouse_out comes here too)
    assert c.position == 1.0
    c._on_down(at(0.1), 100)  # a click takes the split there
    c._on_up(at(0.1), 100)
    assert c.position == pytest.approx(0.1)

    c._on_key("ArrowRight")
    c._on_key("ArrowRight")
    assert c.position == pytest.approx(0.2)
    c._on_key("ArrowLeft", False, False, False)
    assert c.position == pytest.approx(0.15)
    c._on_key("Home")
    assert c.position == 0.0
    c._on_key("ArrowLeft")
    assert c.position == 0.0
    c._on_key("End")
    assert c.position == 1.0


def test_setting_position_from_python_redraws_the_swipe() -> None:
    c = wan.ImageCompare(picture(), picture())
    before = c.redraws
    c.position = 0.25
    assert c.redraws == before + 1 and c._split() == at(0.25)


# ----------------------------------------------------------------- sizes and pixels


def test_different_sizes_are_compared_in_one_frame_and_the_view_says_so(runs: SimpleNamespace) -> None:
    c = wan.ImageCompare(runs.fog, runs.wide)
    (wa, ha), (wb, hb) = c.sizes
    assert (wa, ha) == (1024, 1024) and wb > hb and wb * hb < wa * ha  # 16:9 at 1K has fewer pixels
    assert c.frame == (wb, hb)  # the one with fewer pixels: A is resized (and stretched) to it
    assert c.note == f"A 1024×1024, B {wb}×{hb}: scaled to one frame, {wb}×{hb} (A stretched: the shapes differ)"
    assert c.note in c.children[-1].value and c.note in c._static_html()
    assert c.differing == ["aspect_ratio"]

    same_shape = wan.ImageCompare(picture(800, 600), picture())
    assert same_shape.frame == (W, H) and same_shape.note == "A 800×600, B 400×300: scaled to one frame, 400×300"
    assert same_shape.changed_share == 0.0
    same = wan.ImageCompare(picture(), picture())
    assert same.note == "" and same.children[-1].value == ""


def test_the_side_view_shows_both_at_one_scale() -> None:
    c = wan.ImageCompare(picture(800, 600), picture(400, 600))
    figures = c._panels["side"].children[0].children
    widths = [int(f.layout.width.removesuffix("px")) for f in figures]
    assert abs(widths[0] - 2 * widths[1]) <= 1 and sum(widths) <= 800  # the same scale, fitting the width
    same = wan.ImageCompare(picture(), picture())
    swipe_a = same._panels["swipe"].children[0].children[0]
    assert same._panels["side"].children[0].children[0].children[0].children[0] is swipe_a  # sent once


def boxed(colour: tuple[int, int, int], box: tuple[int, int, int, int] = (40, 30, 140, 90)) -> Image.Image:
    im = picture()
    ImageDraw.Draw(im).rectangle(box, fill=colour)
    return im


def test_diff_share_identical_none_changed_one_box_its_area() -> None:
    assert wan.ImageCompare(picture(), picture()).changed_share == 0.0
    c = wan.ImageCompare(picture(), boxed((255, 0, 0)))
    assert c.changed_share == pytest.approx(101 * 61 / (W * H))
    assert f"{c.changed_share:.1%}" in c._share_html() and "more than 8 of 255" in c._share_html()
    # the threshold: a channel off by 8 is unchanged, by 9 changed
    assert wan.ImageCompare(picture(), boxed((108, 150, 200))).changed_share == 0.0
    assert wan.ImageCompare(picture(), boxed((100, 150, 209))).changed_share == pytest.approx(101 * 61 / (W * H))


def test_the_heat_image_is_dim_where_nothing_changed_and_hot_where_it_did() -> None:
    a, b = picture(), boxed((255, 0, 0))
    diff = _compare.difference(a, b)
    mask = _compare.changed_mask(diff)
    heat = _compare.heat_image(a, diff, mask)
    grey = round(sum(c * w for c, w in zip((100, 150, 200), (299, 587, 114), strict=True)) / 1000 * 0.35)
    calm, hot = heat.getpixel((300, 200)), heat.getpixel((90, 60))
    assert isinstance(calm, tuple) and isinstance(hot, tuple)
    assert all(abs(v - grey) <= 1 for v in calm)
    r, g, bl = hot
    assert r > 200 and r > g and r > bl


# ----------------------------------------------------------------- without a kernel


def test_the_static_fallback_shows_both_and_the_fields_escaped(runs: SimpleNamespace) -> None:
    c = wan.ImageCompare(runs.alert, runs.fog)
    bundle = c._repr_mimebundle_()
    html_text = bundle["text/html"]
    assert "wan-compare-static" in html_text
    assert len(re.findall(r"src='data:image/jpeg;base64,", html_text)) == 2
    assert "<script>" not in html_text and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html_text
    assert "2 fields differ: prompt, seed" in html_text and "of pixels changed" in html_text
    assert bundle["text/plain"] == repr(c) and "differ: prompt, seed" in repr(c)
    assert "application/vnd.jupyter.widget-view+json" in bundle
    side = c._panels["side"].children[1].value
    assert "<script>" not in side and "&lt;script&gt;" in side
