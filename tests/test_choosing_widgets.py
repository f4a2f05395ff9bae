"""Issue 17 in the kernel alone: choosing by clicking in the widgets, driven from Python.

The star control (``_stars.StarRating``), the explorer's tiles, filters, stacks, picks and
a run's details, a live sweep's cells and a form's result, each clicked as a user would
(``.click()`` on buttons, values set on fields, the star control's own "click" message as
the front end sends it), against a simulator over loopback HTTP, with ``log.runs()`` as
the truth. The same in JupyterLab with a real mouse: test_browser_choosing.py.
"""

from __future__ import annotations

import html
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd
import pytest

import wan_nb as wan
from wan_nb import _log_engine
from wan_nb._log import Log
from wan_nb._stars import LABELS, STARS_CSS, StarRating
from wan_nb.sim import Simulator


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WAVE_API_KEY", "WAN_NB_BASE_URL", "WAN_NB_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WAN_NB_USER", "ann")


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Any]:
    with Simulator(latency=0.05) as sim:
        sess = wan.connect(base_url=sim.base_url, home=tmp_path / "runs", quiet=True)
        try:
            yield sess
        finally:
            sess.close()


def stars_in_log(run_id: str) -> int | None:
    value = wan.log().runs(run_id=run_id).iloc[0]["stars"]
    return None if pd.isna(value) else int(value)


def front_end_click(control: StarRating, k: int) -> None:
    """What ipywidgets' front end does on a click on star k: select it, then say "click"."""
    control.set_state({"index": k - 1})
    control._handle_custom_msg({"event": "click"}, [])


def text(widget: widgets.HTML) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", widget.value))


def find(widget: Any, cls: str) -> list[Any]:
    """Every widget under ``widget`` (itself included) with the CSS class ``cls``."""
    found = [widget] if cls in getattr(widget, "_dom_classes", ()) else []
    for child in getattr(widget, "children", ()):
        found += find(child, cls)
    return found


def tiles(e: Any) -> list[Any]:
    return find(e.grid_box, "wan-explore-tile")


def tile_of(e: Any, run_id: str) -> Any:
    return next(t for t in tiles(e) if t.children[1].tooltip.startswith(run_id))


def shown_runs(e: Any) -> set[str]:
    return {t.children[1].tooltip.split(":")[0] for t in tiles(e) if "wan-explore-stack" not in t._dom_classes}


# ------------------------------------------------------------------ the star control


def test_a_click_on_a_star_rates_the_run_and_a_click_on_the_lit_star_clears_it(session: Any) -> None:
    r = wan.generate("a heron in the reeds", seed=1, resolution="1K")
    note = widgets.HTML()
    stars = StarRating(r.log, r.run_id, message=note)
    # each star names its rating: the button's text (its accessible name) and its title
    assert stars.options == LABELS == ("1 star", "2 stars", "3 stars", "4 stars", "5 stars")
    assert list(stars.tooltips) == list(LABELS) and "wan-stars" in stars._dom_classes
    assert stars.index is None and stars.stars is None

    assert stars.click(4) == 4 and stars_in_log(r.run_id) == 4 and stars.value == "4 stars"
    assert wan.log().runs(run_id=r.run_id).iloc[0]["rated_by"] == "ann"
    assert stars.click(4) is None and stars_in_log(r.run_id) is None and stars.index is None  # cleared
    assert stars.click(2) == 2 and stars.click(5) == 5 and stars_in_log(r.run_id) == 5

    # as the front end sends it: the button's index, then "click", also for the lit star again
    front_end_click(stars, 3)
    assert stars.stars == 3 and stars_in_log(r.run_id) == 3
    front_end_click(stars, 3)
    assert stars.stars is None and stars_in_log(r.run_id) is None and stars.index is None
    assert note.value == ""
    with pytest.raises(ValueError, match="1 to 5"):
        stars.click(0)


def test_the_stylesheet_draws_stars_and_keeps_the_names_for_screen_readers() -> None:
    assert 'content:"★" / ""' in STARS_CSS  # the star is drawn, with no text of its own
    assert "font-size:0" in STARS_CSS  # the button's text stays in the page: its accessible name
    assert ":has(>.mod-active)" in STARS_CSS and ".mod-active~button" in STARS_CSS  # lit up to the selected


