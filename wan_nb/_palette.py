"""``wan.PaletteEditor`` and ``wan.palette_from_image``: the ``color_palette`` field, seen.

Policy for ratios: **rebalance**. Ratios are whole percentages that always add up to
exactly 100: editing one spreads the difference over the others in proportion to their
size (each keeps at least 1), and adding or removing a colour does the same. So
``editor.color_palette`` is always a valid palette; a hex typed wrong is shown as a
problem next to its field and not taken until it is fixed.

The list in the ``color_palette`` trait is the state; the rows and the preview bar are
views of it. Its rules are the request model's (``check_palette``).
"""

from __future__ import annotations

import colorsys
import functools
import math
from typing import Any, cast

import ipywidgets as widgets
import traitlets
from PIL import Image

from . import _spec
from ._exceptions import Problem, RequestError
from ._html_parts import FONT, esc
from ._images import expand_inputs
from ._pixels import open_rgb
from ._request import check_palette
from ._trait_checks import by_request_rules

# The document's own example, so a new editor is a valid palette at once.
DEFAULT_PALETTE = [
    {"hex": "#0A2540", "ratio": 50},
    {"hex": "#F5F5F0", "ratio": 35},
    {"hex": "#E04B3A", "ratio": 15},
]
LO, HI, TOTAL = _spec.PALETTE_MIN_ITEMS, _spec.PALETTE_MAX_ITEMS, _spec.PALETTE_RATIO_SUM
MIN_RATIO = _spec.PALETTE_MIN_RATIO
ANALYSIS_SIDE = 256  # px: palette_from_image looks at a thumbnail this big (enough for k <= 10)


# ------------------------------------------------------------------ ratio arithmetic (pure)

def spread(weights: list[float], total: int = TOTAL, minimum: int = MIN_RATIO) -> list[int]:
    """Whole numbers in proportion to ``weights`` that add up to exactly ``total``, each
    at least ``minimum`` (largest remainders get the spare units)."""
    n = len(weights)
    if n == 0 or total < n * minimum:
        raise ValueError(f"cannot spread {total} over {n} items of at least {minimum}")
    mass = sum(max(w, 0.0) for w in weights)
    ideal = [max(w, 0.0) / mass * total if mass > 0 else total / n for w in weights]
    out = [math.floor(v) for v in ideal]
    for i in sorted(range(n), key=lambda i: ideal[i] - out[i], reverse=True)[: total - sum(out)]:
        out[i] += 1
    for i in range(n):  # lift the tiny ones, taking from the largest
        while out[i] < minimum:
            donor = max(range(n), key=lambda j: out[j])
            out[donor] -= 1
            out[i] += 1
    return out


def rebalance(ratios: list[int], index: int, value: int) -> list[int]:
    """``ratios`` with ``ratios[index] = value`` (kept within 1..100 - the others' 1 each)
    and the others rescaled to fill the rest of 100."""
    n = len(ratios)
    value = max(MIN_RATIO, min(int(value), TOTAL - (n - 1) * MIN_RATIO))
    others = [r for i, r in enumerate(ratios) if i != index]
    rest = spread([float(r) for r in others], TOTAL - value)
    out = [*rest[:index], value, *rest[index:]]
    return out


def with_added(palette: list[dict[str, Any]], hex_: str) -> list[dict[str, Any]]:
    """A colour added with an equal share; the others shrink in proportion."""
    ratios = [p["ratio"] for p in palette] + [0]
    ratios = rebalance(ratios, len(palette), round(TOTAL / (len(palette) + 1)))
    return [{"hex": p["hex"], "ratio": r} for p, r in zip([*palette, {"hex": hex_}], ratios, strict=True)]


def without(palette: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    """A colour removed; its share goes to the others in proportion."""
    kept = [p for i, p in enumerate(palette) if i != index]
    ratios = spread([float(p["ratio"]) for p in kept])
    return [{"hex": p["hex"], "ratio": r} for p, r in zip(kept, ratios, strict=True)]


def _as_dicts(checked: tuple[tuple[str, int], ...]) -> list[dict[str, Any]]:
    return [{"hex": h, "ratio": r} for h, r in checked]


def _new_colour(palette: list[dict[str, Any]]) -> str:
    """A colour for a new row: a hue not used yet (golden-angle steps)."""
    used = {p["hex"] for p in palette}
    for k in range(1, 64):
        r, g, b = colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.55, 0.85)
        hex_ = f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"
        if hex_ not in used:
            return hex_
    return "#808080"


