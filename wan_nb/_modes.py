"""The six modes of the document as functions: what a notebook user calls.

Each builds a checked ``Request`` (every problem named before anything is sent),
shows the warnings for fields that have no effect, and runs it through the current
session: images on disk, run in the log, a ``Result`` that shows itself inline.

Each function's keyword arguments are the fields its mode takes (``_spec``: which
fields have an effect where), so Shift-Tab and completion show them. Defaults are
``_spec``'s constants, or None where the document's default is "not given"; the
rules in ``_request`` apply them, so no default has a second home. Every function
ends in ``**fields``: anything else is passed on to the same rules, so a field with
no effect in this mode is a warning and a misspelt name a ``RequestError`` with a
"did you mean" (not Python's TypeError).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import _spec
from ._exceptions import Problem, RequestError
from ._images import ImageInput
from ._live import LiveStatus
from ._money import usd
from ._request import (
    FIELDS,
    BoxesInput,
    HoldsBoxes,
    PaletteInput,
    Request,
    boxes_for_one_image,
    from_fields,
    unknown_fields,
)
from ._result import Result
from ._session import emit_warnings, session
from ._spec import AspectRatio, Mode, Resolution

# Options of a run that are not request fields.
RUN_OPTIONS = ("fresh", "timeout", "tags", "note")


def make_request(action: str | None, prompt: Any, images: Any = None, **fields: Any) -> Request:
    """A checked request from the mode functions' arguments (unknown names rejected)."""
    return _checked(action, prompt, images, fields)


def _checked(action: str | None, prompt: Any, images: Any, fields: dict[str, Any],
             problems: Sequence[Problem] = ()) -> Request:
    """``from_fields`` with the images argument as ``image_urls``; ``problems`` found
    before are listed with the rules' own, in one RequestError."""
    found = list(problems)
    if images is not None:
        if "image_urls" in fields:
            found.append(Problem("image_urls", "duplicate", "is given twice: as the images argument and as image_urls"))
        fields = {**fields, "image_urls": list(images) if isinstance(images, (list, tuple)) else [images]}
    try:
        request = from_fields({**fields, "action": action, "prompt": prompt})
    except RequestError as exc:
        found += exc.problems
    if found:
        raise RequestError(found)
    return request


def _run(action: str | None, arguments: dict[str, Any]) -> Result:
    """Run a mode function's call: ``arguments`` is its ``locals()``, so every parameter
    of its signature reaches the rules (none can be forgotten on the way)."""
    fields = dict(arguments)
    others = fields.pop("fields")  # the trailing **fields: the names no parameter took
    # a misspelt name is suggested among this function's own arguments too (timout: 'timeout')
    problems = unknown_fields(others, also=list(fields))
    others = {name: value for name, value in others.items() if name in FIELDS}
    prompt = fields.pop("prompt")
    images = fields.pop("image") if "image" in fields else fields.pop("images", None)
    options = {name: fields.pop(name) for name in RUN_OPTIONS}
    if action is None:  # wan.run: the mode is an argument
        action = fields.pop("action")
    elif "action" in others:
        problems.append(Problem("action", "fixed", f"wan.{action}() is the {action} mode (got action="
                                f"{others.pop('action')!r}); wan.run(..., action=...) takes any mode"))
    request = _checked(action, prompt, images, {**fields, **others}, problems)
    emit_warnings(request)
    with LiveStatus(f"{request.action} · {usd(request.cost_usd)}") as live:
        return session().run(request, on_update=live.update, tick=live.tick, **options)


