"""Issue 3 in a real browser: a sweep shows as a labelled grid that fills in live.

Headless JupyterLab + Debian Chromium driven by Playwright (see
../shared/recipes/browser-tests.md). The notebook connects to the built-in
simulator and starts a 2 × 3 sweep; without re-running anything, the same output
must go from placeholders to six thumbnails and "6/6 done", while the kernel stays
free to run the next cell. A second notebook checks that a failed task shows its
reason in its own cell.

The lab, browser and page fixtures are shared (``browser_lab``, via conftest); without
/usr/bin/chromium or the ``playwright`` package the tests are skipped, unless CI is set.
"""

from __future__ import annotations

import json
import time

import pytest
from browser_lab import fail_info as _fail_info
from browser_lab import open_notebook as _open_notebook
from browser_lab import run_all as _run_all
from browser_lab import run_cell as _run_cell

SWEEP_TIMEOUT = 30_000  # ms for the whole sweep to be drawn

SWEEP_CELLS = [
    "import wan_nb as wan\nwan.connect(latency=1.5)",
    'sw = wan.sweep("a {animal} in snow", animal=["fox", "owl"], seed=range(3), resolution="1K", concurrency=2)\nsw',
    "1 + 1",
    # run again by the test once the grid is full (sw.wait() here would keep the kernel busy)
    "import json, os\n"
    "print('ENDED', json.dumps({c.result.images[0].sha256: c.ended for c in sw.cells if c.result}))\n"
    "print('THUMBS', sum(os.path.getsize(i.thumb_path) for c in sw.cells if c.result for i in c.result.images))",
]

ERROR_CELLS = [
    "import wan_nb as wan\n"
    "s = wan.connect(latency=0.5)\n"
    "_ = s.simulator.set_faults(next=[{'endpoint': 'submit', 'fault': 'fail_task:content_policy'}])",
    'sw = wan.sweep("a {animal} in rain", animal=["cat"], seed=[1, 2], resolution="1K", concurrency=1)\nsw',
]

RESULT_CELLS = [
    "import wan_nb as wan\nwan.connect(latency=0.2, home='wan_runs')",
    'r = wan.generate("a <b>bold</b> heron & reeds", aspect_ratio="16:9", resolution="1K", seed=5)\nr',
]

SLOW_CELLS = [
    "import wan_nb as wan\nwan.connect(latency=4.0, home='wan_runs_slow', quiet=True)",
    'r = wan.generate("a patient heron", seed=9, resolution="1K")',
]


pytestmark = pytest.mark.browser

NOTEBOOKS = {
    "sweep.ipynb": SWEEP_CELLS,
    "errors.ipynb": ERROR_CELLS,
    "result.ipynb": RESULT_CELLS,
    "slow.ipynb": SLOW_CELLS,
}


# One function, in the page, that reports what the sweep output of cell `i` shows.
GRID_STATE_JS = """() => {
window.__gridState = (i) => {
    const cells = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell');
    const cell = cells[i];
    if (!cell) return null;
    const grid = cell.querySelector('.jp-OutputArea-output .wan-grid');
    if (!grid) return null;
    const widget = grid.closest('.jupyter-widgets, .widget-html');
    // the static table (td/th) or the live grid (one widget per cell: data-wan-cell/row/col)
    const tds = [...grid.querySelectorAll('tbody td, [data-wan-cell]')];
    const progressEl = grid.querySelector('.wan-progress');
    const progress = progressEl ? progressEl.textContent : null;
    return {
        widget: !!widget,
        tagged: !!(widget && widget.dataset.testFirstView === '1'),
        imgs: tds.reduce((n, td) => n + td.querySelectorAll('img[src^="data:"]').length, 0),
        tds: tds.length,
        placeholders: tds.filter(td => !td.querySelector('img') && td.textContent.includes('···')).length,
        missing: tds.filter(td => td.textContent.includes('image file missing')).length,
        failed: tds.filter(td => td.textContent.includes('✕')).map(td => td.textContent.trim()),
        progress: progress,
        rows: [...grid.querySelectorAll('tbody th, [data-wan-row]')].map(th => th.textContent.trim()),
        cols: [...grid.querySelectorAll('thead th:not(:first-child), [data-wan-col]')].map(th => th.textContent.trim()),
        title: (grid.querySelector('.wan-title') || {}).textContent || null,
        prompt: (cell.querySelector('.jp-InputPrompt') || {}).textContent || '',
        outputs: cell.querySelectorAll('.jp-OutputArea-output').length,
    };
};
window.__outputText = (i) => {
    const cells = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell');
    const out = cells[i] && cells[i].querySelector('.jp-OutputArea-output');
    return out ? out.textContent.trim() : null;
};
// Watch one grid output: log every state it shows (time, images, progress line).
window.__watch = (i) => {
    const cells = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell');
    const area = cells[i].querySelector('.jp-OutputArea');
    const widget = area.querySelector('.wan-grid').closest('.jupyter-widgets, .widget-html');
    widget.dataset.testFirstView = '1';
    window.__seen = [];
    window.__drawn = {};  // link of each image -> Date.now() when it was first in the page
    const t0 = performance.now();
    const note = () => {
        for (const a of area.querySelectorAll('a[href]')) {
            if (a.querySelector('img[src^="data:"]') && !(a.href in window.__drawn))
                window.__drawn[a.href] = Date.now();
        }
        const s = window.__gridState(i);
        const last = window.__seen[window.__seen.length - 1];
        if (s && (!last || last.imgs !== s.imgs || last.progress !== s.progress || last.missing !== s.missing))
            window.__seen.push({t: Math.round(performance.now() - t0), imgs: s.imgs, missing: s.missing,
                                placeholders: s.placeholders, progress: s.progress});
    };
    note();
    new MutationObserver(note).observe(area, {subtree: true, childList: true, characterData: true});
};
}"""


