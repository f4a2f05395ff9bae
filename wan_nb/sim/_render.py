"""Draw the simulator's images so that every request parameter can be seen.

A fake image is only useful if a person (or a test) can check, by looking at it, that
the client sent what the user asked for: the pixel size follows aspect ratio and
resolution, the colours follow ``color_palette`` (areas in proportion to the ratios),
the seed changes the layout, the prompt and a line of settings are written on the
image, the watermark shows, group panels are numbered, reference mode tiles its
inputs, image2image / edit transform their input, and interactive_edit changes pixels
only inside the boxes.

Everything is derived from sha256 of the parameters (never Python's ``hash``), so the
same request and seed give the same bytes in every process. Shapes are drawn at a
reduced scale (long side ≤ ``DRAW_LONG_SIDE``) and upscaled, text is drawn at full
scale: a 4K image renders in a fraction of a second.

``render(req, inputs)`` reads the request duck-typed (action, prompt, n, seed,
aspect_ratio, resolution, output_size, watermark, thinking_mode, color_palette,
bbox_list), so it can be called directly in tests.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import io
import os
import random
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

from .. import _spec

DRAW_LONG_SIDE = 1024
JPEG_QUALITY = 90
EDIT_JPEG_QUALITY = 95  # interactive_edit: the untouched area must survive encoding

Color = tuple[int, int, int]
Rect = tuple[float, float, float, float]


# -- determinism -------------------------------------------------------------------------
def rng_for(*parts: Any) -> random.Random:
    """A Random seeded from sha256 of the parts: stable across processes."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


# -- colours and layout ------------------------------------------------------------------
def hex_rgb(hex_: str) -> Color:
    return tuple(int(hex_[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def derived_palette(*parts: Any) -> list[tuple[Color, int]]:
    """4-6 harmonious colours with random weights, from seed + prompt (or a URL)."""
    rng = rng_for("palette", *parts)
    base, step = rng.random(), rng.choice((0.06, 0.12, 0.25, 0.38, 0.5))
    out = []
    for j in range(rng.randint(4, 6)):
        hue = (base + j * step + rng.uniform(-0.03, 0.03)) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, rng.uniform(0.35, 0.9), rng.uniform(0.3, 0.95))
        out.append(((int(r * 255), int(g * 255), int(b * 255)), rng.randint(10, 40)))
    return out


def palette_for(req: Any, seed: int) -> list[tuple[Color, int]]:
    """The request's palette when it has effect (not group mode), else one from seed+prompt."""
    if req.color_palette and req.action != _spec.GROUP:
        return [(hex_rgb(h), int(r)) for h, r in req.color_palette]
    return derived_palette(seed, req.prompt)


def partition(rect: Rect, items: list[tuple[Color, int]], rng: random.Random) -> list[tuple[Rect, Color]]:
    """Slice a rectangle into regions whose areas are exactly proportional to the weights;
    the order and the cut directions come from the rng, so seeds differ visibly."""
    items = list(items)
    rng.shuffle(items)
    x0, y0, x1, y1 = rect
    remaining = sum(w for _, w in items)
    out = []
    for idx, (color, weight) in enumerate(items):
        if idx == len(items) - 1 or remaining <= 0:
            out.append(((x0, y0, x1, y1), color))
            break
        frac = weight / remaining
        vertical_cut = (x1 - x0) >= (y1 - y0)
        if rng.random() < 0.25:
            vertical_cut = not vertical_cut
        first = rng.random() < 0.5
        if vertical_cut:
            cut = x0 + (x1 - x0) * frac if first else x1 - (x1 - x0) * frac
            part = (x0, y0, cut, y1) if first else (cut, y0, x1, y1)
            x0, x1 = (cut, x1) if first else (x0, cut)
        else:
            cut = y0 + (y1 - y0) * frac if first else y1 - (y1 - y0) * frac
            part = (x0, y0, x1, cut) if first else (x0, cut, x1, y1)
            y0, y1 = (cut, y1) if first else (y0, cut)
        out.append((part, color))
        remaining -= weight
    return out


def _shade(c: Color, f: float) -> Color:
    """Lighter (f > 1) or darker (f < 1) version of the same hue, so a region's shapes
    keep its colour and the palette proportions stay readable."""
    if f >= 1:
        return tuple(int(v + (255 - v) * (f - 1)) for v in c)  # type: ignore[return-value]
    return tuple(int(v * f) for v in c)  # type: ignore[return-value]


def layout_image(size: tuple[int, int], palette: list[tuple[Color, int]], rng: random.Random,
                 phase: float = 0.0) -> Image.Image:
    """Palette regions with seeded shapes; ``phase`` (0..1) moves the shapes, which is
    how group panels tell one story."""
    w, h = size
    img = Image.new("RGB", size, palette[0][0])
    draw = ImageDraw.Draw(img)
    regions = partition((0, 0, w, h), palette, rng)
    for (x0, y0, x1, y1), color in regions:
        ix0, iy0, ix1, iy1 = round(x0), round(y0), round(x1), round(y1)
        if ix1 <= ix0 or iy1 <= iy0:
            continue
        draw.rectangle((ix0, iy0, ix1 - 1, iy1 - 1), fill=color)
        rw, rh = ix1 - ix0, iy1 - iy0
        tile = Image.new("RGB", (rw, rh), color)
        td = ImageDraw.Draw(tile)
        for _ in range(rng.randint(2, 4)):
            r = rng.uniform(0.15, 0.45) * min(rw, rh) + 2
            cx = (rng.uniform(0, rw) + phase * rng.uniform(0.3, 0.9) * rw) % (rw or 1)
            cy = (rng.uniform(0, rh) + phase * rng.uniform(-0.3, 0.3) * rh) % (rh or 1)
            fill = _shade(color, rng.choice((0.72, 0.85, 1.18, 1.32)))
            kind = rng.randrange(3)
            if kind == 0:
                td.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
            elif kind == 1:
                td.rounded_rectangle((cx - r, cy - r * 0.6, cx + r, cy + r * 0.6), radius=r * 0.2, fill=fill)
            else:
                td.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=fill)
        img.paste(tile, (ix0, iy0))
    return img


# -- text ----------------------------------------------------------------------------------
# Fonts with CJK glyphs, where systems usually keep them. Pillow's built-in font has
# none, and the model takes Chinese prompts: without one they would draw as boxes.
CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)