# ------------------------------------------------------------------ palette_from_image

def palette_from_image(img: Any, k: int = 5) -> list[dict[str, Any]]:
    """A valid ``color_palette`` proposed from a picture: its ``k`` main colours (3-10) and
    how much of the image each covers (Pillow's median-cut quantizer on a thumbnail).

    ``img`` is anything the mode functions take; a ``Result`` gives its first image.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not LO <= k <= HI:
        raise RequestError([Problem("k", "range", f"must be a whole number from {LO} to {HI} (got {k!r})")])
    value = expand_inputs([img])
    if not value:
        raise RequestError([Problem("img", "count", "holds no image")])
    im = open_rgb(value[0], "img")
    im.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE))
    quantized = im.quantize(colors=k, method=Image.Quantize.MEDIANCUT)
    flat = quantized.getpalette() or []
    counts: dict[str, int] = {}
    for count, index in quantized.getcolors(maxcolors=256) or []:
        i = cast(int, index)  # mode "P": a palette index
        r, g, b = flat[3 * i: 3 * i + 3]
        hex_ = f"#{r:02X}{g:02X}{b:02X}"
        counts[hex_] = counts.get(hex_, 0) + count
    if len(counts) < LO:
        raise RequestError([Problem("img", "colours", f"has only {len(counts)} distinct colour(s); "
                                                      f"a palette needs {LO} to {HI}")])
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    ratios = spread([float(c) for _, c in ranked])
    return _as_dicts(check_palette([(h, r) for (h, _), r in zip(ranked, ratios, strict=True)]))


# ------------------------------------------------------------------ the editor

class PaletteEditor(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """3-10 colours, each a colour picker, a hex field and a ratio; a preview bar in the
    ratios. ``color_palette`` is the document's list of ``{hex, ratio}``, always valid;
    ``wan.generate(..., color_palette=editor)`` takes the editor itself."""

    # (row, ratios when its edit began, ratios after its last step): see _ratio_edited
    _anchor: tuple[int, list[int], list[int]] | None = None
    # set: any palette the request rules take ((hex, ratio) pairs too); get: the list of {hex, ratio}
    color_palette: traitlets.List[Any] = traitlets.List(help="the document's list of {hex, ratio}").tag(sync=True)
    problem: traitlets.Unicode[str, str | bytes] = traitlets.Unicode(
        "", help="why a value typed in the editor was not taken (empty when every field holds what it shows)"
    ).tag(sync=True)

    def __init__(self, color_palette: Any = None, **kwargs: Any) -> None:
        self._rows = widgets.VBox()
        self._add_button = widgets.Button(description="Add colour", icon="plus", tooltip=f"up to {HI} colours")
        self._add_button.on_click(lambda _: self._add())
        self._preview = widgets.HTML()
        self._preview.add_class("wan-palette-preview")
        self._note = widgets.HTML(
            f"<span style='{FONT};color:#666'>{LO}-{HI} colours; ratios are whole percentages that always "
            f"add up to {TOTAL}: changing one rebalances the others.</span>"
        )
        self._syncing = False
        self._refused: dict[int, str] = {}  # row → why the hex typed there was not taken
        super().__init__(children=[self._preview, self._rows, widgets.HBox([self._add_button, self._note])], **kwargs)
        self.add_class("wan-palette")
        self.observe(self._palette_changed, "color_palette")
        self.color_palette = DEFAULT_PALETTE if color_palette is None else color_palette

    @traitlets.validate("color_palette")
    def _valid_palette(self, proposal: dict[str, Any]) -> list[dict[str, Any]]:
        return _as_dicts(by_request_rules(lambda: check_palette(proposal["value"])))

    def __repr__(self) -> str:
        return "<PaletteEditor " + ", ".join(f"{p['hex']} {p['ratio']}%" for p in self.color_palette) + ">"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = self._static_html()
        return bundle

    # -- views of the trait -------------------------------------------------------------
    def _palette_changed(self, change: dict[str, Any]) -> None:
        palette = change["new"]
        self._refused.clear()  # every field is set back to what the palette holds
        self._syncing = True
        try:
            if len(self._rows.children) != len(palette):
                self._rows.children = [self._row(i) for i in range(len(palette))]
            for row, item in zip(self._rows.children, palette, strict=True):
                picker, text, ratio, remove, _problem = row.children
                picker.value = item["hex"].lower()
                text.value = item["hex"]
                ratio.max = TOTAL - (len(palette) - 1) * MIN_RATIO
                ratio.value = item["ratio"]
                remove.disabled = len(palette) <= LO
        finally:
            self._syncing = False
        for i, row in enumerate(self._rows.children):
            row.children[4].value = self._refusal_html(i)
        self.problem = "; ".join(self._refused.values())
        self._add_button.disabled = len(palette) >= HI
        self._preview.value = self._bar_html(palette)

    def _refusal_html(self, i: int) -> str:
        text = self._refused.get(i)
        return f"<span style='{FONT};color:#b3261e'>⚠ {esc(text)}</span>" if text else ""

    def _row(self, i: int) -> widgets.HBox:
        picker = widgets.ColorPicker(concise=True, layout=widgets.Layout(width="36px"))
        text = widgets.Text(continuous_update=False, layout=widgets.Layout(width="90px"))
        ratio = widgets.BoundedIntText(min=MIN_RATIO, max=TOTAL, layout=widgets.Layout(width="70px"))
        remove = widgets.Button(icon="times", tooltip="remove this colour", layout=widgets.Layout(width="36px"))
        problem = widgets.HTML()
        for w, name in ((picker, "picker"), (text, "hex"), (ratio, "ratio"), (problem, "problem")):
            w.add_class(f"wan-palette-{name}")
        picker.observe(functools.partial(self._hex_edited, i), "value")
        text.observe(functools.partial(self._hex_edited, i), "value")
        ratio.observe(functools.partial(self._ratio_edited, i), "value")
        remove.on_click(lambda _: self._remove(i))
        row = widgets.HBox([picker, text, ratio, remove, problem])
        row.add_class("wan-palette-row")
        return row

    def _hex_edited(self, i: int, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        palette = [dict(p) for p in self.color_palette]
        palette[i]["hex"] = str(change["new"]).strip()
        try:
            self.color_palette = palette
        except RequestError as exc:  # shown next to the field; the palette keeps its last valid colour
            self._refused[i] = f"color_palette[{i}].hex: {exc.problems[0].message}"
        else:
            self._refused.pop(i, None)
        self._rows.children[i].children[4].value = self._refusal_html(i)
        self.problem = "; ".join(self._refused.values())

    def _ratio_edited(self, i: int, change: dict[str, Any]) -> None:
        """Rebalance from the ratios as they were when this row's edit began, not from the
        last step's rounded ones: stepping with the arrow keys would drift (one colour
        paying for every step) and stepping back would not restore the others."""
        if self._syncing or change["new"] is None:
            return
        now = [p["ratio"] for p in self.color_palette]
        if self._anchor is None or self._anchor[0] != i or self._anchor[2] != now:
            self._anchor = (i, now, now)  # another row, or the palette changed otherwise
        ratios = rebalance(self._anchor[1], i, int(change["new"]))
        self._anchor = (i, self._anchor[1], ratios)
        self.color_palette = [{"hex": p["hex"], "ratio": r} for p, r in zip(self.color_palette, ratios, strict=True)]

    def _add(self) -> None:
        if len(self.color_palette) < HI:
            self.color_palette = with_added(self.color_palette, _new_colour(self.color_palette))

    def _remove(self, i: int) -> None:
        if len(self.color_palette) > LO:
            self.color_palette = without(self.color_palette, i)

    @staticmethod
    def _bar_html(palette: list[dict[str, Any]]) -> str:
        cells = "".join(
            f"<div title='{esc(p['hex'])} {p['ratio']}%' "
            f"style='flex:{p['ratio']} 0 0;background:{esc(p['hex'])}'></div>"
            for p in palette
        )
        return (
            "<div class='wan-palette-bar' style='display:flex;height:24px;width:420px;max-width:100%;"
            f"border:1px solid #ccc;border-radius:3px;overflow:hidden'>{cells}</div>"
        )

    def _static_html(self) -> str:
        listed = ", ".join(f"{esc(p['hex'])} {p['ratio']}%" for p in self.color_palette)
        return f"<div class='wan-palette-static' style='{FONT}'>{self._bar_html(self.color_palette)}{listed}</div>"