def test_a_refused_rating_says_why_and_the_control_keeps_working(session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    r = wan.generate("a heron at dusk", seed=2, resolution="1K")
    r.rate(2)
    monkeypatch.setattr(_log_engine, "BUSY_TIMEOUT_S", 0.3)  # the log's wait for a lock, here short
    path = wan.log().path
    assert path is not None  # a SQLite log (a team's PostgreSQL log has no file)
    log = Log(path)  # a Log opened now waits 0.3 s
    note = widgets.HTML()
    stars = StarRating(log, r.run_id, 2, message=note)
    holder = sqlite3.connect(path, isolation_level=None)  # another process holds the write lock
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert stars.click(5) == 2, "the control shows a rating the log refused"
        assert stars.index == 1 and "could not rate run" in text(note) and "lock" in text(note), note.value
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert stars_in_log(r.run_id) == 2
    assert stars.click(5) == 5 and stars_in_log(r.run_id) == 5 and note.value == ""  # usable again

    ghost = StarRating(log, "no-such-run", message=note)
    assert ghost.click(3) is None and "no run with run_id 'no-such-run'" in text(note)
    nothing = StarRating(message=note)
    assert nothing.click(1) is None and "no run here to rate" in text(note)


# ------------------------------------------------------------------ the explorer


def test_a_tile_is_rated_by_its_stars_and_every_view_of_the_run_follows(session: Any) -> None:
    sw = wan.sweep("a {animal} in snow", animal=["fox", "owl"], seed=range(2), resolution="1K", quiet=True).wait(60)
    first = sw.cells[0].result
    first.rate(3)  # rated in code before the explorer opens
    e = wan.log().explore(rows="animal", cols="seed")
    tile = tile_of(e, first.run_id)
    stars = tile.children[2].children[0]
    assert isinstance(stars, StarRating) and stars.stars == 3
    e.select(first.run_id)  # the run's details show its stars too
    assert [c.stars for c in e.stars(first.run_id)] == [3, 3]

    stars.click(4)
    assert stars_in_log(first.run_id) == 4 and [c.stars for c in e.stars(first.run_id)] == [4, 4]
    static = e._repr_mimebundle_()["text/html"]  # a saved notebook's view shows the new rating
    assert 'title="4 stars"' in static and "★★★★☆" in static
    e.stars(first.run_id)[1].click(4)  # the lit star in the details: cleared, the tile follows
    assert stars_in_log(first.run_id) is None and stars.stars is None


def test_stars_and_tag_filters_narrow_the_grid(session: Any) -> None:
    sw = wan.sweep("a {animal} in snow", animal=["fox", "owl"], seed=range(3), resolution="1K", quiet=True).wait(60)
    ids = [c.result.run_id for c in sw.cells]
    for i, stars in ((0, 5), (1, 4), (2, 2)):
        sw.cells[i].result.rate(stars)
    sw.cells[1].result.tag("keeper")
    sw.cells[4].result.tag("keeper")
    e = wan.log().explore(rows="animal", cols="seed")
    assert shown_runs(e) == set(ids)
    assert "keeper" in e.tag.options  # tags the explorer has seen are offered

    e.min_stars.value = 4
    assert shown_runs(e) == {ids[0], ids[1]}
    assert list(e.runs()["run_id"]) == list(wan.log().runs(where="stars >= 4")["run_id"])
    e.min_stars.value = 0
    e.tag.value = "keeper"
    assert shown_runs(e) == {ids[1], ids[4]} and e.filters == {"tag": "keeper"}
    e.min_stars.value = 4
    assert shown_runs(e) == {ids[1]}
    assert "stars ≥=4" in e._repr_mimebundle_()["text/html"] and "tag=keeper" in e._repr_mimebundle_()["text/html"]

    e.tag.value = "not a tag!"
    assert "a tag is" in text(e.message) and "no runs match" in e.summary.value
    e.tag.value = "keeper"  # corrected: the rule is no longer shown
    assert text(e.message) == "" and shown_runs(e) == {ids[1]}
    e.tag.value = "bad tag"
    assert "a tag is" in text(e.message)
    e.tag.value = ""  # cleared: nor here
    assert text(e.message) == "" and shown_runs(e) == {ids[0], ids[1]}
    again = wan.log().explore(rows="animal", cols="seed", min_stars=4, tag="keeper")
    assert shown_runs(again) == {ids[1]}
    with pytest.raises(ValueError, match="min_stars"):
        wan.log().explore(stars=4)
    # a bad option in code is refused naming the option and its rule, as min_stars is; nothing changes
    for options, field, rule, words in (({"min_stars": 6}, "min_stars", "range", "from 1 to 5"),
                                        ({"tag": "bad tag"}, "tag", "tag", "a tag is"),
                                        ({"stack_seeds": "no"}, "stack_seeds", "type", "True or False")):
        with pytest.raises(wan.RequestError, match=words) as caught:
            wan.log().explore(**options)
        assert [(p.field, p.rule) for p in caught.value.problems] == [(field, rule)]
        with pytest.raises(wan.RequestError, match=words):
            again.refresh(**options)
        assert (again.min_stars.value, again.tag.value, again.stack.value) == (4, "keeper", False)
        assert shown_runs(again) == {ids[1]}


def test_stack_seeds_shows_runs_differing_only_in_seed_as_one_tile_that_fans_out(session: Any) -> None:
    sw = wan.sweep("a {animal} in snow", animal=["fox", "owl"], seed=range(3), resolution=["1K", "2K"],
                   quiet=True, concurrency=6).wait(120)
    e = wan.log().explore(rows="animal", cols="resolution")
    assert len(tiles(e)) == 12 and not e.stack.value  # off by default
    e.stack.value = True
    assert len(tiles(e)) == 4 and all("wan-explore-stack" in t._dom_classes for t in tiles(e))
    assert sorted(len(runs) for runs in e.stacks.values()) == [3, 3, 3, 3]
    fan = find(e.grid_box, "wan-explore-fan")
    assert [b.description for b in fan] == ["×3 seeds ▸"] * 4 and "(0, 1, 2)" in fan[0].tooltip
    fan[0].click()  # fans out: its three runs, each a tile, and a button to stack them again
    assert len(tiles(e)) == 6 and len(find(e.grid_box, "wan-explore-fold")) == 1
    find(e.grid_box, "wan-explore-fold")[0].click()
    assert len(tiles(e)) == 4
    e.stack.value = False
    assert len(tiles(e)) == 12

    # runs that differ in more than their seed are not stacked together: one stack per resolution
    mixed = wan.log().explore(rows="animal", cols="action", stack_seeds=True)
    assert len(tiles(mixed)) == 4 and sorted(len(r) for r in mixed.stacks.values()) == [3, 3, 3, 3]
    # seed as an axis: folded into one column while seeds are stacked
    by_seed = wan.log().explore(rows="animal", cols="seed", stack_seeds=True)
    assert by_seed.grid.col_values == ["all seeds"] and by_seed.grid.col_name == "seed (stacked)"
    assert len(tiles(by_seed)) == 4

    # a stack shows its best rated run, and says how many stars that one has
    best = next(c.result for c in sw.cells if c.coords["animal"] == "owl" and c.coords["seed"] == 2
                and c.coords["resolution"] == "1K")
    best.rate(5)
    e.stack.value = True
    cover = Path(best.images[0].thumb_path).read_bytes()
    (owl,) = [t for t in tiles(e) if t.children[0].value == cover]
    assert "★★★★★" in owl.children[2].value and "5 stars" in owl.children[2].value


def test_two_picked_tiles_are_compared_with_image_compare(session: Any) -> None:
    a = wan.generate("a lighthouse on a cliff", seed=1, resolution="1K")
    b = wan.generate("a lighthouse on a cliff", seed=2, resolution="1K")
    e = wan.log().explore(rows="prompt", cols="seed")
    pick_a, pick_b = (tile_of(e, r.run_id).children[2].children[1] for r in (a, b))
    assert pick_a.description == "pick to compare" and "pick two" in pick_a.tooltip
    pick_a.value = True
    assert e.picked == [a.run_id] and "pick another run" in text(e.message)
    pick_a.value = False  # unpicked
    assert e.picked == []
    pick_a.value = True
    pick_b.value = True
    assert isinstance(e.image_compare, wan.ImageCompare) and e.image_compare in e.detail.children
    assert [side["run_id"] for side in e.image_compare.images] == [a.run_id, b.run_id]
    assert e.image_compare.differing == ["seed"] and e.comparison.differing == ["seed"]
    assert e.picked == [] and not pick_a.value and not pick_b.value  # ready for the next two

    # "compare with…" from a run's details opens the same view
    e.compare_with(b.run_id)
    e.select(a.run_id)
    assert [side["run_id"] for side in e.image_compare.images] == [b.run_id, a.run_id]


def test_tags_and_a_note_edited_in_the_details_reach_the_log(session: Any) -> None:
    r = wan.generate("a heron in the reeds", seed=4, resolution="1K")
    e = wan.log().explore(rows="prompt", cols="seed")
    tile_of(e, r.run_id).children[1].click()  # the button under the picture: the run's details
    (entry,) = find(e.detail, "wan-explore-new-tag")
    entry.value = "keeper sky"  # Enter: both added
    assert wan.log().runs(run_id=r.run_id).iloc[0]["tags"] == ["keeper", "sky"]
    chips = find(e.detail, "wan-explore-tag")
    assert [c.description for c in chips] == ["keeper ✕", "sky ✕"] and chips[1].tooltip == "remove the tag sky"
    chips[1].click()
    assert wan.log().runs(run_id=r.run_id).iloc[0]["tags"] == ["keeper"]
    assert "keeper" in e.tag.options

    (entry,) = find(e.detail, "wan-explore-new-tag")
    entry.value = "bad tag!"  # refused: said, nothing written, the editor still there
    assert "a tag is" in text(e.message) and wan.log().runs(run_id=r.run_id).iloc[0]["tags"] == ["keeper"]
    (entry,) = find(e.detail, "wan-explore-new-tag")
    (add,) = find(e.detail, "wan-explore-add-tag")
    entry.value = "v2"
    add.click()
    assert wan.log().runs(run_id=r.run_id).iloc[0]["tags"] == ["keeper", "v2"]

    (note,) = find(e.detail, "wan-explore-note")
    note.value = "too dark, but the reeds are right"
    find(e.detail, "wan-explore-save-note")[0].click()
    assert wan.log().runs(run_id=r.run_id).iloc[0]["note"] == "too dark, but the reeds are right"
    assert "note saved" in text(e.message)
    assert len(wan.log().search("reeds dark")) == 1  # the note is searchable at once


def test_the_explorer_still_reads_pages_with_choosing_filters_and_stacks(session: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from wan_nb._log_frames import LogFrames

    wan.sweep("a {animal} in snow", animal=["fox", "owl"], seed=range(3), resolution="1K", quiet=True).wait(60)
    reads: list[tuple[str, Any]] = []
    real = LogFrames._read_tables

    def recorded(self: Any, clause: Any, limit: Any = None, offset: int = 0, sources: bool = False) -> Any:
        reads.append((clause.sql, limit))
        return real(self, clause, limit, offset, sources)

    monkeypatch.setattr(LogFrames, "_read_tables", recorded)
    e = wan.log().explore(rows="animal", cols="seed", stack_seeds=True, min_stars=0)
    e.tag.value = "keeper"
    e.tag.value = ""
    e.min_stars.value = 1
    e.stack.value = False
    assert reads and all(sql != "1" or limit is not None for sql, limit in reads), reads


# ------------------------------------------------------------------ a live sweep and a form


def test_a_finished_cell_of_a_live_sweep_is_rated_where_it_is_shown(session: Any) -> None:
    sw = wan.sweep("a cell {i}", i=[1, 2, 3], resolution="1K", seed=1, start=False, quiet=True)
    sw._repr_mimebundle_()  # shown while it runs: the live grid
    view = sw._view
    assert STARS_CSS in view.widget.children[0].value  # the stylesheet goes once, with the grid's

    def revealed(i: int) -> bool:  # a done cell's HTML carries the rule that shows its stars
        cell_html = "".join(w.value for w in view.cells.values())
        return f".{view._stars_class(i)}{{visibility:visible}}" in cell_html

    assert len(view.stars) == 3 and not any(revealed(i) for i in range(3))
    assert all(view._stars_class(i) in view.stars[i]._dom_classes for i in range(3))
    sw.start().wait(60)
    assert view.wait_drawn()
    assert all(revealed(i) for i in range(3))
    control = view.stars[1]
    assert control.run_id == sw.cells[1].result.run_id
    control.click(5)
    assert stars_in_log(sw.cells[1].result.run_id) == 5
    front_end_click(view.stars[2], 2)
    assert stars_in_log(sw.cells[2].result.run_id) == 2

    again = wan.sweep("a cell {i}", i=[1, 2, 3], resolution="1K", seed=1, start=False, quiet=True)
    again._repr_mimebundle_()
    again.start().wait(60)
    assert again._view.wait_drawn()
    assert [again._view.stars[i].stars for i in range(3)] == [None, 5, 2]  # the same runs, their stars


def test_a_forms_result_is_rated_where_it_is_shown(session: Any) -> None:
    f = wan.form(prompt="a lighthouse at dusk", seed=2, resolution="1K")
    assert f.rating.layout.display == "none" and f.stars.run_id is None
    f.submit()
    r = f.wait(30)
    assert f.rating.layout.display == "" and f.stars.run_id == r.run_id
    f.stars.click(4)
    assert stars_in_log(r.run_id) == 4
    time.sleep(0.2)  # the form's own read of the rating (its thread) does not undo the click
    assert f.stars.stars == 4

    f.set(seed=3)
    f.submit()  # the next result: the stars rate it, not the first
    second = f.wait(30)
    assert f.stars.run_id == second.run_id != r.run_id and f.stars.stars is None
    f.stars.click(1)
    assert stars_in_log(second.run_id) == 1 and stars_in_log(r.run_id) == 4
