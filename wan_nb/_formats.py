"""Image file types: Pillow's format name, the file extension, the MIME type. One table
for the store's files, uploads (the client's and a form's) and the simulator."""

from __future__ import annotations

FILE_TYPES = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "GIF": ("gif", "image/gif"),
    "BMP": ("bmp", "image/bmp"),
    "TIFF": ("tif", "image/tiff"),
}


def extension(fmt: str | None, unknown: str = "img") -> str:
    """The file extension for a Pillow format name (``JPEG`` -> ``jpg``)."""
    return FILE_TYPES[fmt.upper()][0] if fmt and fmt.upper() in FILE_TYPES else (fmt or unknown).lower()


def content_type(fmt: str | None) -> str:
    """The MIME type for a Pillow format name (``application/octet-stream`` if unknown)."""
    return FILE_TYPES[fmt.upper()][1] if fmt and fmt.upper() in FILE_TYPES else "application/octet-stream"
