"""Input images for the image modes: URL strings, local paths, PIL images or bytes.

Everything becomes an ``ImageRef``. Local images keep their bytes (to upload) and a
sha256 (so a request that names them has a stable canonical form); sizes are read
from the header only, so a 30 MB file is not decoded just to be checked.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import _spec


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

    def __repr__(self) -> str:
        size = f" {self.width}x{self.height}" if self.width else ""
        what = self.url or self.source or f"sha256:{(self.sha256 or '')[:12]}"
        return f"ImageRef({what}{size}{' ' + self.format if self.format else ''})"

    @property
    def size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.width and self.height else None

    @property
    def canonical(self) -> str:
        """How the request's canonical form names this image."""
        return f"sha256:{self.sha256}" if self.data is not None else str(self.url)



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


def _header_size(data: bytes) -> tuple[int | None, int | None]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:
        return None, None


def from_bytes(data: bytes, source: str | None = None) -> ImageRef:
    data = bytes(data)
    fmt = sniff_format(data)
    width, height = _header_size(data) if fmt else (None, None)
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
    if ref.format not in _spec.IMAGE_FORMATS:
        out.append(("format", "must be a JPG, PNG or WEBP image"))
    elif ref.width is None:
        out.append(("decodable", f"is not a readable {ref.format} image"))
    return out


def is_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def to_image_ref(value: Any) -> ImageRef:
    """Turn a URL / path / PIL image / bytes into an ImageRef, or raise ImageInputError."""
    if isinstance(value, ImageRef):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return from_bytes(bytes(value))
    if isinstance(value, str) and "://" in value:
        if not is_url(value):
            raise ImageInputError("url", f"{value!r} is not an http(s) URL")
        return ImageRef(url=value)
    if isinstance(value, (str, os.PathLike)):
        path = Path(value).expanduser()
        if not path.is_file():
            raise ImageInputError("file", f"no such file: {str(path)!r}")
        # Do not read a huge file only to reject it: stat tells its size.
        too_big = size_problem(path.stat().st_size)
        if too_big:
            raise ImageInputError("max_size", too_big)
        return from_bytes(path.read_bytes(), source=str(path))
    if hasattr(value, "save") and hasattr(value, "size") and hasattr(value, "mode"):
        buf = io.BytesIO()
        img = value if value.mode in ("RGB", "RGBA", "L", "LA", "P") else value.convert("RGB")
        img.save(buf, format="PNG")
        return from_bytes(buf.getvalue(), source=f"PIL image {value.size[0]}x{value.size[1]}")
    raise ImageInputError(
        "type",
        f"expected an http(s) URL, a file path, a PIL image or bytes, got {type(value).__name__}",
    )