def run(
    prompt: str,
    *,
    action: Mode | None = None,
    images: ImageInput | Sequence[ImageInput] | HoldsBoxes | None = None,
    n: int = _spec.DEFAULT_N,
    seed: int = _spec.DEFAULT_SEED,
    aspect_ratio: AspectRatio = _spec.DEFAULT_ASPECT_RATIO,
    resolution: Resolution = _spec.DEFAULT_RESOLUTION,
    thinking_mode: bool | None = None,
    color_palette: PaletteInput | None = None,
    bbox_list: BoxesInput | None = None,
    enable_sequential: bool | None = None,
    watermark: bool = _spec.DEFAULT_WATERMARK,
    callback_url: str | None = None,
    callback_events: Sequence[str] | None = None,
    fresh: bool = False,
    timeout: float | None = None,
    tags: Sequence[str] | None = None,
    note: str | None = None,
    **fields: Any,
) -> Result:
    """Any mode: ``action``, or the mode the fields imply (the document's quick reference).

    Without ``action``: ``enable_sequential=True`` is group, ``bbox_list`` is
    interactive_edit, else no image is generate, one is image2image and 2 to 9 are
    reference. The rules are those of the mode functions (``wan.generate`` and the
    others), checked before anything is sent; one ``RequestError`` names every problem.

    Parameters
    ----------
    prompt : str
        The image (or the edit) described in words; not blank.
    action : {"generate", "image2image", "edit", "reference", "group", "interactive_edit"}, optional
        The mode; inferred from the fields when not given.
    images : image or list of images, optional
        Input images (URL, path, PIL image, bytes, an earlier result; JPEG, PNG or WEBP
        of at most 30 MB each), or a ``wan.BBoxDrawer`` (its images and boxes).
    n : int, default 1
        Images to make: 1 to 4; up to 12 in group mode.
    seed : int, default -1
        -1: random (drawn here and recorded); 0 to 2147483647: reproducible.
    aspect_ratio : {"1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"}, default "1:1"
    resolution : {"1K", "2K", "4K"}, default "2K"
        4K is text-to-image (generate) only; every other mode caps at 2K.
    thinking_mode : bool, optional
        Visual reasoning before drawing; on by default where it has an effect (generate).
        Given in group mode or with input images: a warning, and it is not sent.
    color_palette : list of {"hex", "ratio"}, optional
        3 to 10 colours, whole-number ratios adding up to 100. In group mode: a warning, not sent.
    bbox_list : list of boxes per image, optional
        interactive_edit only: 1 to 2 boxes ``[x1, y1, x2, y2]`` per image, in its pixels.
    enable_sequential : bool, optional
        True is group mode (and nothing else).
    watermark : bool, default False
    callback_url, callback_events : optional
        A webhook the server calls when the task ends, and the events it subscribes to.
    fresh, timeout, tags, note
        Run options: ``fresh=True`` makes new images even when the log has this request
        (billed again); ``timeout``: seconds to wait (default: the connection's); ``tags``
        and ``note`` are kept with the run in the log.
    **fields
        Any other field of the document (``model``, ``image_urls``), by the same rules; a
        name that is no field is a RequestError with a "did you mean".

    Returns
    -------
    Result
        Its images on disk (``r.paths``), cost and request; shows itself inline.
    """
    return _run(None, locals())


def generate(
    prompt: str,
    *,
    n: int = _spec.DEFAULT_N,
    seed: int = _spec.DEFAULT_SEED,
    aspect_ratio: AspectRatio = _spec.DEFAULT_ASPECT_RATIO,
    resolution: Resolution = _spec.DEFAULT_RESOLUTION,
    thinking_mode: bool = _spec.DEFAULT_THINKING_MODE,
    color_palette: PaletteInput | None = None,
    watermark: bool = _spec.DEFAULT_WATERMARK,
    callback_url: str | None = None,
    callback_events: Sequence[str] | None = None,
    fresh: bool = False,
    timeout: float | None = None,
    tags: Sequence[str] | None = None,
    note: str | None = None,
    **fields: Any,
) -> Result:
    """Text to image (action ``generate``): the one mode with 4K and thinking mode.

    Every rule is checked before anything is sent; one ``RequestError`` names every
    problem. The run is logged and its images saved; the same fixed-seed request
    made before is served from disk at $0.

    Parameters
    ----------
    prompt : str
        The image described in words (English or Chinese); not blank.
    n : int, default 1
        Images to make: 1 to 4 (a group of up to 12 is ``wan.group``).
    seed : int, default -1
        -1: random (drawn here and recorded, so the image can be made again);
        0 to 2147483647: a fixed seed reproduces similar results.
    aspect_ratio : {"1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"}, default "1:1"
    resolution : {"1K", "2K", "4K"}, default "2K"
        About 1024², 2048² or 4096² pixels; 4K is for text-to-image only.
    thinking_mode : bool, default True
        Visual reasoning before drawing: better on complex prompts.
    color_palette : list of {"hex", "ratio"}, optional
        3 to 10 colours (``"#0A2540"``) with whole-number percentages adding up to 100;
        (hex, ratio) pairs or a ``wan.PaletteEditor`` too.
    watermark : bool, default False
        The "AI-generated" mark.
    callback_url, callback_events : optional
        A webhook the server calls when the task ends, and the events it subscribes to.
    fresh, timeout, tags, note
        Run options: ``fresh=True`` makes new images even when the log has this request
        (billed again); ``timeout``: seconds to wait (default: the connection's); ``tags``
        and ``note`` are kept with the run in the log.
    **fields
        Any other field of the document (``model``), by the same rules; a name that is
        no field is a RequestError with a "did you mean" (``sed=3``: 'seed').

    Returns
    -------
    Result
        Its images on disk (``r.paths``), cost and request; shows itself inline.
    """
    return _run(_spec.GENERATE, locals())


