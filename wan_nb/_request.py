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

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import _spec
from ._exceptions import Problem, RequestError
from ._images import ImageInputError, ImageRef, image_problems, is_url, to_image_ref

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
    action_inferred: bool = False
    warnings: tuple[str, ...] = ()
    ignored: dict[str, str] = field(default_factory=dict, compare=False)

    # -- derived facts -------------------------------------------------------------
    @property
    def output_size(self) -> tuple[int, int]:
        """Pixel size of each output (interactive_edit keeps the input's size)."""
        if self.action == _spec.INTERACTIVE_EDIT and self.images and self.images[0].size:
            return self.images[0].size  # type: ignore[return-value]
        return _spec.output_size(self.aspect_ratio, self.resolution)

    @property
    def image_count(self) -> int:
        """Images this request produces, and so pays for."""
        return self.n

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

    def canonical_json(self) -> str:
        return json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @property
    def request_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

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

    def replace(self, **changes: Any) -> "Request":
        """A new request with some fields changed, checked again by the same rules."""
        return build_request(**{**self.fields(), **changes})

    def summary(self) -> str:
        w, h = self.output_size
        shape = "" if self.action == _spec.INTERACTIVE_EDIT else f" ({self.aspect_ratio}, {self.resolution})"
        return (
            f"{self.action} · {self.n} image{'s' if self.n != 1 else ''} · {w}×{h}{shape}"
            f" · seed {self.seed} · ${self.cost_usd:.5f}"
        )

    def __repr__(self) -> str:
        prompt = self.prompt if len(self.prompt) <= 40 else self.prompt[:37] + "..."
        return f"Request({self.action!r}, {prompt!r}, n={self.n}, seed={self.seed}, {self.aspect_ratio}, {self.resolution})"


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

    def integer(self, name: str, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(name, "type", f"must be an integer (got {value!r})")
            return False
        return True

    def sendable(self, name: str, value: str) -> bool:
        """Text that can go on the wire: a lone surrogate ('\\ud800', e.g. from a broken
        emoji) is not Unicode text and cannot be encoded as UTF-8."""
        bad = unicode_problem(value)
        if bad:
            self.add(name, "unicode", bad)
            return False
        return True


def unicode_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent as UTF-8 (a lone surrogate), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"contains a lone surrogate {text[exc.start]!r} at position {exc.start}: not valid Unicode "
                "text, it cannot be sent (remove it or re-type the character)")
    return None


def nesting_depth(value: Any) -> int:
    """How deeply lists nest at their first items: a box is 1, an image's boxes 2, a bbox_list 3."""
    depth = 0
    while isinstance(value, (list, tuple)) and value:
        depth += 1
        value = value[0]
    return depth


def boxes_for_one_image(bbox_list: Any) -> Any:
    """With one image, ``bbox_list`` may be just its boxes or a single box: the document's shape."""
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
    """An integral number as int (JSON may carry 50.0), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _infer_action(enable_sequential: Any, bbox_list: Any, n_images: int) -> str:
    """The document's "Mode Quick Reference", read from the fields."""
    if enable_sequential is True:
        return _spec.GROUP
    if bbox_list is not None:
        return _spec.INTERACTIVE_EDIT
    if n_images >= 2:
        return _spec.REFERENCE
    if n_images == 1:
        return _spec.IMAGE2IMAGE
    return _spec.GENERATE


def _check_palette(c: _Checker, value: Any) -> Palette | None:
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
        if whole is None:
            c.add(f"{name}.ratio", "integer", f"must be a whole-number percentage (got {ratio!r})")
            ok = False
        elif not 1 <= whole <= 100:
            c.add(f"{name}.ratio", "range", f"must be between 1 and 100 (got {whole})")
            ok = False
        if ok:
            items.append((hex_.upper(), whole))  # type: ignore[union-attr,arg-type]
    if ok and items:
        total = sum(r for _, r in items)
        if total != _spec.PALETTE_RATIO_SUM:
            c.add("color_palette", "ratio_sum", f"ratios must add up to exactly 100 (they add up to {total})")
    return tuple(items) if ok else None


