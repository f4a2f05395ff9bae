"""The public API keeps its types: what Shift-Tab, completion, help() and a type checker see.

Each mode function's keyword arguments are exactly the fields its mode takes (read
from ``_spec``, so the signatures and the rules cannot drift), typed, with the
document's defaults; its docstring documents every one and names the limits; an
unknown name is still wan_nb's RequestError with a "did you mean", not a TypeError.
The sync ``Client`` has the signatures of ``AsyncClient``.
"""

from __future__ import annotations

import inspect
import pydoc
import re
import typing
import warnings

import pytest

import wan_nb as wan
from wan_nb import _modes, _spec
from wan_nb._request import FIELDS

URL = "https://cdn.example.com/cat.jpg"
MODES = {name: getattr(wan, name) for name in _spec.ACTIONS}
# A valid call of each mode function up to its keyword arguments (URLs: nothing is read).
POSITIONAL: dict[str, tuple[typing.Any, ...]] = {
    "generate": ("a fox",), "image2image": ("a fox", URL), "edit": ("a fox", URL),
    "reference": ("a fox", [URL, URL]), "group": ("a fox",),
    "interactive_edit": ("a fox", URL, [[0, 0, 10, 10]]),
}
# Fields of the document no mode function has as a parameter, and why.
NOT_PARAMETERS = {
    "model": "one value, filled in (still taken through **fields)",
    "action": "the function is the mode (wan.run takes it)",
    "image_urls": "the image / images argument",
    "enable_sequential": "implied by the mode: true exactly in group mode (wan.run takes it)",
}
# Where a parameter's default is not the document's, and why.
OWN_DEFAULTS = {
    ("group", "n"): 4,  # a group of one is no group
    ("run", "thinking_mode"): None,  # on where it has an effect: given elsewhere it would warn
    ("run", "enable_sequential"): None,  # inferred from the mode
    ("run", "action"): None,  # inferred from the fields
}


def _fields_taken(mode: str) -> set[str]:
    """The names a mode function should take: the fields with an effect in its mode (the
    document's activation conditions, ``_spec.has_effect``), its images as ``image`` (one)
    or ``images`` (several), never for a mode that takes none."""
    names = {f for f in FIELDS if f not in NOT_PARAMETERS and _spec.has_effect(f, mode)}
    most = _spec.IMAGE_COUNTS[mode][1]
    if most:
        names.add("image" if most == 1 else "images")
    return names


def _parameters(function: typing.Callable[..., typing.Any]) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(function).parameters)


def _field_parameters(function: typing.Callable[..., typing.Any]) -> set[str]:
    return {name for name, p in _parameters(function).items()
            if p.kind is not p.VAR_KEYWORD and name not in _modes.RUN_OPTIONS}


def _documented(function: typing.Callable[..., typing.Any]) -> set[str]:
    """The names the docstring's numpy-style Parameters section describes."""
    doc = inspect.getdoc(function) or ""
    section = doc.split("Parameters\n----------\n", 1)[1].split("\n\n", 1)[0]
    section = re.split(r"\n(?=Returns\n)", section)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line and not line.startswith(" "):
            names.update(n.strip() for n in line.split(" : ")[0].split(","))
    return names


# -- the mode functions ----------------------------------------------------------------------

def test_the_mode_type_names_the_six_actions() -> None:
    assert typing.get_args(_spec.Mode) == _spec.ACTIONS
    assert typing.get_args(_spec.AspectRatio) == _spec.ASPECT_RATIOS
    assert typing.get_args(_spec.Resolution) == _spec.RESOLUTIONS


def test_generate_lists_prompt_seed_aspect_ratio_and_resolution() -> None:
    assert {"prompt", "seed", "aspect_ratio", "resolution"} <= set(_parameters(wan.generate))


@pytest.mark.parametrize("mode", _spec.ACTIONS)
def test_each_mode_function_takes_exactly_the_fields_its_mode_takes(mode: str) -> None:
    assert _field_parameters(MODES[mode]) == _fields_taken(mode)


def test_run_takes_every_field() -> None:
    assert _field_parameters(wan.run) == (set(FIELDS) - {"model", "image_urls"}) | {"images"}