def image2image(
    prompt: str,
    image: ImageInput,
    *,
    n: int = _spec.DEFAULT_N,
    seed: int = _spec.DEFAULT_SEED,
    aspect_ratio: AspectRatio = _spec.DEFAULT_ASPECT_RATIO,
    resolution: Resolution = _spec.DEFAULT_RESOLUTION,
    color_palette: PaletteInput | None = None,
    watermark: bool = _spec.DEFAULT_WATERMARK,
    callback_url: str | None = None,
    callback_events: Sequence[str] | None = None,
    fresh: bool = False,
    timeout: float | None = None,
    tags: Sequence[str] | None = None,
    note: str | None = None,
    **fields: Any,
) -> Result:
    """Free-form generation from one reference image (action ``image2image``).

    ``thinking_mode`` has no effect with input images: given, it is a warning and is
    not sent. Every rule is checked before anything is sent (one ``RequestError``).

    Parameters
    ----------
    prompt : str
        What to make of the image; not blank.
    image : URL, path, PIL image, bytes or result
        Exactly 1 image: JPEG, PNG or WEBP, at most 30 MB (an earlier result is sent as
        its own link while it lives, else uploaded).
    n : int, default 1
        Images to make: 1 to 4.
    seed : int, default -1
        -1: random (drawn here and recorded); 0 to 2147483647: reproducible.
    aspect_ratio : {"1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"}, default "1:1"
    resolution : {"1K", "2K"}, default "2K"
        Modes with input images cap at 2K (4K is text-to-image only).
    color_palette : list of {"hex", "ratio"}, optional
        3 to 10 colours, whole-number percentages adding up to 100.
    watermark : bool, default False
    callback_url, callback_events : optional
        A webhook the server calls when the task ends, and the events it subscribes to.
    fresh, timeout, tags, note
        Run options: ``fresh=True`` makes new images even when the log has this request
        (billed again); ``timeout``: seconds to wait (default: the connection's); ``tags``
        and ``note`` are kept with the run in the log.
    **fields
        Any other field of the document, by the same rules; a name that is no field is a
        RequestError with a "did you mean".

    Returns
    -------
    Result
    """
    return _run(_spec.IMAGE2IMAGE, locals())


