"""The six modes of the document as functions: what a notebook user calls.

Each builds a checked ``Request`` (every problem named before anything is sent),
shows the warnings for fields that have no effect, and runs it through the current
session: images on disk, run in the log, a ``Result`` that shows itself inline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import _spec
from ._live import LiveStatus
from ._request import Request, boxes_for_one_image, from_fields
from ._result import Result
from ._session import emit_warnings, session

# Options of a run that are not request fields.
RUN_OPTIONS = ("fresh", "timeout", "tags", "note")


def make_request(action: str | None, prompt: Any, images: Any = None, **fields: Any) -> Request:
    """A checked request from the mode functions' arguments (unknown names rejected)."""
    if images is not None:
        fields["image_urls"] = list(images) if isinstance(images, (list, tuple)) else [images]
    return from_fields({**fields, "action": action, "prompt": prompt})


def _run(action: str | None, prompt: Any, images: Any = None, **kw: Any) -> Result:
    options = {k: kw.pop(k) for k in RUN_OPTIONS if k in kw}
    request = make_request(action, prompt, images, **kw)
    emit_warnings(request)
    with LiveStatus(f"{request.action} · ${request.cost_usd:.5f}") as live:
        return session().run(request, on_update=live.update, tick=live.tick, **options)


def run(prompt: str, **kw: Any) -> Result:
    """Any mode, inferred from the fields as the document's quick reference says."""
    return _run(kw.pop("action", None), prompt, kw.pop("images", None), **kw)


def generate(prompt: str, **kw: Any) -> Result:
    """Text to image. ``aspect_ratio``, ``resolution`` (up to 4K), ``seed``, ``n`` (≤ 4),
    ``thinking_mode``, ``color_palette``, ``watermark``."""
    return _run(_spec.GENERATE, prompt, **kw)


def image2image(prompt: str, image: Any, **kw: Any) -> Result:
    """Free-form generation from one reference image (URL, path, PIL image or bytes)."""
    return _run(_spec.IMAGE2IMAGE, prompt, image, **kw)


def edit(prompt: str, image: Any, **kw: Any) -> Result:
    """Edit one image as the prompt instructs (inpainting, style transfer, replacement)."""
    return _run(_spec.EDIT, prompt, image, **kw)


def reference(prompt: str, images: Sequence[Any], **kw: Any) -> Result:
    """Fuse 2 to 9 reference images."""
    return _run(_spec.REFERENCE, prompt, images, **kw)


def group(prompt: str, n: int = 4, **kw: Any) -> Result:
    """A themed group of up to 12 related images (comic strip, storyboard)."""
    return _run(_spec.GROUP, prompt, n=n, **kw)


def interactive_edit(prompt: str, images: Any, bbox_list: Any = None, **kw: Any) -> Result:
    """Edit only inside boxes: one list of 1-2 boxes ``[x1, y1, x2, y2]`` per image.

    With one image, ``bbox_list`` may also be just its boxes (``[[x1, y1, x2, y2]]``)
    or a single box. ``images`` may be a ``wan.BBoxDrawer``: its images and boxes.
    """
    if not isinstance(images, (list, tuple)) and bbox_list is not None:
        bbox_list = boxes_for_one_image(bbox_list)
    return _run(_spec.INTERACTIVE_EDIT, prompt, images, bbox_list=bbox_list, **kw)
