"""What wan_nb relies on in the libraries it depends on, checked fast (no browser, no network).

- Every third-party module the package imports is a declared dependency (or an extra's),
  so a fresh ``pip install wan_nb`` has it: nothing arrives only through another package.
- The drawer's reload fix speaks ipycanvas' public API only, and its effect is checked on
  what ipycanvas puts on the wire: a new view's redraw names the canvas it draws on. If
  ipycanvas changes how it sends draw commands, this fails first and says what to re-check
  (the browser test ``test_a_reloaded_page_draws_the_image_and_boxes_again``).
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import wan_nb as wan

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "wan_nb"


def _requirement_name(spec: str) -> str:
    """``"httpx>=0.27,<1"`` -> ``"httpx"``, normalised as PyPI compares names."""
    name = re.split(r"[\s\[<>=!~;]", spec.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_level_modules() -> dict[str, list[str]]:
    """Each third-party top-level module imported anywhere in wan_nb (inside functions
    and ``TYPE_CHECKING`` blocks too), with the files that import it."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "wan_nb":
                    continue
                found.setdefault(top, []).append(str(path.relative_to(REPO)))
    return found


def test_every_third_party_import_is_declared() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_requirement_name(spec) for spec in project["dependencies"]}
    extras = {
        _requirement_name(spec): extra
        for extra, specs in project["optional-dependencies"].items()
        if extra != "test"
        for spec in specs
        if not spec.startswith("wan_nb")
    }
    distributions = md.packages_distributions()
    missing = []
    for module, files in _imported_top_level_modules().items():
        names = {_requirement_name(d) for d in distributions.get(module, [module])}
        if not names & (declared | set(extras)):
            missing.append(f"{module} (distribution {sorted(names)}; imported by {sorted(set(files))})")
    assert not missing, "imported by wan_nb but not declared in pyproject's dependencies: " + "; ".join(missing)


def test_nothing_declared_goes_unimported() -> None:
    """A dependency wan_nb does not import is one nobody can tell the reason for."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    distributions = md.packages_distributions()
    imported = {
        _requirement_name(d)
        for module in _imported_top_level_modules()
        for d in distributions.get(module, [module])
    }
    unused = sorted({_requirement_name(spec) for spec in project["dependencies"]} - imported)
    assert not unused, f"declared but never imported by wan_nb: {unused}"


def _commands(sent: list[tuple[Any, Any]]) -> list[list[Any]]:
    """The draw commands in the messages ipycanvas' manager sent: each message's first
    buffer is the JSON of one command, or of a list of them (a ``hold_canvas`` batch)."""
    out: list[list[Any]] = []
    for _content, buffers in sent:
        decoded = json.loads(bytes(buffers[0]))
        out.extend(decoded if decoded and isinstance(decoded[0], list) else [decoded])
    return out


def test_a_new_view_is_told_which_canvas_to_draw_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reloaded page's front end does not know which canvas ipycanvas drew on last
    (jupyter-widgets-contrib/ipycanvas#322): the drawer's redraw for a new view must name
    its canvas before drawing, in one message (one ``hold_canvas`` batch)."""
    from ipycanvas.canvas import COMMANDS

    drawer = wan.BBoxDrawer(Image.new("RGB", (640, 480), (120, 170, 220)), bbox_list=[[[10, 10, 200, 150]]])
    canvas = drawer._canvases[0]
    manager = canvas._canvas_manager  # the widget every canvas sends its draw commands through
    sent: list[tuple[Any, Any]] = []
    monkeypatch.setattr(manager, "send", lambda content, buffers=None: sent.append((content, buffers)))

    drawer._draw_boxes(0)  # an ordinary redraw: the manager already drew on this canvas last
    canvas._client_ready_callbacks()  # what ipycanvas runs when a view (re)appears
    hint = ("a new view's redraw (BBoxDrawer._redraw_for_new_view) no longer names its canvas as a reloaded "
            "page needs; if ipycanvas changed how it sends draw commands, re-check the reload in a browser "
            "(tests/test_browser_widgets.py::test_a_reloaded_page_draws_the_image_and_boxes_again)")
    assert len(sent) == 2, f"{hint}: expected one message per redraw, got {len(sent)}"
    switch, clear = COMMANDS["switchCanvas"], COMMANDS["clear"]
    new_view = _commands(sent[1:])
    switches = [i for i, c in enumerate(new_view) if c[0] == switch]
    assert switches, f"{hint}: the new view's redraw does not say which canvas it draws on"
    last = switches[-1]
    assert new_view[last][1] == [f"IPY_MODEL_{canvas.model_id}"], f"{hint}: it names another canvas last"
    assert [c[0] for c in new_view[last + 1:]][:1] == [clear], f"{hint}: the boxes are not drawn after the switch"