def edit(
    prompt: str,
    image: ImageInput,
    *,
    n: int = _spec.DEFAULT_N,
    seed: int = _spec.DEFAULT_SEED,
    aspect_ratio: AspectRatio = _spec.DEFAULT_ASPECT_RATIO,
    resolution: Resolution = _spec.DEFAULT_RESOLUTION,
    color_palette: PaletteInput | None = None,
    watermark: bool = _spec.DEFAULT_WATERMARK,
    callback_url: str | None = None,
    callback_events: Sequence[str] | None = None,
    fresh: bool = False,
    timeout: float | None = None,
    tags: Sequence[str] | None = None,
    note: str | None = None,
    **fields: Any,
) -> Result:
    """Edit one image as the prompt instructs (action ``edit``): inpainting, style
    transfer, replacing an element.

    ``thinking_mode`` has no effect with input images: given, it is a warning and is
    not sent. Every rule is checked before anything is sent (one ``RequestError``).

    Parameters
    ----------
    prompt : str
        The edit, as an instruction ("make it night"); not blank.
    image : URL, path, PIL image, bytes or result
        Exactly 1 image: JPEG, PNG or WEBP, at most 30 MB.
    n : int, default 1
        Images to make: 1 to 4.
    seed : int, default -1
        -1: random (drawn here and recorded); 0 to 2147483647: reproducible.
    aspect_ratio : {"1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"}, default "1:1"
    resolution : {"1K", "2K"}, default "2K"
        Modes with input images cap at 2K (4K is text-to-image only).
    color_palette : list of {"hex", "ratio"}, optional
        3 to 10 colours, whole-number percentages adding up to 100.
    watermark : bool, default False
    callback_url, callback_events : optional
        A webhook the server calls when the task ends, and the events it subscribes to.
    fresh, timeout, tags, note
        Run options: ``fresh=True`` makes new images even when the log has this request
        (billed again); ``timeout``: seconds to wait (default: the connection's); ``tags``
        and ``note`` are kept with the run in the log.
    **fields
        Any other field of the document, by the same rules; a name that is no field is a
        RequestError with a "did you mean".

    Returns
    -------
    Result
    """
    return _run(_spec.EDIT, locals())


def reference(
    prompt: str,
    images: Sequence[ImageInput],
    *,
    n: int = _spec.DEFAULT_N,
    seed: int = _spec.DEFAULT_SEED,
    aspect_ratio: AspectRatio = _spec.DEFAULT_ASPECT_RATIO,
    resolution: Resolution = _spec.DEFAULT_RESOLUTION,
    color_palette: PaletteInput | None = None,
    watermark: bool = _spec.DEFAULT_WATERMARK,
    callback_url: str | None = None,
    callback_events: Sequence[str] | None = None,
    fresh: bool = False,
    timeout: float | None = None,
    tags: Sequence[str] | None = None,
    note: str | None = None,
    **fields: Any,
) -> Result:
    """Fuse 2 to 9 reference images into one picture (action ``reference``).

    ``thinking_mode`` has no effect with input images: given, it is a warning and is
    not sent. Every rule is checked before anything is sent (one ``RequestError``).

    Parameters
    ----------
    prompt : str
        How to combine them; not blank.
    images : list of images
        2 to 9 images (URL, path, PIL image, bytes, an earlier result): JPEG, PNG or
        WEBP, at most 30 MB each.
    n : int, default 1
        Images to make: 1 to 4.
    seed : int, default -1
        -1: random (drawn here and recorded); 0 to 2147483647: reproducible.
    aspect_ratio : {"1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"}, default "1:1"
    resolution : {"1K", "2K"}, default "2K"
        Modes with input images cap at 2K (4K is text-to-image only).
    color_palette : list of {"hex", "ratio"}, optional
        3 to 10 colours, whole-number percentages adding up to 100.
    watermark : bool, default False
    callback_url, callback_events : optional
        A webhook the server calls when the task ends, and the events it subscribes to.
    fresh, timeout, tags, note
        Run options: ``fresh=True`` makes new images even when the log has this request
        (billed again); ``timeout``: seconds to wait (default: the connection's); ``tags``
        and ``note`` are kept with the run in the log.
    **fields
        Any other field of the document, by the same rules; a name that is no field is a
        RequestError with a "did you mean".

    Returns
    -------
    Result
    """
    return _run(_spec.REFERENCE, locals())


