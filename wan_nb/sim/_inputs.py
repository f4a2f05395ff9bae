"""Turn a submit body into a checked request and decoded input images.

The rules of every field belong to the project's request model (``_request``), so the
simulator never re-implements them: it calls ``request_from_body``.
What only a server can do happens here: fetch the input images, learn their pixel
sizes, and check the boxes of interactive_edit against them (a second
``build_request`` with sized ``ImageRef``s).

Where input bytes come from, in order:
1. the simulator's own files (``/sim/files/uploads/...`` or an unexpired result link);
2. another loopback URL, fetched with a short timeout;
3. anything else is never fetched (the simulator stays off the network): a
   deterministic placeholder made from the URL's hash stands in, and the task's
   ``sim.notes`` says so; a ``urls_only`` simulator (hosted-like) refuses it instead,
   so a test cannot pass on an input the hosted API would not have been able to read.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

from .. import _spec
from .._exceptions import Problem, RequestError
from .._formats import extension
from .._images import ImageRef, header_size, pixels_problem, size_problem, sniff_format
from .._request import Request
from .._wire import request_from_body
from . import _render
from ._files import FileAnswer, Upload
from ._net import is_loopback_url, loopback_client

FETCH_TIMEOUT = 3.0
PLACEHOLDER_SIZES = ((1024, 1024), (1280, 960), (960, 1280), (1344, 768))


@dataclass
class Prepared:
    request: Request
    inputs: list[Image.Image] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def decode_image(data: bytes, where: str) -> tuple[Image.Image, str]:
    """Decoded RGB image and its format, or RequestError naming ``where`` and the rule."""
    too_big = size_problem(len(data))
    if too_big:
        raise RequestError([Problem(where, "max_size", too_big)])
    fmt = sniff_format(data)
    if fmt not in _spec.IMAGE_FORMATS:
        raise RequestError([Problem(where, "format", "must be a JPG, PNG or WEBP image")])
    width, height = header_size(data)
    too_many = pixels_problem(width, height) if width and height else None
    if too_many:
        raise RequestError([Problem(where, "max_pixels", too_many)])
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            img = im.convert("RGB")
    except Exception:  # noqa: BLE001 - Pillow raises many types for an undecodable image
        raise RequestError([Problem(where, "decodable", f"is not a readable {fmt} image")]) from None
    return img, fmt


def make_upload(data: bytes) -> Upload:
    """Check an uploaded input like the API checks image_urls (≤ 30 MB, JPG/PNG/WEBP)."""
    img, fmt = decode_image(data, "image_urls")
    return Upload(hashlib.sha256(data).hexdigest(), extension(fmt), img.width, img.height, fmt, data)


def _fetch(url: str, where: str) -> bytes:
    limit = _spec.MAX_IMAGE_BYTES
    try:
        with loopback_client(FETCH_TIMEOUT) as client, client.stream("GET", url) as resp:
            if resp.status_code != 200:
                raise RequestError([Problem(where, "fetchable", f"{url} answered HTTP {resp.status_code}")])
            chunks, total = [], 0
            for chunk in resp.iter_bytes():
                total += len(chunk)
                if total > limit:
                    raise RequestError([Problem(where, "max_size", f"{url} is over the {limit // 2**20} MB limit")])
                chunks.append(chunk)
            return b"".join(chunks)
    except RequestError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to fetch is the client's 400, as the hosted API says
        raise RequestError([Problem(where, "fetchable", f"could not fetch {url}: {type(exc).__name__}")]) from None


def _placeholder_size(url: str, boxes: Any) -> tuple[int, int]:
    """A size from the URL's hash, grown to hold the request's boxes so that a box drawn
    on the real image is not rejected because of the stand-in."""
    pick = int(hashlib.sha256(url.encode()).hexdigest(), 16) % len(PLACEHOLDER_SIZES)
    w, h = PLACEHOLDER_SIZES[pick]
    for box in boxes or ():
        if isinstance(box, (list, tuple)) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box):
            w = max(w, math.ceil(box[2] / 16) * 16)
            h = max(h, math.ceil(box[3] / 16) * 16)
    return w, h


class InputResolver:
    """Finds the bytes behind each image URL of a request (see module docstring)."""

    def __init__(self, own_file: Callable[[str], FileAnswer | None], urls_only: bool = False) -> None:
        # own_file(url) -> FileAnswer when the URL names one of the simulator's files, else None
        self._own_file = own_file
        self._urls_only = urls_only

    def resolve(self, index: int, url: str, boxes: Any) -> tuple[Image.Image, str, str | None]:
        """(image, format, note) for image_urls[index]."""
        where = f"image_urls[{index}]"
        own = self._own_file(url)
        if own is not None:
            if own.expired_at is not None:
                raise RequestError([Problem(where, "fetchable", f"{url} has expired (link_expired)")])
            if not own.found:
                hint = "" if self._urls_only else "; upload it first (POST /sim/uploads)"
                raise RequestError([Problem(where, "fetchable", f"{url} is not a file of this simulator{hint}")])
            img, fmt = decode_image(own.data, where)  # type: ignore[arg-type]
            return img, fmt, None
        if is_loopback_url(url):
            img, fmt = decode_image(_fetch(url, where), where)
            return img, fmt, f"{where}: fetched from loopback"
        if self._urls_only:
            raise RequestError([Problem(where, "fetchable", (
                f"{url} is not on loopback: this urls_only simulator reads only its own result links and "
                "loopback URLs (it never reaches the network)"))])
        size = _placeholder_size(url, boxes)
        note = (f"{where}: {urlsplit(url).hostname or url} is not on loopback, so it was not fetched; "
                f"a {size[0]}x{size[1]} placeholder made from the URL's hash stands in")
        return _render.placeholder(url, size), "JPEG", note


def prepare(body: Any, rng: random.Random, resolver: InputResolver) -> Prepared:
    """Check the body with the request model, fetch its inputs, check boxes against
    their sizes. Raises RequestError listing every problem."""
    req = request_from_body(body, rng)  # every rule, URL-only images; raises listing all problems
    if not req.images:
        return Prepared(req, [], list(req.warnings))
    inputs, refs, notes, problems = [], [], [], []
    boxes = req.bbox_list or ()
    for i, ref in enumerate(req.images):
        hint = boxes[i] if i < len(boxes) else ()
        try:
            img, fmt, note = resolver.resolve(i, ref.url or "", hint)
        except RequestError as err:
            problems.extend(err.problems)
            continue
        inputs.append(img)
        refs.append(ImageRef(url=ref.url, width=img.width, height=img.height, format=fmt))
        if note:
            notes.append(note)
    if problems:
        raise RequestError(problems)
    # Again, now that the sizes are known (bbox bounds); the effective fields keep the seed.
    sized = req.replace(image_urls=refs)
    return Prepared(sized, inputs, list(req.warnings) + notes)
