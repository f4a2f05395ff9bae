"""Log: the durable experiment log, its DataFrame views, grids, comparisons and exports.

Every test that takes the ``log`` fixture runs twice: on SQLite (the run folder's
log.sqlite) and on PostgreSQL (a fresh schema of the throwaway server, ``conftest.pg``),
with the same assertions. Tests of what only SQLite has (its file, WAL, two processes
on one file) take ``sqlite_log``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

import pandas as pd
import pytest
from children import child, communicate, describe, wait_for
from PIL import Image

from wan_nb import _log_postgres, _spec
from wan_nb._exceptions import ConfigError
from wan_nb._grid import Cell, Grid, render_grid_html
from wan_nb._log import Log, records, writer
from wan_nb._log_schema import SCHEMA_VERSION
from wan_nb._store import Store
from wan_nb._tiles import CellItem

EVIL = '<script>alert(1)</script> & "x"'
EVIL_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;"
REPO = Path(__file__).resolve().parents[1]

DOCUMENTED_RUN_COLUMNS = [
    "run_id", "created_at", "sweep_id", "cell", "cell_index", "tags", "note", "stars", "rated_by", "user",
    "backend", "model", "action",
    "prompt", "n", "seed", "seed_random", "aspect_ratio", "resolution", "width", "height", "images_in",
    "callback_url", "callback_events", "watermark", "thinking_mode", "enable_sequential", "color_palette",
    "bbox_list", "warnings", "request_json", "request_hash", "idempotency_key", "task_id", "status",
    "error_code", "error_message", "est_quota", "cost_quota", "cost_usd", "cache_hit", "cached_from",
    "submitted_at", "started_at", "finished_at", "downloaded_at",
]


# ----------------------------------------------------------------- fixtures


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "wan_runs"


@pytest.fixture
def log(log_url: str, root: Path) -> Iterator[Log]:
    lg = Log(log_url, home=root)
    yield lg
    lg.close()


@pytest.fixture
def sqlite_log(root: Path) -> Log:
    return Log(root / "log.sqlite")


def raw(log: Log, sql: str, params: Any = (), write: bool = False) -> list[tuple[Any, ...]]:
    """SQL on the log's own engine (either one: ``?`` placeholders), as the package sends it."""
    with log._engine.transaction(write=write) as conn:
        cur = conn.execute(sql, params)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []


def reopen(log: Log, log_url: str, home: Path) -> Log:
    """The same log opened again with its files in ``home`` (a SQLite log moves with its folder)."""
    return Log(home / "log.sqlite") if log.kind == "sqlite" else Log(log_url, home=home)


@pytest.fixture
def store(root: Path) -> Store:
    return Store(root)


_colour = [0]


def png_for(aspect_ratio: str, scale: int = 16) -> bytes:
    """A small PNG with the aspect ratio's shape and a unique colour (so a unique sha256)."""
    w, h = (int(x) * scale for x in aspect_ratio.split(":"))
    _colour[0] += 1
    c = _colour[0]
    im = Image.new("RGB", (w, h), ((c * 37) % 256, (c * 91) % 256, (c * 53) % 256))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def record(log: Log, store: Store, run_id: str, *, status: str = "completed", error: str | None = None, **params):
    """Write a run the way the client will: planned row first, then submitted, then the outcome."""
    row: dict[str, Any] = {
        'run_id': run_id, 'backend': "simulator", 'model': _spec.MODEL, 'action': "generate", 'prompt': "a fox in snow",
        'n': 1, 'seed': 1, 'seed_random': False, 'aspect_ratio': "1:1", 'resolution': "1K", 'watermark': False,
        'thinking_mode': True, 'enable_sequential': False, 'status': "planned", 'est_quota': _spec.UNIT_QUOTA,
    }
    row.update(params)
    w, h = _spec.output_size(row["aspect_ratio"], row["resolution"])
    row.setdefault("width", w)
    row.setdefault("height", h)
    request_json = json.dumps({k: row[k] for k in ("prompt", "seed", "aspect_ratio", "resolution")}, sort_keys=True)
    row.update(request_json=request_json, request_hash=hashlib.sha256(request_json.encode()).hexdigest(),
               idempotency_key=f"key-{run_id}")
    log.add_run(row)
    t0 = time.time()
    writer(log).update_run(run_id, status="submitted", task_id=f"task-{run_id}", submitted_at=t0)
    if status == "completed":
        images = [store.put(png_for(row["aspect_ratio"]), source_url=f"https://cdn.example/{run_id}/{i}.png",
                            expires_at=t0 + 86400) for i in range(row["n"])]
        writer(log).add_images(run_id, images)
        writer(log).update_run(run_id, status="completed", started_at=t0 + 0.5, finished_at=t0 + 2.5,
                               downloaded_at=t0 + 3, cost_quota=_spec.UNIT_QUOTA * row["n"],
                               cost_usd=_spec.quota_to_usd(_spec.UNIT_QUOTA * row["n"]))
    elif status in ("failed", "error", "cancelled"):
        writer(log).update_run(run_id, status=status, error_code="upstream_unavailable",
                               error_message=error or "boom", finished_at=t0 + 1)
    else:
        writer(log).update_run(run_id, status=status)


