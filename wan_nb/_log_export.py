"""The log written out: CSV, Parquet, and the self-contained HTML report.

Files are written atomically (a reader never sees half a file); list and dict
columns become JSON text, which both CSV and Parquet can hold.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ._atomic import atomic_write_bytes
from ._exceptions import ConfigError
from ._log_frames import LogFrames, Where
from ._log_values import json_default


def flat(frames: LogFrames, where: Where, filters: dict[str, Any]) -> pd.DataFrame:
    """runs() with list/dict cells as JSON text, so CSV and Parquet can hold them."""
    df = frames.runs(where, **filters).copy()
    for name in df.columns:
        if df[name].dtype != object:
            continue
        values = df[name].tolist()
        if all(v is None or isinstance(v, str) for v in values):
            continue
        df[name] = pd.Series(
            [None if v is None else json.dumps(v, ensure_ascii=False, default=json_default) for v in values],
            index=df.index,
            dtype=object,
        )
    return df


def to_csv(frames: LogFrames, path: str | Path, where: Where, filters: dict[str, Any]) -> Path:
    return atomic_write_bytes(path, flat(frames, where, filters).to_csv(index=False).encode("utf-8"))


def to_parquet(frames: LogFrames, path: str | Path, where: Where, filters: dict[str, Any]) -> Path:
    try:
        import pyarrow  # noqa: F401  # pandas writes Parquet with it
    except ImportError as exc:
        raise ConfigError("to_parquet needs pyarrow, which is not installed: "
                          "pip install 'wan_nb[parquet]' (or pip install pyarrow)") from exc
    buf = io.BytesIO()
    flat(frames, where, filters).to_parquet(buf, index=False)
    return atomic_write_bytes(path, buf.getvalue())
