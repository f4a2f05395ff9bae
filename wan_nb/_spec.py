"""The facts of the user's document (wan-image-series.md), in one place.

Every other module reads its numbers from here: the request model checks them,
the simulator serves them, the cost estimate multiplies them. When the provider
revises the API (task-api.md, last section), this file and ``_wire.py`` are what
change.
"""

from __future__ import annotations

import math
from typing import Final, Literal, TypeAlias, get_args

MODEL = "wan2.7-image"
MODELS = (MODEL,)

# The six call modes, in the order of the document's "Mode Quick Reference".
GENERATE: Final = "generate"
IMAGE2IMAGE: Final = "image2image"
EDIT: Final = "edit"
REFERENCE: Final = "reference"
GROUP: Final = "group"
INTERACTIVE_EDIT: Final = "interactive_edit"
# The same six names as a type, for signatures (a Literal needs the strings themselves;
# tests/test_signatures.py checks that it names ACTIONS, in order).
Mode: TypeAlias = Literal["generate", "image2image", "edit", "reference", "group", "interactive_edit"]
ACTIONS: tuple[Mode, ...] = (GENERATE, IMAGE2IMAGE, EDIT, REFERENCE, GROUP, INTERACTIVE_EDIT)

# The values of aspect_ratio and resolution: the types name them once, the tuples are read from them.
AspectRatio: TypeAlias = Literal["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"]
Resolution: TypeAlias = Literal["1K", "2K", "4K"]
ASPECT_RATIOS: tuple[AspectRatio, ...] = get_args(AspectRatio)
RESOLUTIONS: tuple[Resolution, ...] = get_args(Resolution)

RANDOM_SEED = -1

# Documented defaults of every optional field, one name each: the mode functions'
# signatures show them (``seed: int = DEFAULT_SEED``), the rules apply them (DEFAULTS).
DEFAULT_N: Final = 1
DEFAULT_SEED: Final = RANDOM_SEED
DEFAULT_ASPECT_RATIO: Final[AspectRatio] = "1:1"
DEFAULT_RESOLUTION: Final[Resolution] = "2K"
DEFAULT_WATERMARK: Final = False
DEFAULT_THINKING_MODE: Final = True
DEFAULT_ENABLE_SEQUENTIAL: Final = False
DEFAULTS = {
    "action": GENERATE,
    "n": DEFAULT_N,
    "seed": DEFAULT_SEED,
    "aspect_ratio": DEFAULT_ASPECT_RATIO,
    "resolution": DEFAULT_RESOLUTION,
    "watermark": DEFAULT_WATERMARK,
    "thinking_mode": DEFAULT_THINKING_MODE,
    "enable_sequential": DEFAULT_ENABLE_SEQUENTIAL,
}

# How many input images each mode takes (inclusive bounds). The limits table says
# interactive_edit takes 1 image, but the bbox_list reference shows one box list per
# image for several images; we follow the worked example and allow up to 9.
IMAGE_COUNTS = {
    GENERATE: (0, 0),
    GROUP: (0, 0),
    IMAGE2IMAGE: (1, 1),
    EDIT: (1, 1),
    REFERENCE: (2, 9),
    INTERACTIVE_EDIT: (1, 9),
}

MAX_N_GROUP = 12
# "Standard mode is bounded by service-side limits": the later revision of the page
# names 4, so that is the cap a user can rely on without paying for surprises.
MAX_N_STANDARD = 4

# Resolution caps. Group mode caps at 2K (document). 4K is the pro tier, which the
# document describes as "text-to-image up to 4K"; every mode with image input runs
# on the standard tier, "up to 2K".
MAX_RESOLUTION = {
    GENERATE: "4K",
    GROUP: "2K",
    IMAGE2IMAGE: "2K",
    EDIT: "2K",
    REFERENCE: "2K",
    INTERACTIVE_EDIT: "2K",
}

# Where a field has an effect (the document's "Activation conditions"); in other modes
# it is ignored. thinking_mode: not in group mode and not with input images;
# color_palette: not in group mode; bbox_list: interactive_edit only.
FIELD_MODES = {
    "thinking_mode": (GENERATE,),
    "color_palette": (GENERATE, IMAGE2IMAGE, EDIT, REFERENCE, INTERACTIVE_EDIT),
    "bbox_list": (INTERACTIVE_EDIT,),
}


def has_effect(field: str, action: str) -> bool:
    """Does ``field`` change what ``action`` makes? (Fields not in FIELD_MODES always do.)"""
    return action in FIELD_MODES.get(field, ACTIONS)


def max_n(action: str) -> int:
    """How many images one request of ``action`` may ask for."""
    return MAX_N_GROUP if action == GROUP else MAX_N_STANDARD


def resolutions_for(action: str) -> tuple[str, ...]:
    """The resolutions ``action`` accepts, up to its cap."""
    return RESOLUTIONS[: RESOLUTIONS.index(MAX_RESOLUTION[action]) + 1]


SEED_MIN = 0
SEED_MAX = 2**31 - 1

PALETTE_MIN_ITEMS = 3
PALETTE_MAX_ITEMS = 10
PALETTE_RATIO_SUM = 100
PALETTE_MIN_RATIO = 1  # a colour in the palette takes at least 1 %

MAX_BOXES_PER_IMAGE = 2

MAX_IMAGE_BYTES = 30 * 1024 * 1024
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP")

OUTPUT_LINK_HOURS = 24

# Money: integer quota, 500,000 quota = 1 USD; one image costs $0.02295.
QUOTA_PER_USD = 500_000
UNIT_QUOTA = 11_475


def quota_to_usd(quota: int) -> float:
    """USD for an integer quota amount (rounded to a hundredth of a cent)."""
    return round(quota / QUOTA_PER_USD, 6)


def resolution_rank(resolution: str) -> int:
    return RESOLUTIONS.index(resolution)


_RESOLUTION_SIDE = {"1K": 1024, "2K": 2048, "4K": 4096}


def output_size(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """Pixel (width, height) of an output image.

    About ``side``² pixels with the requested aspect ratio, both sides multiples of
    16: e.g. 1K 16:9 is 1360×768, 2K 1:1 is 2048×2048.
    """
    side = _RESOLUTION_SIDE[resolution]
    w_part, h_part = (int(x) for x in aspect_ratio.split(":"))
    scale = math.sqrt(w_part / h_part)
    width = round(side * scale / 16) * 16
    height = round(side / scale / 16) * 16
    return width, height