def sweep(
    log: Log,
    store: Store,
    sweep_id: str,
    styles,
    seeds,
    *,
    aspect=lambda style, seed: "1:1",
    fail=(),
    pending=(),
    **fixed,
):
    i = 0
    for style in styles:
        for seed in seeds:
            status = "failed" if (style, seed) in fail else "queued" if (style, seed) in pending else "completed"
            record(
                log,
                store,
                f"{sweep_id}-{i}",
                status=status,
                sweep_id=sweep_id,
                cell={"style": style, "seed": seed},
                cell_index=i,
                seed=seed,
                prompt=f"a fox in snow, {style}",
                aspect_ratio=aspect(style, seed),
                error=f"upstream overloaded for {style}/{seed}",
                **fixed,
            )
            i += 1


def data_uris(html: str) -> list[str]:
    return re.findall(r'src="(data:image/jpeg;base64,[^"]+)"', html)


def decode_uri(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


# ----------------------------------------------------------------- schema & durability


def test_log_creates_wal_database_with_versioned_schema(sqlite_log: Log, root: Path) -> None:
    log = sqlite_log
    assert log.root == root and (root / "log.sqlite").exists()
    conn = sqlite3.connect(root / "log.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    run_cols = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    assert run_cols == DOCUMENTED_RUN_COLUMNS
    img_cols = [r[1] for r in conn.execute("PRAGMA table_info(images)")]
    assert img_cols == [
        "run_id",
        "idx",
        "path",
        "thumb_path",
        "sha256",
        "bytes",
        "width",
        "height",
        "format",
        "source_url",
        "expires_at",
    ]
    conn.close()
    with log._engine.transaction(write=False) as c:
        assert c.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000


def test_reopening_keeps_rows_and_newer_schema_is_refused(sqlite_log: Log, root: Path) -> None:
    log = sqlite_log
    log.add_run({"run_id": "r1", "prompt": "x"})
    assert Log(root / "log.sqlite").get_run("r1")["prompt"] == "x"
    assert Log(root).get_run("r1") is not None  # a folder means its log.sqlite
    conn = sqlite3.connect(root / "log.sqlite")
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="newer"):
        Log(root / "log.sqlite")


@pytest.mark.postgres
def test_a_postgresql_log_has_the_same_tables_and_opening_it_again_writes_nothing(
        pg_url: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = Log(pg_url, home=root)
    assert log.kind == "postgresql" and log.schema_version == SCHEMA_VERSION and log.path is None
    names = raw(log, "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                     "AND table_name = 'runs' ORDER BY ordinal_position")
    assert [n for (n,) in names] == [*DOCUMENTED_RUN_COLUMNS, "seq", "search"]  # the tie-break, the search index
    log.add_run({"run_id": "r1", "prompt": "x", "user": "ann"})
    opened: list[bool] = []
    real = _log_postgres.PostgresEngine.transaction

    def recorded(self: Any, write: bool) -> Any:
        opened.append(write)
        return real(self, write)

    monkeypatch.setattr(_log_postgres.PostgresEngine, "transaction", recorded)
    again = Log(pg_url, home=root)
    assert opened == [False]  # opening a current log only reads (no write lock, no DDL)
    monkeypatch.undo()
    assert again.get_run("r1")["user"] == "ann" and again.runs()["user"].tolist() == ["ann"]  # "user": quoted
    assert raw(log, "SELECT count(*) FROM meta") == [(1,)]
    with pytest.raises(ValueError, match="already"):
        again.add_run({"run_id": "r1"})
    raw(log, "UPDATE meta SET value = '99' WHERE key = 'schema_version'", write=True)
    with pytest.raises(ConfigError, match="newer"):
        Log(pg_url, home=root)
    for lg in (log, again):
        lg.close()


WRITER = textwrap.dedent(
    """
    import os, sys, time
    from wan_nb._log import Log, records, writer
    path, tag, go = sys.argv[1:4]
    open(go + "." + tag, "w").close()  # up and waiting
    while not os.path.exists(go):
        time.sleep(0.002)
    log = Log(path)  # both processes may create the fresh log at the same moment
    for i in range(200):
        rid = f"{tag}-{i}"
        log.add_run({"run_id": rid, "status": "planned", "sweep_id": tag, "cell": {"i": i}, "cell_index": i,
                     "prompt": f"{tag} prompt {i}", "seed": i, "tags": [tag]})
        writer(log).update_run(rid, status="submitted", task_id="t-" + rid, submitted_at=time.time())
        writer(log).add_images(rid, [{"path": f"images/00/{rid}.png", "sha256": "0" * 64, "bytes": 1,
                              "width": 1, "height": 1, "format": "PNG"}])
        writer(log).update_run(rid, status="completed", finished_at=time.time(), cost_quota=11475)
    """
)


@pytest.mark.subprocess
def test_two_processes_appending_at_once_lose_nothing(tmp_path: Path) -> None:
    path, go = tmp_path / "runs" / "log.sqlite", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with contextlib.ExitStack() as stack:
        procs = [stack.enter_context(child([sys.executable, "-c", WRITER, str(path), tag, str(go)], env=env))
                 for tag in ("A", "B")]
        for tag, p in zip(("A", "B"), procs, strict=True):
            wait_for((tmp_path / f"go.{tag}").exists, proc=p, what=f"writer {tag} to start")
        go.touch()  # both interpreters are up and waiting: they append at the same moment
        for p in procs:
            out, err = communicate(p, what="a writer to finish")
            assert p.returncode == 0, describe(out, err)
    log = Log(path)
    df = log.runs()
    assert len(df) == 400
    assert df["run_id"].is_unique
    assert set(df["status"]) == {"completed"}
    assert df["task_id"].notna().all() and (df["cost_quota"] == 11475).all()
    for tag in ("A", "B"):
        assert sorted(df.loc[df["sweep_id"] == tag, "cell_index"].tolist()) == list(range(200))
        assert sorted(df.loc[df["sweep_id"] == tag, "i"].tolist()) == list(range(200))
    assert len(log.images()) == 400
    assert (df["n_images"] == 1).all()


# ----------------------------------------------------------------- writes: checks


def test_add_run_refuses_bad_rows_and_names_the_column(log: Log) -> None:
    with pytest.raises(ValueError, match=r"'promt'.*did you mean 'prompt'"):
        log.add_run({"run_id": "r1", "promt": "typo"})
    with pytest.raises(ValueError, match="run_id"):
        log.add_run({"prompt": "no id"})
    with pytest.raises(ValueError, match="seed"):
        log.add_run({"run_id": "r1", "seed": "seven"})
    with pytest.raises(ValueError, match="status"):
        log.add_run({"run_id": "r1", "status": "done"})
    with pytest.raises(ValueError, match="tags"):
        log.add_run({"run_id": "r1", "tags": "portrait"})
    with pytest.raises(ValueError, match="watermark"):
        log.add_run({"run_id": "r1", "watermark": "yes"})
    assert log.runs().empty  # nothing half-written
    log.add_run({"run_id": "r1"})
    with pytest.raises(ValueError, match="already"):
        log.add_run({"run_id": "r1"})


def test_update_run_checks_run_and_columns(log: Log) -> None:
    log.add_run({"run_id": "r1", "status": "planned"})
    with pytest.raises(KeyError, match="nope"):
        writer(log).update_run("nope", status="queued")
    with pytest.raises(ValueError, match="colour"):
        writer(log).update_run("r1", colour="red")
    with pytest.raises(ValueError, match="cost_usd"):
        writer(log).update_run("r1", status="completed", cost_usd="free")
    assert log.get_run("r1")["status"] == "planned"  # the whole update was refused
    writer(log).update_run("r1", status="queued", task_id="t1")
    assert (log.get_run("r1")["status"], log.get_run("r1")["task_id"]) == ("queued", "t1")


def test_get_run_decodes_json_and_flags(log: Log) -> None:
    log.add_run(
        {
            "run_id": "r1",
            "cell": {"style": "ink", "seed": 3},
            "tags": ["portrait", "v2"],
            "images_in": ["https://x/a.png", "sha256:" + "ab" * 32],
            "color_palette": [("#112233", 60), ("#445566", 40)],
            "bbox_list": [[[0, 0, 10, 10]]],
            "warnings": ["thinking_mode ignored"],
            "callback_events": ["completed"],
            "watermark": True,
            "cache_hit": False,
            "seed_random": 1,
            "request_json": {"b": 1, "a": "é"},
        }
    )
    run = log.get_run("r1")
    assert run["cell"] == {"style": "ink", "seed": 3}
    assert run["tags"] == ["portrait", "v2"]
    assert run["color_palette"] == [["#112233", 60], ["#445566", 40]]
    assert run["bbox_list"] == [[[0, 0, 10, 10]]]
    assert run["watermark"] is True and run["cache_hit"] is False and run["seed_random"] is True
    assert run["request_json"] == '{"a":"é","b":1}'  # canonical text, kept as text
    assert run["images"] == []
    assert log.get_run("missing") is None


def test_add_images_replaces_and_stores_relative_paths(log: Log, log_url: str, store: Store, root: Path,
                                                       tmp_path: Path) -> None:
    record(log, store, "r1", n=2)
    assert [im["idx"] for im in log.get_run("r1")["images"]] == [0, 1]
    one = store.put(png_for("16:9"))
    writer(log).add_images("r1", [one])
    images = log.get_run("r1")["images"]
    assert len(images) == 1 and images[0]["path"] == one.path and images[0]["sha256"] == one.sha256
    stored = raw(log, "SELECT path, thumb_path FROM images")
    assert stored == [(one.path.relative_to(root).as_posix(), one.thumb_path.relative_to(root).as_posix())]
    with pytest.raises(KeyError, match="r404"):
        writer(log).add_images("r404", [one])
    with pytest.raises(ValueError, match="pth"):
        writer(log).add_images("r1", [{"pth": "x.png"}])
    assert len(log.get_run("r1")["images"]) == 1  # the refused call changed nothing
    # the run folder can be moved (or published) and still finds its files
    moved = Path(shutil.move(str(root), str(tmp_path / "published")))
    paths = reopen(log, log_url, moved).images()["path"]
    assert all(Path(p).exists() and p.startswith(str(moved)) for p in paths)
    assert records(reopen(log, log_url, moved)).run_images("r1")[0].open().size == (one.width, one.height)


def test_find_runs(log: Log, store: Store) -> None:
    record(log, store, "a", sweep_id="s1", status="completed")
    record(log, store, "b", sweep_id="s1", status="failed")
    record(log, store, "c", sweep_id="s2", status="completed", seed=5)
    assert [r["run_id"] for r in records(log).find_runs(sweep_id="s1")] == ["a", "b"]
    assert [r["run_id"] for r in records(log).find_runs(status="completed")] == ["a", "c"]
    assert [r["run_id"] for r in records(log).find_runs(status=["failed", "completed"], sweep_id="s1")] == ["a", "b"]
    assert [r["run_id"] for r in records(log).find_runs(idempotency_key="key-c")] == ["c"]
    assert [r["run_id"] for r in records(log).find_runs(task_id="task-b")] == ["b"]
    assert [r["run_id"] for r in records(log).find_runs(sweep_id=["s2", "s1"])] == ["a", "b", "c"]
    assert records(log).find_runs(sweep_id="none") == []
    hit = records(log).find_runs(request_hash=log.get_run("a")["request_hash"])
    assert [r["run_id"] for r in hit] == ["a", "b"]  # same request parameters → same hash
    assert len(hit[0]["images"]) == 1


# ----------------------------------------------------------------- DataFrames


def test_runs_frame_columns_and_dtypes(log: Log, store: Store) -> None:
    sweep(log, store, "s1", ["ink", "pixel art"], [1, 2], fail={("ink", 2)}, tags=["t"])
    df = log.runs()
    assert list(df.columns[: len(DOCUMENTED_RUN_COLUMNS)]) == DOCUMENTED_RUN_COLUMNS
    assert {"n_images", "paths", "duration_s", "style"} <= set(df.columns)
    assert "seed" in df.columns and list(df.columns).count("seed") == 1  # cell key with a real column: no copy
    for col in ("created_at", "submitted_at", "started_at", "finished_at", "downloaded_at"):
        assert isinstance(df[col].dtype, pd.DatetimeTZDtype) and str(df[col].dt.tz) == "UTC", col
    for col in ("action", "aspect_ratio", "resolution", "status", "model", "backend"):
        assert isinstance(df[col].dtype, pd.CategoricalDtype), col
    for col in ("n", "seed", "width", "height", "est_quota", "cost_quota", "cell_index", "n_images"):
        assert str(df[col].dtype) == "Int64", col
    for col in ("seed_random", "watermark", "thinking_mode", "enable_sequential", "cache_hit"):
        assert str(df[col].dtype) == "boolean", col
    assert str(df["cost_usd"].dtype) == "Float64" and str(df["duration_s"].dtype) == "Float64"
    assert df["tags"].iloc[0] == ["t"] and df["cell"].iloc[0] == {"style": "ink", "seed": 1}
    assert df["style"].tolist() == ["ink", "ink", "pixel art", "pixel art"]
    assert df["duration_s"].iloc[0] == pytest.approx(2.5)
    assert pd.isna(df["cost_usd"].iloc[1]) and df["cache_hit"].isna().all()
    assert df["n_images"].tolist() == [1, 0, 1, 1]
    assert all(Path(p).is_absolute() and Path(p).exists() for ps in df["paths"] for p in ps)
    assert df["created_at"].is_monotonic_increasing


def test_empty_log_has_the_same_columns_and_dtypes(log: Log) -> None:
    df = log.runs()
    assert df.empty and list(df.columns[: len(DOCUMENTED_RUN_COLUMNS)]) == DOCUMENTED_RUN_COLUMNS
    assert str(df["seed"].dtype) == "Int64" and isinstance(df["created_at"].dtype, pd.DatetimeTZDtype)
    assert log.images().empty


def test_images_frame_joins_run_parameters(log: Log, store: Store) -> None:
    record(log, store, "wide", aspect_ratio="16:9", n=2, prompt="wide one", tags=["x"])
    record(log, store, "tall", aspect_ratio="9:16", prompt="tall one")
    record(log, store, "broken", status="failed")
    df = log.images()
    assert df["run_id"].tolist() == ["wide", "wide", "tall"] and df["idx"].tolist() == [0, 1, 0]
    assert df["prompt"].tolist() == ["wide one", "wide one", "tall one"]
    assert (df["width"] > df["height"]).tolist() == [True, True, False]  # the image's own size
    assert str(df["bytes"].dtype) == "Int64" and str(df["width"].dtype) == "Int64"
    assert isinstance(df["expires_at"].dtype, pd.DatetimeTZDtype)
    assert isinstance(df["aspect_ratio"].dtype, pd.CategoricalDtype)
    assert all(Path(p).exists() for p in df["path"]) and all(Path(p).exists() for p in df["thumb_path"])
    assert len(log.images(aspect_ratio="9:16")) == 1
    pivot = df.pivot_table(index="run_id", values="bytes", aggfunc="count")
    assert pivot.loc["wide", "bytes"] == 2


def test_filters_and_where(log: Log, store: Store) -> None:
    sweep(log, store, "s1", ["ink", "oil"], [1, 2, 3], fail={("oil", 3)}, tags=["keep"])
    sweep(log, store, "s2", ["ink"], [1], resolution="2K")
    assert len(log.runs(sweep_id="s1")) == 6
    assert len(log.runs(seed=[1, 2])) == 5
    assert len(log.runs(seed=range(2, 4), style="oil")) == 2
    assert log.runs(status="failed")["run_id"].tolist() == ["s1-5"]
    assert len(log.runs(tags="keep")) == 6  # list columns: "contains"
    assert len(log.runs(where="resolution == '2K'")) == 1
    assert len(log.runs(where=lambda d: d["seed"] >= 2, sweep_id="s1")) == 4
    assert len(log.runs(cell={"style": "ink", "seed": 1})) == 2
    assert len(log.runs(error_code=None)) == 6
    with pytest.raises(ValueError, match="'stlye'"):
        log.runs(stlye="ink")
    with pytest.raises(ValueError, match="nosuch"):
        log.runs(where="nosuch > 3")
    with pytest.raises(ValueError, match="'colour'"):
        log.images(colour="red")


def test_csv_and_parquet_round_trip(log: Log, store: Store, tmp_path: Path) -> None:
    sweep(log, store, "s1", ["ink", "oil"], [1, 2], fail={("oil", 2)}, color_palette=[["#000000", 50], ["#ffffff", 50]])
    record(log, store, "solo", prompt=EVIL, seed=9, tags=["a", "b"])
    csv = log.to_csv(tmp_path / "out" / "runs.csv")
    back = pd.read_csv(csv)
    assert len(back) == 5 and back["prompt"].iloc[-1] == EVIL
    assert json.loads(back["color_palette"].iloc[0]) == [["#000000", 50], ["#ffffff", 50]]
    pq = log.to_parquet(tmp_path / "out" / "runs.parquet")
    back = pd.read_parquet(pq)
    assert len(back) == 5 and back["seed"].tolist() == [1, 2, 1, 2, 9]
    assert isinstance(back["created_at"].dtype, pd.DatetimeTZDtype)
    assert len(pd.read_parquet(log.to_parquet(tmp_path / "f.parquet", status="completed"))) == 4
    assert len(pd.read_csv(log.to_csv(tmp_path / "f.csv", where="style == 'ink'"))) == 2


@pytest.mark.subprocess
def test_the_log_works_without_pyarrow_and_to_parquet_names_the_extra(tmp_path: Path) -> None:
    """pyarrow is the ``parquet`` extra: without it the log reads, filters and exports CSV,
    and to_parquet says which extra to install, writing nothing."""
    code = textwrap.dedent(f"""
        import sys
        sys.modules["pyarrow"] = None  # as if not installed: importing it raises ImportError
        from wan_nb._exceptions import ConfigError
        from wan_nb._log import Log
        log = Log({str(tmp_path / "log.sqlite")!r})
        assert len(log.runs()) == 0 and log.to_csv({str(tmp_path / "runs.csv")!r}).is_file()
        try:
            log.to_parquet({str(tmp_path / "runs.parquet")!r})
        except ConfigError as exc:
            print(exc)
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'wan_nb[parquet]'" in proc.stdout
    assert not (tmp_path / "runs.parquet").exists()


# ----------------------------------------------------------------- grid


def test_grid_over_several_sweeps(log: Log, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # two sweeps over the same axes; portrait for ink, landscape for oil: mixed aspect ratios
    shape = lambda style, seed: "9:16" if style == "ink" else "16:9"  # noqa: E731
    sweep(log, store, "s1", ["ink", "oil"], [1, 2], aspect=shape, fail={("oil", 2)})
    sweep(log, store, "s2", ["ink", "oil"], [3], aspect=shape, pending={("oil", 3)})
    sweep(log, store, "other", ["ink"], [1], resolution="2K")  # not in the slice
    monkeypatch.chdir(tmp_path)

    grid = log.grid(rows="style", cols="seed", sweep_id=["s1", "s2"])
    assert grid.row_values == ["ink", "oil"] and grid.col_values == [1, 2, 3]
    assert grid.legend == {
        "model": _spec.MODEL,
        "action": "generate",
        "n": 1,
        "resolution": "1K",
        "watermark": False,
        "thinking_mode": True,
        "enable_sequential": False,
        "backend": "simulator",
    }
    assert "prompt" not in grid.legend and "aspect_ratio" not in grid.legend  # they vary
    assert [it.status for it in grid.cell("oil", 2).items] == ["failed"]
    assert [it.status for it in grid.cell("oil", 3).items] == ["queued"]

    html = grid._repr_html_()
    headers = re.findall(r"<th[^>]*><span title=\"([^\"]*)\">", html)
    assert headers == ["1", "2", "3", "ink", "oil"]
    assert "Same in every run" in html and '<b>resolution</b> = <span title="1K">1K</span>' in html
    assert html.count("<b>model</b>") == 1  # listed once, not per cell
    assert "upstream_unavailable: upstream overloaded for oil/2" in html
    assert "queued" in html
    uris = data_uris(html)
    assert len(uris) == 4  # one per completed run, none for failed/queued
    shapes = {decode_uri(u).size[0] > decode_uri(u).size[1] for u in uris}
    assert shapes == {True, False}  # landscape and portrait both kept their shape
    hrefs = re.findall(r'<a href="([^"]+)"', html)
    assert len(hrefs) == 4 and all(not h.startswith(("/", "http")) and (tmp_path / unquote(h)).exists() for h in hrefs)

    png = grid.to_png(tmp_path / "grid.png")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 3 * 200 and im.height > 2 * 200
    page = grid.to_html(tmp_path / "sub" / "grid.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "http://" not in page and "https://" not in page
    for h in re.findall(r'<a href="([^"]+)"', page):
        assert (tmp_path / "sub" / unquote(h)).exists()  # relative to the page's folder


def test_grid_captions_tell_apart_runs_sharing_a_cell(log: Log, store: Store) -> None:
    record(log, store, "a", seed=1, resolution="1K")
    record(log, store, "b", seed=2, resolution="1K")
    record(log, store, "c", seed=3, resolution="2K", n=2)
    grid = log.grid(rows="prompt", cols="resolution")
    assert grid.col_values == ["1K", "2K"]
    assert [it.caption for it in grid.cell("a fox in snow", "1K").items] == ["seed=1", "seed=2"]
    assert [it.caption for it in grid.cell("a fox in snow", "2K").items] == ["#1", "#2"]
    with pytest.raises(ValueError, match="'colour'"):
        log.grid(rows="colour", cols="seed")


def test_grid_escapes_prompts_in_labels_legend_and_captions(log: Log, store: Store) -> None:
    record(log, store, "a", prompt=EVIL, seed=1)
    record(log, store, "b", prompt=EVIL + " 2", seed=2, status="failed", error=EVIL)
    for html in (
        log.grid(rows="prompt", cols="seed")._repr_html_(),
        log.grid(rows="seed", cols="resolution")._repr_html_(),
    ):
        assert "<script" not in html and EVIL not in html
        assert EVIL_ESCAPED in html


def test_render_grid_html_for_live_cells() -> None:
    cells = {
        ("a", 1): Cell([CellItem(thumb=None, full=None, status="processing", caption="40%")]),
        ("a", 2): Cell([CellItem(thumb=None, full=None, status="error", error='HTTP 500 <"oops">')]),
    }
    html = render_grid_html(
        row_name="style",
        col_name="seed",
        row_values=["a", "b"],
        col_values=[1, 2],
        cells=cells,
        legend={"prompt": EVIL},
        title=EVIL,
        progress_line="1/4 done",
    )
    assert "processing" in html and "40%" in html and "1/4 done" in html
    assert "HTTP 500 &lt;&quot;oops&quot;&gt;" in html
    assert "<script" not in html and html.count(EVIL_ESCAPED) >= 2  # title and legend (+ tooltip)
    assert "no run with these values" in html  # the empty (b, *) cells
    assert Grid("style", "seed", ["a", "b"], [1, 2], cells, {"prompt": EVIL})._repr_html_().count("<table") == 1


# ----------------------------------------------------------------- compare


def test_compare_two_runs_highlights_differences(log: Log, store: Store) -> None:
    record(log, store, "r1", seed=1, aspect_ratio="1:1")
    record(log, store, "r2", seed=2, aspect_ratio="16:9", prompt=EVIL)
    cmp = log.compare("r1", SimpleNamespace(run_id="r2", sweep_id=None))
    assert cmp.kind == "runs" and set(cmp.differing) == {"seed", "aspect_ratio", "prompt"}
    html = cmp._repr_html_()
    highlighted = re.findall(r'<tr class="differs">.*?</tr>', html)
    assert len(highlighted) == 3 and all("background:#fff1b8" in row for row in highlighted)
    same = re.findall(r'<tr class="same"><td[^>]*></td><td[^>]*>([^<]+)</td>', html)
    assert "resolution" in same and "model" in same
    assert "<script" not in html and EVIL_ESCAPED in html
    assert len(data_uris(html)) == 2


def test_compare_two_sweeps(log: Log, store: Store) -> None:
    sweep(log, store, "s1", ["ink", "oil"], [1, 2], resolution="1K")
    sweep(log, store, "s2", ["ink", "oil"], [1, 2], resolution="2K", fail={("ink", 1)})
    cmp = log.compare("s1", SimpleNamespace(sweep_id="s2"))
    assert cmp.kind == "sweeps"
    assert "resolution" in cmp.differing and "style" not in cmp.differing and "seed" not in cmp.differing
    html = cmp._repr_html_()
    assert "1 failed" in html and len(data_uris(html)) == 7
    with pytest.raises(KeyError, match="nothing"):
        log.compare("s1", "nothing")
    with pytest.raises(ValueError, match="two runs or two sweeps"):
        log.compare("s1", "s2-0")


# ----------------------------------------------------------------- export


def test_export_html_is_self_contained_and_escaped(log: Log, store: Store, tmp_path: Path) -> None:
    sweep(log, store, "s1", ["ink", "oil"], [1, 2], fail={("oil", 2)})
    record(log, store, "evil", prompt=EVIL, tags=[EVIL], note=EVIL, status="failed", error=EVIL)
    record(log, store, "evil2", prompt=EVIL, aspect_ratio="3:2")
    out = log.export_html(tmp_path / "report" / "index.html", title=f"Report {EVIL}")
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    # opens from disk with no server: nothing fetched from anywhere
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html, re.I)
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    assert "url(" not in html
    # prompts escaped, never raw
    assert EVIL not in html and EVIL_ESCAPED in html
    # thumbnails embedded (grid of sweep s1 + runs table), full files linked relatively
    uris = data_uris(html)
    assert len(uris) == 3 + 3 + 1  # 3 completed cells in the grid, the same 3 + evil2 in the table
    hrefs = re.findall(r'<a href="([^"]+)"', html)
    assert hrefs and all((out.parent / unquote(h)).exists() for h in hrefs)
    assert "Sweep s1" in html and "upstream_unavailable" in html


def test_export_html_of_a_slice(log: Log, store: Store, tmp_path: Path) -> None:
    sweep(log, store, "s1", ["ink"], [1, 2])
    record(log, store, "x", prompt="unrelated prompt")
    html = log.export_html(tmp_path / "r.html", sweep_id="s1").read_text()
    assert "unrelated prompt" not in html and "a fox in snow, ink" in html


@pytest.mark.subprocess
def test_reading_the_log_starts_nothing(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    code = (
        "import threading, wan_nb as wan; df = wan.log().runs(); "
        "print(len(df), wan._session_module._current is None, "
        "any(t.name.startswith('wan_nb') for t in threading.enumerate()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["0", "True", "False"], out.stderr


# ----------------------------------------------------------------- lineage


def test_lineage_follows_images_by_sha256_or_by_a_hand_given_result_link(log: Log, store: Store) -> None:
    """An input is matched to the run that made it by its sha256, or, when the user
    pasted a result link by hand, by that link; a cache hit never counts as the maker."""
    record(log, store, "a")
    (made,) = log.get_run("a")["images"]
    # a cache hit showing the same file (dated earlier, to show that date is not what decides)
    record(log, store, "a-hit", cache_hit=True, cached_from="a", created_at=time.time() - 60)
    writer(log).add_images("a-hit", records(log).run_images("a"))
    record(log, store, "b", action="edit", images_in=[f"sha256:{made['sha256']}"])
    (b_img,) = log.get_run("b")["images"]
    record(log, store, "c", action="edit", images_in=[b_img["source_url"]])  # a link pasted by hand
    record(log, store, "other", images_in=["https://example.com/unrelated.jpg"])

    assert log.made_from() == {"a-hit": [], "a": [], "b": ["a"], "c": ["b"], "other": []}
    chain = log.lineage("c")
    assert list(chain["run_id"]) == ["a", "b", "c"]
    assert list(chain["depth"]) == [2, 1, 0] and list(chain["made_from"]) == [[], ["a"], ["b"]]
    assert chain["depth"].dtype == "Int64" and chain["created_at"].is_monotonic_increasing
    assert list(log.lineage(SimpleNamespace(run_id="a"))["run_id"]) == ["a"]
    with pytest.raises(KeyError, match="no run 'nope'"):
        log.lineage("nope")


def test_inputs_record_how_each_image_went_out(log: Log, store: Store) -> None:
    from wan_nb._images import ImageRef

    record(log, store, "r")
    sent = [
        ImageRef(url="https://cdn.example/x.png", sha256="ab" * 32, expires_at=1e9, via="link"),
        ImageRef(url="https://bucket.example/y.png?X-Signature=s3cr3t", sha256="cd" * 32, via="upload"),
        ImageRef(url="https://example.com/z.jpg", via="url"),
    ]
    writer(log).add_inputs("r", sent)
    rows = log.inputs("r")
    assert [(r["idx"], r["via"], r["url"]) for r in rows] == [
        (0, "link", "https://cdn.example/x.png"),
        (1, "upload", None),
        (2, "url", "https://example.com/z.jpg"),
    ]
    assert rows[0]["expires_at"] == 1e9 and rows[2]["sha256"] is None
    assert "s3cr3t" not in repr(raw(log, "SELECT * FROM inputs"))
    with pytest.raises(ValueError, match="via"):
        writer(log).add_inputs("r", [ImageRef(url="https://example.com/z.jpg", via="carrier pigeon")])
    assert len(log.inputs("r")) == 3  # the refused write changed nothing


def test_report_says_what_each_run_was_made_from(log: Log, store: Store, tmp_path: Path) -> None:
    record(log, store, "src")
    (img,) = log.get_run("src")["images"]
    record(log, store, "edit-1", action="edit", images_in=[f"sha256:{img['sha256']}"])
    html = log.export_html(tmp_path / "r.html").read_text()
    assert re.search(r'made from <a href="#run-src">src</a>', html)
    sliced = log.export_html(tmp_path / "s.html", run_id="edit-1").read_text()
    assert "made from src" in sliced  # the source is not in this report: named, not linked


def test_a_tampered_log_cannot_point_outside_its_folder(log: Log, store: Store, root: Path, tmp_path: Path) -> None:
    """A received run folder whose log names ../x.jpg (or a symlink out) must not show,
    embed or link that file."""
    for run_id in ("ok", "dotdot", "absolute", "linked"):
        record(log, store, run_id)
    secret = tmp_path / "outside.jpg"  # beside the run folder, not in it
    Image.new("RGB", (40, 40), (201, 13, 77)).save(secret, "JPEG")
    link = root / "images" / "zz" / "link.jpg"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    for run_id, path in (("dotdot", "../outside.jpg"), ("absolute", str(secret)), ("linked", "images/zz/link.jpg")):
        raw(log, "UPDATE images SET path = ?, thumb_path = ? WHERE run_id = ?", (path, path, run_id), write=True)
    images = log.images().set_index("run_id")
    assert Path(str(images.loc["ok", "path"])).is_file()
    for run_id in ("dotdot", "absolute", "linked"):
        assert images.loc[run_id, ["path", "thumb_path"]].isna().all(), run_id
        assert records(log).run_images(run_id) == [] and log.get_run(run_id)["images"][0]["path"] is None
    out = log.export_html(tmp_path / "report" / "index.html")
    html = out.read_text(encoding="utf-8")
    assert base64.b64encode(secret.read_bytes()).decode()[:80] not in html
    assert "outside" not in html and "link.jpg" not in html
    assert len(data_uris(html)) == 1 and "image file missing" in html  # only the good run shows an image
    with pytest.raises(ValueError, match="outside the run folder"):
        writer(log).add_images("ok", [{"path": "../outside.jpg"}])
