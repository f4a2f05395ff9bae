"""Thumbnails, made one way: the store's thumbnail files, the images embedded in HTML
views and the PNG grids all shrink pictures here (pure Pillow: no HTML, no run folder).

The display sizes live here too, so a view can choose between the stored thumbnail
and the full image without importing the store.
"""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageOps

THUMB_SIDE = 256  # px: longest side of the thumbnail the store writes beside each image
THUMB_QUALITY = 85
EMBED_SIDE = 192  # px: images embedded in HTML views and reports
EMBED_QUALITY = 78


def flatten_to_rgb(im: Image.Image) -> Image.Image:
    """RGB for JPEG: transparent areas become white instead of black."""
    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA", "P", "PA"):
        im = im.convert("RGBA")
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, mask=im.getchannel("A"))
        return bg
    return im.convert("RGB")


def shrink(im: Image.Image, side: int, resample: Image.Resampling = Image.Resampling.BICUBIC) -> Image.Image:
    """An upright RGB copy whose longest side is at most ``side`` (EXIF rotation applied)."""
    out = ImageOps.exif_transpose(im)
    out = out.copy() if out is im else out
    out.thumbnail((side, side), resample)
    return flatten_to_rgb(out)


def jpeg(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def thumbnail_jpeg(im: Image.Image) -> bytes:
    """The store's thumbnail of a decoded image."""
    return jpeg(shrink(im, THUMB_SIDE, Image.Resampling.LANCZOS), THUMB_QUALITY)


def data_uri(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def human_bytes(n: int | None) -> str:
    """A file size as people read it: 512 B, 1.5 KB, 3.2 MB."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
