"""Store: content-addressed, verified, atomic, idempotent image files with thumbnails."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
from pathlib import Path

import pytest
from PIL import Image

from wan_nb import _atomic
from wan_nb._exceptions import DownloadError
from wan_nb._store import Store, StoredImage
from wan_nb._thumbs import THUMB_SIDE


def image_bytes(w: int, h: int, fmt: str = "PNG", color=(200, 40, 40), mode: str = "RGB") -> bytes:
    im = Image.new(mode, (w, h), color)
    for x in range(0, w, 7):  # some structure so JPEG/PNG are not trivial
        im.putpixel((x, (x * 3) % h), (0, 0, 0) if mode == "RGB" else (0, 0, 0, 255))
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "runs")


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_put_writes_content_addressed_file_and_metadata(store: Store) -> None:
    data = image_bytes(320, 200)
    sha = hashlib.sha256(data).hexdigest()
    img = store.put(data, source_url="https://cdn.example/x.png", expires_at=1234.5)
    assert img.path == store.root / "images" / sha[:2] / f"{sha}.png"
    assert img.path.read_bytes() == data
    assert (img.sha256, img.bytes, img.width, img.height, img.format) == (sha, len(data), 320, 200, "PNG")
    assert (img.source_url, img.expires_at) == ("https://cdn.example/x.png", 1234.5)
    assert img.thumb_path == store.root / "thumbs" / sha[:2] / f"{sha}.jpg"
    with img.open() as im:
        assert im.size == (320, 200)


@pytest.mark.parametrize(("fmt", "ext"), [("JPEG", "jpg"), ("WEBP", "webp")])
def test_put_keeps_format_in_extension(store: Store, fmt: str, ext: str) -> None:
    img = store.put(image_bytes(50, 40, fmt))
    assert img.format == fmt and img.path.suffix == f".{ext}"


def test_put_is_idempotent_and_does_not_rewrite(store: Store) -> None:
    data = image_bytes(120, 80)
    first = store.put(data)
    os.utime(first.path, ns=(1_000_000_000, 1_000_000_000))  # a rewrite would change these
    os.utime(first.thumb_path, ns=(1_000_000_000, 1_000_000_000))
    inode = first.path.stat().st_ino
    second = store.put(data)
    assert second == first
    assert second.path.stat().st_mtime_ns == 1_000_000_000
    assert second.thumb_path.stat().st_mtime_ns == 1_000_000_000
    assert second.path.stat().st_ino == inode
    assert len(files_under(store.root / "images")) == 1
    assert len(files_under(store.root / "thumbs")) == 1


def test_put_repairs_a_damaged_copy(store: Store) -> None:
    data = image_bytes(120, 80)
    img = store.put(data)
    img.path.write_bytes(data[:40])  # e.g. damaged by hand or by a broken disk
    again = store.put(data)
    assert again.path.read_bytes() == data


def test_put_is_atomic_when_the_write_fails(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(src, dst):  # the process "dies" between writing and renaming
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)  # the os module _atomic calls
    with pytest.raises(OSError, match="disk full"):
        store.put(image_bytes(64, 64))
    # nothing at the final path and no temp files left behind
    assert files_under(store.root / "images") == []


def test_atomic_write_keeps_old_content_when_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")

    def broken_fsync(fd):
        raise OSError("power cut")

    monkeypatch.setattr(os, "fsync", broken_fsync)  # the os module _atomic calls
    with pytest.raises(OSError, match="power cut"):
        _atomic.atomic_write_text(target, "new content")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"<html><body>502 Bad Gateway</body></html>",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
    ],
    ids=["empty", "html-error-page", "png-magic-only"],
)
def test_put_rejects_bytes_that_are_not_an_image(store: Store, garbage: bytes) -> None:
    with pytest.raises(DownloadError):
        store.put(garbage)
    assert files_under(store.root) == []


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_put_rejects_truncated_download(store: Store, fmt: str) -> None:
    data = image_bytes(300, 300, fmt)
    with pytest.raises(DownloadError, match="not a decodable image"):
        store.put(data[: len(data) * 2 // 3])
    assert files_under(store.root) == []


@pytest.mark.parametrize(
    ("size", "expected"),
    [((1000, 400), (256, 102)), ((300, 1200), (64, 256)), ((256, 256), (256, 256)), ((100, 50), (100, 50))],
)
def test_thumbnail_longest_side_256_jpeg(store: Store, size, expected) -> None:
    img = store.put(image_bytes(*size))
    with Image.open(img.thumb_path) as th:
        assert th.format == "JPEG"
        assert th.size == expected
        assert max(th.size) <= THUMB_SIDE


def test_thumbnail_of_transparent_png(store: Store) -> None:
    img = store.put(image_bytes(400, 300, "PNG", color=(0, 0, 0, 0), mode="RGBA"))
    with Image.open(img.thumb_path) as th:
        assert th.format == "JPEG" and th.size == (256, 192)
        assert th.convert("RGB").getpixel((128, 100))[0] > 200  # transparent became white, not black


def test_get_finds_stored_image(store: Store) -> None:
    img = store.put(image_bytes(90, 60))
    found = store.get(img.sha256)
    assert found is not None
    assert (found.path, found.thumb_path, found.width, found.height, found.format, found.bytes) == (
        img.path, img.thumb_path, 90, 60, "PNG", img.bytes,
    )
    assert store.get("sha256:" + img.sha256) == found
    assert store.get("0" * 64) is None
    with pytest.raises(ValueError, match="sha256"):
        store.get("not-a-hash")


def test_get_rebuilds_a_missing_thumbnail(store: Store) -> None:
    img = store.put(image_bytes(600, 300))
    img.thumb_path.unlink()
    found = store.get(img.sha256)
    assert found is not None and found.thumb_path.exists()


def test_concurrent_puts_of_same_bytes_agree(store: Store) -> None:
    data = image_bytes(200, 100)
    results: list[StoredImage] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(store.put(data))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.path for r in results}) == 1
    assert results[0].path.read_bytes() == data
    assert [p.name for p in files_under(store.root / "images")] == [results[0].path.name]


def test_thumbnail_data_uri_and_html(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img = store.put(image_bytes(640, 360))
    uri = img.thumbnail_data_uri()
    assert uri.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
        assert im.size == (256, 144)
    monkeypatch.chdir(tmp_path)
    html = img._repr_html_()
    assert "data:image/jpeg;base64," in html
    rel = img.path.relative_to(tmp_path).as_posix()
    assert f'href="{rel}"' in html  # relative link to the full file
    assert "640×360" in html


def test_a_result_preview_is_the_thumbnail_just_written(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Showing a result embeds the stored thumbnail; the full image is not decoded again."""
    from wan_nb import _html_parts
    from wan_nb._result import Result

    image = store.put(image_bytes(1600, 900))
    opened: list[str] = []
    embed = _html_parts._embedded_jpeg

    def recording(path: str, *args: object) -> str:
        opened.append(path)
        return embed(path, *args)

    monkeypatch.setattr(_html_parts, "_embedded_jpeg", recording)
    html = Result("run-x", None, "task-x", "completed", [image])._repr_html_()
    assert "data:image/jpeg;base64," in html
    assert opened == [str(image.thumb_path)]
