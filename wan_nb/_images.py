"""Input images for the image modes: URLs, paths, PIL images, bytes, results.

Everything becomes an ``ImageRef``. Local images keep their bytes (to upload) and a
sha256 (so a request that names them has a stable canonical form); sizes are read
from the header only, so a 30 MB file is not decoded just to be checked. A result
(``Result`` or ``StoredImage``) also keeps its own result link and when it expires:
while it lives, the image is sent as that link and never uploaded (the hosted API
takes URLs only). How the image goes out is decided later (``AsyncClient.place``);
its canonical form is its sha256 either way, so a request is the same request
whether its image travels as a link or as an upload.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeAlias
from urllib.parse import urlsplit

from PIL import Image
from PIL.Image import Image as PILImage

from . import _clock, _spec
from ._store import StoredImage


@dataclass(frozen=True)
class ImageRef:
    """One input image: a URL, or bytes to upload (with what we know about them)."""

    url: str | None = None
    data: bytes | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    source: str | None = None  # where it came from (a path), for messages
    expires_at: float | None = field(default=None, compare=False)  # when ``url`` is a result link: its end
    via: str | None = field(default=None, compare=False)  # once placed: one of VIA

    def __repr__(self) -> str:
        size = f" {self.width}x{self.height}" if self.width else ""
        what = self.url or self.source or f"sha256:{(self.sha256 or '')[:12]}"
        return f"ImageRef({what}{size}{' ' + self.format if self.format else ''})"

    @property
    def size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.width and self.height else None

    @property
    def canonical(self) -> str:
        """How the request's canonical form names this image: its bytes' sha256 when
        known (however it is sent), else the URL the user gave."""
        return f"sha256:{self.sha256}" if self.sha256 else str(self.url)

    def live_url(self, margin: float, server_now: float | None = None) -> str | None:
        """``url`` if it will still work ``margin`` seconds from now (a given URL always does).

        ``server_now``: the time on the clock of the server that set ``expires_at``
        (``AsyncClient.server_clock.now()``); the local clock when not given."""
        now = _clock.now() if server_now is None else server_now
        if self.url is None or (self.expires_at is not None and self.expires_at - margin <= now):
            return None
        return self.url

    def describe(self) -> str:
        """The input in words, for messages: its file, its URL, or its hash."""
        return self.source or self.url or f"image sha256:{(self.sha256 or '')[:12]}"


class HoldsImages(Protocol):
    """A ``Result``, as this layer knows it (``_is_result``): images on disk."""

    @property
    def images(self) -> list[StoredImage]: ...


# What an input image may be given as: each becomes an ImageRef (``to_image_ref``); a
# result (``HoldsImages``) of one image.
ImageInput: TypeAlias = (
    str | os.PathLike[str] | bytes | bytearray | memoryview | PILImage | HoldsImages | StoredImage | ImageRef
)


# How an input reached the server: the URL the user gave, a result link reused, an upload.
VIA = ("url", "link", "upload")


class ImageInputError(ValueError):
    """An input that cannot be an image; ``rule`` names the broken rule."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def sniff_format(data: bytes) -> str | None:
    """JPEG / PNG / WEBP from magic bytes, else None (the document allows only these)."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def header_size(data: bytes) -> tuple[int | None, int | None]:
    """(width, height) from the header alone, or (None, None) when it cannot be read.

    Read by the format's own Pillow reader (``Image.OPEN``, what ``Image.open`` calls)
    without ``Image.open``'s decompression-bomb check: the size of an image too large to
    decode is what tells the user why it is refused (``pixels_problem``).
    """
    fmt = sniff_format(data)
    if fmt is None:
        return None, None
    if fmt not in Image.OPEN:
        Image.preinit()  # the common readers (JPEG, PNG), as Image.open loads them
    if fmt not in Image.OPEN:
        Image.init()  # the rest (WEBP)
    try:
        factory, _accept = Image.OPEN[fmt]
        with factory(io.BytesIO(data), "") as im:
            width, height = im.size
    except Exception:  # noqa: BLE001 - Pillow raises many types for "not an image"; the size is just unknown
        return None, None
    return (width, height) if width > 0 and height > 0 else (None, None)


def decode_limit() -> int | None:
    """The most pixels an image may have to be decoded here: Pillow refuses more than twice
    ``PIL.Image.MAX_IMAGE_PIXELS`` (a possible decompression bomb); None when that is off."""
    return None if Image.MAX_IMAGE_PIXELS is None else 2 * int(Image.MAX_IMAGE_PIXELS)


def pixels_problem(width: int, height: int) -> str | None:
    """An image too large to decode, as a message with its size and the limit (None when fine)."""
    limit = decode_limit()
    if limit is None or width * height <= limit:
        return None
    return (f"is {width}×{height} ({width * height / 1e6:.0f} megapixels), over the decode limit of "
            f"{limit / 1e6:.0f} megapixels (Pillow refuses to decode more than twice PIL.Image.MAX_IMAGE_PIXELS); "
            "send a smaller copy")


def from_bytes(data: bytes, source: str | None = None) -> ImageRef:
    data = bytes(data)
    fmt = sniff_format(data)
    width, height = header_size(data) if fmt else (None, None)
    return ImageRef(None, data, hashlib.sha256(data).hexdigest(), width, height, fmt, source)


def size_problem(nbytes: int) -> str | None:
    """The document's size limit for one input image, as a message (None when fine)."""
    if nbytes > _spec.MAX_IMAGE_BYTES:
        return f"{nbytes / 2**20:.1f} MB is over the {_spec.MAX_IMAGE_BYTES // 2**20} MB limit"
    return None