def _state(page, i: int):
    return page.evaluate("(i) => window.__gridState(i)", i)


# --------------------------------------------------------------------------- tests


@pytest.mark.timeout(150)
def test_sweep_grid_fills_in_live_and_kernel_stays_free(page, lab, tmp_path):
    frames: list[tuple[float, int, bool]] = []  # (time, bytes, a widget message) of each websocket frame

    def on_socket(ws):
        def received(payload):
            text = payload if isinstance(payload, str) else payload.decode("latin-1")
            frames.append((time.time(), len(payload), '"comm_' in text))

        ws.on("framereceived", received)

    page.on("websocket", on_socket)
    ready_s = _open_notebook(page, lab, "sweep.ipynb", len(SWEEP_CELLS))
    page.evaluate(GRID_STATE_JS)
    t_run = time.monotonic()
    _run_all(page)
    shot = tmp_path / "sweep_grid.png"
    try:
        # 1. The grid is shown at once, as a live widget view, with six placeholders.
        page.wait_for_function("() => window.__gridState(1) !== null", timeout=20_000, polling="raf")
        first = _state(page, 1)
        t_grid = time.monotonic() - t_run
        page.evaluate("() => window.__watch(1)")
        assert first["widget"], f"the grid is the static text/html fallback, not the widget view: {first}"
        assert first["tds"] == 6, first
        assert first["imgs"] == 0 and first["placeholders"] == 6, f"expected 6 placeholders first: {first}"
        assert first["rows"] == ["fox", "owl"], first
        assert first["cols"] == ["0", "1", "2"], first
        assert first["progress"] and first["progress"].startswith("0/6 done"), first

        # 2. The kernel is free while the sweep runs: the next cell shows 2 before the end.
        page.wait_for_function("() => window.__outputText(2) === '2'", timeout=20_000, polling="raf")
        during = _state(page, 1)
        t_two = time.monotonic() - t_run
        assert during["imgs"] < 6 and not during["progress"].startswith("6/6 done"), (
            f"`1 + 1` only answered after the sweep had finished (kernel blocked?): {during}"
        )

        # 3. Without re-running anything, the same output fills in: 6 thumbnails, 6/6 done.
        page.wait_for_function(
            """() => { const s = window.__gridState(1);
                       return s && s.imgs === 6 && s.progress && s.progress.startsWith('6/6 done'); }""",
            timeout=SWEEP_TIMEOUT,
        )
        t_done = time.monotonic() - t_run
        final = _state(page, 1)
        seen = page.evaluate("() => window.__seen")
    except Exception as exc:  # noqa: BLE001 - any failure is reported with the page's state
        pytest.fail(f"sweep grid did not behave: {exc}\n{_fail_info(page, lab, shot)}", pytrace=True)

    assert final["tagged"], f"the filled-in grid is not the view first shown (output was replaced): {final}"
    assert final["outputs"] == first["outputs"] and final["prompt"] == first["prompt"], (first, final)
    assert final["rows"] == ["fox", "owl"] and final["cols"] == ["0", "1", "2"], final
    assert final["placeholders"] == 0 and not final["failed"], final
    counts = [s["imgs"] for s in seen]
    assert counts == sorted(counts), f"images disappeared on the way: {seen}"
    assert any(0 < c < 6 for c in counts), f"never showed a partly filled grid (not live?): {seen}"

    # A screenshot of the finished grid, for the eye.
    page.evaluate("""() => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')[1]
                                .scrollIntoView({block: 'start'})""")
    page.wait_for_timeout(300)
    page.screenshot(path=str(shot))
    grid_box = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .wan-grid").first
    grid_box.screenshot(path=str(tmp_path / "sweep_grid_only.png"))
    (tmp_path / "console.txt").write_text("\n".join(page.console_log))
    (tmp_path / "states_seen.json").write_text(json.dumps(seen, indent=1, ensure_ascii=False))
    print(
        f"\nserver start {lab['start_s']:.1f} s, page ready {ready_s:.1f} s, grid shown {t_grid:.2f} s, "
        f"`1 + 1` -> 2 at {t_two:.2f} s, 6/6 done at {t_done:.2f} s after run-all"
    )
    print("states seen:", *seen, sep="\n  ")
    missing = [x for x in seen if x["missing"]]
    assert not missing, "a finished cell must show a placeholder until its image is on disk"
    print(f"screenshot: {shot}")

    # 4. Each cell is drawn as its run ends, and the grid is not re-sent whole on each change.
    report = dict(line.split(" ", 1) for line in _run_cell(page, 3, wait_for="THUMBS").splitlines() if " " in line)
    ended = json.loads(report["ENDED"])
    drawn = page.evaluate("() => window.__drawn")
    late = {}
    for sha, t_end in ended.items():
        t_drawn = next((t for href, t in drawn.items() if sha in href), None)
        assert t_drawn is not None, f"the image {sha[:12]} was never drawn: {drawn}"
        late[sha[:12]] = t_drawn / 1000 - t_end
    widget_bytes = sum(n for _, n, comm in frames if comm)
    thumbs = int(report["THUMBS"])
    print(
        f"task end -> cell drawn: {sorted(round(v, 3) for v in late.values())} s; widget messages "
        f"{widget_bytes} bytes for {thumbs} bytes of thumbnails ({widget_bytes / thumbs:.2f}x)"
    )
    assert max(late.values()) < 1.0, f"cells drawn long after their run ended: {late}"
    assert widget_bytes < 3 * thumbs, "the live grid sent far more than its thumbnails (whole grid re-sent?)"