def _check_bboxes(c: _Checker, value: Any, images: list[ImageRef], min_boxes: int = 1) -> BoxList | None:
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
    ok = True
    for i, boxes in enumerate(value):
        name = f"bbox_list[{i}]"
        if not isinstance(boxes, (list, tuple)):
            c.add(name, "type", "must be a list of boxes [x1, y1, x2, y2]")
            ok = False
            continue
        if not min_boxes <= len(boxes) <= _spec.MAX_BOXES_PER_IMAGE:
            need = f"needs {min_boxes} to" if min_boxes else "takes at most"
            c.add(name, "max_boxes", f"{need} {_spec.MAX_BOXES_PER_IMAGE} boxes per image (got {len(boxes)})")
            ok = False
        size = images[i].size if i < len(images) else None
        these: list[Box] = []
        for j, box in enumerate(boxes if isinstance(boxes, (list, tuple)) else []):
            bname = f"{name}[{j}]"
            coords = [_whole(v) for v in box] if isinstance(box, (list, tuple)) else []
            if len(coords) != 4 or any(v is None for v in coords):
                c.add(bname, "shape", f"must be 4 whole pixel coordinates [x1, y1, x2, y2] (got {box!r})")
                ok = False
                continue
            x1, y1, x2, y2 = coords  # type: ignore[misc]
            if min(coords) < 0:  # type: ignore[type-var]
                c.add(bname, "non_negative", f"coordinates must be 0 or more (got {list(coords)})")
                ok = False
            if not (x1 < x2 and y1 < y2):
                c.add(bname, "corners", f"needs x1 < x2 and y1 < y2 (top-left, bottom-right); got {list(coords)}")
                ok = False
            if size and (x2 > size[0] or y2 > size[1]):
                c.add(bname, "inside_image", f"lies outside the image ({size[0]}×{size[1]} px); got {list(coords)}")
                ok = False
            these.append((x1, y1, x2, y2))  # type: ignore[arg-type]
        out.append(tuple(these))
    return tuple(out) if ok else None


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
    if color_palette is not None and not isinstance(color_palette, (list, tuple)) and hasattr(
        color_palette, "color_palette"
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


def build_request(
    *,
    model: Any = None,
    action: Any = None,
    prompt: Any = None,
    n: Any = None,
    seed: Any = None,
    aspect_ratio: Any = None,
    resolution: Any = None,
    image_urls: Any = None,
    callback_url: Any = None,
    callback_events: Any = None,
    watermark: Any = None,
    thinking_mode: Any = None,
    enable_sequential: Any = None,
    color_palette: Any = None,
    bbox_list: Any = None,
    rng: random.Random | None = None,
) -> Request:
    """Check every rule of the document and return the effective request.

    ``None`` means "not given" (the document's default applies). Raises
    ``RequestError`` listing every problem at once; nothing is sent before this passes.
    """
    c = _Checker()
    ignored: dict[str, str] = {}
    d = _spec.DEFAULTS
    image_urls, bbox_list, color_palette = _from_holders(c, image_urls, bbox_list, color_palette)

    model = _spec.MODEL if model is None else model
    c.choice("model", model, _spec.MODELS)

    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        c.add("prompt", "required", "is required: describe the image (or the edit) in words")
    elif not isinstance(prompt, str):
        c.add("prompt", "type", f"must be text (got {type(prompt).__name__})")
    else:
        c.sendable("prompt", prompt)

    images = _check_images(c, image_urls)
    n_images = len(image_urls) if isinstance(image_urls, (list, tuple)) else len(images)

    inferred = action is None
    if inferred:
        action = _infer_action(enable_sequential, bbox_list, n_images)
    action_ok = c.choice("action", action, _spec.ACTIONS)

    # image counts per mode
    if action_ok and (image_urls is None or isinstance(image_urls, (list, tuple))):
        lo, hi = _spec.IMAGE_COUNTS[action]
        if not lo <= n_images <= hi:
            if hi == 0:
                rule_text = f"{action} takes no input images"
            elif lo == hi:
                rule_text = f"{action} takes exactly {lo} image"
            else:
                rule_text = f"{action} takes {lo} to {hi} images"
            c.add("image_urls", "count", f"{rule_text} (got {n_images})")

    # enable_sequential <-> group mode
    if enable_sequential is None:
        enable_sequential = action == _spec.GROUP
    elif c.boolean("enable_sequential", enable_sequential) and action_ok:
        if action == _spec.GROUP and not enable_sequential:
            c.add("enable_sequential", "group_requires", "group mode needs enable_sequential=true")
        if enable_sequential and action != _spec.GROUP:
            c.add("enable_sequential", "group_only", f"enable_sequential=true is group mode, but action is {action!r}")
    group = action == _spec.GROUP

    if n is None:
        n = d["n"]
    elif c.integer("n", n):
        if n < 1:
            c.add("n", "min", f"must be at least 1 (got {n})")
        elif group and n > _spec.MAX_N_GROUP:
            c.add("n", "max_group", f"group mode makes at most {_spec.MAX_N_GROUP} images (got {n})")
        elif not group and n > _spec.MAX_N_STANDARD:
            c.add(
                "n",
                "max_standard",
                f"at most {_spec.MAX_N_STANDARD} images outside group mode (got {n}); "
                f"use group mode (enable_sequential=true) for up to {_spec.MAX_N_GROUP}",
            )

    seed_random = False
    if seed is None:
        seed = d["seed"]
    if c.integer("seed", seed):
        if seed == _spec.RANDOM_SEED:
            seed = (rng or _SYSTEM_RANDOM).randint(_spec.SEED_MIN, _spec.SEED_MAX)
            seed_random = True
        elif not _spec.SEED_MIN <= seed <= _spec.SEED_MAX:
            c.add("seed", "range", f"must be -1 (random) or 0 to {_spec.SEED_MAX} (got {seed})")

    aspect_ratio = d["aspect_ratio"] if aspect_ratio is None else aspect_ratio
    c.choice("aspect_ratio", aspect_ratio, _spec.ASPECT_RATIOS)

    resolution = d["resolution"] if resolution is None else resolution
    if isinstance(resolution, str):
        resolution = resolution.upper()
    if c.choice("resolution", resolution, _spec.RESOLUTIONS) and action_ok:
        cap = _spec.MAX_RESOLUTION[action]
        if _spec.resolution_rank(resolution) > _spec.resolution_rank(cap):
            why = "group mode caps at 2K" if group else "4K is for text-to-image (generate) only"
            c.add("resolution", "mode_cap", f"{action} is limited to {cap}: {why} (got {resolution})")

    watermark = d["watermark"] if watermark is None else watermark
    c.boolean("watermark", watermark)

    thinking_given = thinking_mode is not None
    thinking_mode = d["thinking_mode"] if thinking_mode is None else thinking_mode
    if c.boolean("thinking_mode", thinking_mode) and (
        not _spec.has_effect("thinking_mode", action) if action_ok else (group or n_images)
    ):
        reason = "group mode" if group else "requests with input images"
        ignored["thinking_mode"] = f"thinking_mode has no effect in {reason}"
        if thinking_given and thinking_mode:
            c.warnings.append(ignored["thinking_mode"] + "; it is not sent")
        thinking_mode = False

    palette = None
    if color_palette is not None:
        palette = _check_palette(c, color_palette)
        if action_ok and not _spec.has_effect("color_palette", action):
            ignored["color_palette"] = "color_palette has no effect in group mode"
            c.warnings.append(ignored["color_palette"] + "; it is not sent")
            palette = None

    boxes = None
    if action_ok and action == _spec.INTERACTIVE_EDIT:
        if bbox_list is None:
            c.add("bbox_list", "required", "interactive_edit needs bbox_list: one list of 1-2 boxes per image")
        else:
            boxes = _check_bboxes(c, bbox_list, images if len(images) == n_images else [ImageRef()] * n_images)
    elif bbox_list is not None and action_ok:
        c.add("bbox_list", "interactive_only", f"bbox_list is only used by action interactive_edit (action is {action!r})")

    if callback_url is not None and (not isinstance(callback_url, str) or not is_url(callback_url)):
        c.add("callback_url", "url", f"must be an http(s) URL with a host (got {callback_url!r})")
    elif callback_url is not None:
        c.sendable("callback_url", callback_url)
    events: tuple[str, ...] = ()
    if callback_events is not None:
        if isinstance(callback_events, str) or not isinstance(callback_events, (list, tuple)):
            c.add("callback_events", "type", "must be a list of event names")
        elif not all(isinstance(e, str) and e.strip() for e in callback_events):
            c.add("callback_events", "type", "event names must be non-empty text")
        elif all(c.sendable(f"callback_events[{i}]", e) for i, e in enumerate(callback_events)):
            events = tuple(callback_events)
            if callback_url is None:
                c.warnings.append("callback_events has no effect without callback_url")

    if c.problems:
        raise RequestError(c.problems)
    return Request(
        model=model,
        action=action,
        prompt=prompt,
        n=n,
        seed=seed,
        aspect_ratio=aspect_ratio,
        resolution=resolution,
        images=tuple(images),
        callback_url=callback_url,
        callback_events=events,
        watermark=watermark,
        thinking_mode=thinking_mode,
        enable_sequential=enable_sequential,
        color_palette=palette,
        bbox_list=boxes,
        seed_random=seed_random,
        action_inferred=inferred,
        warnings=tuple(c.warnings),
        ignored=ignored,
    )


def unknown_fields(names: Iterable[str]) -> list[Problem]:
    """Problems for names that are not fields of the document, with a suggestion."""
    import difflib

    out = []
    for name in names:
        if name in FIELDS:
            continue
        near = difflib.get_close_matches(name, FIELDS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f"; fields are: {', '.join(FIELDS)}"
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


def as_request(value: "Request | dict[str, Any]") -> Request:
    return value if isinstance(value, Request) else from_fields(value)
