"""What "no value" is in a log row, for storage and views alike (no HTML, and no pandas import)."""

from __future__ import annotations

import math
import sys
from typing import Any


def is_missing(value: Any) -> bool:
    """None, NaN, NaT and pd.NA all mean "no value" in a log row."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, (str, list, tuple, dict)):
        return False
    pd = sys.modules.get("pandas")  # NaT and pd.NA exist only once pandas is loaded: never load it here
    if pd is None:
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # array-likes: not a single missing value
        return False
