"""The package's shape: its public names, where they say they live, and its import graph."""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path

import wan_nb as wan

PACKAGE = Path(wan.__file__).parent


def test_all_is_sorted_and_is_exactly_the_public_names() -> None:
    assert wan.__all__ == sorted(wan.__all__)
    eager = {name for name, value in vars(wan).items()
             if not name.startswith("_") and not inspect.ismodule(value)}
    assert set(wan.__all__) == eager | set(wan._LAZY), "a public name missing from __all__, or a stray import"
    assert len(set(wan.__all__)) == len(wan.__all__)


def test_every_public_object_says_it_lives_in_wan_nb() -> None:
    # The widgets load lazily; import their modules directly first, as Log.explore() does,
    # so the name is right whichever way a widget module was loaded.
    for module in set(wan._LAZY.values()):
        importlib.import_module(module, "wan_nb")
    wrong = {name: getattr(wan, name).__module__ for name in wan.__all__
             if getattr(wan, name).__module__ != "wan_nb"}
    assert not wrong
    assert repr(wan.RequestError).endswith("'wan_nb.RequestError'>")
    import wan_nb.sim

    assert wan_nb.sim.Simulator.__module__ == "wan_nb.sim"


# -- the import graph -------------------------------------------------------------------------

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(module: str) -> Iterator[tuple[str, bool]]:
    """(imported wan_nb module, imported inside a function) for each import that runs.

    ``if TYPE_CHECKING:`` imports never run (annotations are strings), so they are not edges.
    Importing a module also runs its parent packages' ``__init__``: a subpackage (``sim``)
    counts; the root ``wan_nb`` does not (it is the facade that imports everything).
    """
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - child.level + 1] if child.level else []
                origin = ".".join([*base, child.module] if child.module else base)
                targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in MODULES else origin
                           for a in child.names]
            for target in targets:
                parts = target.split(".")
                for i in range(2, len(parts) + 1):
                    name = ".".join(parts[:i])
                    if name in MODULES and name != module and not module.startswith(name + "."):
                        yield name, inner
                if target == "wan_nb":
                    yield target, inner
            yield from walk(child, inner)

    yield from walk(ast.parse(path.read_text(encoding="utf-8")), False)


# A lower object may open a widget on request, loading it lazily the way ``wan.<Widget>``
# does (``wan_nb._LAZY``): an entry point, not a dependency (nothing below uses what it
# returns). Each one is listed here so a new one is a decision, not an accident.
WIDGET_ENTRY_POINTS = {("wan_nb._log", "wan_nb._explore"), ("wan_nb._explore", "wan_nb._form")}


def _graph() -> dict[str, set[str]]:
    widgets = {"wan_nb" + m for m in wan._LAZY.values()}
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for target, in_function in _imports(module):
            if in_function and target in widgets:
                assert (module, target) in WIDGET_ENTRY_POINTS, f"new lazy widget import {module} -> {target}"
                continue
            graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    """Layers call only downward: a lazy import inside a function is a dependency like any other."""
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = _graph()
    graph["wan_nb._spec"].add("wan_nb._request")  # _request imports _spec: now both ways
    assert any({"wan_nb._request", "wan_nb._spec"} <= set(c) for c in _cycles(graph))


STORAGE = ("wan_nb._store", "wan_nb._result", "wan_nb._atomic", "wan_nb._log_engine", "wan_nb._log_writer",
           "wan_nb._log_rows", "wan_nb._log_values", "wan_nb._log_paths", "wan_nb._log_schema", "wan_nb._log_query",
           "wan_nb._log_frames", "wan_nb._log_export", "wan_nb._log_postgres", "wan_nb._log_dialect",
           "wan_nb._log_copy")
VIEWS = {"wan_nb._grid", "wan_nb._report", "wan_nb._live_grid", "wan_nb._explore"}


def test_storage_does_not_import_the_views() -> None:
    """Storage does its work without the views. An image shows itself as a tile (``_tiles``,
    a view-building block below storage, like ``_html_parts``); what a user asks of the log
    as a view (``Log.grid()``, ``Log.explore()``) is loaded by the ``Log`` face on request."""
    for storage in STORAGE:
        assert storage in MODULES, storage
        assert not {t for t, _ in _imports(storage)} & VIEWS, storage


# Every import inside a function loads something heavy only when it is used (pandas, ipywidgets,
# the simulator, a view); none dodges a cycle (the cycle test counts them as edges). Each one is
# listed with its reason, so a new one is a decision, not an accident. The command line loads
# per command (``wan-nb --help`` stays instant).
LAZY_LOADS = {
    ("wan_nb._log", "wan_nb._log_frames"): "pandas, with the first DataFrame",
    ("wan_nb._log", "wan_nb._log_export"): "pandas, with the first file written",
    ("wan_nb._log", "wan_nb._report"): "a view (pandas, Pillow), when asked for",
    ("wan_nb._log", "wan_nb._explore"): "a widget (ipywidgets), when asked for",
    ("wan_nb._log", "wan_nb._log_postgres"): "the PostgreSQL engine and its driver (psycopg, the postgres extra), "
                                             "when a log URL names PostgreSQL",
    ("wan_nb._explore", "wan_nb._form"): "a widget (the form), when a run is opened in one",
    ("wan_nb._session", "wan_nb.sim"): "the simulator, when connect() starts one",
    ("wan_nb._sweep", "wan_nb._live_grid"): "ipywidgets, when a running sweep is first shown",
}


def test_every_import_inside_a_function_is_a_listed_lazy_load() -> None:
    found = {(m, t) for m in MODULES if m != "wan_nb.cli" for t, inner in _imports(m) if inner}
    assert found == set(LAZY_LOADS)


def test_import_wan_nb_loads_neither_pandas_nor_ipywidgets() -> None:
    """Scripts, the CLI and the simulator a server runs stay light; a notebook loads them
    with the first DataFrame or widget (the time it takes: ``python -m benchmarks --only imports``)."""
    import subprocess
    import sys

    code = ("import sys, wan_nb, wan_nb.sim; "
            "print(sorted(m for m in ('pandas', 'ipywidgets', 'ipycanvas', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_architecture_names_every_module() -> None:
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__main__.py")
    missing = [name for name in top if f"`{name}`" not in text]
    assert not missing, f"ARCHITECTURE.md does not list {missing}"
    sim = (PACKAGE / "sim" / "__init__.py").read_text(encoding="utf-8")
    unlisted = [p.stem for p in (PACKAGE / "sim").glob("_*.py")
                if not p.stem.startswith("__") and f"``{p.stem}``" not in sim]
    assert not unlisted, f"sim/__init__.py's docstring does not list {unlisted}"