def group(
    prompt: str,
    n: int = 4,
    *,
    seed: int = _spec.DEFAULT_SEED,
    aspect_ratio: AspectRatio = _spec.DEFAULT_ASPECT_RATIO,
    resolution: Resolution = _spec.DEFAULT_RESOLUTION,
    watermark: bool = _spec.DEFAULT_WATERMARK,
    callback_url: str | None = None,
    callback_events: Sequence[str] | None = None,
    fresh: bool = False,
    timeout: float | None = None,
    tags: Sequence[str] | None = None,
    note: str | None = None,
    **fields: Any,
) -> Result:
    """A themed group of related images (action ``group``): comic strip, storyboard, a set.

    Sent with ``enable_sequential: true``. ``thinking_mode`` and ``color_palette`` have
    no effect in group mode: given, they are a warning and are not sent. Every rule is
    checked before anything is sent (one ``RequestError``).

    Parameters
    ----------
    prompt : str
        The group, storyboard-style ("four panels: ..."); not blank.
    n : int, default 4
        Images in the group: 1 to 12 (this function's own default is 4; the document's
        is 1).
    seed : int, default -1
        -1: random (drawn here and recorded); 0 to 2147483647: reproducible.
    aspect_ratio : {"1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"}, default "1:1"
    resolution : {"1K", "2K"}, default "2K"
        Group mode caps at 2K.
    watermark : bool, default False
    callback_url, callback_events : optional
        A webhook the server calls when the task ends, and the events it subscribes to.
    fresh, timeout, tags, note
        Run options: ``fresh=True`` makes new images even when the log has this request
        (billed again); ``timeout``: seconds to wait (default: the connection's); ``tags``
        and ``note`` are kept with the run in the log.
    **fields
        Any other field of the document, by the same rules; a name that is no field is a
        RequestError with a "did you mean".

    Returns
    -------
    Result
        Its ``n`` images on disk (``r.paths``), cost and request.
    """
    return _run(_spec.GROUP, locals())


def interactive_edit(
    prompt: str,
    images: ImageInput | Sequence[ImageInput] | HoldsBoxes,
    bbox_list: BoxesInput | None = None,
    *,
    n: int = _spec.DEFAULT_N,
    seed: int = _spec.DEFAULT_SEED,
    aspect_ratio: AspectRatio = _spec.DEFAULT_ASPECT_RATIO,
    resolution: Resolution = _spec.DEFAULT_RESOLUTION,
    color_palette: PaletteInput | None = None,
    watermark: bool = _spec.DEFAULT_WATERMARK,
    callback_url: str | None = None,
    callback_events: Sequence[str] | None = None,
    fresh: bool = False,
    timeout: float | None = None,
    tags: Sequence[str] | None = None,
    note: str | None = None,
    **fields: Any,
) -> Result:
    """Edit only inside boxes (action ``interactive_edit``); outside them the image is kept.

    The output keeps the input's pixel size. ``thinking_mode`` has no effect with input
    images: given, it is a warning and is not sent. Every rule is checked before
    anything is sent (one ``RequestError``).

    Parameters
    ----------
    prompt : str
        What to put in the boxes; not blank.
    images : image, list of images, or a ``wan.BBoxDrawer``
        1 to 9 images (URL, path, PIL image, bytes, an earlier result: JPEG, PNG or WEBP,
        at most 30 MB each); a drawer gives its images and, without ``bbox_list``, its boxes.
    bbox_list : list of boxes per image
        One list of 1 to 2 boxes ``[x1, y1, x2, y2]`` per image (top-left, bottom-right,
        in the image's own pixels); required unless a drawer holds them. With one image
        it may be just its boxes (``[[x1, y1, x2, y2]]``) or a single box; numpy arrays too.
    n : int, default 1
        Images to make: 1 to 4.
    seed : int, default -1
        -1: random (drawn here and recorded); 0 to 2147483647: reproducible.
    aspect_ratio : {"1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"}, default "1:1"
    resolution : {"1K", "2K"}, default "2K"
        Modes with input images cap at 2K.
    color_palette : list of {"hex", "ratio"}, optional
        3 to 10 colours, whole-number percentages adding up to 100.
    watermark : bool, default False
    callback_url, callback_events : optional
        A webhook the server calls when the task ends, and the events it subscribes to.
    fresh, timeout, tags, note
        Run options: ``fresh=True`` makes new images even when the log has this request
        (billed again); ``timeout``: seconds to wait (default: the connection's); ``tags``
        and ``note`` are kept with the run in the log.
    **fields
        Any other field of the document, by the same rules; a name that is no field is a
        RequestError with a "did you mean".

    Returns
    -------
    Result
    """
    if not isinstance(images, (list, tuple)) and bbox_list is not None:
        bbox_list = boxes_for_one_image(bbox_list)
    return _run(_spec.INTERACTIVE_EDIT, locals())
