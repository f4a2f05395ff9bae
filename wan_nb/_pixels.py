"""The pixels of an input image, for the widgets that show or analyse one (the bbox
drawer, ``palette_from_image``).

They take whatever the mode functions take (path, URL, PIL image, bytes, a
``StoredImage``), checked by the same rules; a URL is fetched once, since boxes are
drawn on real pixels. The image is not rotated by its EXIF tag: box coordinates are
in the pixels the API reads.
"""

from __future__ import annotations

import io

from PIL import Image

from ._client import fetch_image
from ._exceptions import Problem, RequestError
from ._images import ImageInputError, from_bytes, image_problems, to_image_ref
from ._thumbs import flatten_to_rgb


def open_rgb(value: object, name: str) -> Image.Image:
    """``value`` decoded as an RGB image; RequestError naming ``name`` when it cannot be one."""
    try:
        ref = to_image_ref(value)
    except ImageInputError as exc:
        raise RequestError([Problem(name, exc.rule, str(exc))]) from exc
    if ref.data is None and ref.url is not None:
        ref = from_bytes(fetch_image(ref.url), source=ref.url)
    problems = [Problem(name, rule, message) for rule, message in image_problems(ref)]
    if problems:
        raise RequestError(problems)
    assert ref.data is not None
    try:
        im = Image.open(io.BytesIO(ref.data))  # bytes in memory: nothing to close
        im.load()
        return flatten_to_rgb(im)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise RequestError([Problem(name, "decodable", f"is not a readable image ({exc})")]) from exc