@pytest.mark.parametrize("name", [*_spec.ACTIONS, "run"])
def test_every_parameter_is_typed_and_keyword_options_have_the_documented_defaults(name: str) -> None:
    function = getattr(wan, name)
    parameters = _parameters(function)
    hints = typing.get_type_hints(function)  # every annotation resolves (no name left dangling)
    assert hints["return"] is wan.Result
    assert next(iter(parameters)) == "prompt"
    *named, rest = parameters.values()
    assert rest.kind is rest.VAR_KEYWORD and rest.name == "fields"
    for p in named:
        assert p.annotation is not p.empty and p.name in hints, p.name
        if p.kind is p.KEYWORD_ONLY:
            assert p.default is not p.empty, p.name
        if (name, p.name) in OWN_DEFAULTS:
            assert p.default == OWN_DEFAULTS[name, p.name]
        elif p.name in _spec.DEFAULTS:
            assert p.default == _spec.DEFAULTS[p.name], p.name
        elif p.name in FIELDS:
            assert p.default is None or p.kind is p.POSITIONAL_OR_KEYWORD, p.name  # "not given"
    assert {p: parameters[p].default for p in _modes.RUN_OPTIONS} == {
        "fresh": False, "timeout": None, "tags": None, "note": None}
    # the same keyword, the same type, in every function
    assert hints["seed"] is int and hints["resolution"] == _spec.Resolution
    assert hints["aspect_ratio"] == _spec.AspectRatio


def test_the_positional_arguments_stay_where_they_were() -> None:
    positional = {name: [n for n, p in _parameters(f).items() if p.kind is p.POSITIONAL_OR_KEYWORD]
                  for name, f in MODES.items()}
    assert positional == {
        "generate": ["prompt"], "image2image": ["prompt", "image"], "edit": ["prompt", "image"],
        "reference": ["prompt", "images"], "group": ["prompt", "n"],
        "interactive_edit": ["prompt", "images", "bbox_list"],
    }
    assert [n for n, p in _parameters(wan.run).items() if p.kind is p.POSITIONAL_OR_KEYWORD] == ["prompt"]


@pytest.mark.parametrize("name", [*_spec.ACTIONS, "run"])
def test_the_docstring_documents_every_parameter_and_shows_in_help(name: str) -> None:
    function = getattr(wan, name)
    assert _documented(function) == {n if p.kind is not p.VAR_KEYWORD else f"**{n}"
                                     for n, p in _parameters(function).items()}
    text = re.sub(".\b", "", pydoc.render_doc(function))  # what help() prints, without its bold
    assert "aspect_ratio" in text and "did you mean" in text


@pytest.mark.parametrize("mode", _spec.ACTIONS)
def test_the_docstring_names_the_modes_limits(mode: str) -> None:
    doc = inspect.getdoc(MODES[mode]) or ""
    assert f"1 to {_spec.max_n(mode)}" in doc
    assert "-1: random" in doc and f"0 to {_spec.SEED_MAX}" in doc
    resolutions = ", ".join(f'"{r}"' for r in _spec.resolutions_for(mode))  # the ones it takes, no more
    assert f'resolution : {{{resolutions}}}, default "{_spec.DEFAULT_RESOLUTION}"' in doc
    assert all(ratio in doc for ratio in _spec.ASPECT_RATIOS)
    lo, hi = _spec.IMAGE_COUNTS[mode]
    if hi:
        assert f"{_spec.MAX_IMAGE_BYTES // 2**20} MB" in doc
        assert (f"Exactly {lo} image" if lo == hi else f"{lo} to {hi} images") in doc
    if _spec.has_effect("color_palette", mode):
        assert f"{_spec.PALETTE_MIN_ITEMS} to {_spec.PALETTE_MAX_ITEMS} colours" in doc
        assert f"adding up to {_spec.PALETTE_RATIO_SUM}" in doc
    if mode == _spec.INTERACTIVE_EDIT:
        assert f"1 to {_spec.MAX_BOXES_PER_IMAGE} boxes" in doc
    for field in ("thinking_mode", "color_palette"):  # no effect here: a warning, not sent
        if not _spec.has_effect(field, mode):
            assert re.search(rf"``{field}``[^.]*no effect[^.]*warning", doc, re.S), field


# -- names no parameter takes ------------------------------------------------------------------

@pytest.mark.parametrize("mode", _spec.ACTIONS)
def test_an_unknown_name_is_the_friendly_request_error(mode: str) -> None:
    with pytest.raises(wan.RequestError, match="did you mean 'seed'") as err:
        MODES[mode](*POSITIONAL[mode], sed=3)
    assert [p.field for p in err.value.problems] == ["sed"]  # and nothing else is wrong
    assert not isinstance(err.value, TypeError)


