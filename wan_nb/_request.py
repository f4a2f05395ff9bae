"""The request model: every field and rule of the user's document, with no I/O.

``build_request`` takes the document's fields (wire names, Python values), applies the
defaults, infers the mode when ``action`` is not given, checks every rule and raises
one ``RequestError`` that lists ALL problems, each naming the field and the rule.
What comes back is a frozen ``Request`` holding the *effective* values: fields the
document says have no effect in the chosen mode are recorded in ``ignored`` (with a
warning) and left out of the wire body; ``seed=-1`` is resolved to a concrete seed so
every image can be reproduced.

The canonical JSON of a request is the basis of its Idempotency-Key and of the cache:
two requests with the same canonical form would produce the same images.
"""

from __future__ import annotations

import functools
import hashlib
import numbers
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from . import _spec
from ._exceptions import Problem, RequestError
from ._images import ImageInputError, ImageRef, image_problems, is_url, to_image_ref
from ._money import usd
from ._text import canonical_json, did_you_mean, text_problem

FIELDS = (
    "model",
    "action",
    "prompt",
    "n",
    "seed",
    "aspect_ratio",
    "resolution",
    "image_urls",
    "callback_url",
    "callback_events",
    "watermark",
    "thinking_mode",
    "enable_sequential",
    "color_palette",
    "bbox_list",
)

_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")
_SYSTEM_RANDOM = random.SystemRandom()

Palette = tuple[tuple[str, int], ...]
Box = tuple[int, int, int, int]
BoxList = tuple[tuple[Box, ...], ...]


class HoldsPalette(Protocol):
    """An object that stands for the palette it holds (a ``PaletteEditor``; see ``_from_holders``)."""

    @property
    def color_palette(self) -> Any: ...


class HoldsBoxes(Protocol):
    """An object that stands for its input images and their boxes (a ``BBoxDrawer``)."""

    @property
    def images(self) -> Sequence[Any]: ...

    @property
    def bbox_list(self) -> Any: ...


class Array(Protocol):
    """A numpy array, as ``as_lists`` reads one: its ``ndim`` and ``tolist()``."""

    @property
    def ndim(self) -> int: ...

    def tolist(self) -> Any: ...


# What users may give for the composite fields: the rules take more shapes than the wire
# (pairs, numpy arrays, an editor standing for its palette).
PaletteInput: TypeAlias = Sequence[Mapping[str, Any] | Sequence[Any]] | HoldsPalette
BoxesInput: TypeAlias = Sequence[Any] | Array


