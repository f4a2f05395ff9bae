"""Every notebook in notebooks/ runs top to bottom in a fresh kernel, on the simulator.

Each notebook is executed once (nbclient, a new ipykernel) with its working folder and
``WAN_NB_HOME`` in a temporary folder and no API key in the kernel's environment, so
nothing is billed and nothing is written into the repository. Every notebook must be
stored without outputs, say at the top what it teaches and what it costs with a real
key (checked against what the simulator billed), and, saved after running, show every
result, grid and widget to a reader without a kernel (nbviewer, GitHub): each widget
output carries a static fallback. The quickstart's outputs are then checked for what it
promises to show: the cost line before a sweep, $0 for the re-run, the field named by
a refused request, images on disk, an escaped report.
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from children import run_notebook

import wan_nb
from wan_nb import Log
from wan_nb.sim import Simulator

if TYPE_CHECKING:
    import nbformat
else:
    class _OnFirstUse:
        """nbformat, imported when first used: its import (jsonschema's URI grammar) costs
        ~2 s, which every run of the fast tier would pay only to collect these slow tests."""

        def __getattr__(self, name: str) -> Any:
            import nbformat as module

            return getattr(module, name)

    nbformat = _OnFirstUse()

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for p in (REPO / "notebooks").glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
QUICKSTART = REPO / "notebooks" / "quickstart.ipynb"
CELL_TIMEOUT = 120  # seconds; the whole quickstart takes ~10 s on the simulator
ENV_DROP = ("WAVE_API_KEY", "WAN_NB_BASE_URL")  # no key: the built-in simulator, on loopback
# What a notebook's first cell says it costs on the real API: "makes 17 images, about $0.39".
COST_CLAIM = re.compile(r"makes\s+(\d+)\s+images,\s+about\s+\$(\d+\.\d\d)")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
STATIC_MIMES = ("text/html", "image/png")  # what a viewer without a kernel can show
WRITES = ("wan_runs", "report.html", "favourites.html", "exports")  # what the notebooks write in their working folder
# Notebooks that send input images: on the real API those must travel as public URLs.
SENDS_IMAGES = re.compile(r"wan\.(image2image|edit|reference|interactive_edit)\(")
IMAGE_NOTEBOOKS = [p for p in NOTEBOOKS
                   if any(SENDS_IMAGES.search("".join(c["source"])) for c in json.loads(p.read_text("utf-8"))["cells"])]


class Executed:
    def __init__(self, nb: nbformat.NotebookNode, folder: Path, home: Path) -> None:
        self.nb = nb
        self.folder = folder  # the kernel's working folder
        self.home = home  # WAN_NB_HOME

    def code_cells(self) -> list[nbformat.NotebookNode]:
        return [c for c in self.nb.cells if c.cell_type == "code"]

    def cell(self, needle: str) -> nbformat.NotebookNode:
        """The first code cell whose source contains ``needle``."""
        for c in self.code_cells():
            if needle in c.source:
                return c
        raise AssertionError(f"no code cell contains {needle!r}")

    @staticmethod
    def stdout(cell: nbformat.NotebookNode) -> str:
        return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")

    @staticmethod
    def rich(cell: nbformat.NotebookNode, mime: str, of: str = "") -> list[str]:
        """``mime`` data of the cell's outputs; ``of``: only outputs whose text/plain starts so
        (a blocking call that takes over a second also shows a status line before its result)."""
        return [o.data[mime] for o in cell.outputs
                if "data" in o and mime in o.data and o.data.get("text/plain", "").startswith(of)]


_executed: dict[Path, Executed] = {}


def _kernel_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    env["WAN_NB_HOME"] = str(home)
    return env


def execute(path: Path, tmp_factory: pytest.TempPathFactory) -> Executed:
    """Run a notebook once per test session (fresh kernel, cwd and run folder in tmp)."""
    if path not in _executed:
        folder = tmp_factory.mktemp(path.stem)
        home = folder / "wan_runs"
        nb = nbformat.read(path, as_version=4)
        run_notebook(nb, cwd=folder, env=_kernel_env(home), timeout=CELL_TIMEOUT)  # CellExecutionError names the cell
        _executed[path] = Executed(nb, folder, home)
    return _executed[path]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Executed:
    return execute(QUICKSTART, tmp_path_factory)


# ----------------------------------------------------------------- every notebook


def test_there_are_notebooks() -> None:
    assert QUICKSTART in NOTEBOOKS, "notebooks/quickstart.ipynb is the main job and must exist"


def test_readme_lists_every_notebook() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\(notebooks/([\w.-]+\.ipynb)\)", readme))
    assert linked == {p.name for p in NOTEBOOKS}, "README's table of notebooks and notebooks/ differ"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i} was saved with outputs; clear them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i} was saved with an execution count"
        # a key never belongs in a notebook
        assert not re.search(r"api_key\s*=\s*['\"]", cell.source), f"{path.name} cell {i} holds an API key"
        assert not re.search(r"WAVE_API_KEY['\"]?\s*\]?\s*=\s*['\"]\w", cell.source), f"{path.name} cell {i} sets a key"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    ran = execute(path, tmp_path_factory)
    for i, cell in enumerate(ran.code_cells()):
        assert cell.execution_count is not None, f"cell {i} did not run"
        for out in cell.outputs:
            assert out.output_type != "error", f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
            assert "Traceback" not in out.get("text", ""), f"cell {i} printed a traceback:\n{out['text']}"
    # every run of the notebook went to its own run folder, none into the repository
    for name in WRITES:
        assert not (REPO / "notebooks" / name).exists(), f"notebooks/{name} was written into the repository"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_says_what_it_teaches_and_costs(path: Path) -> None:
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), f"{path.name}: start with a title"
    assert COST_CLAIM.search(first.source), (
        f"{path.name}: the first cell must say what a run costs with a real key: "
        "'(With a real key this notebook makes N images, about $X.XX.)'"
    )


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_costs_what_it_says(path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    claim = COST_CLAIM.search(nbformat.read(path, as_version=4).cells[0].source)
    assert claim, f"{path.name} does not say what it costs"
    images, usd = int(claim.group(1)), float(claim.group(2))
    runs = Log(execute(path, tmp_path_factory).home / "log.sqlite").runs()
    billed = float(runs["cost_usd"].sum())  # what the simulator billed, as the real API would
    per_image = wan_nb.make_request("generate", "-").cost_usd
    assert round(billed / per_image) == images, f"{path.name} paid for {billed / per_image:.0f} images, says {images}"
    assert round(billed, 2) == usd, f"{path.name} cost ${billed:.5f}, says about ${usd:.2f}"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", IMAGE_NOTEBOOKS, ids=[p.name for p in IMAGE_NOTEBOOKS])
def test_notebook_runs_as_written_where_inputs_must_be_urls(path: Path, tmp_path: Path) -> None:
    """What a user with a real key runs: the hosted API takes input images as URLs only.

    The notebook reuses its own results as inputs; they go back as their result links, so
    it needs no uploader. A hosted-like simulator (no uploads) stands in for the real API.
    """
    with Simulator(latency=0.2, urls_only=True) as sim:
        env = _kernel_env(tmp_path / "wan_runs")
        env["WAN_NB_BASE_URL"] = sim.base_url  # no key + a loopback URL: this simulator
        nb = nbformat.read(path, as_version=4)
        run_notebook(nb, cwd=tmp_path, env=env, timeout=CELL_TIMEOUT)
    log = Log(tmp_path / "wan_runs" / "log.sqlite")
    runs = log.runs()
    with_inputs = [r for r in runs["run_id"] if log.inputs(r)]
    assert with_inputs, f"{path.name} sent no input images"
    assert {i["via"] for r in with_inputs for i in log.inputs(r)} == {"link"}


def _visible(html_text: str) -> bool:
    """A reader sees something: an image, or text once the tags are gone."""
    return "<img" in html_text or bool(re.sub(r"<[^>]*>|&nbsp;|\s", "", html_text))


def _embedded_images(html_text: str) -> int:
    """Images that show without a server: thumbnails carried in the page as data URIs."""
    return len(re.findall(r"<img[^>]*src=\"data:image/", html_text))


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_saved_notebook_shows_without_a_kernel(path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Saved after a run and opened where no kernel runs (nbviewer, GitHub), nothing is an empty box."""
    ran = execute(path, tmp_path_factory)
    saved = ran.folder / f"saved-{path.name}"
    nbformat.write(ran.nb, str(saved))
    nb = nbformat.read(saved, as_version=4)
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        for out in cell.get("outputs", []):
            data, where = out.get("data", {}), f"{path.name} code cell {i}"
            html_text = data.get("text/html", "")
            if WIDGET_VIEW in data:
                assert any(data.get(m) for m in STATIC_MIMES), f"{where}: widget output without text/html or image/png"
                assert not html_text or _visible(html_text), f"{where}: the widget's fallback is an empty box"
                model = state.get(data[WIDGET_VIEW]["model_id"])
                assert model is not None, f"{where}: the widget's state was not saved with the notebook"
                if model["model_name"] == "HTMLModel":
                    assert _visible(model["state"]["value"]), f"{where}: the saved widget is an empty box"
            plain = data.get("text/plain", "")
            if plain.startswith("<Result"):
                files = int(re.search(r"; (\d+) file\(s\)>", plain).group(1))
                assert _embedded_images(html_text) == files, f"{where}: {plain}"
            elif plain.startswith("Grid("):
                items = int(re.search(r", (\d+) items\)", plain).group(1))
                assert 0 < _embedded_images(html_text) <= items, f"{where}: {plain}"
            elif plain.startswith("Comparison("):
                assert _embedded_images(html_text) > 0, f"{where}: {plain}"
            elif plain.startswith("<Sweep"):
                done, cells = map(int, re.search(r"(\d+)/(\d+) done", plain).groups())
                boxes = html_text.count("display:inline-block;vertical-align:top;margin:2px")
                assert 'class="wan-grid"' in html_text and boxes >= cells, f"{where}: {cells} cells, {boxes} boxes"
                if done < cells:
                    assert WIDGET_VIEW in data, f"{where}: a running sweep shows itself live, as a widget"
                else:  # shown when done: its grid, each thumbnail saved once (no widget state beside it)
                    assert WIDGET_VIEW not in data and _embedded_images(html_text) >= cells, f"{where}: {plain}"


# What each widget puts beside itself for viewers without widgets (its text/html fallback).
FALLBACKS = {
    "wan-bbox-static": "the bbox drawer",
    "wan-palette-static": "the palette editor",
    "wan-form-static": "a form",
    "wan-sweep-form-static": "the sweep form",
    "wan-explore-static": "the log explorer",
    "wan-compare-static": "the image compare",
    'class="wan-grid"': "a sweep's live grid",
    "wan-studio-static": "the studio",
}


class _Scripts(HTMLParser):
    """The <script type=...> blocks of an exported page: (type, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[str, str]] = []
        self._type: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._type, self._text = dict(attrs).get("type") or "", []

    def handle_data(self, data: str) -> None:
        if self._type is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._type is not None:
            self.scripts.append((self._type, "".join(self._text)))
            self._type = None

    def of(self, kind: str) -> list[Any]:
        return [json.loads(text) for t, text in self.scripts if t == kind]


def _exported(nb: nbformat.NotebookNode, *, widget_state: bool = True) -> str:
    """The notebook as ``jupyter nbconvert --to html`` writes it (the exporter nbviewer runs).
    Without ``widget_state`` (a notebook saved in JupyterLab, which by default does not
    save it) nbconvert shows each widget output's other data instead of the widget."""
    if not widget_state:
        nb = copy.deepcopy(nb)
        nb.metadata.pop("widgets", None)
    from nbconvert import HTMLExporter  # here: importing it takes a second the fast tier does not need

    body, _ = HTMLExporter().from_notebook_node(nb)
    return str(body)


def _in_page(html_text: str, page: str) -> bool:
    """An output's HTML made it into an exported page (nbconvert may restyle it): its
    embedded pictures and the class of its outermost element."""
    pictures = re.findall(r"src=\"(data:image/[^\"]{,300})", html_text)
    outer = re.search(r"class=['\"]([\w-]+)", html_text)
    return all(p in page for p in pictures) and (outer is None or outer.group(1) in page)


def _shows(state: dict[str, Any], model_id: str) -> list[str]:
    """What the widget manager draws from a saved widget tree: its pictures and its texts."""
    seen, todo, shown = set(), [model_id], []
    while todo:
        mid = todo.pop()
        if mid in seen or mid not in state:
            continue
        seen.add(mid)
        model = state[mid]
        if model["model_name"] == "ImageModel" and any(b["path"] == ["value"] for b in model.get("buffers", [])):
            shown.append("<img>")
        if model["model_name"] in ("HTMLModel", "LabelModel") and _visible(model["state"].get("value", "")):
            shown.append(model["state"]["value"])
        for value in model["state"].values():
            for ref in value if isinstance(value, list) else [value]:
                if isinstance(ref, str) and ref.startswith("IPY_MODEL_"):
                    todo.append(ref.removeprefix("IPY_MODEL_"))
    return shown


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_exported_html_shows_every_output(path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The saved notebook through nbconvert's HTML exporter, as nbviewer renders it.

    Saved with its widget state (nbclient, ``nbconvert --execute``): each widget view's
    saved model is in the page, and the widget manager nbviewer loads draws a picture or
    text from it. Saved without (JupyterLab's default): each widget's static fallback is
    in the page instead. Either way every result and grid is there, its thumbnails embedded.
    """
    nb = execute(path, tmp_path_factory).nb
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "data" in o]
    widget_outputs = [o for o in outputs if WIDGET_VIEW in o.data]
    page = _exported(nb)
    scripts = _Scripts()
    scripts.feed(page)
    views = scripts.of(WIDGET_VIEW)
    assert [v["model_id"] for v in views] == [o.data[WIDGET_VIEW]["model_id"] for o in widget_outputs]
    if views:
        (state,) = [s["state"] for s in scripts.of(WIDGET_STATE)]
        for view in views:
            model = state.get(view["model_id"], {}).get("model_name")
            assert _shows(state, view["model_id"]), f"{path.name}: a saved {model} draws an empty box"
    for out in outputs:
        if WIDGET_VIEW not in out.data and "text/html" in out.data:
            assert _in_page(out.data["text/html"], page), \
                f"{path.name}: {out.data['text/plain'][:60]} is not in the page"

    plain = _exported(nb, widget_state=False)
    for out in widget_outputs:
        fallback = out.data.get("text/html", "")
        assert fallback and _in_page(fallback, plain), f"{path.name}: {out.data['text/plain'][:60]} has no fallback"
    without = _Scripts()
    without.feed(plain)
    assert not without.of(WIDGET_VIEW), "without widget state nbconvert was to show no widget views"


def test_exported_html_covers_every_widget() -> None:
    """The notebooks between them show every widget, so the test above sees each fallback."""
    sources = "\n".join(c.source for p in NOTEBOOKS for c in nbformat.read(p, as_version=4).cells)
    for call in ("wan.BBoxDrawer(", "wan.PaletteEditor(", ".form(", "wan.sweep_form(", ".explore(", "wan.sweep(",
                 "wan.ImageCompare(", "wan.studio("):
        assert call in sources, f"no notebook shows {call}"


@pytest.mark.notebooks
@pytest.mark.parametrize("marker", FALLBACKS, ids=list(FALLBACKS.values()))
def test_exported_html_holds_each_widget_fallback(marker: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each kind of widget is shown by some notebook, and its fallback is in that page."""
    for path in NOTEBOOKS:
        nb = execute(path, tmp_path_factory).nb
        fallbacks = [o.data.get("text/html", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs if WIDGET_VIEW in o.get("data", {})]
        shown = [f for f in fallbacks if marker in f]
        if shown:
            page = _exported(nb, widget_state=False)
            assert all(_in_page(f, page) for f in shown), f"{path.name}: {FALLBACKS[marker]}'s fallback not in the page"
            return
    pytest.fail(f"no notebook shows {FALLBACKS[marker]} as a widget with its fallback")


# ----------------------------------------------------------------- the quickstart's promises


@pytest.mark.notebooks
def test_quickstart_uses_the_simulator(quickstart: Executed) -> None:
    out = quickstart.stdout(quickstart.cell("wan.connect("))
    assert "no WAVE_API_KEY set" in out and "simulator" in out and "nothing is billed" in out
    assert str(quickstart.home) in out


@pytest.mark.notebooks
def test_quickstart_shows_a_result_inline(quickstart: Executed) -> None:
    cell = quickstart.cell("r = wan.generate(")
    # the result; a call slower than 1 s also leaves its status line (display_data) before it
    (html_out,) = quickstart.rich(cell, "text/html", of="<Result")
    assert "<img" in html_out and "1360×768" in html_out and "seed 7" in html_out
    assert "mountains &amp; a river" in html_out  # the prompt, escaped
    facts = quickstart.cell("r.cost_usd")
    assert "files: [" in quickstart.stdout(facts) and "cost:  $0.02295" in quickstart.stdout(facts)
    assert "Request('generate'" in quickstart.rich(facts, "text/plain")[0]


@pytest.mark.notebooks
def test_quickstart_catches_a_field_rule(quickstart: Executed) -> None:
    out = quickstart.stdout(quickstart.cell("except wan.RequestError"))
    assert "resolution" in out and "2K" in out and "fields: ['resolution']" in out


@pytest.mark.notebooks
def test_quickstart_covers_every_mode(quickstart: Executed) -> None:
    modes_cell = quickstart.cell("wan.image2image(")
    shown = quickstart.rich(modes_cell, "text/plain", of="<Result")
    assert [re.search(r"completed: (\w+) ·", s).group(1) for s in shown] == ["image2image", "edit", "reference"]
    group = quickstart.rich(quickstart.cell("wan.group(\"a four-panel storyboard"), "text/plain", of="<Result")[0]
    assert "4 file(s)" in group
    box_cell = quickstart.cell("wan.interactive_edit(")
    assert "interactive_edit" in quickstart.rich(box_cell, "text/plain", of="<Result")[0]

    runs = Log(quickstart.home / "log.sqlite").runs()
    assert set(runs["action"].astype(str)) == {"generate", "image2image", "edit", "reference", "group",
                                               "interactive_edit"}
    assert (runs["status"].astype(str) == "completed").all()
    # the box was inside the image it edits
    ie = runs[runs["action"] == "interactive_edit"].iloc[0]
    (x1, y1, x2, y2), = ie["bbox_list"][0]
    assert 0 <= x1 < x2 <= ie["width"] and 0 <= y1 < y2 <= ie["height"]


@pytest.mark.notebooks
def test_quickstart_sweep_shows_its_cost_first_and_a_grid(quickstart: Executed) -> None:
    cell = quickstart.cell("sw = wan.sweep(")
    line = quickstart.stdout(cell)
    assert re.search(r"sweep sw-\w+: 8 task\(s\), 8 image\(s\), \$0\.18360 in all; \$0\.18360 to pay", line), line
    (grid,) = quickstart.rich(cell, "text/html")
    assert quickstart.rich(cell, WIDGET_VIEW), "the sweep shows itself live, as a widget"
    for label in ("fox", "owl", "ink wash", "pixel art"):
        assert label in grid
    waited = quickstart.stdout(quickstart.cell("sw.wait()"))
    assert "8/8 done" in waited and "spent $0.18360 of $0.18360" in waited
    df_html = quickstart.rich(quickstart.cell("sw.df["), "text/html")[0]
    assert df_html.count("completed") == 8


@pytest.mark.notebooks
def test_quickstart_rerun_of_the_sweep_costs_nothing(quickstart: Executed) -> None:
    out = quickstart.stdout(quickstart.cell("again = wan.sweep("))
    assert "$0.00000 to pay ($0.18360 already in the log)" in out
    assert "paid this time: $0.00000" in out
    runs = Log(quickstart.home / "log.sqlite").runs()
    swept = runs[runs["sweep_id"].notna()]
    assert len(swept) == 8 and swept["sweep_id"].nunique() == 1  # nothing sent twice


@pytest.mark.notebooks
def test_quickstart_log_grid_and_compare(quickstart: Executed) -> None:
    out = quickstart.stdout(quickstart.cell("log.runs()"))
    assert out.startswith("14 runs, $0.39015 in all"), out
    grid = quickstart.rich(quickstart.cell("log.grid("), "text/html")[0]
    assert grid.count("<img") == 8 and "seed=0" in grid and "seed=1" in grid
    comparison = quickstart.rich(quickstart.cell("log.compare("), "text/plain")[0]
    assert "differ:" in comparison and "seed" in comparison and "style" in comparison


@pytest.mark.notebooks
def test_quickstart_writes_images_in_its_run_folder(quickstart: Executed) -> None:
    images = list((quickstart.home / "images").rglob("*.jpg"))
    thumbs = list((quickstart.home / "thumbs").rglob("*.jpg"))
    assert len(images) == 17 and len(thumbs) == 17  # 1 + 3 + 4 + 1 + 8 sweep images
    for p in quickstart.stdout(quickstart.cell("r.cost_usd")).split("'")[1::2]:
        assert Path(p).is_file() and Path(p).is_relative_to(quickstart.home)


@pytest.mark.notebooks
def test_quickstart_report_is_self_contained_and_escaped(quickstart: Executed) -> None:
    report = quickstart.folder / "report.html"
    assert str(report) in quickstart.stdout(quickstart.cell("export_html("))
    text = report.read_text(encoding="utf-8")
    assert "mountains &amp; a river" in text and "mountains & a river" not in text
    assert len(re.findall(r"src=\"data:image/", text)) >= 17  # thumbnails embedded
    links = re.findall(r'href="([^"]+\.jpg)"', text)
    assert links and all((quickstart.folder / html.unescape(h)).is_file() for h in links)  # relative links work
    assert "<script" not in text


@pytest.mark.notebooks
def test_quickstart_kernel_had_no_key(quickstart: Executed) -> None:
    runs = Log(quickstart.home / "log.sqlite").runs()
    assert set(runs["backend"].astype(str)) == {"simulator"}
    dumped = json.dumps(quickstart.nb)
    assert "Bearer" not in dumped


# ----------------------------------------------------------------- 04: the drawer and the palette editor

INTERACTIVE = REPO / "notebooks" / "04_interactive_editing.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def interactive(tmp_path_factory: pytest.TempPathFactory) -> Executed:
    return execute(INTERACTIVE, tmp_path_factory)


def test_interactive_notebook_says_what_it_teaches() -> None:
    first = nbformat.read(INTERACTIVE, as_version=4).cells[0]
    assert first.cell_type == "markdown" and "draw boxes" in first.source.splitlines()[0].lower()


@pytest.mark.notebooks
def test_interactive_notebook_shows_the_drawer_with_a_static_fallback(interactive: Executed) -> None:
    shown = interactive.cell("d = wan.BBoxDrawer(")
    assert interactive.rich(shown, WIDGET_VIEW), "the drawer is a live widget"
    (static,) = interactive.rich(shown, "text/html")
    assert "wan-bbox-static" in static and "[420,300,900,620]" in static and "data:image/jpeg;base64," in static
    drawer_static = interactive.rich(interactive.cell('display(d, include=["text/html"])'), "text/html")[0]
    assert "[420,300,900,620]" in drawer_static
    refused = interactive.stdout(interactive.cell("except wan.RequestError"))
    assert "bbox_list[0][0]" in refused and "outside the image" in refused


@pytest.mark.notebooks
def test_interactive_notebook_edits_inside_the_drawn_box_and_uses_the_palette(interactive: Executed) -> None:
    runs = Log(interactive.home / "log.sqlite").runs()
    assert list(runs["action"].astype(str)) == ["generate", "interactive_edit", "interactive_edit",
                                                "interactive_edit", "generate"]
    assert (runs["status"].astype(str) == "completed").all()
    edit = runs.iloc[1]
    assert [[list(map(int, b)) for b in bs] for bs in edit["bbox_list"]] == [[[420, 300, 900, 620]]]
    assert (edit["width"], edit["height"]) == (1360, 768)  # the input's size
    palette = runs.iloc[4]["color_palette"]
    assert 3 <= len(palette) <= 5 and sum(int(ratio) for _, ratio in palette) == 100
    editor = interactive.cell("p = wan.PaletteEditor(")
    assert interactive.rich(editor, WIDGET_VIEW) and "wan-palette-static" in interactive.rich(editor, "text/html")[0]


@pytest.mark.notebooks
def test_interactive_notebook_shows_the_edit_only_inside_the_boxes(interactive: Executed) -> None:
    """The reader sees it: a picture of before | after | changed pixels, and the changed area printed."""
    for needle, box in (("where_it_changed(photo, edited", [420, 300, 900, 620]),
                        ("lighthouse = f.wait()", [980, 90, 1300, 420])):
        shown = interactive.cell(needle)
        assert f"pixels changed inside {box}" in interactive.stdout(shown)
        assert interactive.rich(shown, "image/png"), "the side-by-side picture is not in the saved notebook"


@pytest.mark.notebooks
def test_interactive_notebook_generates_from_the_form(interactive: Executed) -> None:
    runs = Log(interactive.home / "log.sqlite").runs()
    formed, code = runs.iloc[2], runs.iloc[3]
    assert [[list(map(int, b)) for b in bs] for bs in formed["bbox_list"]] == [[[980, 90, 1300, 420]]]
    assert float(formed["cost_usd"]) > 0 and bool(code["cache_hit"]) and float(code["cost_usd"]) == 0
    shown = interactive.cell("f = wan.interactive_edit.form(")
    assert interactive.rich(shown, WIDGET_VIEW), "the form is a live widget"
    (static,) = interactive.rich(shown, "text/html")
    # saved as the run left it (its output is refreshed when the run ends): the boxes, the result
    assert "wan-form-static" in static and "[[[980,90,1300,420]]]" in static and "wan-result" in static
    (only_static,) = interactive.rich(interactive.cell("HTML(f.static_html())"), "text/html", of="<IPython")
    assert "wan-form-static" in only_static and "a lighthouse on the far shore" in only_static


# ----------------------------------------------------------------- 07: choosing

CHOOSING = REPO / "notebooks" / "07_choosing.ipynb"


@pytest.fixture(scope="module")
def choosing(tmp_path_factory: pytest.TempPathFactory) -> Executed:
    return execute(CHOOSING, tmp_path_factory)


@pytest.mark.notebooks
def test_choosing_notebook_reports_exactly_the_favourites(choosing: Executed) -> None:
    favourites = set(Log(choosing.home / "log.sqlite").runs(where="stars >= 4")["run_id"])
    page = (choosing.folder / "favourites.html").read_text(encoding="utf-8")
    assert len(favourites) == 3 and set(re.findall(r'<tr id="run-([^"]+)"', page)) == favourites
    assert "holds 3 runs: exactly the 3 rated 4 or more" in choosing.stdout(choosing.cell('export_html("favourites'))


@pytest.mark.notebooks
def test_choosing_notebook_shows_the_stars_without_a_kernel(choosing: Executed) -> None:
    (static,) = choosing.rich(choosing.cell("x = log.explore("), "text/html")
    assert "wan-explore-static" in static and 'title="5 stars"' in static and "★★★★★" in static
    assert choosing.rich(choosing.cell("x = log.explore("), WIDGET_VIEW), "the explorer is a live widget"
    page = _exported(choosing.nb, widget_state=False)  # a notebook saved in JupyterLab, through nbconvert
    assert 'title="5 stars"' in page and 'title="4 stars"' in page