def test_an_unknown_name_is_listed_with_every_other_problem_and_run_options_are_suggested() -> None:
    with pytest.raises(wan.RequestError) as err:
        wan.generate("a fox", seed=-5, timout=30, colour_palette=[])
    assert [(p.field, p.rule) for p in err.value.problems] == [
        ("timout", "unknown_field"), ("colour_palette", "unknown_field"), ("seed", "range")]
    assert "did you mean 'timeout'" in str(err.value) and "did you mean 'color_palette'" in str(err.value)
    with pytest.raises(wan.RequestError, match="did you mean 'seed'"):
        wan.run("a fox", sed=3)


def test_the_mode_of_a_mode_function_is_not_an_argument() -> None:
    with pytest.raises(wan.RequestError, match=r"wan.generate\(\) is the generate mode") as err:
        wan.generate("a fox", action="edit")
    assert [p.field for p in err.value.problems] == ["action"]
    with pytest.raises(wan.RequestError, match="given twice"):
        wan.image2image("a fox", URL, image_urls=[URL])


class _Stop(Exception):
    """Raised by a stand-in session instead of running the request."""


class _Session:
    def run(self, request: typing.Any, *, on_update: typing.Any, tick: typing.Any, **options: typing.Any) -> typing.Any:
        raise _Stop(request, options)  # the run options (on_update and tick: the status line's)


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_modes, "session", _Session)


@pytest.mark.usefixtures("no_run")
def test_a_field_without_effect_here_passes_on_and_warns_at_the_callers_line() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(_Stop) as stop:
            wan.image2image("a fox", URL, thinking_mode=True, model=_spec.MODEL)  # the line warned about
    request, options = stop.value.args
    assert request.action == "image2image" and "thinking_mode" in request.ignored
    assert [(w.category, w.filename) for w in seen] == [(wan.WanWarning, __file__)]
    assert options == {"fresh": False, "timeout": None, "tags": None, "note": None}


@pytest.mark.usefixtures("no_run")
def test_every_argument_reaches_the_request_and_the_run() -> None:
    palette = [{"hex": "#0A2540", "ratio": 50}, {"hex": "#F5F5F0", "ratio": 35}, {"hex": "#E04B3A", "ratio": 15}]
    with pytest.raises(_Stop) as stop:
        wan.generate("a fox", n=2, seed=7, aspect_ratio="16:9", resolution="4K", thinking_mode=False,
                     color_palette=palette, watermark=True, callback_url="https://hooks.example.com/x",
                     callback_events=["completed"], fresh=True, timeout=30, tags=["t"], note="n")
    request, options = stop.value.args
    assert (request.n, request.seed, request.aspect_ratio, request.resolution, request.thinking_mode,
            request.watermark, request.callback_url, request.callback_events) == (
        2, 7, "16:9", "4K", False, True, "https://hooks.example.com/x", ("completed",))
    assert request.color_palette == (("#0A2540", 50), ("#F5F5F0", 35), ("#E04B3A", 15))
    assert options == {"fresh": True, "timeout": 30, "tags": ["t"], "note": "n"}
    with pytest.raises(_Stop) as stop:
        wan.group("a comic", 6, resolution="1K")
    assert (stop.value.args[0].action, stop.value.args[0].n, stop.value.args[0].enable_sequential) == ("group", 6, True)
    with pytest.raises(_Stop) as stop:
        wan.interactive_edit("a boat", URL, [10, 10, 50, 50])  # one image: a single box is enough
    assert stop.value.args[0].bbox_list == (((10, 10, 50, 50),),)
    with pytest.raises(_Stop) as stop:
        wan.run("a fox", images=[URL, URL])
    assert stop.value.args[0].action == "reference"


def test_the_forms_of_the_mode_functions_are_still_attached() -> None:
    for mode, function in MODES.items():
        opener = function.form  # set on the function by wan_nb/__init__
        assert list(_parameters(opener)) == ["prompt", "fields"] and opener.__qualname__ == f"{mode}.form"
        f = opener("a fox", seed=3)
        assert f.fields.action == mode and f.fields.prompt.value == "a fox" and f.fields.seed.value == 3
    sf = wan.sweep.form("a {x}", x="a, b", seed="1-2")  # type: ignore[attr-defined]
    assert list(_parameters(wan.sweep.form)) == ["template", "values"]  # type: ignore[attr-defined]
    assert len(sf.plan.cells) == 4


# -- the sync client -------------------------------------------------------------------------

def _coroutine_methods(cls: type) -> dict[str, typing.Any]:
    return {name: f for name, f in vars(cls).items() if not name.startswith("_") and inspect.iscoroutinefunction(f)}