def image_problems(ref: ImageRef) -> list[tuple[str, str]]:
    """(rule, message) pairs for an image we hold bytes of; URLs are checked by the server."""
    if ref.data is None:
        return []
    out = []
    too_big = size_problem(len(ref.data))
    if too_big:
        out.append(("max_size", too_big))
    too_many = pixels_problem(ref.width, ref.height) if ref.width and ref.height else None
    if ref.format not in _spec.IMAGE_FORMATS:
        out.append(("format", "must be a JPG, PNG or WEBP image"))
    elif too_many:
        out.append(("max_pixels", too_many))
    elif ref.width is None:
        out.append(("decodable", f"is not a readable {ref.format} image"))
    return out


def is_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _from_path(path: Path) -> ImageRef:
    if not path.is_file():
        raise ImageInputError("file", f"no such file: {str(path)!r}")
    # Do not read a huge file only to reject it: stat tells its size.
    too_big = size_problem(path.stat().st_size)
    if too_big:
        raise ImageInputError("max_size", too_big)
    return from_bytes(path.read_bytes(), source=str(path))


def from_stored(image: StoredImage) -> ImageRef:
    """A result on disk: its bytes (to upload if need be) and its own result link.

    The link is kept only when its expiry is known and the file still holds the bytes
    it was downloaded as; a file that is gone can still go out by its live link.
    """
    path = Path(image.path)
    link = image.source_url if image.expires_at is not None else None
    if path.is_file():
        ref = _from_path(path)
        if ref.sha256 != image.sha256:  # the file was changed: its link shows something else
            return ref
    elif link:
        ref = ImageRef(sha256=image.sha256, width=image.width, height=image.height, format=image.format,
                       source=str(path))
    else:
        raise ImageInputError("file", f"no such file: {str(path)!r} (and the result has no link to use)")
    return replace(ref, url=link, expires_at=image.expires_at if link else None)


def expand_inputs(values: Any) -> list[Any]:
    """Single images, in order, from a list of inputs, for widgets that show each one.

    An object that holds images (anything with an ``images`` list: a ``Result``, a
    ``BBoxDrawer``) stands for all of them, so a drawer shows a group result as tabs.
    (A request takes a ``Result`` of one image by ``to_image_ref``, and a drawer by
    ``_request``'s holder protocol.)
    """
    out: list[Any] = []
    for value in values:
        held = None if isinstance(value, (str, bytes, os.PathLike)) else getattr(value, "images", None)
        out.extend(held if isinstance(held, (list, tuple)) else [value])
    return out


def _is_result(value: Any) -> bool:
    """A ``Result``, known by what it holds (images on disk), so this lower layer need not
    import it: an object whose ``images`` is a list of ``StoredImage``."""
    held = None if isinstance(value, (str, bytes, os.PathLike)) else getattr(value, "images", None)
    return isinstance(held, list) and all(isinstance(i, StoredImage) for i in held)


def to_image_ref(value: Any) -> ImageRef:
    """Turn a URL / path / PIL image / bytes / result into an ImageRef, or raise ImageInputError."""
    if isinstance(value, ImageRef):
        return value
    if isinstance(value, StoredImage):
        return from_stored(value)
    if _is_result(value):
        if len(value.images) != 1:
            raise ImageInputError(
                "type",
                f"this {type(value).__name__} has {len(value.images)} images: pass one of them (r.images[0]), "
                "or the list r.images where several images are taken",
            )
        return from_stored(value.images[0])
    if isinstance(value, (bytes, bytearray, memoryview)):
        return from_bytes(bytes(value))
    if isinstance(value, str) and "://" in value:
        if not is_url(value):
            raise ImageInputError("url", f"{value!r} is not an http(s) URL")
        return ImageRef(url=value)
    if isinstance(value, (str, os.PathLike)):
        return _from_path(Path(value).expanduser())
    if hasattr(value, "save") and hasattr(value, "size") and hasattr(value, "mode"):
        buf = io.BytesIO()
        img = value if value.mode in ("RGB", "RGBA", "L", "LA", "P") else value.convert("RGB")
        img.save(buf, format="PNG")
        return from_bytes(buf.getvalue(), source=f"PIL image {value.size[0]}x{value.size[1]}")
    raise ImageInputError(
        "type",
        f"expected an http(s) URL, a file path, a PIL image, bytes or a result, got {type(value).__name__}",
    )