@dataclass(frozen=True)
class Request:
    """A checked request with effective values. Build it with ``build_request``."""

    model: str
    action: str
    prompt: str
    n: int
    seed: int
    aspect_ratio: str
    resolution: str
    images: tuple[ImageRef, ...] = ()
    callback_url: str | None = None
    callback_events: tuple[str, ...] = ()
    watermark: bool = False
    thinking_mode: bool = False
    enable_sequential: bool = False
    color_palette: Palette | None = None
    bbox_list: BoxList | None = None
    seed_random: bool = False
    warnings: tuple[str, ...] = ()
    ignored: dict[str, str] = field(default_factory=dict, compare=False)

    # -- derived facts -------------------------------------------------------------
    @property
    def output_size(self) -> tuple[int, int]:
        """Pixel size of each output (interactive_edit keeps the input's size)."""
        kept = self.images[0].size if self.action == _spec.INTERACTIVE_EDIT and self.images else None
        if kept:
            return kept
        return _spec.output_size(self.aspect_ratio, self.resolution)

    @property
    def cost_quota(self) -> int:
        return self.n * _spec.UNIT_QUOTA

    @property
    def cost_usd(self) -> float:
        return _spec.quota_to_usd(self.cost_quota)

    def canonical(self) -> dict[str, Any]:
        """The effective request as plain JSON values, images named by URL or sha256."""
        out = {k: v for k, v in self.fields().items() if v is not None}
        if self.images:
            out["image_urls"] = [img.canonical for img in self.images]
        return out

    # A request is frozen, so what derives from it is worked out once (a run reads the
    # hash for its cache look-up, its key and its log row).
    @functools.cached_property
    def _canonical_json(self) -> str:
        return canonical_json(self.canonical())

    def canonical_json(self) -> str:
        return self._canonical_json

    @functools.cached_property
    def request_hash(self) -> str:
        return hashlib.sha256(self._canonical_json.encode()).hexdigest()

    def to_row(self) -> dict[str, Any]:
        """The log's request columns: the effective value of every field, and what they decide."""
        fields = self.fields()
        width, height = self.output_size
        return {
            "model": self.model, "action": self.action, "prompt": self.prompt, "n": self.n, "seed": self.seed,
            "seed_random": self.seed_random, "aspect_ratio": self.aspect_ratio, "resolution": self.resolution,
            "width": width, "height": height, "images_in": [img.canonical for img in self.images],
            "callback_url": self.callback_url, "callback_events": list(self.callback_events),
            "watermark": self.watermark, "thinking_mode": self.thinking_mode,
            "enable_sequential": self.enable_sequential,
            "color_palette": fields["color_palette"], "bbox_list": fields["bbox_list"],
            "warnings": list(self.warnings), "request_json": self._canonical_json,
            "request_hash": self.request_hash, "est_quota": self.cost_quota,
        }

    def idempotency_key(self, salt: str = "") -> str:
        """Same logical request → same key, so a retried submit is never billed twice."""
        base = self.request_hash if not salt else hashlib.sha256(
            (self.request_hash + "|" + salt).encode()
        ).hexdigest()
        return "wan-nb-" + base[:40]

    def fields(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this request (seed concrete)."""
        return {
            "model": self.model,
            "action": self.action,
            "prompt": self.prompt,
            "n": self.n,
            "seed": self.seed,
            "aspect_ratio": self.aspect_ratio,
            "resolution": self.resolution,
            "image_urls": list(self.images) or None,
            "callback_url": self.callback_url,
            "callback_events": list(self.callback_events) or None,
            "watermark": self.watermark,
            "thinking_mode": None if "thinking_mode" in self.ignored else self.thinking_mode,
            "enable_sequential": self.enable_sequential,
            "color_palette": None if self.color_palette is None else [list(p) for p in self.color_palette],
            "bbox_list": None if self.bbox_list is None else [[list(b) for b in bs] for bs in self.bbox_list],
        }

    def replace(self, **changes: Any) -> Request:
        """A new request with some fields changed, checked again by the same rules."""
        return build_request(**{**self.fields(), **changes})

    def summary(self) -> str:
        w, h = self.output_size
        shape = "" if self.action == _spec.INTERACTIVE_EDIT else f" ({self.aspect_ratio}, {self.resolution})"
        return (
            f"{self.action} · {self.n} image{'s' if self.n != 1 else ''} · {w}×{h}{shape}"
            f" · seed {self.seed} · {usd(self.cost_usd)}"
        )

    def __repr__(self) -> str:
        prompt = self.prompt if len(self.prompt) <= 40 else self.prompt[:37] + "..."
        return (f"Request({self.action!r}, {prompt!r}, n={self.n}, seed={self.seed}, "
                f"{self.aspect_ratio}, {self.resolution})")


class _Checker:
    """Collects problems so that one error can name all of them."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.warnings: list[str] = []

    def add(self, field_name: str, rule: str, message: str) -> None:
        self.problems.append(Problem(field_name, rule, message))

    def choice(self, name: str, value: Any, options: Iterable[str]) -> bool:
        options = tuple(options)
        if value not in options:
            self.add(name, "one_of", f"must be one of {', '.join(options)} (got {value!r})")
            return False
        return True

    def boolean(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.add(name, "type", f"must be true or false (got {value!r})")
            return False
        return True

    def integer(self, name: str, value: Any) -> int | None:
        """``value`` as an int (numpy integers too: users compute with numpy), or None and a problem."""
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            self.add(name, "type", f"must be an integer (got {value!r})")
            return None
        return int(value)

    def sendable(self, name: str, value: str) -> bool:
        """Text that can go on the wire and into the log (``text_problem``): no lone surrogate
        ('\\ud800', e.g. from a broken emoji), no NUL character."""
        bad = text_problem(value)
        if bad:
            self.add(name, "unicode", bad)
            return False
        return True


def as_lists(value: Any) -> Any:
    """numpy arrays and scalars as the plain lists and numbers they hold (boxes and
    palettes are often computed with numpy); anything else unchanged."""
    if hasattr(value, "tolist") and hasattr(value, "ndim"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [as_lists(v) for v in value]
    return value


def nesting_depth(value: Any) -> int:
    """How deeply lists nest at their first items: a box is 1, an image's boxes 2, a bbox_list 3."""
    depth = 0
    while isinstance(value, (list, tuple)) and value:
        depth += 1
        value = value[0]
    return depth


def boxes_for_one_image(bbox_list: Any) -> Any:
    """With one image, ``bbox_list`` may be just its boxes or a single box: the document's shape."""
    bbox_list = as_lists(bbox_list)
    depth = nesting_depth(bbox_list)
    leaf = bbox_list
    for _ in range(depth):
        leaf = leaf[0]
    if isinstance(leaf, (list, tuple)):  # an empty list somewhere: already per image, e.g. [[]]
        return bbox_list
    if depth == 1:  # one box
        return [[bbox_list]]
    if depth == 2:  # the image's boxes
        return [bbox_list]
    return bbox_list


def _whole(value: Any) -> int | None:
    """An integral number as int (JSON may carry 50.0; numpy gives np.int64), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return int(float(value))
    return None


def _check_palette(c: _Checker, value: Any) -> Palette | None:
    value = as_lists(value)
    if not isinstance(value, (list, tuple)):
        c.add("color_palette", "type", "must be a list of {hex, ratio} items")
        return None
    lo, hi = _spec.PALETTE_MIN_ITEMS, _spec.PALETTE_MAX_ITEMS
    if not lo <= len(value) <= hi:
        c.add("color_palette", "items", f"needs {lo} to {hi} colours (got {len(value)})")
    items: list[tuple[str, int]] = []
    ok = True
    for i, item in enumerate(value):
        name = f"color_palette[{i}]"
        if isinstance(item, dict):
            extra = set(item) - {"hex", "ratio"}
            if extra:
                c.add(name, "keys", f"unknown key(s) {', '.join(sorted(map(str, extra)))}; items are {{hex, ratio}}")
            hex_, ratio = item.get("hex"), item.get("ratio")
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            hex_, ratio = item
        else:
            c.add(name, "type", "must be {hex, ratio} (or a (hex, ratio) pair)")
            ok = False
            continue
        if not isinstance(hex_, str) or not _HEX.match(hex_):
            c.add(f"{name}.hex", "hex", f"must be a hex colour like #0A2540 (got {hex_!r})")
            ok = False
        whole = _whole(ratio)
        lo_ratio, total = _spec.PALETTE_MIN_RATIO, _spec.PALETTE_RATIO_SUM
        if whole is None:
            c.add(f"{name}.ratio", "integer", f"must be a whole-number percentage (got {ratio!r})")
            ok = False
        elif not lo_ratio <= whole <= total:
            c.add(f"{name}.ratio", "range", f"must be between {lo_ratio} and {total} (got {whole})")
            ok = False
        if ok and isinstance(hex_, str) and whole is not None:
            items.append((hex_.upper(), whole))
    if ok and items:
        total = sum(r for _, r in items)
        if total != _spec.PALETTE_RATIO_SUM:
            c.add(
                "color_palette",
                "ratio_sum",
                f"ratios must add up to exactly {_spec.PALETTE_RATIO_SUM} (they add up to {total})",
            )
    return tuple(items) if ok else None


def _check_box(c: _Checker, name: str, box: Any, size: tuple[int, int] | None) -> Box | None:
    coords = [_whole(v) for v in box] if isinstance(box, (list, tuple)) else []
    whole = [v for v in coords if v is not None]
    if len(coords) != 4 or len(whole) != 4:
        c.add(name, "shape", f"must be 4 whole pixel coordinates [x1, y1, x2, y2] (got {box!r})")
        return None
    x1, y1, x2, y2 = whole
    ok = True
    if min(whole) < 0:
        c.add(name, "non_negative", f"coordinates must be 0 or more (got {whole})")
        ok = False
    if not (x1 < x2 and y1 < y2):
        c.add(name, "corners", f"needs x1 < x2 and y1 < y2 (top-left, bottom-right); got {whole}")
        ok = False
    if size and (x2 > size[0] or y2 > size[1]):
        c.add(name, "inside_image", f"lies outside the image ({size[0]}×{size[1]} px); got {whole}")
        ok = False
    return (x1, y1, x2, y2) if ok else None


def _check_bboxes(c: _Checker, value: Any, images: list[ImageRef], min_boxes: int = 1) -> BoxList | None:
    value = as_lists(value)
    if not isinstance(value, (list, tuple)):
        c.add("bbox_list", "type", "must be a list with one list of boxes per image: [[[x1, y1, x2, y2], ...], ...]")
        return None
    if len(value) != len(images):
        c.add(
            "bbox_list",
            "one_per_image",
            f"needs one list of boxes per image in image_urls ({len(images)} image(s), {len(value)} list(s))",
        )
    out: list[tuple[Box, ...]] = []
    problems_before = len(c.problems)
    for i, boxes in enumerate(value):
        name = f"bbox_list[{i}]"
        if not isinstance(boxes, (list, tuple)):
            c.add(name, "type", "must be a list of boxes [x1, y1, x2, y2]")
            continue
        if not min_boxes <= len(boxes) <= _spec.MAX_BOXES_PER_IMAGE:
            need = f"needs {min_boxes} to" if min_boxes else "takes at most"
            c.add(name, "max_boxes", f"{need} {_spec.MAX_BOXES_PER_IMAGE} boxes per image (got {len(boxes)})")
        size = images[i].size if i < len(images) else None
        checked = [_check_box(c, f"{name}[{j}]", box, size) for j, box in enumerate(boxes)]
        out.append(tuple(b for b in checked if b is not None))
    return tuple(out) if len(c.problems) == problems_before else None


def check_palette(value: Any) -> Palette:
    """``color_palette`` checked by the request's rules (for editors); RequestError if broken."""
    c = _Checker()
    palette = _check_palette(c, value)
    if c.problems or palette is None:
        raise RequestError(c.problems)
    return palette


def check_bbox_list(value: Any, sizes: list[tuple[int, int]], *, min_boxes: int = 1) -> BoxList:
    """``bbox_list`` for images of these (width, height), by the request's rules; RequestError if broken.

    ``min_boxes=0`` lets a drawer hold an image with no box yet (the request still needs one).
    """
    c = _Checker()
    boxes = _check_bboxes(c, value, [ImageRef(width=w, height=h) for w, h in sizes], min_boxes)
    if c.problems or boxes is None:
        raise RequestError(c.problems)
    return boxes


def _holds_boxes(value: Any) -> bool:
    """A box drawer: it holds input images and their boxes."""
    return isinstance(getattr(value, "images", None), (list, tuple)) and hasattr(value, "bbox_list")


def _from_holders(c: _Checker, image_urls: Any, bbox_list: Any, color_palette: Any) -> tuple[Any, Any, Any]:
    """Objects that hold field values stand for them; the one place that asks them.

    The protocol: an object with ``.images`` and ``.bbox_list`` (a ``BBoxDrawer``)
    gives its images, and its boxes when none are given; ``.color_palette`` (a
    ``PaletteEditor``) gives the palette. (A ``Result`` is an image: ``to_image_ref``.)
    """
    if _holds_boxes(image_urls):
        image_urls = [image_urls]
    if isinstance(image_urls, (list, tuple)) and any(_holds_boxes(v) for v in image_urls):
        if bbox_list is None and all(_holds_boxes(v) for v in image_urls):
            bbox_list = [boxes for holder in image_urls for boxes in holder.bbox_list]
        image_urls = [img for v in image_urls for img in (v.images if _holds_boxes(v) else [v])]
    if (
        color_palette is not None
        and not isinstance(color_palette, (list, tuple))
        and hasattr(color_palette, "color_palette")
    ):
        try:
            color_palette = color_palette.color_palette
        except RequestError as exc:
            c.problems.extend(exc.problems)
            color_palette = None
    return image_urls, bbox_list, color_palette


def _check_images(c: _Checker, value: Any) -> list[ImageRef]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        c.add("image_urls", "type", "must be a list of images (URLs, paths, PIL images or bytes)")
        return []
    refs = []
    for i, item in enumerate(value):
        if isinstance(item, str) and not c.sendable(f"image_urls[{i}]", item):
            continue
        try:
            ref = to_image_ref(item)
        except ImageInputError as exc:
            c.add(f"image_urls[{i}]", exc.rule, str(exc))
            continue
        for rule, message in image_problems(ref):
            c.add(f"image_urls[{i}]", rule, message)
        refs.append(ref)
    return refs


class _Draft(_Checker):
    """One request being checked: the values as given (None: not given), the effective
    values the rules settle (``out``), and every problem and warning found."""

    def __init__(self, given: dict[str, Any], rng: random.Random | None) -> None:
        super().__init__()
        self.given = given
        self.rng = rng
        self.out: dict[str, Any] = {}
        self.ignored: dict[str, str] = {}
        self.images: list[ImageRef] = []
        self.n_images = 0
        self.action_ok = False
        self.seed_random = False

    @property
    def action(self) -> Any:
        return self.out["action"]

    @property
    def group(self) -> bool:
        return bool(self.out["action"] == _spec.GROUP)

    def value(self, name: str) -> Any:
        """The given value, or the document's default."""
        given = self.given[name]
        return _spec.DEFAULTS[name] if given is None else given


# One function per field, each the document's rule for it. They run in the order of the
# table below; a rule may read what an earlier one settled (n needs the mode, the mode
# needs how many images were given, the boxes need the images' sizes).


def _holders(d: _Draft) -> None:
    d.given["image_urls"], d.given["bbox_list"], d.given["color_palette"] = _from_holders(
        d, d.given["image_urls"], d.given["bbox_list"], d.given["color_palette"]
    )


def _model(d: _Draft) -> None:
    d.out["model"] = model = _spec.MODEL if d.given["model"] is None else d.given["model"]
    d.choice("model", model, _spec.MODELS)


def _prompt(d: _Draft) -> None:
    d.out["prompt"] = prompt = d.given["prompt"]
    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        d.add("prompt", "required", "is required: describe the image (or the edit) in words")
    elif not isinstance(prompt, str):
        d.add("prompt", "type", f"must be text (got {type(prompt).__name__})")
    else:
        d.sendable("prompt", prompt)


def _image_urls(d: _Draft) -> None:
    given = d.given["image_urls"]
    d.images = _check_images(d, given)
    d.n_images = len(given) if isinstance(given, (list, tuple)) else len(d.images)


def _action(d: _Draft) -> None:
    """Given, or read from the fields as the document's "Mode Quick Reference" says."""
    action = d.given["action"]
    if action is None:
        if d.given["enable_sequential"] is True:
            action = _spec.GROUP
        elif d.given["bbox_list"] is not None:
            action = _spec.INTERACTIVE_EDIT
        else:
            action = {0: _spec.GENERATE, 1: _spec.IMAGE2IMAGE}.get(d.n_images, _spec.REFERENCE)
    d.out["action"] = action
    d.action_ok = d.choice("action", action, _spec.ACTIONS)


def _image_count(d: _Draft) -> None:
    given = d.given["image_urls"]
    if not d.action_ok or not (given is None or isinstance(given, (list, tuple))):
        return
    lo, hi = _spec.IMAGE_COUNTS[d.action]
    if not lo <= d.n_images <= hi:
        if hi == 0:
            rule_text = f"{d.action} takes no input images"
        elif lo == hi:
            rule_text = f"{d.action} takes exactly {lo} image"
        else:
            rule_text = f"{d.action} takes {lo} to {hi} images"
        d.add("image_urls", "count", f"{rule_text} (got {d.n_images})")


def _enable_sequential(d: _Draft) -> None:
    """True exactly in group mode."""
    value = d.given["enable_sequential"]
    if value is None:
        value = d.group
    elif d.boolean("enable_sequential", value) and d.action_ok:
        if d.group and not value:
            d.add("enable_sequential", "group_requires", "group mode needs enable_sequential=true")
        if value and not d.group:
            d.add(
                "enable_sequential", "group_only", f"enable_sequential=true is group mode, but action is {d.action!r}"
            )
    d.out["enable_sequential"] = value


def _n(d: _Draft) -> None:
    d.out["n"] = n = d.value("n")
    if d.given["n"] is None or (n := d.integer("n", n)) is None:
        return
    d.out["n"] = n
    if n < 1:
        d.add("n", "min", f"must be at least 1 (got {n})")
    elif d.group and n > _spec.MAX_N_GROUP:
        d.add("n", "max_group", f"group mode makes at most {_spec.MAX_N_GROUP} images (got {n})")
    elif not d.group and n > _spec.MAX_N_STANDARD:
        d.add(
            "n",
            "max_standard",
            f"at most {_spec.MAX_N_STANDARD} images outside group mode (got {n}); "
            f"use group mode (enable_sequential=true) for up to {_spec.MAX_N_GROUP}",
        )


def _seed(d: _Draft) -> None:
    """-1 is random: resolved here to a concrete seed, so every image can be made again."""
    d.out["seed"] = seed = d.integer("seed", d.value("seed"))
    if seed == _spec.RANDOM_SEED:
        d.out["seed"] = (d.rng or _SYSTEM_RANDOM).randint(_spec.SEED_MIN, _spec.SEED_MAX)
        d.seed_random = True
    elif seed is not None and not _spec.SEED_MIN <= seed <= _spec.SEED_MAX:
        d.add("seed", "range", f"must be -1 (random) or 0 to {_spec.SEED_MAX} (got {seed})")


def _aspect_ratio(d: _Draft) -> None:
    d.out["aspect_ratio"] = d.value("aspect_ratio")
    d.choice("aspect_ratio", d.out["aspect_ratio"], _spec.ASPECT_RATIOS)


def _resolution(d: _Draft) -> None:
    resolution = d.value("resolution")
    d.out["resolution"] = resolution = resolution.upper() if isinstance(resolution, str) else resolution
    if d.choice("resolution", resolution, _spec.RESOLUTIONS) and d.action_ok:
        cap = _spec.MAX_RESOLUTION[d.action]
        if _spec.resolution_rank(resolution) > _spec.resolution_rank(cap):
            why = "group mode caps at 2K" if d.group else "4K is for text-to-image (generate) only"
            d.add("resolution", "mode_cap", f"{d.action} is limited to {cap}: {why} (got {resolution})")


def _watermark(d: _Draft) -> None:
    d.out["watermark"] = d.value("watermark")
    d.boolean("watermark", d.out["watermark"])


def _thinking_mode(d: _Draft) -> None:
    """No effect in group mode or with input images: recorded as ignored, not sent."""
    d.out["thinking_mode"] = thinking = d.value("thinking_mode")
    no_effect = not _spec.has_effect("thinking_mode", d.action) if d.action_ok else (d.group or d.n_images)
    if d.boolean("thinking_mode", thinking) and no_effect:
        reason = "group mode" if d.group else "requests with input images"
        d.ignored["thinking_mode"] = f"thinking_mode has no effect in {reason}"
        if d.given["thinking_mode"]:
            d.warnings.append(d.ignored["thinking_mode"] + "; it is not sent")
        d.out["thinking_mode"] = False


def _color_palette(d: _Draft) -> None:
    """No effect in group mode: recorded as ignored, not sent."""
    d.out["color_palette"] = None
    if d.given["color_palette"] is None:
        return
    palette = _check_palette(d, d.given["color_palette"])
    if d.action_ok and not _spec.has_effect("color_palette", d.action):
        d.ignored["color_palette"] = "color_palette has no effect in group mode"
        d.warnings.append(d.ignored["color_palette"] + "; it is not sent")
        palette = None
    d.out["color_palette"] = palette


def _bbox_list(d: _Draft) -> None:
    """interactive_edit only, and required there: 1-2 boxes per image, inside it."""
    d.out["bbox_list"] = None
    value = d.given["bbox_list"]
    if not d.action_ok:
        return
    if d.action != _spec.INTERACTIVE_EDIT:
        if value is not None:
            d.add(
                "bbox_list",
                "interactive_only",
                f"bbox_list is only used by action interactive_edit (action is {d.action!r})",
            )
    elif value is None:
        d.add("bbox_list", "required", "interactive_edit needs bbox_list: one list of 1-2 boxes per image")
    else:
        sized = d.images if len(d.images) == d.n_images else [ImageRef()] * d.n_images
        d.out["bbox_list"] = _check_bboxes(d, value, sized)


def _callback_url(d: _Draft) -> None:
    d.out["callback_url"] = url = d.given["callback_url"]
    if url is not None and (not isinstance(url, str) or not is_url(url)):
        d.add("callback_url", "url", f"must be an http(s) URL with a host (got {url!r})")
    elif url is not None:
        d.sendable("callback_url", url)


def _callback_events(d: _Draft) -> None:
    d.out["callback_events"] = ()
    events = d.given["callback_events"]
    if events is None:
        return
    if isinstance(events, str) or not isinstance(events, (list, tuple)):
        d.add("callback_events", "type", "must be a list of event names")
    elif not all(isinstance(e, str) and e.strip() for e in events):
        d.add("callback_events", "type", "event names must be non-empty text")
    elif all(d.sendable(f"callback_events[{i}]", e) for i, e in enumerate(events)):
        d.out["callback_events"] = tuple(events)
        if d.given["callback_url"] is None:
            d.warnings.append("callback_events has no effect without callback_url")


# The order problems are listed in: as the checks were always made (not the document's
# field order), because the mode must be known before the counts and caps that depend on it.
_RULES: tuple[Callable[[_Draft], None], ...] = (
    _holders,  # a drawer / palette editor stands for the fields it holds
    _model,  # one of the models
    _prompt,  # required text
    _image_urls,  # each input readable: a URL, or a JPEG/PNG/WEBP file of at most 30 MB
    _action,  # given, or inferred (Mode Quick Reference)
    _image_count,  # none / exactly 1 / 2-9 / 1-? per mode
    _enable_sequential,  # true exactly in group mode
    _n,  # at least 1; at most 4, or 12 in group mode
    _seed,  # -1 (random, resolved) or 0 to 2**31-1
    _aspect_ratio,  # one of seven
    _resolution,  # 1K / 2K / 4K; 4K for generate only, group caps at 2K
    _watermark,  # true or false
    _thinking_mode,  # no effect in group mode or with input images
    _color_palette,  # 3-10 colours, whole ratios adding up to 100; none in group mode
    _bbox_list,  # interactive_edit only: 1-2 boxes per image, inside it
    _callback_url,  # an http(s) URL
    _callback_events,  # event names, useful only with callback_url
)


def build_request(
    *,
    model: str | None = None,
    action: str | None = None,
    prompt: str | None = None,
    n: int | None = None,
    seed: int | None = None,
    aspect_ratio: str | None = None,
    resolution: str | None = None,
    image_urls: Sequence[Any] | None = None,
    callback_url: str | None = None,
    callback_events: Sequence[str] | None = None,
    watermark: bool | None = None,
    thinking_mode: bool | None = None,
    enable_sequential: bool | None = None,
    color_palette: Any = None,
    bbox_list: Any = None,
    rng: random.Random | None = None,
) -> Request:
    """Check every rule of the document and return the effective request.

    ``None`` means "not given" (the document's default applies). Raises
    ``RequestError`` listing every problem at once; nothing is sent before this passes.
    ``image_urls`` takes URLs, paths, PIL images, bytes, results or a box drawer;
    ``color_palette`` a list of ``{hex, ratio}`` (or a palette editor); ``bbox_list``
    one list of ``[x1, y1, x2, y2]`` boxes per image (lists, tuples or numpy arrays).
    """
    d = _Draft(
        {
            "model": model,
            "action": action,
            "prompt": prompt,
            "n": n,
            "seed": seed,
            "aspect_ratio": aspect_ratio,
            "resolution": resolution,
            "image_urls": image_urls,
            "callback_url": callback_url,
            "callback_events": callback_events,
            "watermark": watermark,
            "thinking_mode": thinking_mode,
            "enable_sequential": enable_sequential,
            "color_palette": color_palette,
            "bbox_list": bbox_list,
        },
        rng,
    )
    for rule in _RULES:
        rule(d)
    if d.problems:
        raise RequestError(d.problems)
    return Request(
        **d.out, images=tuple(d.images), seed_random=d.seed_random, warnings=tuple(d.warnings), ignored=d.ignored
    )


def unknown_fields(names: Iterable[str], also: Sequence[str] = ()) -> list[Problem]:
    """Problems for names that are not fields of the document, with a suggestion.

    ``also``: the other names the caller takes (a function's own arguments, such as
    ``timeout``): not reported, and suggested for a misspelt one.
    """
    known = (*FIELDS, *also)
    out = []
    for name in names:
        if name in known:
            continue
        hint = did_you_mean(name, known) or f"; fields are: {', '.join(FIELDS)}"
        out.append(Problem(name, "unknown_field", f"is not a field of the Wan 2.7 image API{hint}"))
    return out


def from_fields(fields: dict[str, Any], **options: Any) -> Request:
    """``build_request`` from a dict: unknown keys are named along with every other problem."""
    problems = unknown_fields(fields)
    try:
        request = build_request(**{k: v for k, v in fields.items() if k in FIELDS}, **options)
    except RequestError as exc:
        problems += exc.problems
    if problems:
        raise RequestError(problems)
    return request


def as_request(value: Request | dict[str, Any]) -> Request:
    return value if isinstance(value, Request) else from_fields(value)
