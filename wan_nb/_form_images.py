"""The input-images field of a form: upload a file, paste a URL, or pick a recent result.

Every input becomes something a line of code can name again, so the code a form shows
reproduces its run: a URL stays a URL, a result stays its file in the run folder, and
an uploaded file (or bytes, a PIL image) is written once under its sha256 to
``<run folder>/uploads/`` and named by that path. Each input is checked once, when it
is added (``to_image_ref``: the format, the 30 MB rule, a sha256); the request is
built from those refs on every edit without reading the files again.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from PIL import Image

from . import _config
from ._atomic import atomic_write_bytes
from ._exceptions import Problem, RequestError
from ._form_code import path_expr
from ._formats import extension
from ._html_parts import FONT, esc, short
from ._images import (
    ImageInputError,
    ImageRef,
    expand_inputs,
    from_bytes,
    image_problems,
    to_image_ref,
)
from ._log import Log, records
from ._session import current
from ._store import StoredImage

CHIP_SIDE = 72  # px: the thumbnail of a chosen input
RECENT = 8  # recent results offered


def run_folder() -> Path:
    """The current session's run folder, or the one it would use (nothing is started)."""
    sess = current()
    return Path(sess.home) if sess is not None else _config.home()


@dataclass(frozen=True)
class InputImage:
    """One chosen input: what the request takes, its checked ref, and how code names it."""

    value: Any  # a URL, a Path, or a StoredImage
    ref: ImageRef
    expr: str  # Python source that names the same image
    label: str

    @property
    def thumb(self) -> bytes | None:
        """A small JPEG of the image, when its pixels are here (not for a bare URL)."""
        if isinstance(self.value, StoredImage):
            try:
                return Path(self.value.thumb_path).read_bytes()
            except OSError:
                pass
        if self.ref.data is None:
            return None
        try:
            with Image.open(io.BytesIO(self.ref.data)) as im:
                im.thumbnail((CHIP_SIDE * 2, CHIP_SIDE * 2))
                buf = io.BytesIO()
                im.convert("RGB").save(buf, "JPEG", quality=80)
                return buf.getvalue()
        except (OSError, ValueError):
            return None


def _saved(ref: ImageRef) -> Path:
    """Bytes with no file of their own, written once to ``uploads/<sha256>.<ext>``."""
    assert ref.data is not None and ref.sha256 is not None
    path = run_folder() / "uploads" / f"{ref.sha256}.{extension(ref.format)}"
    if not path.is_file():
        atomic_write_bytes(path, ref.data)
    return path


def to_input(value: Any, name: str = "image") -> InputImage:
    """Check ``value`` as an input image and give it a name code can use; RequestError if it cannot be one."""
    try:
        ref = to_image_ref(value)
    except ImageInputError as exc:
        raise RequestError([Problem(name, exc.rule, str(exc))]) from exc
    problems = [Problem(name, rule, message) for rule, message in image_problems(ref)]
    if problems:
        raise RequestError(problems)
    if isinstance(value, StoredImage):
        return InputImage(value, ref, path_expr(value.path), Path(value.path).name[:12])
    if isinstance(value, str) and "://" in value:
        return InputImage(value, ref, repr(value), os.path.basename(value.split("?")[0]) or value)
    if isinstance(value, (str, os.PathLike)):
        path = Path(value).expanduser()
        return InputImage(path, ref, path_expr(path), path.name)
    if ref.data is None:  # an ImageRef of a URL
        return InputImage(ref.url, ref, repr(ref.url), str(ref.url))
    path = _saved(ref)  # bytes, a PIL image: a file of their own, so code can name them
    return InputImage(path, ref, path_expr(path), ref.source or path.name[:12])


def recent_results(limit: int = RECENT) -> list[StoredImage]:
    """Images of the latest completed runs in the log, newest first (one per file).

    Reads only the last runs (a page at the end of the selection), however big the log."""
    sess = current()
    target = _config.log_target()
    if sess is not None:
        log = sess.log
    elif target is not None:  # a team's log (WAN_NB_LOG)
        log = Log(target, home=run_folder())
    elif (run_folder() / "log.sqlite").is_file():
        log = Log(run_folder() / "log.sqlite")
    else:
        return []
    total = log.count(status="completed")
    df = log.runs(status="completed", offset=max(0, total - limit * 2), limit=limit * 2)
    out: list[StoredImage] = []
    seen: set[str] = set()
    for run_id in reversed(df["run_id"].tolist()):
        for image in records(log).run_images(run_id):
            if image.sha256 not in seen and Path(image.path).is_file():
                seen.add(image.sha256)
                out.append(image)
        if len(out) >= limit:
            break
    return out[:limit]