@functools.lru_cache(maxsize=1)
def _cjk_font_path() -> str | None:
    return next((p for p in CJK_FONTS if os.path.isfile(p)), None)


def needs_cjk(text: str) -> bool:
    return any(ord(ch) >= 0x2E80 for ch in text)  # CJK radicals onwards (and full-width forms)


@functools.lru_cache(maxsize=64)
def font(size: int, cjk: bool = False) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font, or a system CJK font when the text needs one."""
    path = _cjk_font_path() if cjk else None
    if path:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def wrap(text: str, fnt: Any, max_width: float, max_lines: int) -> list[str]:
    """Greedy word wrap by measured width; long words (or CJK runs) break by character."""
    lines: list[str] = []
    line = ""
    for word in " ".join(text.split()).split(" "):
        if len(lines) > max_lines:  # enough to know it will be cut
            break
        candidate = f"{line} {word}".strip()
        if fnt.getlength(candidate) <= max_width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for ch in word:
            if len(lines) > max_lines:
                break
            if fnt.getlength(line + ch) > max_width and line:
                lines.append(line)
                line = ""
            line += ch
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and fnt.getlength(last + "...") > max_width:
            last = last[:-1]
        lines[-1] = last + "..."
    return lines


def _shade_box(img: Image.Image, box: tuple[int, int, int, int], color: Color = (0, 0, 0),
               alpha: float = 0.6) -> None:
    box = (max(0, box[0]), max(0, box[1]), min(img.width, box[2]), min(img.height, box[3]))
    if box[2] <= box[0] or box[3] <= box[1]:
        return
    region = img.crop(box)
    img.paste(Image.blend(region, Image.new("RGB", region.size, color), alpha), box[:2])


def text_block(img: Image.Image, xy: tuple[int, int], lines: list[str], fnt: Any,
               pad: int, color: Color = (0, 0, 0), anchor_bottom: bool = False) -> tuple[int, int, int, int]:
    """Lines of white text on a darkened box; returns the box."""
    if not lines:
        return (xy[0], xy[1], xy[0], xy[1])
    line_h = round(fnt.size * 1.25) if hasattr(fnt, "size") else 14
    width = max(int(fnt.getlength(s)) for s in lines) + 2 * pad
    height = line_h * len(lines) + 2 * pad
    x, y = xy
    if anchor_bottom:
        y -= height
    box = (x, y, x + width, y + height)
    _shade_box(img, box, color)
    draw = ImageDraw.Draw(img)
    for k, s in enumerate(lines):
        draw.text((x + pad, y + pad + k * line_h), s, font=fnt, fill=(255, 255, 255))
    return box


def watermark(img: Image.Image, scale_from: int) -> tuple[int, int, int, int]:
    """The visible "AI-generated" mark in the bottom-right corner."""
    fnt = font(max(10, round(scale_from * 0.035)))
    margin = max(4, round(scale_from * 0.02))
    pad = max(3, round(fnt.size * 0.35)) if hasattr(fnt, "size") else 4
    label = "AI-generated"
    width = int(fnt.getlength(label)) + 2 * pad
    line_h = round(fnt.size * 1.25) if hasattr(fnt, "size") else 14
    x = img.width - margin - width
    y = img.height - margin - line_h - 2 * pad
    return text_block(img, (x, y), [label], fnt, pad, color=(150, 20, 20))


def _settings_lines(req: Any, index: int, size: tuple[int, int]) -> list[str]:
    w, h = size
    first = f"{req.action} · {w}x{h} · {req.aspect_ratio} · {req.resolution} · seed {req.seed}"
    label = "panel" if req.action == _spec.GROUP else "image"
    second = f"{label} {index + 1}/{req.n}"
    if req.thinking_mode:
        second += " · thinking"
    if req.watermark:
        second += " · watermark"
    lines = [first, second]
    if req.color_palette and req.action != _spec.GROUP:
        lines.append("palette " + "  ".join(f"{h} {r}%" for h, r in req.color_palette))
    return lines


def annotate(img: Image.Image, req: Any, index: int) -> None:
    """Prompt on top, settings at the bottom left, watermark at the bottom right."""
    w, h = img.size
    short = min(w, h)
    margin = max(4, round(short * 0.03))
    big = font(max(12, round(short * 0.045)), needs_cjk(req.prompt))
    small = font(max(10, round(short * 0.03)))
    pad = max(3, round(short * 0.012))
    usable = w - 2 * margin - 2 * pad
    text_block(img, (margin, margin), wrap(req.prompt, big, usable, 5), big, pad)
    right = margin
    if req.watermark:
        box = watermark(img, short)
        right = w - box[0] + margin
    info_width = w - margin - right - 2 * pad
    lines = [part for line in _settings_lines(req, index, (w, h)) for part in wrap(line, small, info_width, 3)]
    text_block(img, (margin, h - margin), lines, small, pad, anchor_bottom=True)


# -- modes -----------------------------------------------------------------------------------
def draw_size(size: tuple[int, int], long_side: int = DRAW_LONG_SIDE) -> tuple[int, int]:
    scale = min(1.0, long_side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _fit(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    return ImageOps.fit(img, size, method=Image.Resampling.BILINEAR)


def _base(req: Any, inputs: Sequence[Image.Image], index: int, size: tuple[int, int]) -> Image.Image:
    """The picture before text, at draw scale, for every mode except interactive_edit."""
    seed = req.seed
    palette = palette_for(req, seed)
    if req.action == _spec.GROUP:  # same palette and layout, shapes move panel to panel
        return layout_image(size, palette, rng_for("layout", seed, req.prompt), phase=index / max(1, req.n))
    rng = rng_for("layout", seed, req.prompt, index, req.action)
    layout = layout_image(size, palette, rng)
    if req.action == _spec.IMAGE2IMAGE and inputs:
        source = ImageOps.posterize(_fit(inputs[0], size), 3)
        return Image.blend(source, layout, 0.35)
    if req.action == _spec.EDIT and inputs:
        by_light = sorted((c for c, _ in palette), key=sum)
        gray = ImageOps.grayscale(_fit(inputs[0], size))
        out = ImageOps.colorize(gray, black=by_light[0], white=by_light[-1], mid=by_light[len(by_light) // 2])
        draw = ImageDraw.Draw(out)
        for (x0, y0, x1, y1), color in partition((0, 0, *size), palette, rng):
            draw.rectangle((x0, y0, x1, y1), outline=_shade(color, 1.4), width=max(2, size[0] // 200))
        return out
    if req.action == _spec.REFERENCE and inputs:
        return Image.blend(tiles(inputs, size, rng), layout, 0.3)
    return layout


def tiles(inputs: Sequence[Image.Image], size: tuple[int, int], rng: random.Random) -> Image.Image:
    """All reference images side by side in a grid (order from the seed)."""
    order = list(range(len(inputs)))
    rng.shuffle(order)
    cols = 1
    while cols * cols < len(inputs):
        cols += 1
    rows = -(-len(inputs) // cols)
    w, h = size
    out = Image.new("RGB", size)
    for k, src in enumerate(order):
        r, c = divmod(k, cols)
        x0, x1 = c * w // cols, (c + 1) * w // cols
        y0, y1 = r * h // rows, (r + 1) * h // rows
        if x1 > x0 and y1 > y0:
            out.paste(_fit(inputs[src], (x1 - x0, y1 - y0)), (x0, y0))
    return out


def _interactive(req: Any, inputs: Sequence[Image.Image], index: int) -> Image.Image:
    """The first input at its own size, redrawn inside its boxes only. Boxes on the other
    inputs mark what to bring in: their contents are blended into the edited boxes."""
    base = inputs[0].copy()
    W, H = base.size
    listed = req.bbox_list or ((),)
    boxes = listed[0]
    sources = [inputs[k].crop(b) for k in range(1, min(len(inputs), len(listed))) for b in listed[k]]
    palette = palette_for(req, req.seed)
    for j, box in enumerate(boxes):
        x1, y1, x2, y2 = max(0, box[0]), max(0, box[1]), min(W, box[2]), min(H, box[3])
        bw, bh = x2 - x1, y2 - y1
        if bw <= 0 or bh <= 0:
            continue
        psize = draw_size((bw, bh))
        patch = layout_image(psize, palette, rng_for("box", req.seed, req.prompt, index, j))
        if sources:
            patch = Image.blend(patch, _fit(sources[j % len(sources)], psize), 0.5)
        else:
            original = base.crop((x1, y1, x2, y2)).resize(psize, Image.Resampling.BILINEAR)
            patch = Image.blend(patch, ImageOps.invert(original), 0.3)
        if psize != (bw, bh):
            patch = patch.resize((bw, bh), Image.Resampling.BILINEAR)
        short = min(bw, bh)
        fnt = font(max(8, round(short * 0.08)))
        pad = max(2, round(short * 0.02))
        lines = wrap(f"edit {j + 1}/{len(boxes)}: {req.prompt}", fnt, bw - 4 * pad, 3)
        lines.append(f"seed {req.seed} · image {index + 1}/{req.n}")
        text_block(patch, (pad, pad), lines, fnt, pad)
        if req.watermark and j == 0:  # inside the box: pixels outside must stay untouched
            watermark(patch, short)
        base.paste(patch, (x1, y1))
    return base


def placeholder(url: str, size: tuple[int, int]) -> Image.Image:
    """A stand-in for an image URL the simulator will not fetch (not on loopback)."""
    img = layout_image(draw_size(size), derived_palette("url", url), rng_for("url-layout", url))
    img = img.resize(size, Image.Resampling.BILINEAR) if img.size != size else img
    short = min(size)
    fnt = font(max(10, round(short * 0.04)))
    pad = max(3, round(short * 0.015))
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    lines = ["placeholder (not fetched)", *wrap(url, fnt, size[0] - 4 * pad, 3), f"sha256 {digest}"]
    text_block(img, (pad, pad), lines, fnt, pad)
    return img


def encode_jpeg(img: Image.Image, quality: int = JPEG_QUALITY, subsampling: int = -1) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, subsampling=subsampling)
    return buf.getvalue()


def render_one(req: Any, inputs: Sequence[Image.Image], index: int) -> Image.Image:
    """Image ``index`` (0-based) of the request, before encoding."""
    if req.action == _spec.INTERACTIVE_EDIT:
        return _interactive(req, inputs, index)
    size = tuple(req.output_size)
    img = _base(req, inputs, index, draw_size(size))
    if img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    annotate(img, req, index)
    return img


def render(req: Any, inputs: Sequence[Image.Image] = ()) -> list[bytes]:
    """The JPEG bytes of every output image of a request (``req.n`` of them)."""
    out = []
    for index in range(req.n):
        img = render_one(req, inputs, index)
        if req.action == _spec.INTERACTIVE_EDIT:
            out.append(encode_jpeg(img, EDIT_JPEG_QUALITY, subsampling=0))
        else:
            out.append(encode_jpeg(img))
    return out
