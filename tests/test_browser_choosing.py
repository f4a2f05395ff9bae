"""Issue 17 in a real browser: choosing by clicking, in JupyterLab with a real mouse and keyboard.

Headless JupyterLab + Debian Chromium + Playwright (fixtures in ``browser_lab``). A click on
the 4th star of an explorer tile must make ``log.runs()`` show 4 for that run, and a click on
it again clear it; each star names its rating for screen readers (its accessible name) and
on hover (its title); Enter on a focused star rates and the focus stays there. The "stack
seeds" switch must change the number of tiles on the page, a stack fans out when clicked,
and picking two tiles must show ``wan.ImageCompare`` of the two. A live sweep's finished cell
and a form's result are rated by a click too. The kernel's side is read by running a cell
that prints JSON (the widget messages reach the kernel before that cell's request).

``WAN_NB_SCREENSHOTS=docs/screenshots`` writes ``explorer_stars.png``, the picture in README.md
(the swipe compare's, ``image_compare.png``, comes from test_browser_compare.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from browser_lab import cell, fail_info, open_notebook, run_cell, screenshot_dir

pytestmark = pytest.mark.browser

SETUP = ("import json\nimport pandas as pd\nimport wan_nb as wan\n"
         "wan.connect(latency={latency}, home='{home}', quiet=True)\n")
SWEEP = ("sw = wan.sweep('a {animal} in snow, ink wash', animal=['fox', 'owl'], seed=range(3), resolution='1K', "
         "quiet=True, concurrency=6).wait(120)\n")
RUNS = ("runs = wan.log().runs()\n"
        "print('RUNS ' + json.dumps({r: None if pd.isna(s) else int(s) "
        "for r, s in zip(runs['run_id'], runs['stars'])}))")
PICKED = ("print('PICKED ' + json.dumps({'picked': e.picked, 'compared': [s['run_id'] for s in e.image_compare.images] "
          "if e.image_compare is not None else None}))")
NOTEBOOKS = {
    "stars.ipynb": [
        SETUP.format(latency=0.05, home="wan_runs_stars") + SWEEP
        + "sw.cells[0].result.rate(5)\nsw.cells[4].result.rate(3)\nsw.cells[4].result.tag('keeper')\n"
        + "e = wan.log().explore(rows='animal', cols='seed')",
        "e",
        RUNS,
    ],
    "stacks.ipynb": [
        SETUP.format(latency=0.05, home="wan_runs_stacks") + SWEEP
        + "e = wan.log().explore(rows='animal', cols='seed')",
        "e",
        PICKED,
    ],
    "live.ipynb": [
        SETUP.format(latency=1.0, home="wan_runs_live")
        + "sw = wan.sweep('a {animal} at dawn', animal=['fox', 'owl'], seed=1, resolution='1K', quiet=True)\nsw",
        "sw.wait(60)\nprint('STARS ' + json.dumps([c.result.stars for c in sw.cells]))",
    ],
    "form.ipynb": [
        SETUP.format(latency=0.3, home="wan_runs_form")
        + "f = wan.form(prompt='a heron at dawn', seed=5, resolution='1K')",
        "f",
        "print('FORM ' + json.dumps({'run': f.result.run_id if f.result else None, "
        "'stars': f.result.stars if f.result else None}))",
    ],
}
# each star button of a control: its title, its text, and whether it is drawn lit
STARS_JS = """(control) => [...control.querySelectorAll('button')].map(b => ({
    title: b.getAttribute('title'), text: b.textContent,
    lit: getComputedStyle(b).color.replace(/\\s/g, '') === 'rgb(224,161,0)'}))"""


def printed(page: Any, i: int, prefix: str, timeout: float = 30_000) -> Any:
    out = run_cell(page, i, wait_for=prefix + " ", timeout=timeout)
    return json.loads(out.split(prefix + " ", 1)[1].strip().splitlines()[0])


def shown(page: Any, lab: Any, name: str, n_cells: int, tmp_path: Path, selector: str) -> Any:
    """Open ``name``, run its set-up cell and the cell that shows the widget."""
    open_notebook(page, lab, name, n_cells)
    run_cell(page, 0)
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


def stars_drawn(page: Any, n: int, where: str = "") -> None:
    """Wait until ``n`` star controls (under ``where``) are on the page, each with its five stars
    (a widget's children are drawn a moment after the widget)."""
    page.wait_for_function(
        "(sel) => { const cs = [...document.querySelectorAll(sel)];"
        " return cs.length === N && cs.every(c => c.querySelectorAll('button').length === 5); }".replace("N", str(n)),
        arg=f"{where} .wan-stars".strip(), timeout=30_000)


def run_of(tile: Any) -> str:
    """The run a tile shows (its button's title is "<run id>: show this run")."""
    return str(tile.locator("button.wan-explore-open").get_attribute("title")).split(":")[0]


def lit(control: Any) -> int:
    return sum(star["lit"] for star in control.evaluate(STARS_JS))


@pytest.mark.timeout(300)
def test_a_click_on_the_4th_star_of_a_tile_rates_its_run(page: Any, lab: Any, tmp_path: Path) -> None:
    explorer = shown(page, lab, "stars.ipynb", 3, tmp_path, ".wan-explore")
    page.wait_for_function("() => document.querySelectorAll('.wan-explore-grid img').length === 6")
    stars_drawn(page, 6, ".wan-explore-grid")
    tiles = explorer.locator(".wan-explore-tile")
    before = printed(page, 2, "RUNS")
    tile = next(tiles.nth(k) for k in range(tiles.count()) if before[run_of(tiles.nth(k))] is None)
    run = run_of(tile)
    control = tile.locator(".wan-stars")

    # each star is named for screen readers and on hover: "1 star" … "5 stars"
    stars = control.evaluate(STARS_JS)
    assert [s["title"] for s in stars] == ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"], stars
    assert control.get_by_role("button", name="4 stars", exact=True).count() == 1
    assert lit(control) == 0
    # the tiles rated in code before the explorer opened show their stars
    assert sorted(lit(tiles.nth(k).locator(".wan-stars")) for k in range(tiles.count())) == [0, 0, 0, 0, 3, 5]

    control.get_by_role("button", name="4 stars", exact=True).click()
    page.mouse.move(0, 0)  # no hover preview: what is lit is the rating
    assert printed(page, 2, "RUNS")[run] == 4
    page.wait_for_function("(c) => [...c.querySelectorAll('button')].filter(b => "
                           "getComputedStyle(b).color.replace(/\\s/g, '') === 'rgb(224,161,0)').length === 4",
                           arg=control.element_handle())
    shot = screenshot_dir(tmp_path) / "explorer_stars.png"
    explorer.screenshot(path=str(shot))

    control.get_by_role("button", name="4 stars", exact=True).click()  # the lit star again: cleared
    page.mouse.move(0, 0)
    assert printed(page, 2, "RUNS")[run] is None
    assert lit(control) == 0

    # the keyboard: Tab to a star, Enter rates; the focus stays on that star
    control.get_by_role("button", name="2 stars", exact=True).focus()
    page.keyboard.press("Enter")
    page.wait_for_timeout(500)  # the kernel's answer, if any, has come back (a redraw would take the focus)
    assert page.evaluate("() => document.activeElement.getAttribute('title')") == "2 stars"
    assert lit(control) == 2
    assert printed(page, 2, "RUNS")[run] == 2  # (running that cell moves the focus to the notebook)
    assert "Error displaying widget" not in page.inner_text("body")


@pytest.mark.timeout(300)
def test_the_stack_seeds_switch_changes_the_tile_count_and_two_picks_compare(page: Any, lab: Any,
                                                                             tmp_path: Path) -> None:
    explorer = shown(page, lab, "stacks.ipynb", 3, tmp_path, ".wan-explore")
    page.wait_for_function("() => document.querySelectorAll('.wan-explore-grid img').length === 6")
    tiles = explorer.locator(".wan-explore-tile")
    assert tiles.count() == 6

    explorer.locator(".wan-explore-stack input[type=checkbox]").check()  # "stack seeds"
    page.wait_for_function("() => document.querySelectorAll('.wan-explore-tile').length === 2")
    assert explorer.locator(".wan-explore-stack.wan-explore-tile").count() == 2
    fan = explorer.locator("button.wan-explore-fan").first
    assert fan.inner_text().strip() == "×3 seeds ▸"
    fan.click()  # fans out into its three runs
    page.wait_for_function("() => document.querySelectorAll('.wan-explore-tile').length === 4")
    explorer.locator("button.wan-explore-fold").click()
    page.wait_for_function("() => document.querySelectorAll('.wan-explore-tile').length === 2")
    explorer.locator(".wan-explore-stack input[type=checkbox]").uncheck()
    page.wait_for_function("() => document.querySelectorAll('.wan-explore-tile').length === 6")

    # pick two tiles: the swipe compare of the two appears below the grid
    first, second = tiles.nth(0), tiles.nth(4)
    pick = first.get_by_role("button", name="pick to compare")
    assert "pick two" in str(pick.get_attribute("title"))
    pick.click()
    assert printed(page, 2, "PICKED") == {"picked": [run_of(first)], "compared": None}
    second.get_by_role("button", name="pick to compare").click()
    try:
        explorer.locator(".wan-explore-detail .wan-compare canvas.wan-compare-canvas").wait_for(timeout=30_000)
    except Exception as exc:  # noqa: BLE001 - any failure: report it with a screenshot
        pytest.fail(f"no compare after two picks: {exc}\n{fail_info(page, lab, tmp_path / 'pick.png')}")
    assert printed(page, 2, "PICKED") == {"picked": [], "compared": [run_of(first), run_of(second)]}
    assert "Error displaying widget" not in page.inner_text("body")


@pytest.mark.timeout(240)
def test_a_live_sweep_cell_is_rated_by_a_click(page: Any, lab: Any, tmp_path: Path) -> None:
    open_notebook(page, lab, "live.ipynb", 2)
    run_cell(page, 0)
    grid = cell(page, 0).locator(".wan-grid")
    grid.wait_for(timeout=60_000)
    stars_drawn(page, 2, ".wan-grid")
    controls = grid.locator(".wan-stars")
    page.wait_for_function("() => document.querySelectorAll('.wan-grid [data-wan-cell] img').length === 2",
                           timeout=60_000)
    page.wait_for_function("() => [...document.querySelectorAll('.wan-grid .wan-stars')]"
                           ".every(c => getComputedStyle(c).visibility === 'visible')")
    controls.nth(1).get_by_role("button", name="5 stars", exact=True).click()
    assert printed(page, 1, "STARS") == [None, 5]
    grid.screenshot(path=str(tmp_path / "live.png"))


@pytest.mark.timeout(240)
def test_a_forms_result_is_rated_by_a_click(page: Any, lab: Any, tmp_path: Path) -> None:
    form = shown(page, lab, "form.ipynb", 3, tmp_path, ".wan-form")
    assert not form.locator(".wan-form-rating").is_visible()
    form.locator("button.wan-form-generate").click()
    form.locator(".wan-form-output img").first.wait_for(timeout=40_000)
    rating = form.locator(".wan-form-rating")
    rating.wait_for(state="visible")
    rating.get_by_role("button", name="3 stars", exact=True).click()
    state = printed(page, 2, "FORM")
    assert state["run"] and state["stars"] == 3, state
    form.screenshot(path=str(tmp_path / "form.png"))
