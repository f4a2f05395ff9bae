"""The fields of a request as widgets, shown per mode as the document describes them.

``FieldPanel`` holds one input widget per field and a problem line next to each. What
a mode shows, and the limits it states, come from ``_spec`` (how many images, n up to
4 or 12, the resolutions up to the mode's cap, thinking_mode and color_palette only
where they have an effect). What is *wrong* comes from the request model only: the
form builds the request on every change and puts each of ``RequestError.problems``
next to the field it names (``field_of``): there is no second copy of the rules here.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as widgets

from . import _spec
from ._bbox import BBoxDrawer
from ._exceptions import Problem, RequestError, WanError
from ._form_images import ImagePicker
from ._html_parts import FONT, esc
from ._palette import PaletteEditor
from ._request import build_request, unknown_fields

MODE_LABELS = {
    _spec.GENERATE: "generate · text to image",
    _spec.IMAGE2IMAGE: "image2image · from one image",
    _spec.EDIT: "edit · change one image",
    _spec.REFERENCE: "reference · fuse 2-9 images",
    _spec.GROUP: "group · related images (comic, storyboard)",
    _spec.INTERACTIVE_EDIT: "interactive_edit · edit inside boxes",
}
# Names a form takes besides the document's fields.
FORM_NAMES = ("mode", "images", "image")
# Where a problem of a request field is shown (the rest: under the field of the same name).
_SHOWN_AT = {"image_urls": "images", "image": "images", "action": "mode", "enable_sequential": "mode", "model": "mode"}
LABEL_WIDTH = "110px"


def field_of(name: str) -> str:
    """The form field a problem belongs to: ``color_palette[1].hex`` → ``color_palette``."""
    base = re.split(r"[.\[]", name, maxsplit=1)[0]
    return _SHOWN_AT.get(base, base)


def field_row(label: str, children: list[widgets.Widget], problem: widgets.HTML) -> widgets.Box:
    """A label in its column, the field's widgets (wrapping within their column, never
    under the label) and its problem line right below them."""
    problem.add_class("wan-form-problem")
    head = widgets.HTML(f"<b style='{FONT}'>{esc(label)}</b>",
                        layout=widgets.Layout(width=LABEL_WIDTH, flex="0 0 auto"))
    body = widgets.VBox([widgets.HBox(children, layout=widgets.Layout(align_items="center", flex_flow="row wrap")),
                         problem], layout=widgets.Layout(flex="1 1 auto", min_width="0"))
    return widgets.HBox([head, body], layout=widgets.Layout(align_items="flex-start"))


def problem_html(problems: list[Problem]) -> str:
    return "".join(f"<div style='{FONT};color:#b3261e'>⚠ {esc(p.field)}: {esc(p.message)}</div>" for p in problems)


def _image_key(value: Any) -> str:
    """The same input image, however it was handed over again (a stored result, a path, a URL)."""
    return str(getattr(value, "path", value))


def _count_text(action: str) -> str:
    lo, hi = _spec.IMAGE_COUNTS[action]
    return f"{lo} image" if lo == hi == 1 else f"{lo}-{hi} images"


class FieldPanel(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """Mode selector and the fields of that mode; ``on_change()`` after every edit."""

    def __init__(self, on_change: Callable[[], None], *, prompt_label: str = "Prompt",
                 prompt_hint: str = "describe the image (or the edit) in words") -> None:
        self._on_change = on_change
        self._quiet = 0
        self.mode = widgets.Dropdown(options=[(label, a) for a, label in MODE_LABELS.items()],
                                     value=_spec.GENERATE, layout=widgets.Layout(width="340px"))
        self.prompt = widgets.Textarea(placeholder=prompt_hint, continuous_update=True, rows=3,
                                       layout=widgets.Layout(width="560px"))
        self.images = ImagePicker(self._images_changed)
        self.drawer: BBoxDrawer | None = None
        self._drawer_box = widgets.VBox()
        self.n = widgets.IntText(value=_spec.DEFAULTS["n"], layout=widgets.Layout(width="80px"))
        self.seed = widgets.IntText(value=0, disabled=True, layout=widgets.Layout(width="130px"))
        self.random_seed = widgets.Checkbox(value=True, description="random", indent=False,
                                            layout=widgets.Layout(width="90px"))
        self.new_seed = widgets.Button(description="new seed", icon="random", layout=widgets.Layout(width="110px"),
                                       tooltip="draw a seed now and keep it (the same seed makes the same image)")
        self.new_seed.on_click(lambda _: self.draw_seed())
        self.aspect_ratio = widgets.Dropdown(options=list(_spec.ASPECT_RATIOS), value=_spec.DEFAULTS["aspect_ratio"],
                                             layout=widgets.Layout(width="90px"))
        self.resolution = widgets.Dropdown(options=list(_spec.RESOLUTIONS), value=_spec.DEFAULTS["resolution"],
                                           layout=widgets.Layout(width="90px"))
        self.watermark = widgets.Checkbox(value=_spec.DEFAULTS["watermark"], description="watermark", indent=False)
        self.thinking_mode = widgets.Checkbox(value=_spec.DEFAULTS["thinking_mode"], indent=False,
                                              description="thinking mode (visual reasoning first)")
        self.use_palette = widgets.Checkbox(value=False, description="use a colour palette", indent=False)
        self.palette = PaletteEditor()
        self.seed_note = widgets.HTML()
        self._hints: dict[str, widgets.HTML] = {k: widgets.HTML() for k in ("images", "n", "resolution")}
        self.problems: dict[str, widgets.HTML] = {}
        self.rows: dict[str, widgets.Box] = {}
        rows = [
            self._row("mode", "Mode", [self.mode]),
            self._row("prompt", prompt_label, [self.prompt]),
            self._row("images", "Images", [self.images, self._hints["images"]]),
            self._row("bbox_list", "Boxes", [self._drawer_box]),
            self._row("n", "n", [self.n, self._hints["n"]]),
            self._row("seed", "Seed", [self.seed, self.random_seed, self.new_seed, self.seed_note]),
            self._row("aspect_ratio", "Aspect ratio", [self.aspect_ratio]),
            self._row("resolution", "Resolution", [self.resolution, self._hints["resolution"]]),
            self._row("watermark", "", [self.watermark]),
            self._row("thinking_mode", "", [self.thinking_mode]),
            self._row("color_palette", "Palette", [widgets.VBox([self.use_palette, self.palette])]),
        ]
        super().__init__(rows)
        self.add_class("wan-form-fields")
        self.mode.observe(lambda _: self._mode_changed(), "value")
        self.random_seed.observe(lambda _: self._random_changed(), "value")
        self.use_palette.observe(lambda _: self._apply_mode(), "value")
        for w in (self.prompt, self.n, self.seed, self.aspect_ratio, self.resolution, self.watermark,
                  self.thinking_mode, self.use_palette):
            w.observe(lambda _: self._changed(), "value")
        self.palette.observe(lambda _: self._changed(), ["color_palette", "problem"])
        self._apply_mode()

    def _row(self, name: str, label: str, children: list[widgets.Widget]) -> widgets.Box:
        problem = widgets.HTML()
        problem.add_class(f"wan-form-problem-{name}")
        self.problems[name] = problem
        row = field_row(label, children, problem)
        row.add_class(f"wan-form-{name}")
        self.rows[name] = row
        return row

    # -- reading ----------------------------------------------------------------------
    @property
    def action(self) -> str:
        return str(self.mode.value)

    def takes_images(self) -> bool:
        return _spec.IMAGE_COUNTS[self.action][1] > 0

    def request_args(self) -> tuple[str, str, list[Any] | None, dict[str, Any]]:
        """(action, prompt, images, fields) for ``make_request``: what the fields say now."""
        action = self.action
        fields: dict[str, Any] = {
            "n": self.n.value,
            "seed": _spec.RANDOM_SEED if self.random_seed.value else self.seed.value,
            "aspect_ratio": self.aspect_ratio.value,
            "resolution": self.resolution.value,
            "watermark": self.watermark.value,
        }
        if _spec.has_effect("thinking_mode", action):
            fields["thinking_mode"] = self.thinking_mode.value
        if self.use_palette.value and _spec.has_effect("color_palette", action):
            fields["color_palette"] = self.palette.color_palette
        if _spec.has_effect("bbox_list", action):
            fields["bbox_list"] = self.drawer.bbox_list if self.drawer is not None else None
        images = self.images.refs if self.takes_images() else None
        return action, self.prompt.value, images, fields

    def refused(self) -> list[Problem]:
        """Values typed into a field that the field did not take (a palette hex)."""
        if self.use_palette.value and _spec.has_effect("color_palette", self.action) and self.palette.problem:
            return [Problem("color_palette", "hex", self.palette.problem)]
        return []

    # -- writing ----------------------------------------------------------------------
    @contextmanager
    def batch(self) -> Iterator[None]:
        """Several changes, one ``on_change`` at the end."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1
        self._changed()

    def set(self, **values: Any) -> None:
        """Set fields by name (``mode``/``action``, ``prompt``, ``n``, ``seed`` (-1: random),
        ``aspect_ratio``, ``resolution``, ``watermark``, ``thinking_mode``, ``color_palette``
        (a palette, an editor, or None for none), ``images``/``image``/``image_urls``,
        ``bbox_list``). A value a field cannot hold is a RequestError naming it."""
        problems = unknown_fields(k for k in values if k not in FORM_NAMES)
        if problems:
            raise RequestError(problems)
        if "action" in values:
            values["mode"] = values.pop("action")
        images = next((values.pop(k) for k in ("images", "image", "image_urls") if k in values), None)
        with self.batch():
            if "mode" in values:
                self._choose(self.mode, "action", values.pop("mode"))
            if images is not None:
                self.images.set(images)
            if "bbox_list" in values:
                boxes = values.pop("bbox_list")
                if self.drawer is None:
                    raise RequestError([Problem("bbox_list", "images", "boxes need the images first (images=...)")])
                if boxes is not None:
                    self.drawer.bbox_list = boxes
            if "seed" in values:
                seed = values.pop("seed")
                self.random_seed.value = seed is None or seed == _spec.RANDOM_SEED
                if not self.random_seed.value:
                    self.seed.value = seed
            if "color_palette" in values:
                palette = values.pop("color_palette")
                self.use_palette.value = palette is not None
                if palette is not None:
                    self.palette.color_palette = getattr(palette, "color_palette", palette)
            for name in ("aspect_ratio", "resolution"):
                if name in values:
                    self._choose(getattr(self, name), name, values.pop(name))
            for name, value in values.items():
                getattr(self, name).value = value

    def _choose(self, dropdown: widgets.Dropdown, name: str, value: Any) -> None:
        """Pick a value a dropdown offers; one it does not offer is refused by the request's own rule."""
        if isinstance(value, str) and name == "resolution":
            value = value.upper()
        offered = [o[1] if isinstance(o, tuple) else o for o in dropdown.options]
        if value in offered:
            dropdown.value = value
            return
        try:
            build_request(**{"prompt": "-", "action": self.action, name: value})
        except RequestError as exc:
            own = [p for p in exc.problems if field_of(p.field) == field_of(name)]
            raise RequestError(own or exc.problems) from None
        raise RequestError([Problem(name, "one_of", f"{value!r} is not offered here")])

    def draw_seed(self) -> int:
        """A new random seed, kept in the field (so the next run is reproducible as it is)."""
        seed = random.SystemRandom().randint(_spec.SEED_MIN, _spec.SEED_MAX)
        with self.batch():
            self.random_seed.value = False
            self.seed.value = seed
        return seed

    # -- per-mode view ----------------------------------------------------------------
    def _mode_changed(self) -> None:
        with self.batch():
            self._apply_mode()

    def _random_changed(self) -> None:
        self.seed.disabled = bool(self.random_seed.value)
        self._changed()

    def _apply_mode(self) -> None:
        action = self.action
        hi = _spec.IMAGE_COUNTS[action][1]
        self._show("images", hi > 0)
        self.images.single = hi == 1
        self._hints["images"].value = f"<span style='{FONT};color:#777'>{_count_text(action)}</span>"
        self._hints["n"].value = f"<span style='{FONT};color:#777'>1-{_spec.max_n(action)} images</span>"
        allowed = list(_spec.resolutions_for(action))
        current = self.resolution.value
        if list(self.resolution.options) != allowed:
            self.resolution.options = allowed
            self.resolution.value = current if current in allowed else allowed[-1]
        self._hints["resolution"].value = f"<span style='{FONT};color:#777'>up to {_spec.MAX_RESOLUTION[action]}</span>"
        self._show("thinking_mode", _spec.has_effect("thinking_mode", action))
        self._show("color_palette", _spec.has_effect("color_palette", action))
        self.palette.layout.display = "" if self.use_palette.value else "none"
        self._show("bbox_list", _spec.has_effect("bbox_list", action))
        self._sync_drawer()

    def _show(self, name: str, visible: bool) -> None:
        self.rows[name].layout.display = "" if visible else "none"

    def visible(self, name: str) -> bool:
        return bool(self.rows[name].layout.display != "none")

    def _sync_drawer(self) -> None:
        """The drawer shows the chosen images: a new drawer when they change, keeping the
        boxes drawn on the images that stay (a drawer kept while another mode is shown)."""
        if not self.images.inputs or (self.drawer is None and not _spec.has_effect("bbox_list", self.action)):
            self.drawer = None
            self._drawer_box.children = [
                widgets.HTML(
                    f"<span style='{FONT};color:#777'>choose the images first; then drag on them to draw boxes</span>"
                )
            ]
            return
        values = self.images.values
        old = self.drawer
        if old is not None and (old.images == values or not _spec.has_effect("bbox_list", self.action)):
            return
        kept = dict(zip(map(_image_key, old.images), old.bbox_list, strict=True)) if old is not None else {}
        boxes = [kept.get(_image_key(v), []) for v in values]
        try:
            drawer = BBoxDrawer(values, bbox_list=boxes if any(boxes) else None)
        except RequestError as exc:
            why = problem_html(exc.problems)
        except WanError as exc:  # a URL whose pixels cannot be fetched: nothing to draw on
            why = problem_html([Problem("images", "fetch", str(exc))])
        else:
            drawer.observe(lambda _: self._changed(), "bbox_list")
            self.drawer = drawer
            self._drawer_box.children = [drawer]
            return
        self.drawer = None
        self._drawer_box.children = [widgets.HTML(why)]

    def _images_changed(self) -> None:
        self._sync_drawer()
        self._changed()

    def _changed(self) -> None:
        if not self._quiet:
            self._on_change()

    # -- problems ---------------------------------------------------------------------
    def show_problems(self, problems: list[Problem]) -> list[Problem]:
        """Each problem next to its field; those with no visible field are returned."""
        placed: dict[str, list[Problem]] = {}
        rest: list[Problem] = []
        for p in problems:
            name = field_of(p.field)
            if name in self.rows and self.visible(name):
                placed.setdefault(name, []).append(p)
            else:
                rest.append(p)
        for name, widget in self.problems.items():
            widget.value = problem_html(placed.get(name, []))
        return rest
