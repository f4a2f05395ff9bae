"""What a finished run gives the user: images on disk, and an inline view of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _spec
from ._exceptions import ConfigError
from ._html_parts import esc
from ._money import usd
from ._request import Request
from ._store import StoredImage
from ._thumbs import THUMB_SIDE
from ._tiles import CellItem, render_item_html

if TYPE_CHECKING:
    from ._log import Log


@dataclass
class Result:
    """One run: the request as sent, the task, the images (already on disk), the cost.

    ``cost_quota`` is what this run was billed (0 for a cache hit or a resumed run
    that was paid for before).
    """

    run_id: str
    request: Request | None
    task_id: str | None
    status: str
    images: list[StoredImage] = field(default_factory=list)
    cost_quota: int = 0
    cache_hit: bool = False
    cached_from: str | None = None
    warnings: tuple[str, ...] = ()
    timings: dict[str, float | None] = field(default_factory=dict)
    log: Log | None = field(default=None, repr=False, compare=False)  # the log it is a run of

    # -- choosing: this run's stars, tags and note, kept in its log -------------------------
    def _in_log(self) -> Log:
        if self.log is None:
            raise ConfigError(f"run {self.run_id} is not in a log this Result knows; "
                              "use wan.log().rate(run_id, ...) with the log that holds it")
        return self.log

    def rate(self, stars: int | None) -> None:
        """1-5 stars (0 or None clears), kept in the log: ``runs(where="stars >= 4")`` finds it."""
        self._in_log().rate(self, stars)

    def tag(self, *tags: str) -> list[str]:
        """Add tags (1-40 letters of any script, digits, ``-_.:``; case kept); returns the run's tags."""
        return self._in_log().tag(self, *tags)

    def untag(self, *tags: str) -> list[str]:
        """Remove tags; returns the run's tags."""
        return self._in_log().untag(self, *tags)

    def note(self, text: str | None) -> None:
        """Replace the run's note ("" or None clears it)."""
        self._in_log().note(self, text)

    @property
    def stars(self) -> int | None:
        """The run's stars as the log has them now (None: unrated)."""
        row = self._in_log().get_run(self.run_id)
        return None if row is None else row.get("stars")

    @property
    def paths(self) -> list[Path]:
        return [img.path for img in self.images]

    @property
    def path(self) -> Path:
        """The first image's file (most requests make one)."""
        return self.images[0].path

    @property
    def cost_usd(self) -> float:
        return _spec.quota_to_usd(self.cost_quota)

    @property
    def seed(self) -> int | None:
        return self.request.seed if self.request else None

    def open(self, index: int = 0) -> Any:
        """The image as a PIL image."""
        return self.images[index].open()

    def __repr__(self) -> str:
        what = self.request.summary() if self.request else self.status
        hit = " (cache hit)" if self.cache_hit else ""
        return f"<Result {self.task_id or self.run_id} {self.status}{hit}: {what}; {len(self.images)} file(s)>"

    def _repr_html_(self) -> str:
        tiles = []
        for i, img in enumerate(self.images):
            caption = f"{img.width}×{img.height}" + (f" · {i + 1}/{len(self.images)}" if len(self.images) > 1 else "")
            # at the stored thumbnail's size: the preview is the thumbnail just written, not a
            # second decode of the full image (which the tile links to)
            tiles.append(render_item_html(CellItem.of_image(img, caption), box=THUMB_SIDE))
        req = self.request
        facts = []
        if req is not None:
            facts += [req.action, f"{req.aspect_ratio} · {req.resolution}", f"seed {req.seed}"]
        cost = "cache hit · $0" if self.cache_hit else f"{usd(self.cost_usd)}"
        facts += [cost, self.task_id or ""]
        prompt = f"<div style='font-style:italic;margin:2px 0'>{esc(req.prompt)}</div>" if req else ""
        warn = "".join(f"<div style='color:#a15c00'>⚠ {esc(w)}</div>" for w in self.warnings)
        return (
            "<div class='wan-result' style='font:12px sans-serif'>"
            f"<div style='display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start'>{''.join(tiles)}</div>"
            f"{prompt}<div style='color:#555'>{' · '.join(esc(f) for f in facts if f)}</div>{warn}"
            "</div>"
        )