@pytest.mark.timeout(150)
def test_failed_cell_shows_its_reason(page, lab, tmp_path):
    _open_notebook(page, lab, "errors.ipynb", len(ERROR_CELLS))
    page.evaluate(GRID_STATE_JS)
    _run_all(page)
    shot = tmp_path / "errors_grid.png"
    try:
        page.wait_for_function(
            """() => { const s = window.__gridState(1);
                       return s && s.imgs === 1 && s.failed.length === 1; }""",
            timeout=SWEEP_TIMEOUT,
        )
        final = _state(page, 1)
    except Exception as exc:  # noqa: BLE001 - any failure is reported with the page's state
        pytest.fail(f"error grid did not finish: {exc}\n{_fail_info(page, lab, shot)}", pytrace=True)
    page.screenshot(path=str(shot))
    assert final["widget"], final
    assert final["imgs"] == 1, final
    assert final["progress"].startswith("1/2 done") and "1 failed" in final["progress"], final
    assert len(final["failed"]) == 1, final
    text = final["failed"][0]
    assert "failed" in text and "content_policy" in text, f"the failed cell does not give the reason: {text!r}"


@pytest.mark.timeout(120)
def test_result_thumbnail_links_to_the_full_image(page, lab, tmp_path):
    """The inline result: an embedded thumbnail, the prompt escaped, and a link that
    JupyterLab serves as the full JPEG (what a user clicks to see the image)."""
    _open_notebook(page, lab, "result.ipynb", len(RESULT_CELLS))
    _run_all(page)
    out = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").nth(1).locator(".wan-result")
    out.wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "result.png"))
    assert out.locator("img").first.get_attribute("src").startswith("data:image/jpeg;base64,")
    text = out.inner_text()
    assert "a <b>bold</b> heron & reeds" in text  # shown as text, not as markup
    assert out.locator("b").count() == 0
    link = out.locator("a[href]").first
    url = page.evaluate("(a) => a.href", link.element_handle())
    answer = page.request.get(url)
    assert answer.status == 200, (url, answer.status)
    assert answer.headers.get("content-type", "").startswith("image/jpeg"), (url, answer.headers)
    assert answer.body()[:3] == b"\xff\xd8\xff"


@pytest.mark.timeout(120)
def test_blocking_call_shows_a_live_status_line(page, lab):
    """While wan.generate blocks, the cell says what it is waiting for, then sums up."""
    _open_notebook(page, lab, "slow.ipynb", len(SLOW_CELLS))
    # not _run_all: its promise resolves only when every cell has finished
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    out = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").nth(1).locator(".jp-OutputArea-output")
    page.wait_for_function(
        """() => { const c = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')[1];
                   return c && /⏳ generate .* \\d+ s/.test(c.innerText); }""",
        timeout=20_000,
    )
    first = out.first.inner_text()
    assert "⏳ generate" in first
    page.wait_for_function(
        """() => /done after/.test(
            document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')[1].innerText)""",
        timeout=30_000,
    )
    assert "⏳" not in out.first.inner_text()
