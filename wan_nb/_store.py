"""Content-addressed image files and thumbnails in the run folder.

A result link from the API expires after 24 hours; the images the user paid for are
only safe once their bytes are on disk. So every image is fully decoded before it is
accepted (a truncated download or an HTML error page is refused, not stored), written
atomically under its sha256 (re-running a cell or resuming a sweep writes nothing
new), and gets a small JPEG thumbnail for grids and reports.

    <root>/images/ab/<sha256>.png    the bytes exactly as downloaded
    <root>/thumbs/ab/<sha256>.jpg    longest side 256 px
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ._atomic import atomic_write_bytes, fsync_dir
from ._exceptions import DownloadError
from ._formats import extension
from ._thumbs import THUMB_SIDE, data_uri, human_bytes, thumbnail_jpeg
from ._tiles import CellItem, render_item_html

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class StoredImage:
    """An image that is safely on disk: where, how big, and where it came from."""

    path: Path
    thumb_path: Path
    sha256: str
    bytes: int
    width: int
    height: int
    format: str
    source_url: str | None = None
    expires_at: float | None = None

    def open(self) -> Image.Image:
        """The full image, loaded (the file handle is closed again)."""
        with Image.open(self.path) as im:
            im.load()
            return im

    def thumbnail_data_uri(self) -> str:
        """The thumbnail as a ``data:image/jpeg;base64,...`` URI (works with no file server)."""
        try:
            data = Path(self.thumb_path).read_bytes()
        except OSError:  # thumbnail deleted: rebuild it in memory from the full image
            data = thumbnail_jpeg(self.open())
        return data_uri(data)

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    def _repr_html_(self) -> str:
        caption = f"{self.width}×{self.height} · {self.format} · {human_bytes(self.bytes)}"
        return render_item_html(CellItem.of_image(self, caption), box=THUMB_SIDE)

    def __repr__(self) -> str:
        return f"StoredImage({self.width}×{self.height} {self.format}, {human_bytes(self.bytes)}, {self.path})"


def _inspect(source: bytes | Path, nbytes: int) -> tuple[str, int, int, bytes]:
    """(format, width, height, thumbnail JPEG) of a whole image, decoded once.

    Anything that is not a whole image raises DownloadError. A JPEG is decoded with
    DCT scaling (``draft``): every block is still read, so a truncated or corrupt file
    fails here as it would at full size, but a 4K image costs a 512-px decode, and the
    thumbnail is made from that same decode. Other formats are checked (``verify``: PNG
    CRCs) and decoded in full, as before.
    """
    if not nbytes:
        raise DownloadError("the downloaded image is empty (0 bytes)")

    def open_() -> Image.Image:
        return Image.open(source if isinstance(source, Path) else io.BytesIO(source))

    try:
        im = open_()
        try:
            fmt, (width, height) = im.format, im.size
            if fmt == "JPEG":
                im.draft("RGB", (THUMB_SIDE, THUMB_SIDE))
            else:
                im.verify()  # checksums (PNG CRCs) that load() alone would not check
                im.close()
                im = open_()
            im.load()  # decodes every block: a truncated file fails here
            thumb = thumbnail_jpeg(im)
        finally:
            im.close()
    except Image.DecompressionBombError as exc:
        raise DownloadError(f"refusing a suspiciously large image: {exc}") from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, ...
        head = (source[:60] if isinstance(source, bytes) else _head(source)).decode("latin-1").replace("\n", " ")
        raise DownloadError(
            f"the downloaded data ({nbytes} bytes) is not a decodable image "
            f"({type(exc).__name__}: {exc}); it starts with {head!r}"
        ) from exc
    if not fmt:
        raise DownloadError("the downloaded data decodes, but its image format is unknown")
    return fmt, width, height, thumb


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(60)
    except OSError:
        return b""


def _file_has(path: Path, sha256: str, size: int) -> bool:
    """Does ``path`` already hold exactly these bytes? (size first: cheap)."""
    try:
        if path.stat().st_size != size:
            return False
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest() == sha256
    except OSError:
        return False


class Store:
    """The image files of one run folder (``WAN_NB_HOME``, default ``./wan_runs``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()
        self.images_dir = self.root / "images"
        self.thumbs_dir = self.root / "thumbs"

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def image_path(self, sha256: str, fmt: str) -> Path:
        ext = extension(fmt)
        return self.images_dir / sha256[:2] / f"{sha256}.{ext}"

    def thumb_path(self, sha256: str) -> Path:
        return self.thumbs_dir / sha256[:2] / f"{sha256}.jpg"

    def put(self, data: bytes, *, source_url: str | None = None, expires_at: float | None = None) -> StoredImage:
        """Verify ``data`` is an image, store it under its sha256, make its thumbnail.

        Idempotent: the same bytes always give the same path, and a file that already
        holds them is not written again. Raises ``DownloadError`` for non-images.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"Store.put expects the image's bytes, got {type(data).__name__}")
        data = bytes(data)
        fmt, width, height, thumb = _inspect(data, len(data))
        sha = hashlib.sha256(data).hexdigest()
        path = self.image_path(sha, fmt)
        if not _file_has(path, sha, len(data)):
            atomic_write_bytes(path, data)
        return self._finish(path, sha, len(data), fmt, width, height, thumb, source_url, expires_at)

    def incoming(self) -> Path:
        """A fresh temporary file in the images folder, for a download streamed to disk
        (``put_file`` moves it into place; a rename in the same folder tree)."""
        self.images_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.images_dir, prefix=".incoming.", suffix=".tmp")
        os.close(fd)
        return Path(tmp)

    def put_file(self, tmp: Path, sha256: str, nbytes: int, *, source_url: str | None = None,
                 expires_at: float | None = None) -> StoredImage:
        """``put`` for bytes already on disk in ``tmp`` (from ``incoming``), whose sha256
        and size the writer counted as they streamed: decoded once, then renamed into
        place (or dropped when the store holds these bytes already). ``tmp`` is gone
        afterwards, whatever happens."""
        try:
            fmt, width, height, thumb = _inspect(tmp, nbytes)
            path = self.image_path(sha256, fmt)
            if _file_has(path, sha256, nbytes):
                tmp.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
                fsync_dir(path.parent)
        finally:
            tmp.unlink(missing_ok=True)
        return self._finish(path, sha256, nbytes, fmt, width, height, thumb, source_url, expires_at)

    def _finish(self, path: Path, sha: str, nbytes: int, fmt: str, width: int, height: int, thumb: bytes,
                source_url: str | None, expires_at: float | None) -> StoredImage:
        thumb_path = self.thumb_path(sha)
        if not thumb_path.exists():  # derived data: renamed into place, not fsynced (it can be made again)
            atomic_write_bytes(thumb_path, thumb, durable=False)
        return StoredImage(
            path=path, thumb_path=thumb_path, sha256=sha, bytes=nbytes, width=width, height=height,
            format=fmt, source_url=source_url, expires_at=expires_at,
        )

    def get(self, sha256: str) -> StoredImage | None:
        """The stored image with this sha256 (``"sha256:"`` prefix allowed), or None."""
        sha = sha256.removeprefix("sha256:").lower()
        if not _SHA256.match(sha):
            raise ValueError(f"sha256: expected 64 hex digits, got {sha256!r}")
        folder = self.images_dir / sha[:2]
        try:
            names = sorted(n for n in os.listdir(folder) if n.startswith(sha + "."))
        except FileNotFoundError:
            return None
        for name in names:
            path = folder / name
            try:
                with Image.open(path) as im:  # header only: cheap
                    width, height, fmt = im.width, im.height, im.format or ""
            except (OSError, ValueError):
                continue
            thumb = self.thumb_path(sha)
            if not thumb.exists():
                try:
                    atomic_write_bytes(thumb, _inspect(path, path.stat().st_size)[3])
                except DownloadError:
                    continue
            return StoredImage(
                path=path, thumb_path=thumb, sha256=sha, bytes=path.stat().st_size,
                width=width, height=height, format=fmt,
            )
        return None

    def __contains__(self, sha256: object) -> bool:
        return isinstance(sha256, str) and self.get(sha256) is not None
