"""Issue 7 in the kernel alone: the forms, the sweep form and the log explorer, driven from Python.

Values are set on the widgets a user would touch (``f.fields.prompt.value = ...``) or
with ``f.set(...)``; runs go to a simulator over loopback HTTP, through the same
session as ``wan.generate``. The same forms in a real browser: test_browser_forms.py.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import html
import re
import time
from pathlib import Path
from typing import Any

import pytest
from children import wait_for
from PIL import Image

import wan_nb as wan
from wan_nb import _spec
from wan_nb._form_fields import field_of
from wan_nb._sweep_plan import Plan, parse_axis
from wan_nb.sim import Simulator


@pytest.fixture
def sim() -> Any:
    with Simulator(latency=0.05, seed=7) as s:
        yield s


@pytest.fixture
def session(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    sess = wan.connect(base_url=sim.base_url, home=tmp_path / "runs", quiet=True)
    try:
        yield sess
    finally:
        sess.close()


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    out = []
    for i, colour in enumerate([(200, 80, 60), (60, 160, 90), (40, 70, 200)]):
        path = tmp_path / f"photo{i}.png"
        Image.new("RGB", (640, 480), colour).save(path)
        out.append(path)
    return out


def problems(f: Any) -> dict[str, str]:
    """field -> the problems shown next to it, as text."""
    out = {}
    for name, widget in f.fields.problems.items():
        text = html.unescape(re.sub(r"<[^>]+>", "", widget.value)).replace("⚠ ", "").strip()
        if text:
            out[name] = text
    return out


def quietly(code: str, extra: str = "quiet=True") -> str:
    """A ``wan.sweep(...)`` call with more keyword arguments (not printing its cost line)."""
    return code.rstrip()[:-1].rstrip().rstrip(",") + f", {extra})"


def run_code(code: str) -> Any:
    ns: dict[str, Any] = {"wan": wan}
    exec("out = " + code, ns)
    return ns["out"]


# ------------------------------------------------------------------ every mode, end to end

MODES: list[tuple[str, dict[str, Any]]] = [
    ("generate", {"aspect_ratio": "16:9", "resolution": "1K", "thinking_mode": False}),
    ("image2image", {"images": 0, "resolution": "1K"}),
    ("edit", {"images": 0, "watermark": True}),
    ("reference", {"images": 2, "resolution": "1K"}),
    ("group", {"n": 3, "resolution": "1K"}),
    ("interactive_edit", {"images": 1, "bbox_list": [[[40, 30, 300, 200]]]}),
]


@pytest.mark.parametrize(("mode", "extra"), MODES, ids=[m for m, _ in MODES])
def test_each_mode_runs_from_the_form_and_its_code_is_a_free_cache_hit(
        session: Any, photos: list[Path], mode: _spec.Mode, extra: dict[str, Any]) -> None:
    fields = dict(extra)
    if "images" in fields:
        count = fields.pop("images")
        fields["images"] = photos[0] if count == 0 else photos[:count]
    f = wan.form(mode, prompt=f"a {mode} of a <b>harbour</b> & boats", **fields)
    request = f.request
    assert isinstance(request, wan.Request), request
    assert request.action == mode and not f.generate_button.disabled
    if mode == "group":
        assert request.n == 3 and request.enable_sequential

    future = f.submit()
    assert isinstance(future, concurrent.futures.Future)
    result = f.wait(timeout=60)
    assert f.result is result and result.status == "completed" and not result.cache_hit
    assert (result.request is not None and not result.request.seed_random) or result.request.seed >= 0
    assert "<b>harbour</b>" not in f.output.value and "&lt;b&gt;harbour" in f.output.value  # escaped
    assert f"seed {result.request.seed}" in f.status.value and not f.generate_button.disabled
    logged = wan.log().runs().iloc[-1]
    assert logged["run_id"] == result.run_id and logged["action"] == mode and not logged["cache_hit"]

    # the code reproduces the run: the same request, served from the cache at $0
    code = f.code
    assert code.startswith(f"wan.{mode}(") and f"seed={result.request.seed}" in code
    again = run_code(code)
    assert again.cache_hit and again.cost_usd == 0 and again.request.request_hash == result.request.request_hash
    assert [p.read_bytes() for p in again.paths] == [p.read_bytes() for p in result.paths]


def test_the_first_cell_of_sweep_this_is_the_run_already_made(session: Any) -> None:
    f = wan.form(prompt="a lighthouse", resolution="1K")
    first = f.submit().result(timeout=60)
    code = f.sweep_code
    assert code.startswith("wan.sweep('a lighthouse'") and f"seed='{first.request.seed}-" in code
    sw = run_code(quietly(code, "quiet=True, budget_usd=1"))
    sw.wait(60)
    assert len(sw.cells) == 4 and all(c.status == "completed" for c in sw.cells)
    assert sw.cells[0].result.cache_hit and sw.cells[0].result.request.seed == first.request.seed
    assert sum(1 for c in sw.cells if c.result.cache_hit) == 1


def test_a_random_seed_is_drawn_again_for_each_run_and_the_code_keeps_the_drawn_one(session: Any) -> None:
    f = wan.form(prompt="fog over a lake", resolution="1K")
    assert f.fields.random_seed.value and f.fields.seed.disabled
    a = f.submit().result(timeout=60)
    assert f"seed={a.request.seed}" in f.code  # what reproduces the run just made
    assert f"last run: seed {a.request.seed}" in f.fields.seed_note.value
    b = f.submit().result(timeout=60)
    assert b.request.seed != a.request.seed and not b.cache_hit  # Generate again: a new image
    seed = f.fields.draw_seed()
    assert not f.fields.random_seed.value and f.request.seed == seed and not f.fields.seed.disabled


# ------------------------------------------------------------------ validation, field by field

def test_an_empty_prompt_disables_generate_and_is_named_next_to_the_prompt() -> None:
    f = wan.form()
    assert isinstance(f.request, wan.RequestError) and f.generate_button.disabled
    assert "prompt" in problems(f) and "is required" in problems(f)["prompt"]
    assert "no cost until" in f.cost.value and "$0.02295 per image" in f.cost.value
    f.fields.prompt.value = "   "
    assert f.generate_button.disabled
    f.fields.prompt.value = "a fox"
    assert not f.generate_button.disabled and problems(f) == {}
    assert "= <b>$0.02295</b>" in f.cost.value
    f.fields.n.value = 3
    assert "× 3 images = <b>$0.06885</b>" in f.cost.value
    f.fields.prompt.value = ""
    with pytest.raises(wan.RequestError) as err:
        f.submit()
    assert err.value.problems[0].field == "prompt"


@pytest.mark.parametrize(("mode", "field", "value", "rule_text"), [
    ("generate", "n", 0, "at least 1"),
    ("generate", "n", 5, "at most 4 images outside group mode"),
    ("group", "n", 13, "at most 12"),
    ("generate", "seed", -7, "must be -1 (random) or 0 to"),
    ("generate", "seed", 2**31, "must be -1 (random) or 0 to"),
])
def test_numbers_outside_the_documents_limits_are_shown_at_their_field(
        mode: _spec.Mode, field: str, value: int, rule_text: str) -> None:
    f = wan.form(mode, prompt="a storyboard")
    assert not f.generate_button.disabled
    if field == "seed":
        f.fields.random_seed.value = False
    getattr(f.fields, field).value = value
    assert f.generate_button.disabled, f.request
    shown = problems(f)
    assert list(shown) == [field] and rule_text in shown[field], shown
    getattr(f.fields, field).value = 1
    assert not f.generate_button.disabled and problems(f) == {}


def test_image_counts_per_mode_are_named_at_the_images_field(photos: list[Path]) -> None:
    f = wan.form("edit", prompt="make it blue")
    assert "images" in problems(f) and "edit takes exactly 1 image (got 0)" in problems(f)["images"]
    f.fields.images.add(photos[0])
    assert not f.generate_button.disabled
    f.fields.images.add(photos[1])  # one-image mode: the new one replaces it
    assert len(f.fields.images.inputs) == 1 and f.fields.images.values == [photos[1]]
    f.set(mode="reference")
    assert "reference takes 2 to 9 images (got 1)" in problems(f)["images"]
    f.fields.images.add(photos[0])
    assert not f.generate_button.disabled and len(f.request.images) == 2


def test_a_file_that_is_not_an_image_is_refused_when_added(tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    f = wan.form("edit", prompt="x")
    assert f.fields.images.add(bad) is False
    assert "must be a JPG, PNG or WEBP image" in f.fields.images.message.value
    assert f.fields.images.inputs == [] and f.generate_button.disabled
    assert f.fields.images.add("ftp://example.com/a.png") is False


def test_interactive_edit_needs_a_box_on_each_image(photos: list[Path]) -> None:
    f = wan.form("interactive_edit", prompt="a red boat")
    assert "images" in problems(f) and f.fields.drawer is None
    f.fields.images.add(photos[0])
    assert f.fields.drawer is not None and f.fields.drawer.sizes == [(640, 480)]
    assert "bbox_list" in problems(f) and "needs 1 to 2 boxes per image (got 0)" in problems(f)["bbox_list"]
    f.fields.drawer.bbox_list = [[[10, 10, 200, 100]]]
    assert not f.generate_button.disabled and f.request.bbox_list == (((10, 10, 200, 100),),)
    with pytest.raises(wan.RequestError, match="outside the image"):
        f.set(bbox_list=[[[0, 0, 900, 100]]])


def test_boxes_stay_on_the_images_that_stay_when_the_images_change(photos: list[Path]) -> None:
    f = wan.form("interactive_edit", prompt="a red boat", images=photos[:2])
    f.fields.drawer.bbox_list = [[[10, 10, 200, 100]], [[20, 20, 300, 200]]]
    f.fields.images.remove(1)  # the second image goes: the first keeps its box
    assert f.fields.drawer.images == [photos[0]] and f.fields.drawer.bbox_list == [[[10, 10, 200, 100]]]
    assert not f.generate_button.disabled
    f.fields.images.add(photos[2])  # a new image starts without boxes
    assert f.fields.drawer.bbox_list == [[[10, 10, 200, 100]], []]
    assert "bbox_list" in problems(f) and f.generate_button.disabled


def test_an_image_url_the_drawer_cannot_fetch_is_said_at_the_boxes(photos: list[Path]) -> None:
    f = wan.form("interactive_edit", prompt="a red boat", images=photos[0])
    f.fields.images._url.value = "http://127.0.0.1:9/gone.png"  # nothing listens there
    assert f.fields.images._url.value == "", "the URL was not taken"
    assert f.fields.drawer is None and "could not fetch" in f.fields._drawer_box.children[0].value
    assert f.generate_button.disabled and "bbox_list" in problems(f)
    f.fields.images.remove(1)
    assert f.fields.drawer is not None and f.fields.drawer.images == [photos[0]]


def test_the_same_file_uploaded_again_after_its_removal_is_taken(session: Any, photos: list[Path]) -> None:
    f = wan.form("edit", prompt="make it blue")
    upload = f.fields.images._upload
    item = {"name": "photo0.png", "type": "image/png", "size": photos[0].stat().st_size,
            "content": memoryview(photos[0].read_bytes()),
            "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)}
    upload.value = (item,)
    assert [i.label for i in f.fields.images.inputs] == ["photo0.png"]
    f.fields.images.remove(0)
    upload.value = (dict(item),)  # the browser sends the same file again
    assert len(f.fields.images.inputs) == 1 and not f.generate_button.disabled


def test_a_palette_hex_the_editor_refused_disables_generate_with_the_message(session: Any) -> None:
    f = wan.form(prompt="a travel poster", color_palette=[{"hex": "#0A2540", "ratio": 60},
                                                         {"hex": "#F5F5F0", "ratio": 30},
                                                         {"hex": "#E04B3A", "ratio": 10}])
    assert f.request.color_palette == (("#0A2540", 60), ("#F5F5F0", 30), ("#E04B3A", 10))
    hex_field = f.fields.palette._rows.children[1].children[1]  # what the user types into
    hex_field.value = "#12345"
    assert f.generate_button.disabled
    assert "color_palette" in problems(f) and "hex colour" in problems(f)["color_palette"]
    with pytest.raises(wan.RequestError, match=r"color_palette\[1\]\.hex"):
        f.submit()
    hex_field.value = "#123456"
    assert not f.generate_button.disabled and f.request.color_palette[1] == ("#123456", 30)
    f.set(mode="group")  # no effect in group mode: the field is hidden and not sent
    assert not f.fields.visible("color_palette") and f.request.color_palette is None


def _styles(widget: Any) -> list[str]:
    """The style attributes of every HTML view under ``widget``, as a browser parses them."""
    from html.parser import HTMLParser

    import ipywidgets

    found: list[str] = []

    class Styles(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.extend(v or "" for k, v in attrs if k == "style")

    stack = [widget]
    while stack:
        w = stack.pop()
        if isinstance(w, ipywidgets.HTML):
            Styles().feed(w.value)
        stack.extend(getattr(w, "children", ()))
    return found


def test_problems_are_red_because_every_style_attribute_parses_whole() -> None:
    f = wan.form("edit")  # an empty prompt and no image: two problems shown
    styles = _styles(f)
    fonts = [s for s in styles if "font-family" in s]
    assert fonts and all("font-size:12px" in s for s in fonts), [s for s in fonts if "font-size" not in s]
    assert any("color:#b3261e" in s for s in styles), "a problem is not drawn in red"


def test_a_value_a_field_does_not_offer_is_refused_by_the_requests_own_rule() -> None:
    with pytest.raises(wan.RequestError) as err:
        wan.form("edit", prompt="x", resolution="4K")
    assert [p.field for p in err.value.problems] == ["resolution"] and "limited to 2K" in str(err.value)
    with pytest.raises(wan.RequestError, match="aspect_ratio"):
        wan.form(prompt="x", aspect_ratio="5:4")  # type: ignore[arg-type]  # not one of the seven, on purpose
    with pytest.raises(wan.RequestError, match="did you mean 'seed'"):
        wan.form(prompt="x", sed=4)


def test_what_each_mode_shows_comes_from_the_spec() -> None:
    f = wan.form(prompt="x", resolution="4K")
    for mode in _spec.ACTIONS:
        f.set(mode=mode)
        assert list(f.fields.resolution.options) == list(_spec.resolutions_for(mode))
        assert f.fields.visible("thinking_mode") == _spec.has_effect("thinking_mode", mode)
        assert f.fields.visible("color_palette") == _spec.has_effect("color_palette", mode)
        assert f.fields.visible("bbox_list") == (mode == "interactive_edit")
        assert f.fields.visible("images") == (_spec.IMAGE_COUNTS[mode][1] > 0)
        assert f"1-{_spec.max_n(mode)} images" in f.fields._hints["n"].value
    f.set(mode="generate")
    assert f.fields.resolution.value == "2K"  # 4K was capped by an image mode, not restored behind the user's back
    assert field_of("color_palette[2].hex") == "color_palette" and field_of("image_urls[0]") == "images"


# ------------------------------------------------------------------ never blocking; cancel; errors

@pytest.mark.slow
def test_generate_returns_at_once_and_cancel_while_queued_is_refunded(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # the busy task holds the only slot for 8 s: ours is still queued when it is cancelled, on a loaded machine too
    with Simulator(latency=8.0, concurrency=1, seed=3) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path / "runs", quiet=True)
        try:
            busy = wan.form(prompt="the task that holds the only slot", seed=1, resolution="1K")
            busy.submit()
            # the slot is taken before ours is sent: ours stays queued
            wait_for(lambda: sim.ledger()["by_status"].get("processing") == 1, what="the busy task to be processing")
            f = wan.form(prompt="a queued task", seed=2, resolution="1K")
            t = time.monotonic()
            future = f.submit()
            assert time.monotonic() - t < 2.0, "submit() waited for the run"  # the run itself takes 8 s
            assert f.running and f.generate_button.disabled and not f.cancel_button.disabled
            wait_for(lambda: sim.ledger()["submitted"] >= 2, what="the form's task to reach the server")
            f.cancel()
            with pytest.raises(concurrent.futures.CancelledError):
                future.result(timeout=20)
            wait_for(lambda: not f.running, what="the form to stop running after its cancel")
            ledger = sim.ledger()
            assert ledger["refunded_quota"] == _spec.UNIT_QUOTA, ledger
            assert "cancelled" in f.status.value and not f.generate_button.disabled and f.cancel_button.disabled
            assert busy.wait(timeout=120).status == "completed"
        finally:
            sess.close()


@pytest.mark.slow
def test_the_status_line_follows_the_task_while_a_plain_call_still_waits_in_one_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A form's submit is held briefly (INTERACTIVE_PREFER_WAIT), so its status line says
    queued / processing while the task runs; ``wan.generate`` keeps the long hold: one
    submit and no polling for a task that ends within it."""
    monkeypatch.chdir(tmp_path)
    with Simulator(latency=4.0, seed=5) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path / "runs", quiet=True)
        try:
            f = wan.form(prompt="a slow heron", resolution="1K")
            f.submit()
            seen: dict[str, float] = {}
            t = time.monotonic()
            while f.running and time.monotonic() - t < 30:
                text = re.sub(r"<[^>]+>", "", f.status.value)
                for word in ("processing", "downloading"):
                    if word in text:
                        seen.setdefault(word, time.monotonic() - t)
                time.sleep(0.05)
            assert f.wait(timeout=5).status == "completed"
            assert "processing" in seen and seen["processing"] < 3.5, seen  # the task ends at 4 s
            gets = sim.ledger()["requests"].get("get", 0)
            assert 1 <= gets <= 4, sim.ledger()["requests"]

            before = sim.ledger()["requests"]
            wan.generate("a plain call", seed=5, resolution="1K")
            after = sim.ledger()["requests"]
            assert after["submit"] - before["submit"] == 1 and after.get("get", 0) == gets, after
        finally:
            sess.close()