def test_every_async_client_method_has_a_blocking_twin_with_its_signature() -> None:
    twins = {"aclose": "close"}  # the one name that differs: close() is the sync spelling
    methods = _coroutine_methods(wan.AsyncClient)
    assert {"submit", "get", "cancel", "wait", "download", "run"} <= set(methods)
    for name, async_method in methods.items():
        sync_method = getattr(wan.Client, twins.get(name, name))
        assert not inspect.iscoroutinefunction(sync_method), name
        if name in twins:
            continue
        async_sig, sync_sig = inspect.signature(async_method), inspect.signature(sync_method)
        assert sync_sig == async_sig, name
        assert list(sync_sig.parameters) == list(async_sig.parameters) and sync_sig.parameters, name
        assert sync_sig.return_annotation == async_sig.return_annotation != inspect.Signature.empty, name
        assert typing.get_type_hints(sync_method) == typing.get_type_hints(async_method), name
        assert sync_method.__doc__ == async_method.__doc__ and sync_method.__qualname__ == f"Client.{name}"
    assert inspect.signature(wan.Client.close).return_annotation == inspect.signature(
        wan.AsyncClient.aclose).return_annotation
    assert inspect.signature(wan.Client.__init__) == inspect.signature(wan.AsyncClient.__init__)
    assert typing.get_type_hints(wan.Client.__init__) == typing.get_type_hints(wan.AsyncClient.__init__)


def test_the_blocking_client_runs_the_async_method(sim, tmp_path) -> None:
    with wan.Client("k", sim.base_url, store=wan.Store(tmp_path)) as client:
        task = client.submit({"prompt": "a fox", "resolution": "1K", "seed": 1}, wait=0)
        assert isinstance(task, wan.Task)
        done = client.wait(task.task_id, timeout=30)
        assert done.status == "completed" and client.get(task.task_id).task_id == task.task_id
        assert isinstance(client.download(done)[0], wan.StoredImage)


# -- sweep and the forms ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sweep", "form", "sweep_form", "connect"])
def test_sweep_and_the_forms_are_typed_and_document_every_parameter(name: str) -> None:
    function = getattr(wan, name)
    parameters = _parameters(function)
    hints = typing.get_type_hints(function)
    assert all(n in hints for n in parameters), [n for n in parameters if n not in hints]
    assert _documented(function) == {n if p.kind is not p.VAR_KEYWORD else f"**{n}" for n, p in parameters.items()}
    if "mode" in parameters:
        assert hints["mode"] == _spec.Mode and parameters["mode"].default == _spec.GENERATE


def test_sweep_options_are_keyword_arguments_and_the_axes_stay_free() -> None:
    parameters = _parameters(wan.sweep)
    assert list(parameters) == ["prompts", "budget_usd", "confirm", "concurrency", "fresh", "timeout", "tags",
                                "start", "quiet", "axes"]
    assert parameters["axes"].kind is inspect.Parameter.VAR_KEYWORD  # their order is the grid's
    assert {n: p.default for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY} == {
        "budget_usd": None, "confirm": False, "concurrency": None, "fresh": False, "timeout": None, "tags": None,
        "start": True, "quiet": False}
    doc = inspect.getdoc(wan.sweep) or ""
    assert "random_seeds" in doc and "vary" in doc and "did you mean" in doc


def test_forms_take_the_fields_by_name_and_still_name_a_misspelt_one() -> None:
    parameters = _parameters(wan.form)
    assert {"prompt", "images", "n", "seed", "aspect_ratio", "resolution", "thinking_mode", "color_palette",
            "bbox_list", "watermark"} <= set(parameters)
    assert all(p.default is None for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY)  # the field's own
    f = wan.form("group", prompt="a comic", n=6, seed=3, resolution="1K")
    assert (f.request.action, f.request.n, f.request.seed, f.request.resolution) == ("group", 6, 3, "1K")
    with pytest.raises(wan.RequestError, match="did you mean 'seed'"):
        wan.form(prompt="x", sed=4)
    with pytest.raises(wan.RequestError, match="did you mean 'animal'"):
        wan.sweep_form("a {animal} in snow", anmial="fox, owl")  # not dropped without a word
    with pytest.raises(wan.RequestError, match="did you mean 'seed'"):
        wan.sweep_form("a {animal} in snow", animal="fox, owl", sed="1-4")
    sf = wan.sweep_form("a {animal} in snow", "group", animal="fox, owl", seed="1-2", resolution="1K")
    assert len(sf.plan.cells) == 4 and sf.plan.cells[0].request.action == "group"
