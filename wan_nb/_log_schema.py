"""The columns of the experiment log, their SQL types and their pandas dtypes.

One table of facts so the SQL schema (SQLite's ``DDL`` and PostgreSQL's ``PG_DDL``, both
generated from it), the checks on values written, and the DataFrame dtypes cannot drift
apart. Changing a column means bumping ``SCHEMA_VERSION`` and adding a step to
``MIGRATIONS`` (SQLite) and ``PG_MIGRATIONS`` (PostgreSQL, whose logs start at version 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _spec, _states
from ._images import VIA
from ._values import is_missing as is_missing  # what "no value" is in a log row

SCHEMA_VERSION = 3

# The run that keeps an idempotency key when a version-1 log holds several (two processes
# ran the same cell): a completed one first, then the oldest.
_KEEPER = ("(SELECT k.run_id FROM runs k WHERE k.idempotency_key = runs.idempotency_key "
           "ORDER BY k.status = 'completed' DESC, k.created_at, k.rowid LIMIT 1)")

# Steps that bring a log from version N-1 to N (SQL run inside one transaction).
MIGRATIONS: dict[int, list[str]] = {
    # 2: one run per idempotency key (the key is the claim on a server task, so two rows
    # with one key counted one bill twice). Cache hits never sent anything: no key. Older
    # duplicates become what they were, views of the kept run's task at no cost.
    2: [
        "UPDATE runs SET idempotency_key = NULL WHERE cache_hit = 1",
        f"UPDATE runs SET cache_hit = 1, cost_quota = 0, cost_usd = 0.0, cached_from = {_KEEPER} "
        f"WHERE idempotency_key IS NOT NULL AND run_id != {_KEEPER}",
        "UPDATE runs SET idempotency_key = NULL WHERE cache_hit = 1",
        "DROP INDEX IF EXISTS runs_idem",
    ],
    # 3: choosing (stars, who rated, who ran it: NEW_COLUMNS) and full-text search over
    # prompt, note and tags; the search index is filled after the DDL made it (AFTER_DDL).
    # runs_prompt gave way to runs_prompt_status (its leading column serves the same look-ups).
    3: ["DROP INDEX IF EXISTS runs_prompt"],
}
# Columns a version added to a table (added by the migration where they are missing).
NEW_COLUMNS: dict[int, list[tuple[str, str]]] = {
    3: [("runs", "stars"), ("runs", "rated_by"), ("runs", "user")],
}
# Steps run after the DDL, for what the DDL of that version made (an index to fill).
AFTER_DDL: dict[int, list[str]] = {
    3: ["INSERT INTO runs_fts (runs_fts) VALUES ('rebuild')"],
}

STATUSES = _states.STATES
BACKENDS = ("simulator", "hosted")


@dataclass(frozen=True)
class Column:
    """``kind`` decides both the check on write and the dtype on read.

    text · int (Int64) · real (Float64) · bool (boolean) · time (unix s → UTC datetime)
    · category (text → category) · json_list / json_dict / json (decoded Python objects)
    """

    name: str
    kind: str
    choices: tuple[str, ...] | None = None  # closed vocabularies are checked on write

    @property
    def sql_type(self) -> str:
        return {"int": "INTEGER", "bool": "INTEGER", "real": "REAL", "time": "REAL"}.get(self.kind, "TEXT")

    @property
    def pg_type(self) -> str:
        """The PostgreSQL type: 64-bit integers (SQLite's INTEGER), doubles for reals and unix
        times, INTEGER 0/1 for flags (the same values, the same SQL on both engines), and JSON
        as its text (kept as written: ``jsonb`` would reorder a sweep cell's keys; queries cast it)."""
        return {"int": "BIGINT", "bool": "INTEGER", "real": "DOUBLE PRECISION", "time": "DOUBLE PRECISION"}.get(
            self.kind, "TEXT")

    @property
    def is_json(self) -> bool:
        return self.kind.startswith("json")


C = Column
RUN_COLUMNS: tuple[Column, ...] = (
    C("run_id", "text"),
    C("created_at", "time"),
    C("sweep_id", "text"),
    C("cell", "json_dict"),
    C("cell_index", "int"),
    C("tags", "json_list"),
    C("note", "text"),
    C("stars", "int"),  # 1-5, None when unrated (``_curation``)
    C("rated_by", "text"),
    C("user", "text"),  # who ran it (WAN_NB_USER, else the OS user name)
    C("backend", "category", BACKENDS),
    C("model", "category"),
    C("action", "category"),
    C("prompt", "text"),
    C("n", "int"),
    C("seed", "int"),
    C("seed_random", "bool"),
    C("aspect_ratio", "category"),
    C("resolution", "category"),
    C("width", "int"),
    C("height", "int"),
    C("images_in", "json_list"),
    C("callback_url", "text"),
    C("callback_events", "json"),
    C("watermark", "bool"),
    C("thinking_mode", "bool"),
    C("enable_sequential", "bool"),
    C("color_palette", "json_list"),
    C("bbox_list", "json_list"),
    C("warnings", "json_list"),
    C("request_json", "text"),
    C("request_hash", "text"),
    C("idempotency_key", "text"),
    C("task_id", "text"),
    C("status", "category", STATUSES),
    C("error_code", "text"),
    C("error_message", "text"),
    C("est_quota", "int"),
    C("cost_quota", "int"),
    C("cost_usd", "real"),
    C("cache_hit", "bool"),
    C("cached_from", "text"),
    C("submitted_at", "time"),
    C("started_at", "time"),
    C("finished_at", "time"),
    C("downloaded_at", "time"),
)

IMAGE_COLUMNS: tuple[Column, ...] = (
    C("run_id", "text"),
    C("idx", "int"),
    C("path", "text"),
    C("thumb_path", "text"),
    C("sha256", "text"),
    C("bytes", "int"),
    C("width", "int"),
    C("height", "int"),
    C("format", "category"),
    C("source_url", "text"),
    C("expires_at", "time"),
)

# How each input image of a run went out (``_images.VIA``): the URL the user gave, a
# result link reused (no upload), or an upload. ``url`` is kept for given URLs and
# links, not for uploads (an uploader's URL may carry a signature).
INPUT_COLUMNS: tuple[Column, ...] = (
    C("run_id", "text"),
    C("idx", "int"),
    C("via", "category", VIA),
    C("sha256", "text"),
    C("url", "text"),
    C("expires_at", "time"),
)
del C

IMAGE_FIELDS = tuple(c.name for c in IMAGE_COLUMNS if c.name not in ("run_id", "idx"))  # what a StoredImage holds
RUNS = {c.name: c for c in RUN_COLUMNS}
IMAGES = {c.name: c for c in IMAGE_COLUMNS}
INPUTS = {c.name: c for c in INPUT_COLUMNS}

# Preferred order of category values (the document's order, not alphabetical).
CATEGORY_ORDER: dict[str, tuple[str, ...]] = {
    "action": _spec.ACTIONS,
    "aspect_ratio": _spec.ASPECT_RATIOS,
    "resolution": _spec.RESOLUTIONS,
    "status": STATUSES,
    "backend": BACKENDS,
    "model": _spec.MODELS,
}

# Columns that are request parameters: what a legend or a comparison talks about.
PARAMETERS = (
    "model", "action", "prompt", "n", "seed", "aspect_ratio", "resolution", "images_in",
    "watermark", "thinking_mode", "enable_sequential", "color_palette", "bbox_list",
    "callback_url", "callback_events", "backend",
)

# Columns a user sets by hand to choose among runs (``_curation``), not request parameters.
CHOICE_COLUMNS = ("stars", "tags", "note", "rated_by")

# Columns of list type whose filter means "contains" (tags="portrait"; ``tag=`` is the same).
CONTAINS_FILTER = ("tags", "images_in", "warnings")


def _ddl_columns(cols: tuple[Column, ...]) -> str:
    return ",\n  ".join(f"{c.name} {c.sql_type}" for c in cols)


DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS runs (\n  "
    + _ddl_columns(RUN_COLUMNS).replace("run_id TEXT", "run_id TEXT PRIMARY KEY NOT NULL", 1)
    + "\n)",
    "CREATE TABLE IF NOT EXISTS images (\n  "
    + _ddl_columns(IMAGE_COLUMNS).replace(
        "run_id TEXT", "run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE", 1
    )
    + ",\n  PRIMARY KEY (run_id, idx)\n)",
    # Added after version 1 without a version bump: a new table, created in old logs on
    # open, that older wan_nb versions simply do not read.
    "CREATE TABLE IF NOT EXISTS inputs (\n  "
    + _ddl_columns(INPUT_COLUMNS).replace(
        "run_id TEXT", "run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE", 1
    )
    + ",\n  PRIMARY KEY (run_id, idx)\n)",
    "CREATE INDEX IF NOT EXISTS runs_sweep ON runs (sweep_id, cell_index)",
    "CREATE UNIQUE INDEX IF NOT EXISTS runs_idem_key ON runs (idempotency_key)",  # the claim on a task
    "CREATE INDEX IF NOT EXISTS runs_status ON runs (status)",
    "CREATE INDEX IF NOT EXISTS runs_hash ON runs (request_hash)",
    "CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at)",
    # (column, status): the explorer's axes under its usual filter (completed runs) read from
    # the index alone: distinct prompts or seeds of a million runs in milliseconds
    "CREATE INDEX IF NOT EXISTS runs_prompt_status ON runs (prompt, status)",
    "CREATE INDEX IF NOT EXISTS runs_cached_from ON runs (cached_from)",
    "CREATE INDEX IF NOT EXISTS runs_task ON runs (task_id)",
    "CREATE INDEX IF NOT EXISTS images_sha ON images (sha256)",
    "CREATE INDEX IF NOT EXISTS runs_stars ON runs (stars)",
    "CREATE INDEX IF NOT EXISTS runs_seed_status ON runs (seed, status)",  # count(seed=3), distinct('seed')
    # Full-text search over prompt, note and tags (the tags' JSON text tokenises to the tags):
    # an index over the runs table's own text (external content), kept by triggers; an
    # update that changes none of the three columns (a state move) does not touch it.
    "CREATE VIRTUAL TABLE IF NOT EXISTS runs_fts USING fts5(prompt, note, tags, content='runs', "
    "content_rowid='rowid')",
    "CREATE TRIGGER IF NOT EXISTS runs_fts_insert AFTER INSERT ON runs BEGIN "
    "INSERT INTO runs_fts (rowid, prompt, note, tags) VALUES (new.rowid, new.prompt, new.note, new.tags); END",
    "CREATE TRIGGER IF NOT EXISTS runs_fts_delete AFTER DELETE ON runs BEGIN "
    "INSERT INTO runs_fts (runs_fts, rowid, prompt, note, tags) "
    "VALUES ('delete', old.rowid, old.prompt, old.note, old.tags); END",
    "CREATE TRIGGER IF NOT EXISTS runs_fts_update AFTER UPDATE OF prompt, note, tags ON runs BEGIN "
    "INSERT INTO runs_fts (runs_fts, rowid, prompt, note, tags) "
    "VALUES ('delete', old.rowid, old.prompt, old.note, old.tags); "
    "INSERT INTO runs_fts (rowid, prompt, note, tags) VALUES (new.rowid, new.prompt, new.note, new.tags); END",
]



def _pg_columns(cols: tuple[Column, ...]) -> str:
    return ",\n  ".join(f'"{c.name}" {c.pg_type}' for c in cols)


_INDEXES = [sql for sql in DDL if sql.startswith(("CREATE INDEX", "CREATE UNIQUE INDEX"))]  # the same on both
_FK = '"run_id" TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE'
# The same tables in PostgreSQL, from the same column table. Two columns only PostgreSQL has:
# ``seq`` orders runs created in the same instant (SQLite's rowid), and ``search`` is the
# full-text index's document (prompt, note and the tags' JSON text, words as they are:
# the 'simple' configuration, like FTS5's tokenizer, neither stems nor drops words), kept
# by PostgreSQL itself: a state move never touches it.
PG_DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS runs (\n  "
    + _pg_columns(RUN_COLUMNS).replace('"run_id" TEXT', '"run_id" TEXT PRIMARY KEY NOT NULL', 1)
    + ",\n  seq BIGSERIAL NOT NULL"
    + ",\n  search tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(prompt, '') || ' ' || "
    "coalesce(note, '') || ' ' || coalesce(tags, ''))) STORED\n)",
    "CREATE TABLE IF NOT EXISTS images (\n  " + _pg_columns(IMAGE_COLUMNS).replace('"run_id" TEXT', _FK, 1)
    + ",\n  PRIMARY KEY (run_id, idx)\n)",
    "CREATE TABLE IF NOT EXISTS inputs (\n  " + _pg_columns(INPUT_COLUMNS).replace('"run_id" TEXT', _FK, 1)
    + ",\n  PRIMARY KEY (run_id, idx)\n)",
    *[sql.replace("ON runs (created_at)", "ON runs (created_at, seq)") for sql in _INDEXES],
    "CREATE INDEX IF NOT EXISTS runs_search ON runs USING GIN (search)",
    # the explorer pages prompts in code-point order (COLLATE "C", as Python and SQLite sort),
    # which an index in the database's own collation cannot serve
    'CREATE INDEX IF NOT EXISTS runs_prompt_bytes ON runs ("prompt" COLLATE "C", status)',
]
# Steps that bring a PostgreSQL log from version N-1 to N (none yet: they start at 3).
PG_MIGRATIONS: dict[int, list[str]] = {}

# Columns runs() adds to the stored ones (not in SQL).
DERIVED_COLUMNS = ("n_images", "paths", "duration_s")