def test_an_error_is_shown_in_the_form_and_the_form_is_usable_again(session: Any) -> None:
    wan.set_budget(0.01)
    f = wan.form(prompt="too dear", resolution="1K")
    assert "of its $0.01 budget" in f.cost.value and "more than is left" in f.cost.value
    with pytest.raises(wan.BudgetError):
        f.submit().result(timeout=30)
    wait_for(lambda: not f.running, what="the form to stop running after the error")
    assert "BudgetError" in f.status.value and "session budget" in f.message.value
    assert not f.generate_button.disabled and f.cancel_button.disabled
    wan.set_budget(1)
    f.fields.prompt.value = "too dear no more"  # the cost line is worked out again on each edit
    assert "more than is left" not in f.cost.value
    assert f.submit().result(timeout=30).status == "completed"


@pytest.fixture
def slow_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A session whose tasks take about a second: time to click again or edit during a run."""
    for name in ("WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    with Simulator(latency=1.0, seed=5) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path / "runs", quiet=True)
        try:
            yield sess
        finally:
            sess.close()


def test_a_second_click_says_already_running_only_while_the_run_lasts(slow_session: Any) -> None:
    """Issue 18: after a double click, "already running" stayed beside "✓ done"."""
    f = wan.form(prompt="a double-clicked fox", seed=1, resolution="1K")
    f.generate_button.click()
    assert f.running
    f.generate_button.click()  # the second click of a double click, before the button was disabled
    assert "already running a request" in f.message.value
    f.wait(timeout=30)
    assert "✓ done" in f.status.value
    assert "already running" not in f.message.value
    assert "already running" not in f._repr_mimebundle_()["text/html"]
    # a real error of the run is not a passing message: it stays
    wan.set_budget(0.01)
    f.set(seed=2)
    with pytest.raises(wan.BudgetError):
        f.submit().result(timeout=30)
    assert "session budget" in f.message.value


def test_a_result_is_shown_with_the_request_that_made_it_when_the_fields_changed_during_the_run(
        slow_session: Any) -> None:
    """Issue 18: the prompt changed while a run was in flight; the form, f.code and the saved
    view showed the new prompt beside the image the old one made."""
    f = wan.form(prompt="a red fox", seed=3, resolution="1K")
    f.submit()
    assert f.running
    f.fields.prompt.value = "a blue whale"
    result = f.wait(timeout=30)
    assert result.request.prompt == "a red fox"

    # f.code is the fields' call (what Generate sends next), and says which is which
    code = f.code
    assert code.startswith("wan.generate('a blue whale'")
    assert "# ↑ the fields now, not run yet" in code and "#   wan.generate('a red fox'" in code
    assert run_code(code).request.prompt == "a blue whale"  # still runnable as it is

    # the result, with the call that made it
    assert f.result_code is not None and f.result_code.startswith("wan.generate('a red fox'")
    shown = html.unescape(f.output.value)
    assert f.result_code in shown and "a blue whale" not in shown
    assert "have changed since this result was made" in f.result_note.value
    again = run_code(f.result_code)
    assert again.cache_hit and again.request.request_hash == result.request.request_hash

    # the saved static view: the fields, then the result with its own request and the note
    page = html.unescape(f._repr_mimebundle_()["text/html"])
    made_by = page.index("wan-form-made-by")
    assert "a blue whale" not in page[made_by:] and f.result_code in page[made_by:] and "<img" in page[made_by:]
    assert "have changed since this result was made" in page

    # the fields back as they were: nothing to say any more
    f.fields.prompt.value = "a red fox"
    assert f.result_note.value == "" and "#" not in f.code and f.code == f.result_code
    assert "have changed since" not in f._repr_mimebundle_()["text/html"]


# ------------------------------------------------------------------ static fallback

def test_a_saved_form_shows_its_request_code_and_result_without_widgets(session: Any) -> None:
    f = wan.form(prompt="a <script>alert(1)</script> fox", seed=4, resolution="1K")
    f.submit().result(timeout=30)
    bundle = f._repr_mimebundle_()
    html = bundle["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "wan.generate(" in html and "<img" in html and "$0.02295" in html
    assert "Form generate" in bundle["text/plain"]

    f.set(seed=-1)
    seed = f.submit().result(timeout=30).request.seed
    table_seed = re.search(r"<th[^>]*>seed</th><td>(\d+)</td>", f._repr_mimebundle_()["text/html"])
    assert table_seed and int(table_seed.group(1)) == seed  # the table, the code and the image agree


# ------------------------------------------------------------------ sweep form

def test_axes_typed_by_hand() -> None:
    assert parse_axis("seed", "1-4") == [1, 2, 3, 4]
    assert parse_axis("seed", "3, 9,12") == [3, 9, 12]
    assert parse_axis("seed", "random 3").count == 3
    assert parse_axis("animal", "fox, owl , cat") == ["fox", "owl", "cat"]
    assert parse_axis("resolution", "1k, 2K") == ["1K", "2K"]
    assert parse_axis("watermark", "true, no") == [True, False]
    for name, text in (("seed", "x"), ("seed", "5-2"), ("animal", " , "), ("watermark", "maybe")):
        with pytest.raises(wan.RequestError) as err:
            parse_axis(name, text)
        assert err.value.problems[0].field == name


def test_the_sweep_form_shows_cells_and_cost_before_start_then_runs_the_sweep(session: Any) -> None:
    sf = wan.sweep_form("a {animal} in snow", resolution="1K")
    assert isinstance(sf.plan, wan.RequestError) and sf.start_button.disabled
    assert "animal" in sf.axes and "type its values" in sf._axis_problems["animal"].value
    sf.set_axis("animal", "fox, owl")
    sf.set_axis("seed", "1-3")
    assert isinstance(sf.plan, Plan)
    assert len(sf.plan.cells) == 6 and "6 cells · 6 images · <b>$0.13770</b>" in sf.plan_line.value
    assert session.log.runs().empty, "planning sent something"
    sf.set_axis("seed", "1-x")
    assert sf.start_button.disabled and "not a whole number" in sf._axis_problems["seed"].value
    sf.set_axis("seed", "1-3")
    code = sf.code
    sw = sf.start()
    assert sf.sweep is sw and sf.start_button.disabled and not sf.cancel_button.disabled
    sw.wait(60)
    assert all(c.status == "completed" for c in sw.cells)
    assert "application/vnd.jupyter.widget-view+json" in sf.output.outputs[0]["data"]
    wait_for(lambda: not sf.start_button.disabled, what="Start to be enabled again after the sweep")
    assert not sf.start_button.disabled and sf.cancel_button.disabled
    again = run_code(quietly(code)).wait(60)
    assert again.id == sw.id and again.spent_usd == 0  # the code is the same sweep: nothing paid twice


def test_a_sweep_above_the_per_sweep_budget_asks_first(session: Any) -> None:
    sf = wan.sweep.form("a {x}", x="a, b", seed="1-50", resolution="1K")  # type: ignore[attr-defined]
    assert "100 cells" in sf.plan_line.value and "Start asks first" in sf.plan_line.value
    sf.start_button.click()
    assert "confirm=True" in sf.message.value and sf.start_button.description.startswith("Start anyway")
    assert session.log.runs().empty
    sf.cancel()


# ------------------------------------------------------------------ explorer

def test_the_explorer_draws_a_grid_and_redraws_it_for_another_column(session: Any) -> None:
    wan.sweep("a {animal} in snow", animal=["fox", "owl"], seed=range(3), resolution="1K", quiet=True).wait(60)
    wan.generate("a <i>lone</i> heron", seed=9, resolution="1K")
    e = wan.log().explore(rows="animal", cols="seed")
    assert (e.grid.row_values, e.grid.col_values) == (["fox", "owl", None], [0, 1, 2, 9])
    e.cols.value = "resolution"
    assert e.grid.col_name == "resolution" and e.grid.col_values == ["1K"]
    e.rows.value = "prompt"
    e.prompt.value = "SNOW"  # case-insensitive "contains"
    assert len(e.runs()) == 6 and all("snow" in p for p in e.grid.row_values)
    e.prompt.value = ""
    e.status.value = "completed"
    assert len(e.runs()) == 7
    html = e._repr_mimebundle_()["text/html"]
    assert "&lt;i&gt;lone&lt;/i&gt;" in html and "<i>lone" not in html


@pytest.mark.slow
def test_the_explorer_pages_and_caps_what_it_sends(session: Any) -> None:
    wan.sweep("tile {k}", k=[str(i) for i in range(9)], seed=range(8), resolution="1K", quiet=True,
              concurrency=8).wait(120)
    e = wan.log().explore(rows="k", cols="seed", page_rows=4, page_cols=5, max_images=12)
    images = [w for w in e.grid_box.children if "wan-explore-cell" in w._dom_classes
              for t in w.children if "wan-explore-tile" in getattr(t, "_dom_classes", ())]
    assert len(e.grid.row_values) == 4 and len(e.grid.col_values) == 5 and len(images) == 12
    assert "rows 1-4 of 9 · columns 1-5 of 8" in e.summary.value
    e._pager["down"].click()
    e._pager["down"].click()
    assert e.grid.row_values == ["8"] and e._pager["down"].disabled
    e._pager["right"].click()
    assert e.grid.col_values == [5, 6, 7] and "columns 6-8 of 8" in e.summary.value


def test_a_clicked_run_shows_its_details_opens_in_a_form_and_compares(session: Any, photos: list[Path]) -> None:
    first = wan.generate("a harbour", seed=3, resolution="1K")
    edited = wan.edit("the same harbour at night", first, seed=4, resolution="1K")
    e = wan.log().explore(rows="prompt", cols="seed")
    tile = next(t for w in e.grid_box.children if "wan-explore-cell" in w._dom_classes
                for t in w.children if "wan-explore-tile" in getattr(t, "_dom_classes", ())
                and edited.run_id in t.children[1].tooltip)
    tile.children[1].click()  # the button under the image
    assert e.selected == edited.run_id
    info = e.detail.children[0].value
    assert "the same harbour at night" in info and "edit" in info
    assert any(isinstance(c, wan_widgets_box()) and first.run_id[:20] in str([b.description for b in c.children
               if hasattr(b, "description")]) for c in e.detail.children), "made from is not shown"
    assert any("wan-explore-full" in getattr(c, "_dom_classes", ()) for c in e.detail.children)

    f = e.open_in_form(edited.run_id)
    assert f.mode == "edit" and f.request.request_hash == edited.request.request_hash
    assert e.open_in_form(edited.run_id) is e.form and f not in e.detail.children  # clicked again: replaced
    assert sum(isinstance(c, wan.Form) for c in e.detail.children) == 1
    assert run_code(f.code).cache_hit

    e.compare_with(edited.run_id)
    e.select(first.run_id)
    assert e.comparison is not None and set(e.comparison.differing) >= {"action", "prompt", "seed"}


def wan_widgets_box() -> Any:
    import ipywidgets

    return ipywidgets.HBox