class ImagePicker(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """The chosen input images as thumbnails (✕ removes one), and three ways to add one."""

    def __init__(self, on_change: Callable[[], None], *, single: bool = False) -> None:
        self.inputs: list[InputImage] = []
        self.single = single  # a mode that takes one image: a new one replaces it
        self._on_change = on_change
        self._chips = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self._upload = widgets.FileUpload(accept="image/jpeg,image/png,image/webp", multiple=True,
                                          description="Upload")
        self._upload.observe(self._uploaded, "value")
        self._url = widgets.Text(placeholder="https://… image URL", continuous_update=False,
                                 layout=widgets.Layout(width="280px"))
        self._url.observe(lambda _: self._add_url(), "value")  # Enter or leaving the field
        self._url_button = widgets.Button(description="Add URL", layout=widgets.Layout(width="90px"))
        self._url_button.on_click(lambda _: self._add_url())
        self._recent_button = widgets.Button(description="Recent results", icon="history",
                                             tooltip="pick an image made earlier (from the log)")
        self._recent_button.on_click(lambda _: self.show_recent())
        self._recent = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.message = widgets.HTML()
        for w, name in ((self._chips, "chips"), (self._recent, "recent"), (self.message, "message")):
            w.add_class(f"wan-images-{name}")
        super().__init__([
            self._chips,
            widgets.HBox([self._upload, self._url, self._url_button, self._recent_button]),
            self._recent,
            self.message,
        ])
        self.add_class("wan-images")

    # -- what the form reads ------------------------------------------------------------
    @property
    def values(self) -> list[Any]:
        return [i.value for i in self.inputs]

    @property
    def refs(self) -> list[ImageRef]:
        return [i.ref for i in self.inputs]

    @property
    def exprs(self) -> list[str]:
        return [i.expr for i in self.inputs]

    # -- changes --------------------------------------------------------------------------
    def set(self, values: Any) -> None:
        """Replace the inputs (a Result stands for its images); RequestError naming the bad one."""
        items = expand_inputs(values if isinstance(values, (list, tuple)) else [values])
        self.inputs = [to_input(v, f"images[{i}]") for i, v in enumerate(items)]
        self._changed()

    def add(self, value: Any) -> bool:
        """Add one input; a problem is shown under the field (and False returned)."""
        try:
            new = [to_input(v, "image") for v in expand_inputs([value])]
        except RequestError as exc:
            self.message.value = "".join(
                f"<div style='{FONT};color:#b3261e'>⚠ {esc(p.message)}</div>" for p in exc.problems
            )
            return False
        self.inputs = new[-1:] if self.single else self.inputs + new
        self._changed()
        return True

    def remove(self, index: int) -> None:
        del self.inputs[index]
        self._changed()

    def _changed(self) -> None:
        self.message.value = ""
        self._chips.children = [self._chip(i, item) for i, item in enumerate(self.inputs)]
        self._on_change()

    def _chip(self, index: int, item: InputImage) -> widgets.Widget:
        data = item.thumb
        face: widgets.Widget
        if data is not None:
            face = widgets.Image(value=data, format="jpeg",
                                 layout=widgets.Layout(max_width=f"{CHIP_SIDE}px", max_height=f"{CHIP_SIDE}px"))
        else:
            face = widgets.HTML(f"<div style='{FONT};width:{CHIP_SIDE}px;overflow-wrap:anywhere' "
                                f"title='{esc(item.expr)}'>{esc(short(item.label, 40))}</div>")
        size = f"{item.ref.width}×{item.ref.height}" if item.ref.width else "URL"
        remove = widgets.Button(icon="times", tooltip="remove this image", layout=widgets.Layout(width="32px"))
        remove.on_click(lambda _: self.remove(index))
        caption = widgets.HTML(f"<span style='{FONT};color:#555'>{index + 1} · {esc(size)}</span>")
        chip = widgets.VBox([face, widgets.HBox([caption, remove])],
                            layout=widgets.Layout(margin="0 8px 4px 0", align_items="flex-start"))
        chip.add_class("wan-images-chip")
        return chip

    def _uploaded(self, change: dict[str, Any]) -> None:
        """Files chosen in the browser (saved under uploads/, labelled by their own name)."""
        files = change["new"] or ()
        if not files:
            return
        try:
            for item in files:
                if not self.add(from_bytes(bytes(item["content"]), source=str(item.get("name") or "upload"))):
                    return
        finally:
            self._upload.value = ()  # else the same file chosen again (after ✕) is no change, and is lost

    def _add_url(self) -> None:
        text = self._url.value.strip()
        if not text:
            return
        if "://" not in text:
            self.message.value = f"<span style='{FONT};color:#b3261e'>⚠ {esc(text)!s} is not an http(s) URL</span>"
            return
        if self.add(text):
            self._url.value = ""

    def show_recent(self) -> None:
        """Offer the latest results of the log as thumbnails to pick."""
        images = recent_results()
        if not images:
            self._recent.children = [widgets.HTML(f"<span style='{FONT};color:#777'>no results in the log yet</span>")]
            return
        tiles = []
        for image in images:
            try:
                data = Path(image.thumb_path).read_bytes()
            except OSError:
                continue
            pick = widgets.Button(description="use", tooltip=str(image.path), layout=widgets.Layout(width="72px"))
            pick.on_click(lambda _, im=image: self.add(im))
            tile = widgets.VBox([widgets.Image(value=data, format="jpeg", layout=widgets.Layout(
                max_width=f"{CHIP_SIDE}px", max_height=f"{CHIP_SIDE}px")), pick],
                layout=widgets.Layout(margin="0 6px 4px 0"))
            tile.add_class("wan-images-recent-tile")
            tiles.append(tile)
        self._recent.children = tiles
